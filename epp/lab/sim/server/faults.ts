/**
 * Fault switches of a simulated pod, for the fault drill (lab/drill):
 * - `stall`: the engine takes no more steps (the process stays alive and keeps accepting requests,
 *   which wait; `/metrics` shows the growing queue). Lifting it resumes the steps.
 * - `metricsHang`: `GET /metrics` never answers while set (the connection stays open); lifting it
 *   answers every held scrape with 503.
 *
 *   curl -X POST localhost:8001/sim/fault -d '{"stall":true}'      # set (fields not given keep their value)
 *   curl localhost:8001/sim/fault                                   # {"stall":true,"metricsHang":false}
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export const FAULT_PATH = '/sim/fault';

export interface PodFaultState {
  readonly stall: boolean;
  readonly metricsHang: boolean;
}

export class PodFaults {
  stall = false;
  metricsHang = false;
  private readonly held = new Set<ServerResponse>();

  /** `resume` is called when the stall is lifted (restarts the engine loop). */
  constructor(private readonly resume: () => void) {}

  get state(): PodFaultState {
    return { stall: this.stall, metricsHang: this.metricsHang };
  }

  /** Applies `{stall?, metricsHang?}`; throws naming the bad field. */
  set(patch: unknown): PodFaultState {
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
      throw new Error(`fault body must be a JSON object like {"stall":true,"metricsHang":false}; got ${JSON.stringify(patch)}`);
    }
    const p = patch as Record<string, unknown>;
    for (const k of Object.keys(p)) {
      if (k !== 'stall' && k !== 'metricsHang') throw new Error(`unknown fault "${k}"; the switches are stall and metricsHang`);
      if (typeof p[k] !== 'boolean') throw new Error(`fault "${k}" must be true or false; got ${JSON.stringify(p[k])}`);
    }
    const wasStalled = this.stall;
    if (typeof p.stall === 'boolean') this.stall = p.stall;
    if (typeof p.metricsHang === 'boolean') this.metricsHang = p.metricsHang;
    if (!this.metricsHang) this.releaseHeld();
    if (wasStalled && !this.stall) this.resume();
    return this.state;
  }

  /** True when the scrape is held (the caller must not answer it). */
  async holdMetrics(res: ServerResponse): Promise<boolean> {
    if (!this.metricsHang) return false;
    this.held.add(res);
    res.once('close', () => this.held.delete(res));
    return true;
  }

  /** `GET` reads, `POST` sets the switches. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    };
    if (req.method === 'GET') return reply(200, this.state);
    if (req.method !== 'POST') return reply(405, { error: { message: `${req.method} ${FAULT_PATH}: use GET or POST`, code: 405 } });
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    try {
      reply(200, this.set(JSON.parse(Buffer.concat(parts).toString('utf8') || '{}')));
    } catch (e) {
      reply(400, { error: { message: (e as Error).message, code: 400 } });
    }
  }

  private releaseHeld(): void {
    for (const res of this.held) if (!res.headersSent) res.writeHead(503).end();
    this.held.clear();
  }

  /** Answers held scrapes (server shutdown). */
  close(): void {
    this.releaseHeld();
  }
}
