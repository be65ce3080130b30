/**
 * The EPP's gRPC side: `envoy.service.ext_proc.v3.ExternalProcessor/Process` (+ grpc.health.v1)
 * on the ext_proc port, and grpc.health.v1 alone on the health port.
 *
 *   const server = new ExtProcServer({ director, registry, logger, ready: () => synced });
 *   const { grpcPort, healthPort } = await server.start({ grpcPort: 9002, healthPort: 9003 });
 *   ...
 *   await server.stop(10_000); // NOT_SERVING, stop accepting, drain streams, then force
 *
 * Health answers the same status for every service name (what the reference EPP does without
 * leader election, epp-protocol.md §2.1): SERVING once `ready()` is true and until `stop()`.
 *
 * TLS (ext_proc port only; the health port stays plaintext for kubelet probes): `off` (h2c),
 * `files` (PEM certificate + key), or `self-signed` (generated at start by `self-signed.ts`,
 * returned from `start()` so tests and local clients can pin it).
 */
import { readFile, stat } from 'node:fs/promises';
import { Registry } from 'prom-client';
import { EppPorts } from '../contract/names.js';
import type { RequestDirector } from './director.js';
import { combineObservers, ExtProcLogging, ExtProcMetrics, type ExtProcObserver } from './observer.js';
import { loadProtos, ServiceNames, type LoadedProtos } from './proto.js';
import { ExtProcStream, type StreamOptions, type StreamSink } from './stream.js';
import {
  ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthListResponse,
  type ProcessingRequest,
  type ProcessingResponse,
  type ServingStatusValue,
} from './types.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { GrpcStatus, H2GrpcServer, serverStreamMethod, unaryMethod, type CallHandlers, type GrpcCall, type GrpcError, type GrpcMethod, type H2GrpcTls } from './h2-grpc.js';
import { createSelfSignedCertificate } from './self-signed.js';

/** TLS on the ext_proc port (same shape as `server.tls` in the EPP config). */
export type ExtProcTls =
  | { readonly mode: 'off' }
  | { readonly mode: 'self-signed'; readonly hosts?: readonly string[] }
  | { readonly mode: 'files'; readonly certFile: string; readonly keyFile: string };

export interface ExtProcServerOptions {
  /** Decides where each request goes (the scheduler). */
  readonly director: RequestDirector;
  /**
   * Registry for the `inference_objective_*` and `kvroute_extproc_*` metrics.
   * @default a private `new Registry()` (metrics are kept but not exported anywhere)
   */
  readonly registry?: Registry;
  /** @default silentLogger() */
  readonly logger?: Logger;
  /**
   * Largest request body in bytes; larger bodies get ImmediateResponse 413.
   * @default 8 MiB (the config's `server.maxBodyBytes` default)
   */
  readonly maxBodyBytes?: number;
  /**
   * Largest non-SSE response body the EPP buffers (to rewrite the model name as a whole and read
   * `usage`). A larger body is streamed on with bounded memory and its usage is not read.
   * @default 16 MiB
   */
  readonly maxResponseBufferBytes?: number;
  /**
   * Served model names. When non-empty, a request for another model gets 404.
   * @default [] (any model is accepted)
   */
  readonly models?: readonly string[];
  /**
   * Body mode assumed when the gateway sends no `protocol_config` (older Envoys). Must match the
   * gateway's `request_body_mode`: `duplex` = FULL_DUPLEX_STREAMED, `buffered` = BUFFERED.
   * @default 'duplex'
   */
  readonly defaultBodyMode?: 'duplex' | 'buffered';
  /**
   * Readiness: health reports SERVING only while this returns true.
   * @default () => true
   */
  readonly ready?: () => boolean;
  /**
   * With `tls: { mode: 'files' }`: how often the certificate and key files are checked for changes
   * (a changed pair is loaded for new connections).
   * @default 10000
   */
  readonly tlsReloadIntervalMs?: number;
  /**
   * How often health `Watch` streams re-check `ready()` (changes are also pushed by
   * `notifyHealthChanged()`).
   * @default 1000
   */
  readonly healthWatchIntervalMs?: number;
}

export interface ExtProcStartOptions {
  /** ext_proc port (0 = any free port). @default 9002 */
  readonly grpcPort?: number;
  /** Separate plaintext health port (0 = any free port, `null` = none). @default 9003 */
  readonly healthPort?: number | null;
  /** Bind address. @default '0.0.0.0' */
  readonly host?: string;
  /** @default { mode: 'off' } */
  readonly tls?: ExtProcTls;
}

