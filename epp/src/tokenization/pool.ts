/**
 * A pool of tokenizer worker threads so tokenization never blocks the event loop. Each worker loads
 * the tokenizer once; requests wait in one FIFO queue and go to the next idle worker. A worker that
 * dies is replaced; its in-flight request fails with an `internal` error.
 *
 * The worker entry is `worker.js` next to this module. When this module runs as TypeScript source
 * (ts-jest, tsx), the worker is started from a small bootstrap that registers tsx's ESM loader in
 * the worker and then imports `worker.ts`, so the same code works from source and from `dist/`.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Encoded, TokenizerInfo } from './core.js';
import { TokenizationError } from './errors.js';
import type { FromWorker, WorkerInit } from './protocol.js';

/** Something that turns text into ids without special tokens (the pool, or in-thread). */
export interface Encoder {
  readonly info: TokenizerInfo;
  encode(text: string): Promise<Encoded>;
  /** Requests waiting for a worker. */
  readonly queued: number;
  close(): Promise<void>;
}

/** Options of the worker pool. */
export interface TokenizerPoolOptions {
  /** Directory holding tokenizer.json. */
  readonly dir: string;
  /**
   * Worker threads.
   * @default 2
   */
  readonly workers?: number;
  /**
   * Requests allowed to wait for a worker; beyond it `encode` fails fast with code `shed`.
   * @default 4096
   */
  readonly maxQueue?: number;
}

interface Job {
  readonly id: number;
  readonly text: string;
  readonly resolve: (r: Encoded) => void;
  readonly reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | undefined;
}

/** How to start the worker for the current module format (exported for tests). */
export function workerLaunch(moduleUrl: string = import.meta.url): { file: string; eval: boolean; code: string } {
  const here = fileURLToPath(moduleUrl);
  const dir = dirname(here);
  if (!here.endsWith('.ts')) {
    const file = join(dir, 'worker.js');
    return { file, eval: false, code: file };
  }
  const file = join(dir, 'worker.ts');
  let api: string;
  try {
    api = createRequire(moduleUrl).resolve('tsx/esm/api');
  } catch (err) {
    throw new TokenizationError('internal', `running from TypeScript source needs tsx to start tokenizer workers, and it cannot be resolved (${(err as Error).message}): install tsx or run the compiled dist/`, {
      cause: err,
    });
  }
  const mjs = api.replace(/\.cjs$/, '.mjs');
  const apiUrl = pathToFileURL(existsSync(mjs) ? mjs : api).href;
  const code = [
    `import(${JSON.stringify(apiUrl)})`,
    `.then((m) => { (m.register ?? m.default.register)(); return import(${JSON.stringify(pathToFileURL(file).href)}); })`,
    `.catch((e) => { require('node:worker_threads').parentPort.postMessage({ type: 'fatal', message: 'worker bootstrap failed: ' + (e && e.message) }); });`,
  ].join('');
  return { file, eval: true, code };
}

/** The worker-thread encoder. Create with `TokenizerPool.start`. */
export class TokenizerPool implements Encoder {
  private readonly slots: Slot[] = [];
  private readonly queue: (Job | undefined)[] = [];
  private qHead = 0;
  private nextId = 1;
  private closed = false;
  private readonly maxQueue: number;

  private constructor(
    private readonly dir: string,
    maxQueue: number,
    readonly info: TokenizerInfo,
  ) {
    this.maxQueue = maxQueue;
  }

