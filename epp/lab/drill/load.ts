/**
 * The drill's client side: an open-loop steady load (a fixed request rate, whatever the answers)
 * of a shared-prefix chat workload through a gateway, and one record per request:
 * - `answered`: 200 and the whole SSE stream up to `[DONE]` (its usage chunk gives the prompt and
 *   cached tokens, so hit rates come from the answers themselves);
 * - `explicit`: an explicit 429 or 503;
 * - `lost`: anything else (another status, a transport error, a cut stream, no answer in time);
 * - `aborted`: the client itself disconnected mid-response (the client-disconnect fault).
 */
import { buildWorkload, type DemoRequest } from '../demo/run.js';
import { DESTINATION_HEADER } from '../demo/extproc-client.js';

export type Outcome = 'answered' | 'explicit' | 'lost' | 'aborted';

export interface RequestRecord {
  /** Date.now() when sent / when the outcome was known. */
  readonly sent: number;
  done: number;
  outcome: Outcome | 'pending';
  status?: number;
  pod?: string;
  promptTokens: number;
  cachedTokens: number;
  /** Which traffic: the steady load, a burst class, the FailClose probe, a disconnecting client. */
  readonly kind: string;
  error?: string;
}

export interface SendOptions {
  readonly port: number;
  readonly kind: string;
  readonly headers?: Record<string, string>;
  /** Disconnect after the first body chunk. */
  readonly abortAfterFirstChunk?: boolean;
  /** `max_tokens` instead of the workload's (longer answers hold KV blocks longer). */
  readonly maxTokens?: number;
  readonly timeoutMs: number;
}

interface Usage {
  prompt_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

export class RequestLog {
  readonly records: RequestRecord[] = [];
  private readonly work: DemoRequest[];
  private next = 0;
  private readonly inflight = new Set<Promise<void>>();

  constructor(o: { systemPrompts: number; systemWords: number; maxTokens: number; seed: number; distinct: number }) {
    this.work = buildWorkload({ requests: o.distinct, systemPrompts: o.systemPrompts, systemWords: o.systemWords, maxTokens: o.maxTokens, seed: o.seed });
  }

  /** Sends the next workload request; resolves when its outcome is known. */
  send(o: SendOptions): Promise<void> {
    let body = (this.work[this.next++ % this.work.length] as DemoRequest).body;
    if (o.maxTokens !== undefined) body = body.replace(/"max_tokens":\d+/, `"max_tokens":${o.maxTokens}`);
    const rec: RequestRecord = { sent: Date.now(), done: 0, outcome: 'pending', promptTokens: 0, cachedTokens: 0, kind: o.kind };
    this.records.push(rec);
    const p = this.run(o, body, rec).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    return p;
  }

  private async run(o: SendOptions, body: string, rec: RequestRecord): Promise<void> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error(`no complete answer within ${o.timeoutMs} ms`)), o.timeoutMs);
    try {
      const res = await fetch(`http://127.0.0.1:${o.port}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(o.headers ?? {}) },
        body,
        signal: ac.signal,
      });
      rec.status = res.status;
      rec.pod = res.headers.get(DESTINATION_HEADER) ?? undefined;
      if (res.status !== 200 || !res.body) {
        await res.arrayBuffer().catch(() => undefined);
        rec.outcome = res.status === 429 || res.status === 503 ? 'explicit' : 'lost';
        if (rec.outcome === 'lost') rec.error = `status ${res.status}`;
        return;
      }
      const reader = res.body.getReader();
      if (o.abortAfterFirstChunk) {
        await reader.read();
        ac.abort(new Error('client disconnect (fault)'));
        await reader.cancel().catch(() => undefined);
        rec.outcome = 'aborted';
        return;
      }
      const dec = new TextDecoder();
      let text = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += dec.decode(value, { stream: true });
      }
      if (!text.includes('data: [DONE]')) {
        rec.outcome = 'lost';
        rec.error = 'stream ended before [DONE]';
        return;
      }
      for (const line of text.split('\n')) {
        if (!line.startsWith('data: {') || !line.includes('"usage"')) continue;
        const u = (JSON.parse(line.slice(6)) as { usage?: Usage }).usage;
        if (u) {
          rec.promptTokens = u.prompt_tokens ?? 0;
          rec.cachedTokens = u.prompt_tokens_details?.cached_tokens ?? 0;
        }
      }
      rec.outcome = 'answered';
    } catch (e) {
      if (rec.outcome === 'pending') {
        rec.outcome = 'lost';
        rec.error = (e as Error).message;
      }
    } finally {
      clearTimeout(timer);
      rec.done = Date.now();
    }
  }

  /** Waits for every request sent so far. */
  async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }
}

/** Sends `rate` requests per second until stopped (open loop: it never waits for answers). */
export class SteadyLoad {
  private timer: NodeJS.Timeout | undefined;
  private readonly sends = new Set<Promise<void>>();

  constructor(
    private readonly log: RequestLog,
    private readonly o: { port: () => number; rate: number; timeoutMs: number; kind?: string },
  ) {}

  start(): void {
    if (this.timer) return;
    const interval = 1000 / this.o.rate;
    let due = Date.now();
    const tick = (): void => {
      const now = Date.now();
      while (due <= now) {
        const p = this.log.send({ port: this.o.port(), kind: this.o.kind ?? 'steady', timeoutMs: this.o.timeoutMs });
        this.sends.add(p);
        void p.finally(() => this.sends.delete(p));
        due += interval;
      }
      this.timer = setTimeout(tick, Math.max(1, due - Date.now()));
    };
    tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }
}

/** Token hit rate of the answered requests completed in [from, to). */
export function hitRate(records: readonly RequestRecord[], from: number, to: number, kind = 'steady'): { rate: number; n: number } {
  let hits = 0;
  let prompt = 0;
  let n = 0;
  for (const r of records) {
    if (r.kind !== kind || r.outcome !== 'answered' || r.done < from || r.done >= to) continue;
    hits += r.cachedTokens;
    prompt += r.promptTokens;
    n++;
  }
  return { rate: prompt > 0 ? hits / prompt : NaN, n };
}