export interface ExtProcBound {
  readonly grpcPort: number;
  readonly healthPort: number | undefined;
  /** PEM certificate served on the ext_proc port (self-signed or from file); undefined for h2c. */
  readonly certPem: string | undefined;
}

/** What `stop()` did. */
export interface ExtProcStopResult {
  /** Streams still open when the grace period ran out (they were cancelled). */
  readonly forcedStreams: number;
}

/** A frame that could not be decoded (kept as a value so the stream can count and answer it). */
class MalformedFrame {
  constructor(readonly reason: string) {}
}

/** `ExtProcStartOptions` with every default filled in. */
export function resolveStartOptions(so: ExtProcStartOptions = {}): { grpcPort: number; healthPort: number | null; host: string; tls: ExtProcTls } {
  return {
    grpcPort: so.grpcPort ?? EppPorts.grpc,
    healthPort: so.healthPort === undefined ? EppPorts.grpcHealth : so.healthPort,
    host: so.host ?? '0.0.0.0',
    tls: so.tls ?? { mode: 'off' },
  };
}

/** `host` as `net.Server.listen` takes it (no IPv6 brackets). */
function listenHost(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

const HEALTH_PATH = `/${ServiceNames.health}/`;
const PROCESS_PATH = `/${ServiceNames.extProc}/Process`;

type Watcher = { call: GrpcCall<HealthCheckResponse>; last: ServingStatusValue };

/**
 * One ext_proc call: the transport's events go to the ExtProcStream, and the stream's output goes
 * to the call (one object per call for both directions, no per-call closures).
 */
class ProcessCall implements CallHandlers<ProcessingRequest | MalformedFrame>, StreamSink {
  private readonly stream: ExtProcStream;

  constructor(
    private readonly open: Map<ExtProcStream, GrpcCall<ProcessingResponse>>,
    private readonly call: GrpcCall<ProcessingResponse>,
    options: StreamOptions,
  ) {
    this.stream = new ExtProcStream(options, this);
    open.set(this.stream, call);
  }

  // StreamSink (ExtProcStream → client)
  send(msg: ProcessingResponse): void {
    this.call.send(msg);
  }

  end(error?: { code: 'invalid_argument' | 'internal'; message: string }): void {
    this.open.delete(this.stream);
    this.call.end(error ? { code: error.code === 'invalid_argument' ? GrpcStatus.INVALID_ARGUMENT : GrpcStatus.INTERNAL, message: error.message } : undefined);
  }

  // CallHandlers (client → ExtProcStream)
  message(msg: ProcessingRequest | MalformedFrame): void {
    if (msg instanceof MalformedFrame) {
      this.stream.abort('error', `undecodable ProcessingRequest: ${msg.reason}`);
      this.open.delete(this.stream);
      this.call.end({ code: GrpcStatus.INVALID_ARGUMENT, message: `undecodable ProcessingRequest frame (${msg.reason}); the client must send envoy.service.ext_proc.v3.ProcessingRequest` });
      return;
    }
    this.stream.push(msg);
  }

  /**
   * The transport defers a half-close by a turn and drops it when a reset came meanwhile (a client
   * cancel can surface as END_STREAM just before RST_STREAM): 'cancelled' wins.
   */
  halfClose(): void {
    this.stream.endOfInput();
  }

  cancelled(): void {
    this.open.delete(this.stream);
    this.stream.abort('cancelled');
  }

  failed(error: GrpcError): void {
    this.open.delete(this.stream);
    this.stream.abort('error', error.message);
  }
}

export class ExtProcServer {
  readonly metrics: ExtProcMetrics;
  private readonly observer: ExtProcObserver;
  private readonly logger: Logger;
  /** Open ext_proc streams and their calls (to cancel them at the drain deadline). */
  private readonly streams = new Map<ExtProcStream, GrpcCall<ProcessingResponse>>();
  private readonly watchers = new Set<Watcher>();
  private main: H2GrpcServer | undefined;
  private health: H2GrpcServer | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private tlsTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** Options shared by every ExtProcStream (built on the first call). */
  private streamOptions: StreamOptions | undefined;

  constructor(private readonly opts: ExtProcServerOptions) {
    this.logger = opts.logger ?? silentLogger();
    this.metrics = new ExtProcMetrics(opts.registry ?? new Registry());
    this.observer = combineObservers(this.metrics, new ExtProcLogging(this.logger));
  }

  /** Number of ext_proc streams currently open. */
  get openStreams(): number {
    return this.streams.size;
  }

  /** Current health status (the same for every service name). */
  servingStatus(): ServingStatusValue {
    if (this.stopping) return ServingStatus.NOT_SERVING;
    try {
      return (this.opts.ready ?? (() => true))() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    } catch (err) {
      this.logger.error({ err }, 'readiness callback threw; reporting NOT_SERVING');
      return ServingStatus.NOT_SERVING;
    }
  }

  /** Pushes the current status to health Watch streams now (call when readiness changes). */
  notifyHealthChanged(): void {
    const s = this.servingStatus();
    for (const w of this.watchers) {
      if (w.last !== s) {
        w.last = s;
        w.call.send({ status: s });
      }
    }
  }

  async start(so: ExtProcStartOptions = {}): Promise<ExtProcBound> {
    if (this.main) throw new Error('ExtProcServer.start() called twice; stop() it first or create a new server');
    const { host, tls, grpcPort: wantGrpcPort, healthPort: hp } = resolveStartOptions(so);
    const protos = loadProtos();
    let tlsPair: H2GrpcTls | undefined;
    let certPem: string | undefined;
    if (tls.mode === 'self-signed') {
      const pair = createSelfSignedCertificate(tls.hosts ? { hosts: tls.hosts } : {});
      certPem = pair.certPem;
      tlsPair = { cert: pair.certPem, key: pair.keyPem };
    } else if (tls.mode === 'files') {
      const [cert, key] = await Promise.all([
        readFile(tls.certFile).catch((e: unknown) => {
          throw new Error(`cannot read TLS certificate ${tls.certFile}: ${e instanceof Error ? e.message : String(e)}; set server.tls.certFile to a PEM file`);
        }),
        readFile(tls.keyFile).catch((e: unknown) => {
          throw new Error(`cannot read TLS key ${tls.keyFile}: ${e instanceof Error ? e.message : String(e)}; set server.tls.keyFile to a PEM file`);
        }),
      ]);
      certPem = cert.toString('utf8');
      tlsPair = { cert, key };
    }
    // BUFFERED mode sends a whole body in one message: allow the larger of the two body limits.
    const maxMessage = Math.max(this.opts.maxBodyBytes ?? 8 * 1024 * 1024, this.opts.maxResponseBufferBytes ?? 16 * 1024 * 1024) + 1024 * 1024;

    const main = new H2GrpcServer({ maxReceiveMessageBytes: maxMessage, maxSendMessageBytes: maxMessage, logger: this.logger, ...(tlsPair ? { tls: tlsPair } : {}) });
    main.addMethod(PROCESS_PATH, this.processMethod(protos));
    this.addHealth(main, protos);
    const grpcPort = await main.listen(wantGrpcPort, listenHost(host));
    this.main = main;
    if (tls.mode === 'files') this.watchCertificate(main, tls.certFile, tls.keyFile);

    let healthPort: number | undefined;
    if (hp !== null) {
      const health = new H2GrpcServer({ logger: this.logger });
      this.addHealth(health, protos);
      try {
        healthPort = await health.listen(hp, listenHost(host));
      } catch (err) {
        await main.shutdown(0);
        this.main = undefined;
        throw err;
      }
      this.health = health;
    }
    this.watchTimer = setInterval(() => this.notifyHealthChanged(), this.opts.healthWatchIntervalMs ?? 1000);
    this.watchTimer.unref();
    this.logger.info({ grpcPort, healthPort, host, tls: tls.mode }, 'ext_proc server listening');
    return { grpcPort, healthPort, certPem };
  }

  /**
   * Graceful stop: health turns NOT_SERVING, no new calls are accepted (GOAWAY), open ext_proc
   * streams get `graceMs` to finish, then the rest are cancelled with UNAVAILABLE.
   * @param graceMs drain deadline, @default 5000
   */
  /**
   * Reload the certificate and key when either file changes (cert-manager rotates the Secret's
   * files in place): polled every `tlsReloadIntervalMs`; a pair that cannot be read or parsed is
   * logged and the current one kept.
   */
  private watchCertificate(main: H2GrpcServer, certFile: string, keyFile: string): void {
    const every = this.opts.tlsReloadIntervalMs ?? 10_000;
    let last = '';
    const stamp = async (): Promise<string> => {
      const [c, k] = await Promise.all([stat(certFile), stat(keyFile)]);
      return `${c.mtimeMs}/${c.size}/${k.mtimeMs}/${k.size}`;
    };
    void stamp().then((s) => (last = s), () => undefined);
    this.tlsTimer = setInterval(() => {
      void (async () => {
        try {
          const now = await stamp();
          if (now === last) return;
          const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
          main.setTls({ cert, key });
          last = now;
          this.logger.info({ certFile }, 'TLS certificate reloaded');
        } catch (err) {
          this.logger.warn({ err, certFile, keyFile }, 'TLS certificate files changed but could not be loaded; keeping the current certificate');
        }
      })();
    }, every);
    this.tlsTimer.unref();
  }

  async stop(graceMs = 5000): Promise<ExtProcStopResult> {
    if (this.tlsTimer) clearInterval(this.tlsTimer);
    this.tlsTimer = undefined;
    if (!this.main) return { forcedStreams: 0 };
    this.stopping = true;
    this.notifyHealthChanged();
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
    if (this.watchTimer) clearInterval(this.watchTimer);
    const main = this.main;
    const health = this.health;
    this.main = undefined;
    this.health = undefined;
    let forcedStreams = 0;
    await Promise.all([
      main.shutdown(graceMs, () => {
        forcedStreams = this.streams.size;
        this.cancelOpenStreams();
      }),
      health?.shutdown(graceMs),
    ]);
    this.logger.info({ forcedStreams }, 'ext_proc server stopped');
    this.stopping = false;
    return { forcedStreams };
  }

  /** Ends every open ext_proc call with UNAVAILABLE (counted as `cancelled`). */
  private cancelOpenStreams(): void {
    for (const [stream, call] of [...this.streams]) {
      this.streams.delete(stream);
      stream.abort('cancelled', 'drain deadline passed at shutdown');
      call.end({ code: GrpcStatus.UNAVAILABLE, message: 'EPP shutting down: drain deadline passed' });
    }
  }

  /**
   * The ext_proc method. Undecodable frames become `INVALID_ARGUMENT` (counted as `error`) rather
   * than the transport's generic INTERNAL: they are a client bug, not ours.
   */
  private processMethod(protos: LoadedProtos): GrpcMethod<ProcessingRequest | MalformedFrame, ProcessingResponse> {
    const def = protos.extProcService.Process!;
    const deserialize = def.requestDeserialize as (b: Buffer) => ProcessingRequest;
    return {
      requestDeserialize: (b: Buffer): ProcessingRequest | MalformedFrame => {
        try {
          return deserialize(b);
        } catch (err) {
          return new MalformedFrame(err instanceof Error ? err.message : String(err));
        }
      },
      responseSerialize: def.responseSerialize as (m: ProcessingResponse) => Buffer,
      open: (call: GrpcCall<ProcessingResponse>) => this.process(call),
    };
  }

  private process(call: GrpcCall<ProcessingResponse>): CallHandlers<ProcessingRequest | MalformedFrame> {
    this.streamOptions ??= {
      director: this.opts.director,
      maxBodyBytes: this.opts.maxBodyBytes ?? 8 * 1024 * 1024,
      maxResponseBufferBytes: this.opts.maxResponseBufferBytes ?? 16 * 1024 * 1024,
      models: this.opts.models ?? [],
      defaultBodyMode: this.opts.defaultBodyMode ?? 'duplex',
      observer: this.observer,
      logger: this.logger,
    };
    return new ProcessCall(this.streams, call, this.streamOptions);
  }

  private addHealth(server: H2GrpcServer, protos: LoadedProtos): void {
    const svc = protos.healthService;
    const check = svc.Check!;
    const list = svc.List!;
    const watch = svc.Watch!;
    server.addMethod(
      `${HEALTH_PATH}Check`,
      unaryMethod(check.requestDeserialize as (b: Buffer) => HealthCheckRequest, check.responseSerialize as (m: HealthCheckResponse) => Buffer, () => ({ status: this.servingStatus() })),
    );
    server.addMethod(
      `${HEALTH_PATH}List`,
      unaryMethod(list.requestDeserialize as (b: Buffer) => object, list.responseSerialize as (m: HealthListResponse) => Buffer, (): HealthListResponse => {
        const s = { status: this.servingStatus() };
        return { statuses: { '': s, [ServiceNames.extProc]: s } };
      }),
    );
    server.addMethod(
      `${HEALTH_PATH}Watch`,
      serverStreamMethod(watch.requestDeserialize as (b: Buffer) => HealthCheckRequest, watch.responseSerialize as (m: HealthCheckResponse) => Buffer, (_req, call) => {
        const w: Watcher = { call, last: this.servingStatus() };
        call.send({ status: w.last });
        if (this.stopping) {
          call.end();
          return;
        }
        this.watchers.add(w);
        return { onCancel: () => this.watchers.delete(w) };
      }),
    );
  }
}
