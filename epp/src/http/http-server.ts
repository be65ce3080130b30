/**
 * The EPP's HTTP port (9090 by default): `/metrics` (Prometheus), `/healthz` (process alive),
 * `/readyz` (200 once every component reports ready), `POST /v1/score` and `GET /v1/diagnosis`
 * (why cache predictions are wrong: `{"findings": [{cause, pod, message, evidence}]}`, accuracy/diagnosis.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ApiError, errorBody } from '../contract/errors.js';
import type { ScoreService } from './score.js';
import type { Finding } from '../accuracy/diagnosis.js';
import type { Logger } from '../util/logger.js';

/** A component's readiness: `undefined` when ready, else why not. */
export type ReadinessCheck = () => string | undefined;

export interface HttpServerOptions {
  readonly registry: Registry;
  readonly score?: ScoreService;
  readonly logger: Logger;
  /**
   * Readiness checks; `/readyz` is 200 only when every check passes.
   * @default [] (ready as soon as listening)
   */
  readonly readiness?: readonly ReadinessCheck[];
  /**
   * Largest accepted request body in bytes.
   * @default 8 MiB
   */
  readonly maxBodyBytes?: number;
  /**
   * Current findings for `GET /v1/diagnosis`.
   * @default undefined (the route answers 503)
   */
  readonly diagnosis?: () => readonly Finding[];
}

function send(res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        reject(new ApiError('body_too_large', `request body exceeds ${limit} bytes; send a shorter prompt or raise server.maxBodyBytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (e) => {
      if (!failed) reject(e);
    });
  });
}

export class HttpServer {
  private readonly server: Server;
  private readonly maxBodyBytes: number;

  constructor(private readonly opts: HttpServerOptions) {
    this.maxBodyBytes = opts.maxBodyBytes ?? 8 * 1024 * 1024;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.opts.logger.error({ err }, 'http handler failed');
        if (!res.headersSent) send(res, 500, errorBody(err).body);
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 5000;
  }

  /** Listens on host:port (port 0 picks a free one); resolves to the bound port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  /** Reasons the EPP is not ready (empty when ready). */
  notReadyReasons(): string[] {
    const out: string[] = [];
    for (const check of this.opts.readiness ?? []) {
      const r = check();
      if (r) out.push(r);
    }
    return out;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    if (path === '/healthz' && (method === 'GET' || method === 'HEAD')) return send(res, 200, { status: 'ok' });
    if (path === '/readyz' && (method === 'GET' || method === 'HEAD')) {
      const reasons = this.notReadyReasons();
      return reasons.length === 0 ? send(res, 200, { status: 'ready' }) : send(res, 503, { status: 'not ready', reasons });
    }
    if (path === '/metrics' && method === 'GET') {
      return send(res, 200, await this.opts.registry.metrics(), this.opts.registry.contentType);
    }
    if (path === '/v1/diagnosis') {
      if (method !== 'GET') {
        res.setHeader('allow', 'GET');
        return send(res, 405, { error: { code: 'method_not_allowed', message: 'use GET /v1/diagnosis' } });
      }
      if (!this.opts.diagnosis) return send(res, 503, { error: { code: 'not_ready', message: 'the cache-accuracy diagnosis is not available' } });
      return send(res, 200, { findings: this.opts.diagnosis() });
    }
    if (path === '/v1/score') {
      if (method !== 'POST') {
        res.setHeader('allow', 'POST');
        return send(res, 405, { error: { code: 'method_not_allowed', message: 'use POST with a JSON body {"model", "prompt"|"messages"|"token_ids"}' } });
      }
      if (!this.opts.score) return send(res, 503, { error: { code: 'not_ready', message: 'scoring is not available' } });
      try {
        const raw = await readBody(req, this.maxBodyBytes);
        let body: unknown;
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch (e) {
          throw new ApiError('bad_json', `body is not valid JSON (${(e as Error).message}); send {"model": "...", "prompt": "..."}`);
        }
        return send(res, 200, await this.opts.score.score(body));
      } catch (err) {
        const { status, body } = errorBody(err);
        if (status >= 500) this.opts.logger.error({ err }, 'score failed');
        res.setHeader('connection', 'close');
        return send(res, status, body);
      }
    }
    return send(res, 404, { error: { code: 'not_found', message: `no route ${method} ${path}; try /healthz, /readyz, /metrics, POST /v1/score or GET /v1/diagnosis` } });
  }
}
