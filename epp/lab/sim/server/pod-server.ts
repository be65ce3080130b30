/**
 * A simulated vLLM pod as a real HTTP server: the step-level model (../pod.ts) driven in real time
 * (simulated time = wall time since start × speedup), OpenAI-compatible `/v1/completions` and
 * `/v1/chat/completions` (JSON, or SSE with a final usage chunk when `stream_options.include_usage`;
 * usage carries `prompt_tokens_details.cached_tokens` as vLLM's with `--enable-prompt-tokens-details`), `/metrics` in vLLM's names,
 * `/health`, vLLM's `POST /reset_prefix_cache`, `GET /sim/stats` (simulated TTFTs, for the demo),
 * `GET|POST /sim/fault` (fault switches of the drill: stall the engine, hang `/metrics`; faults.ts),
 * and the model's KV events published over ZMQ.
 *
 * Prompts are tokenized with the EPP's own Tokenization (same tokenizer directory as the EPP) and
 * block keys are the real `sha256_cbor` chain, so the EPP indexes exactly what this pod caches.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createTokenProcessor } from '../../../src/kvindex/keys/token-processor.js';
import type { BlockKey, TokenProcessor } from '../../../src/kvindex/types.js';
import type { KvEventBatch } from '../../../src/kvevents/types.js';
import { Tokenization, TokenizationError, chatOptionsFromBody, completionOptionsFromBody } from '../../../src/tokenization/index.js';
import { SimPod, type Seq } from '../pod.js';
import type { PodProfile } from '../profiles.js';
import { BlockKeyer, type SimRequest } from '../request.js';
import { renderVllmMetrics, TtftHistogram } from '../vllm-metrics.js';
import { FAULT_PATH, PodFaults } from './faults.js';

/** Block keys vLLM computes (`sha256_cbor` under the pod's PYTHONHASHSEED) for token-id prompts. */
export class EngineKeyer extends BlockKeyer {
  private readonly memo = new WeakMap<SimRequest, BlockKey[]>();
  private readonly tp: TokenProcessor;
  constructor(blockSize: number, hashSeed: string) {
    super(hashSeed);
    this.tp = createTokenProcessor({ algo: 'sha256_cbor', blockSize, hashSeed });
  }
  override keys(req: SimRequest, bs: number): BlockKey[] {
    const hit = this.memo.get(req);
    if (hit) return hit;
    const keys = this.prefixKeys(req, bs, Number.MAX_SAFE_INTEGER);
    this.memo.set(req, keys);
    return keys;
  }
  override prefixKeys(req: SimRequest, bs: number, maxBlocks: number): BlockKey[] {
    if (req.content.kind !== 'tokens') throw new Error('EngineKeyer keys token-id prompts only');
    if (bs !== this.tp.blockSize) throw new RangeError(`EngineKeyer has block size ${this.tp.blockSize}, asked for ${bs}`);
    const toks = req.content.tokens;
    const n = Math.min(maxBlocks, Math.floor(toks.length / bs));
    return this.tp.blockKeys(Array.prototype.slice.call(toks, 0, n * bs) as number[]);
  }
}

export interface SimPodServerOptions {
  /** `ip:port` pod id (topic and logs). */
  readonly id: string;
  /** Served model name. */
  readonly model: string;
  readonly profile: PodProfile;
  /** Tokenizer directory (tokenizer.json + tokenizer_config.json), the EPP's. */
  readonly tokenizerDir: string;
  /** PYTHONHASHSEED of the block-key chain. @default '42' */
  readonly hashSeed?: string;
  /** Simulated ms per wall ms. @default 1 */
  readonly speedup?: number;
  /** Delay before a step's KV events are handed to `onKvEvents`, wall ms. @default 0 */
  readonly eventLagMs?: number;
  /** Receives KV-event batches (the ZMQ publisher). @default none */
  readonly onKvEvents?: (batch: KvEventBatch) => void;
  /** Default `max_tokens`. @default 16 */
  readonly defaultMaxTokens?: number;
  /** Tokenizer worker threads (0: in the event loop). @default 1 */
  readonly tokenizerWorkers?: number;
}

interface Waiter {
  first?: () => void;
  done: () => void;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = 'BadRequestError',
  ) {
    super(message);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function readBody(req: IncomingMessage, limit = 16 * 1024 * 1024): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > limit) throw new HttpError(413, `request body over ${limit} bytes`);
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