  /** Start the workers and wait until every one has loaded the tokenizer. */
  static async start(opts: TokenizerPoolOptions): Promise<TokenizerPool> {
    const n = opts.workers ?? 2;
    if (!Number.isInteger(n) || n < 1 || n > 64) {
      throw new TokenizationError('bad_request', `tokenizer.workers must be an integer from 1 to 64, got ${n}: use 1–4 per spare core`);
    }
    const started = Array.from({ length: n }, () => TokenizerPool.spawn(opts.dir));
    const results = await Promise.allSettled(started.map((s) => s.ready));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(started.map((s) => s.worker.terminate()));
      throw failed.reason;
    }
    const info = (results[0] as PromiseFulfilledResult<TokenizerInfo>).value;
    const pool = new TokenizerPool(opts.dir, opts.maxQueue ?? 4096, info);
    for (const s of started) pool.adopt(s.worker);
    return pool;
  }

  private static spawn(dir: string): { worker: Worker; ready: Promise<TokenizerInfo> } {
    const launch = workerLaunch();
    const workerData: WorkerInit = { dir };
    const worker = new Worker(launch.code, { eval: launch.eval, workerData });
    const ready = new Promise<TokenizerInfo>((resolve, reject) => {
      const onMessage = (m: FromWorker): void => {
        if (m.type === 'ready') {
          cleanup();
          resolve(m.info);
        } else if (m.type === 'fatal') {
          cleanup();
          reject(new TokenizationError('tokenizer_unavailable', m.message));
        }
      };
      const onError = (e: Error): void => {
        cleanup();
        reject(new TokenizationError('tokenizer_unavailable', `tokenizer worker failed to start: ${e.message}`, { cause: e }));
      };
      const onExit = (code: number): void => {
        cleanup();
        reject(new TokenizationError('tokenizer_unavailable', `tokenizer worker exited with code ${code} while loading ${dir}`));
      };
      const cleanup = (): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
    return { worker, ready };
  }

  private adopt(worker: Worker, ready = true): Slot {
    const slot: Slot = { worker, ready, job: undefined };
    this.slots.push(slot);
    worker.on('message', (m: FromWorker) => this.onMessage(slot, m));
    worker.on('error', () => undefined); // reported through 'exit'
    worker.on('exit', (code) => this.onExit(slot, code));
    return slot;
  }

  /** Requests waiting for a worker. */
  get queued(): number {
    return this.queue.length - this.qHead;
  }

  /** Workers currently tokenizing. */
  get busy(): number {
    return this.slots.filter((s) => s.job !== undefined).length;
  }

  /** Live workers. */
  get size(): number {
    return this.slots.length;
  }

  encode(text: string): Promise<Encoded> {
    if (this.closed) return Promise.reject(new TokenizationError('closed', 'the tokenizer pool is closed'));
    if (this.queued >= this.maxQueue) {
      return Promise.reject(new TokenizationError('shed', `tokenizer queue is full (${this.maxQueue} waiting): add tokenizer.workers or shed load upstream`));
    }
    return new Promise<Encoded>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, text, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.qHead >= this.queue.length) break;
      if (!slot.ready || slot.job !== undefined) continue;
      const job = this.queue[this.qHead]!;
      this.queue[this.qHead++] = undefined;
      if (this.qHead > 1024 && this.qHead * 2 > this.queue.length) {
        this.queue.splice(0, this.qHead);
        this.qHead = 0;
      }
      slot.job = job;
      slot.worker.postMessage({ id: job.id, text: job.text });
    }
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    if (m.type === 'ready') {
      slot.ready = true;
      this.dispatch();
      return;
    }
    if (m.type === 'fatal') return; // followed by exit
    const job = slot.job;
    if (job === undefined || job.id !== m.id) return;
    slot.job = undefined;
    if (m.type === 'result') job.resolve(m.charEnds ? { ids: m.ids, charEnds: m.charEnds } : { ids: m.ids });
    else job.reject(new TokenizationError('internal', `tokenizer worker failed: ${m.message}`));
    this.dispatch();
  }

  private onExit(slot: Slot, code: number): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    if (slot.job) {
      slot.job.reject(new TokenizationError('internal', `tokenizer worker exited (code ${code}) while tokenizing; the request can be retried`));
      slot.job = undefined;
    }
    if (this.closed) return;
    if (slot.ready) {
      // Replace a worker that had been serving; its 'ready' message (onMessage) puts it to work.
      const { worker, ready } = TokenizerPool.spawn(this.dir);
      ready.catch(() => undefined); // a failed replacement is handled by its own exit
      this.adopt(worker, false);
    } else if (this.slots.length === 0) {
      this.failQueued(new TokenizationError('tokenizer_unavailable', `every tokenizer worker has exited (last code ${code}); restart the EPP`));
    }
  }

  private failQueued(err: Error): void {
    while (this.qHead < this.queue.length) {
      this.queue[this.qHead++]?.reject(err);
    }
    this.queue.length = 0;
    this.qHead = 0;
  }

  /** Terminate one worker (tests: crash recovery). */
  async terminateOne(): Promise<void> {
    const slot = this.slots[0];
    if (slot) await slot.worker.terminate();
  }

  /** Fail waiting requests and stop every worker. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failQueued(new TokenizationError('closed', 'the tokenizer pool was closed before this request ran'));
    const slots = this.slots.splice(0);
    for (const s of slots) {
      if (s.job) s.job.reject(new TokenizationError('closed', 'the tokenizer pool was closed while this request ran'));
      s.job = undefined;
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
