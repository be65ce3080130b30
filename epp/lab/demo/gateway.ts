/**
 * The demo's local HTTP gateway (what Envoy does in the cluster, reduced to one request path):
 * - `kvroute`: runs the ext_proc exchange with the EPP over real gRPC (FULL_DUPLEX_STREAMED):
 *   request headers + body, reads the headers response and the streamed body, proxies the body
 *   the EPP returned to `x-gateway-destination-endpoint`, then passes the upstream's response
 *   headers and body through ext_proc and returns what the EPP streams back;
 * - `round-robin`: bypasses the EPP and cycles over the pods (the baseline).
 * An EPP immediate response (400, 503, ...) is returned as is. Every response carries
 * `x-gateway-destination-endpoint` naming the pod that served it.
 *
 * EPP unavailable (`failureMode`, the InferencePool's `endpointPickerRef.failureMode`): when the
 * ext_proc stream fails before the EPP picked a pod (connection refused, stream reset, timeout),
 * `FailClose` answers 503 and `FailOpen` sends the request to a pod the gateway picks itself
 * (round-robin, unrouted by the EPP), as GIE's conformance test EppUnAvailableFailOpen expects.
 * A pod that refuses the connection is answered 503, as Envoy does ("upstream connect error").
 */
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseHostPort } from '../../src/util/host-port.js';
import { DESTINATION_HEADER, ExtProcClient } from './extproc-client.js';

export type GatewayPolicy = 'kvroute' | 'round-robin';

export interface GatewayOptions {
  readonly policy: GatewayPolicy;
  /** Pod addresses `ip:port` (round-robin targets). */
  readonly pods: readonly string[];
  /** EPP ext_proc `host:port` (required for `kvroute`). @default undefined */
  readonly eppAddress?: string;
  /** Per-response ext_proc timeout. @default 10000 */
  readonly extprocTimeoutMs?: number;
  /** Largest request body accepted. @default 16777216 */
  readonly maxBodyBytes?: number;
  /** What happens while the EPP is unreachable (see the file comment). @default 'FailClose' */
  readonly failureMode?: GatewayFailureMode;
}

export type GatewayFailureMode = 'FailOpen' | 'FailClose';

class GatewayError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function plainHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k === 'connection' || k === 'content-length' || k === 'transfer-encoding' || k === 'host') continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

export class DemoGateway {
  private server: Server | undefined;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly ext: ExtProcClient | undefined;
  private rr = 0;
  /** Requests served, by pod. */
  readonly served = new Map<string, number>();
  /** Requests that failed in the gateway (502/504). */
  errors = 0;
  /** Requests the EPP could not route: sent unrouted (FailOpen) or refused with 503 (FailClose). */
  eppUnavailable = 0;

  constructor(private readonly opts: GatewayOptions) {
    if (opts.pods.length === 0) throw new Error('gateway: no pods; pass at least one ip:port');
    if (opts.policy === 'kvroute') {
      if (!opts.eppAddress) throw new Error('gateway: policy kvroute needs eppAddress (the EPP ext_proc host:port)');
      this.ext = new ExtProcClient(opts.eppAddress, opts.extprocTimeoutMs ?? 10_000);
      const fm = opts.failureMode ?? 'FailClose';
      if (fm !== 'FailOpen' && fm !== 'FailClose') throw new Error(`gateway: failureMode "${String(fm)}" is not FailOpen or FailClose`);
    } else if (opts.policy !== 'round-robin') {
      throw new Error(`gateway: policy "${String(opts.policy)}" is not kvroute or round-robin`);
    }
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    this.agent.destroy();
    this.ext?.close();
  }

  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const limit = this.opts.maxBodyBytes ?? 16 * 1024 * 1024;
    const parts: Buffer[] = [];
    let n = 0;
    for await (const c of req) {
      n += (c as Buffer).length;
      if (n > limit) throw new GatewayError(413, `request body over ${limit} bytes`);
      parts.push(c as Buffer);
    }
    return Buffer.concat(parts);
  }

  private upstream(dest: string, req: IncomingMessage, body: Buffer): Promise<IncomingMessage> {
    const hp = parseHostPort(dest);
    if (!hp) return Promise.reject(new GatewayError(502, `the EPP picked ${JSON.stringify(dest)}, not an "ip:port" endpoint`));
    const { host, port } = hp;
    return new Promise((resolve, reject) => {
      const up = httpRequest(
        {
          host,
          port,
          method: req.method,
          path: req.url,
          agent: this.agent,
          headers: { ...plainHeaders(req.headers), 'content-length': String(body.length) },
        },
        resolve,
      );
      up.on('error', (e) => {
        const code = (e as NodeJS.ErrnoException).code;
        const connect = code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH';
        reject(new GatewayError(connect ? 503 : 502, `upstream ${dest}: ${connect ? 'upstream connect error: ' : ''}${e.message}`));
      });
      up.end(body);
    });
  }

  private count(dest: string): void {
    this.served.set(dest, (this.served.get(dest) ?? 0) + 1);
  }

  /** Round-robin over the pods, without the EPP (the baseline policy, and FailOpen). */
  private async unrouted(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const dest = this.opts.pods[this.rr++ % this.opts.pods.length] as string;
    const up = await this.upstream(dest, req, body);
    this.count(dest);
    res.writeHead(up.statusCode ?? 502, { ...plainHeaders(up.headers), [DESTINATION_HEADER]: dest });
    for await (const c of up) res.write(c as Buffer);
    res.end();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const body = await this.readBody(req);
      if (!this.ext) {
        await this.unrouted(req, res, body);
        return;
      }
      const x = this.ext.open();
      try {
        let decision;
        try {
          decision = await x.route(
            { ':method': req.method ?? 'POST', ':path': req.url ?? '/', ':authority': req.headers.host ?? 'gateway', ':scheme': 'http', ...plainHeaders(req.headers) },
            body,
          );
        } catch (e) {
          // The EPP could not be asked (down, restarting, stream reset): the failure mode decides.
          x.cancel();
          this.eppUnavailable++;
          if ((this.opts.failureMode ?? 'FailClose') === 'FailClose') throw new GatewayError(503, `EPP unavailable (FailClose): ${(e as Error).message}`);
          await this.unrouted(req, res, body);
          return;
        }
        if (decision.kind === 'immediate') {
          res.writeHead(decision.status, { 'content-type': 'application/json' }).end(decision.body);
          x.cancel();
          return;
        }
        const dest = decision.destination;
        const up = await this.upstream(dest, req, decision.body);
        this.count(dest);
        const upHeaders = plainHeaders(up.headers);
        const hm = await x.responseHeaders({ ':status': String(up.statusCode ?? 502), ...upHeaders });
        for (const h of hm.remove_headers ?? []) delete upHeaders[h.toLowerCase()];
        res.writeHead(up.statusCode ?? 502, { ...upHeaders, [DESTINATION_HEADER]: dest });
        const pumped = x.pumpResponseBody((b) => res.write(b));
        // If the upstream fails mid-body we cancel the stream below before awaiting `pumped`: its
        // rejection is then expected, and must not surface as an unhandled rejection.
        pumped.catch(() => undefined);
        for await (const c of up) x.sendResponseBody(c as Buffer, false);
        x.sendResponseBody(Buffer.alloc(0), true);
        await pumped;
        res.end();
        await x.finish();
      } catch (e) {
        x.cancel();
        throw e;
      }
    } catch (e) {
      this.errors++;
      const status = e instanceof GatewayError ? e.status : 502;
      if (res.headersSent) res.destroy(e as Error);
      else res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: (e as Error).message, code: status } }));
    }
  }
}