export class SimPodServer {
  readonly pod: SimPod;
  private readonly opts: SimPodServerOptions;
  private readonly speedup: number;
  private readonly t0 = performance.now();
  private readonly waiters = new Map<Seq, Waiter>();
  private timer: NodeJS.Timeout | undefined;
  private server: Server | undefined;
  private nextId = 0;
  private lagTimers = new Set<NodeJS.Timeout>();
  /** Requests answered, by HTTP status. */
  readonly responses = new Map<number, number>();
  /** Fault switches (`POST /sim/fault`, for the fault drill). */
  readonly faults = new PodFaults(() => this.kick());
  /** Simulated TTFT (arrival on the pod → end of the step that produced the first token), ms, in order. */
  readonly ttftMs: number[] = [];
  /** The same TTFTs as `vllm:time_to_first_token_seconds` on /metrics (simulated seconds). */
  private readonly ttft = new TtftHistogram();

  private constructor(
    opts: SimPodServerOptions,
    private readonly tok: Tokenization,
  ) {
    this.opts = opts;
    this.speedup = opts.speedup ?? 1;
    if (!(this.speedup > 0) || !Number.isFinite(this.speedup)) throw new RangeError(`speedup ${opts.speedup}: must be a finite number > 0`);
    const lag = opts.eventLagMs ?? 0;
    this.pod = new SimPod({
      id: opts.id,
      profile: opts.profile,
      keyer: new EngineKeyer(opts.profile.blockSize, opts.hashSeed ?? '42'),
      onKvEvents: (b) => {
        const sink = opts.onKvEvents;
        if (!sink) return;
        if (lag <= 0) sink(b);
        else {
          const t = setTimeout(() => {
            this.lagTimers.delete(t);
            sink(b);
          }, lag);
          this.lagTimers.add(t);
        }
      },
    });
  }

  static async create(opts: SimPodServerOptions): Promise<SimPodServer> {
    const tok = await Tokenization.create({ path: opts.tokenizerDir, workers: opts.tokenizerWorkers ?? 1, models: [opts.model] });
    return new SimPodServer(opts, tok);
  }

  /** Simulated time now, ms. */
  now(): number {
    return (performance.now() - this.t0) * this.speedup;
  }

  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.faults.close();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const t of this.lagTimers) clearTimeout(t);
    this.lagTimers.clear();
    const s = this.server;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    await this.tok.close();
  }

  // ---- real-time driver ---------------------------------------------------------------------

  private kick(): void {
    if (this.timer || this.pod.busy || this.faults.stall) return;
    const start = this.now();
    const ms = this.pod.beginStep();
    if (ms === undefined) return;
    // The step ends at its simulated end (start + cost), so simulated times carry no timer jitter;
    // the wall-clock wait is the cost / speedup.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const r = this.pod.endStep(start + ms);
      for (const s of r.firstTokens) {
        const ttftMs = (s.firstTokenMs ?? this.now()) - s.receivedMs;
        if (this.ttftMs.length < 1_000_000) this.ttftMs.push(ttftMs);
        this.ttft.observe(Math.max(0, ttftMs) / 1000);
        this.waiters.get(s)?.first?.();
      }
      for (const s of r.finished) {
        const w = this.waiters.get(s);
        this.waiters.delete(s);
        w?.done();
      }
      this.kick();
    }, ms / this.speedup);
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  private send(res: ServerResponse, status: number, body: unknown): void {
    this.responses.set(status, (this.responses.get(status) ?? 0) + 1);
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method === 'GET' && path === '/health') {
        res.writeHead(200).end();
        return;
      }
      if (path === FAULT_PATH) {
        await this.faults.handle(req, res);
        return;
      }
      if (req.method === 'GET' && path === '/metrics') {
        if (await this.faults.holdMetrics(res)) return;
        const text = renderVllmMetrics(this.pod.metrics(), { modelName: this.opts.model, profile: this.opts.profile, ttft: this.ttft });
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text);
        return;
      }
      if (req.method === 'GET' && path === '/sim/stats') {
        this.send(res, 200, { ttftMs: this.ttftMs, steps: this.pod.stats().steps });
        return;
      }
      if (req.method === 'POST' && path === '/reset_prefix_cache') {
        const ok = this.pod.resetPrefixCache(this.now());
        if (ok) res.writeHead(200).end();
        else this.send(res, 409, { error: { message: 'prefix cache in use by running requests; retry when idle', type: 'ConflictError', code: 409 } });
        return;
      }
      if (req.method === 'POST' && (path === '/v1/completions' || path === '/v1/chat/completions')) {
        await this.completion(req, res, path === '/v1/chat/completions');
        return;
      }
      throw new HttpError(404, `no route ${req.method} ${path}; this simulated vLLM serves POST /v1/completions, POST /v1/chat/completions, GET /metrics, GET /health`, 'NotFoundError');
    } catch (e) {
      const err =
        e instanceof HttpError
          ? e
          : e instanceof TokenizationError
            ? new HttpError(400, e.message)
            : new HttpError(500, `internal error: ${(e as Error).message}`, 'InternalServerError');
      if (res.headersSent) res.end();
      else this.send(res, err.status, { error: { message: err.message, type: err.type, code: err.status } });
    }
  }

  private async completion(req: IncomingMessage, res: ServerResponse, chat: boolean): Promise<void> {
    const raw = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw new HttpError(400, `request body is not valid JSON (${(e as Error).message}); send an OpenAI ${chat ? 'chat ' : ''}completion request`);
    }
    if (!isRecord(body)) throw new HttpError(400, 'request body must be a JSON object');
    const model = body.model;
    if (model !== this.opts.model) throw new HttpError(404, `The model \`${String(model)}\` does not exist. This pod serves "${this.opts.model}".`, 'NotFoundError');
    const maxTokens = body.max_tokens ?? body.max_completion_tokens ?? this.opts.defaultMaxTokens ?? 16;
    if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1) {
      throw new HttpError(400, `"max_tokens" must be an integer ≥ 1, got ${JSON.stringify(maxTokens)}`);
    }
    const ids = chat
      ? await this.tok.tokenizeChat(this.opts.model, body.messages, chatOptionsFromBody(body))
      : await this.tok.tokenizeCompletion(this.opts.model, body.prompt, completionOptionsFromBody(body));
    const sim: SimRequest = {
      id: this.nextId++,
      sessionId: typeof req.headers['x-session-id'] === 'string' ? req.headers['x-session-id'] : '',
      inputLength: ids.length,
      outputLength: maxTokens,
      stage: 0,
      warmup: false,
      content: { kind: 'tokens', tokens: ids },
    };
    const reason = this.pod.rejectReason(sim);
    if (reason) throw new HttpError(400, `This model's maximum context length or KV capacity is exceeded: ${reason}`);
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${this.opts.id}-${sim.id}`;
    const created = Math.floor(Date.now() / 1000);
    const object = chat ? 'chat.completion' : 'text_completion';
    const text = (n: number): string => 'tok '.repeat(n);
    const choice = (n: number, finish: string | null, streaming: boolean): Record<string, unknown> =>
      chat
        ? { index: 0, [streaming ? 'delta' : 'message']: { role: 'assistant', content: text(n) }, finish_reason: finish }
        : { index: 0, text: text(n), finish_reason: finish };
    const stream = body.stream === true;
    const seq = this.pod.enqueue(sim, this.now());
    const usage = (): Record<string, unknown> => ({
      prompt_tokens: ids.length,
      completion_tokens: seq.generated,
      total_tokens: ids.length + seq.generated,
      prompt_tokens_details: { cached_tokens: seq.firstHitTokens ?? 0 },
    });
    if (!stream) {
      await new Promise<void>((resolve) => {
        this.waiters.set(seq, { done: resolve });
        this.kick();
      });
      this.send(res, 200, { id, object, created, model: this.opts.model, choices: [choice(seq.generated, 'length', false)], usage: usage() });
      return;
    }
    this.responses.set(200, (this.responses.get(200) ?? 0) + 1);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const chunkObject = chat ? 'chat.completion.chunk' : 'text_completion';
    const event = (o: unknown): void => {
      res.write(`data: ${JSON.stringify(o)}\n\n`);
    };
    await new Promise<void>((resolve) => {
      this.waiters.set(seq, {
        first: () => event({ id, object: chunkObject, created, model: this.opts.model, choices: [choice(1, null, true)] }),
        done: resolve,
      });
      this.kick();
    });
    event({ id, object: chunkObject, created, model: this.opts.model, choices: [choice(seq.generated - 1, 'length', true)] });
    const so = body.stream_options;
    // Like vLLM: the usage chunk only when the client asked for it.
    if (isRecord(so) && so.include_usage === true) event({ id, object: chunkObject, created, model: this.opts.model, choices: [], usage: usage() });
    res.end('data: [DONE]\n\n');
  }
}
