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
 * leader election, docs/facts/gateway-protocol.md, "Ports and health"): SERVING once `ready()` is true and until `stop()`.
 *
 * TLS (ext_proc port only; the health port stays plaintext for kubelet probes): `off` (h2c),
 * `files` (PEM certificate + key, re-read when they change), or `self-signed` (generated at start
 * by `self-signed.ts`, returned from `start()` so tests and local clients can pin it).
 *
 * Transport: @grpc/grpc-js's `Server`, one per port. Keepalive, connection age, stream limits and
 * the drain at shutdown are grpc-js options (`grpcServerOptions`).
 */
import { readFile, stat } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
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
   * Model names whose request and error counters are exported at 0 from the start (see
   * ExtProcMetrics), so alerts on their rate see the first request or error.
   * @default models
   */
  readonly metricModels?: readonly string[];
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
  /**
   * The server PINGs every connection after this long without activity (grpc-js
   * `grpc.keepalive_time_ms`), so a gateway that vanished without a FIN is noticed.
   * @default 30000
   */
  readonly keepaliveTimeMs?: number;
  /**
   * A connection whose PING is not answered within this long is dropped and its calls cancelled
   * (`grpc.keepalive_timeout_ms`).
   * @default 10000
   */
  readonly keepaliveTimeoutMs?: number;
  /**
   * After this long (±10 % jitter, grpc-js) a connection gets GOAWAY, so gateways reconnect and
   * spread over EPP replicas added since (`grpc.max_connection_age_ms`). Streams already open on it
   * continue.
   * @default 1800000 (30 min)
   */
  readonly maxConnectionAgeMs?: number;
  /**
   * How long streams on a connection that reached `maxConnectionAgeMs` may still run before the
   * connection is closed (`grpc.max_connection_age_grace_ms`); a streamed LLM response can take
   * minutes.
   * @default 600000 (10 min)
   */
  readonly maxConnectionAgeGraceMs?: number;
  /**
   * Concurrent streams per HTTP/2 connection, advertised in SETTINGS (`grpc.max_concurrent_streams`).
   * @default 10000
   */
  readonly maxConcurrentStreams?: number;
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

/**
 * The grpc-js server options of the ext_proc port (`maxMessageBytes` given) or the health port,
 * with the defaults of `ExtProcServerOptions` filled in. Channelz is off: nothing serves it, so its
 * per-call counters and trace buffers would be kept for no reader.
 */
export function grpcServerOptions(opts: Omit<ExtProcServerOptions, 'director'>, maxMessageBytes?: number): grpc.ServerOptions {
  return {
    'grpc.keepalive_time_ms': opts.keepaliveTimeMs ?? 30_000,
    'grpc.keepalive_timeout_ms': opts.keepaliveTimeoutMs ?? 10_000,
    'grpc.max_connection_age_ms': opts.maxConnectionAgeMs ?? 1_800_000,
    'grpc.max_connection_age_grace_ms': opts.maxConnectionAgeGraceMs ?? 600_000,
    'grpc.max_concurrent_streams': opts.maxConcurrentStreams ?? 10_000,
    'grpc.enable_channelz': 0,
    ...(maxMessageBytes !== undefined ? { 'grpc.max_receive_message_length': maxMessageBytes, 'grpc.max_send_message_length': maxMessageBytes } : {}),
  };
}

/** `host:port` as grpc-js's `bindAsync` takes it (IPv6 in brackets). */
function bindAddress(host: string, port: number): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return bare.includes(':') ? `[${bare}]:${port}` : `${bare}:${port}`;
}

function bind(server: grpc.Server, host: string, port: number, creds: grpc.ServerCredentials, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(bindAddress(host, port), creds, (err, bound) => {
      if (err) reject(new Error(`cannot listen for ${what} on ${bindAddress(host, port)}: ${err.message}; free the port or choose another one (server.${what === 'ext_proc' ? 'grpcPort' : 'healthPort'})`));
      else resolve(bound);
    });
  });
}

/**
 * Graceful shutdown of one grpc-js server: `tryShutdown` (listeners close, connections get GOAWAY,
 * open calls continue); at `graceMs` `onDeadline` runs (it ends the calls still open), and 250 ms
 * later (time for clients to read their final status) `forceShutdown` drops what is left.
 */
function shutdown(server: grpc.Server, graceMs: number, onDeadline?: () => void): Promise<void> {
  return new Promise((resolve) => {
    let force: NodeJS.Timeout | undefined;
    const deadline = setTimeout(() => {
      onDeadline?.();
      force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 250);
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(deadline);
      if (force) clearTimeout(force);
      resolve();
    });
  });
}

const STATUS_OF = { invalid_argument: grpc.status.INVALID_ARGUMENT, internal: grpc.status.INTERNAL } as const;

type ProcessDuplex = grpc.ServerDuplexStream<ProcessingRequest | MalformedFrame, ProcessingResponse>;
type Watcher = { call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>; last: ServingStatusValue };

/**
 * One ext_proc call: grpc-js's stream events go to the ExtProcStream, and the stream's output goes
 * to the call. grpc-js reports `cancelled` also after the server ended a call itself, so `done`
 * marks calls this side ended.
 */
class ProcessCall implements StreamSink {
  private readonly stream: ExtProcStream;
  private done = false;

  constructor(
    private readonly open: Map<ExtProcStream, ProcessCall>,
    private readonly call: ProcessDuplex,
    options: StreamOptions,
  ) {
    this.stream = new ExtProcStream(options, this);
    open.set(this.stream, this);
    call.on('data', (msg: ProcessingRequest | MalformedFrame) => this.message(msg));
    call.on('end', () => {
      if (!this.done) this.stream.endOfInput();
    });
    call.on('cancelled', () => {
      if (this.done) return;
      this.done = true;
      this.open.delete(this.stream);
      this.stream.abort('cancelled');
    });
  }

  // StreamSink (ExtProcStream → client)
  send(msg: ProcessingResponse): void {
    if (!this.done) this.call.write(msg);
  }

  end(error?: { code: 'invalid_argument' | 'internal'; message: string }): void {
    this.finish(error ? STATUS_OF[error.code] : grpc.status.OK, error?.message ?? '');
  }

  /** Ends the call with a status (trailers after any queued messages). */
  finish(code: grpc.status, details: string): void {
    if (this.done) return;
    this.done = true;
    this.open.delete(this.stream);
    if (code === grpc.status.OK) this.call.end();
    // grpc-js: an 'error' event on a server stream becomes its status.
    else this.call.emit('error', { code, details });
  }

  /** The drain deadline passed at shutdown. */
  cancelAtDeadline(): void {
    this.stream.abort('cancelled', 'drain deadline passed at shutdown');
    this.finish(grpc.status.UNAVAILABLE, 'EPP shutting down: drain deadline passed');
  }

  private message(msg: ProcessingRequest | MalformedFrame): void {
    if (this.done) return;
    if (msg instanceof MalformedFrame) {
      this.stream.abort('error', `undecodable ProcessingRequest: ${msg.reason}`);
      this.finish(grpc.status.INVALID_ARGUMENT, `undecodable ProcessingRequest frame (${msg.reason}); the client must send envoy.service.ext_proc.v3.ProcessingRequest`);
      return;
    }
    this.stream.push(msg);
  }
}

/**
 * TLS from files for grpc-js (its `CertificateProvider` interface): the pair is re-read when
 * either file changes, checked with `tls.createSecureContext`, and handed to the server for new
 * connections; a pair that cannot be read or parsed is logged and the current one kept (grpc-js's
 * own `FileWatcherCertificateProvider` would drop TLS until the files are readable again).
 */
class ReloadingCertificate implements grpc.experimental.CertificateProvider {
  private readonly listeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  private timer: NodeJS.Timeout | undefined;
  private stampNow = '';

  constructor(
    private current: grpc.experimental.IdentityCertificateUpdate,
    private readonly certFile: string,
    private readonly keyFile: string,
    private readonly everyMs: number,
    private readonly logger: Logger,
  ) {
    void this.stamp().then((s) => (this.stampNow = s), () => undefined);
  }

  private async stamp(): Promise<string> {
    const [c, k] = await Promise.all([stat(this.certFile), stat(this.keyFile)]);
    return `${c.mtimeMs}/${c.size}/${k.mtimeMs}/${k.size}`;
  }

  private async check(): Promise<void> {
    try {
      const now = await this.stamp();
      if (now === this.stampNow) return;
      const [certificate, privateKey] = await Promise.all([readFile(this.certFile), readFile(this.keyFile)]);
      createSecureContext({ cert: certificate, key: privateKey }); // throws for a bad or mismatched pair
      this.stampNow = now;
      this.current = { certificate, privateKey };
      for (const l of this.listeners) l(this.current);
      this.logger.info({ certFile: this.certFile }, 'TLS certificate reloaded');
    } catch (err) {
      this.logger.warn({ err, certFile: this.certFile, keyFile: this.keyFile }, 'TLS certificate files changed but could not be loaded; keeping the current certificate');
    }
  }

  addIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.listeners.add(listener);
    // grpc-js reads the server's first context before it adds its listener: answer on the next tick.
    process.nextTick(() => listener(this.current));
    if (!this.timer) {
      this.timer = setInterval(() => void this.check(), this.everyMs);
      this.timer.unref();
    }
  }

  removeIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.listeners.delete(listener);
    if (this.listeners.size === 0) this.close();
  }

  addCaCertificateListener(): void {}
  removeCaCertificateListener(): void {}

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export class ExtProcServer {
  readonly metrics: ExtProcMetrics;
  private readonly observer: ExtProcObserver;
  private readonly logger: Logger;
  /** Open ext_proc streams and their calls (to cancel them at the drain deadline). */
  private readonly streams = new Map<ExtProcStream, ProcessCall>();
  private readonly watchers = new Set<Watcher>();
  private main: grpc.Server | undefined;
  private health: grpc.Server | undefined;
  private certificate: ReloadingCertificate | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** Options shared by every ExtProcStream (built on the first call). */
  private streamOptions: StreamOptions | undefined;

  constructor(private readonly opts: ExtProcServerOptions) {
    this.logger = opts.logger ?? silentLogger();
    this.metrics = new ExtProcMetrics(opts.registry ?? new Registry(), opts.metricModels ?? opts.models ?? []);
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
        w.call.write({ status: s });
      }
    }
  }

  async start(so: ExtProcStartOptions = {}): Promise<ExtProcBound> {
    if (this.main) throw new Error('ExtProcServer.start() called twice; stop() it first or create a new server');
    const { host, tls, grpcPort: wantGrpcPort, healthPort: hp } = resolveStartOptions(so);
    const protos = loadProtos();
    let creds = grpc.ServerCredentials.createInsecure();
    let certPem: string | undefined;
    if (tls.mode === 'self-signed') {
      const pair = await createSelfSignedCertificate(tls.hosts ? { hosts: tls.hosts } : {});
      certPem = pair.certPem;
      creds = grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(pair.certPem), private_key: Buffer.from(pair.keyPem) }]);
    } else if (tls.mode === 'files') {
      const [cert, key] = await Promise.all([
        readFile(tls.certFile).catch((e: unknown) => {
          throw new Error(`cannot read TLS certificate ${tls.certFile}: ${e instanceof Error ? e.message : String(e)}; set server.tls.certFile to a PEM file`);
        }),
        readFile(tls.keyFile).catch((e: unknown) => {
          throw new Error(`cannot read TLS key ${tls.keyFile}: ${e instanceof Error ? e.message : String(e)}; set server.tls.keyFile to a PEM file`);
        }),
      ]);
      try {
        createSecureContext({ cert, key });
      } catch (e) {
        throw new Error(`TLS certificate ${tls.certFile} and key ${tls.keyFile} cannot be used: ${e instanceof Error ? e.message : String(e)}; set server.tls.certFile/keyFile to a matching PEM pair`);
      }
      certPem = cert.toString('utf8');
      this.certificate = new ReloadingCertificate({ certificate: cert, privateKey: key }, tls.certFile, tls.keyFile, this.opts.tlsReloadIntervalMs ?? 10_000, this.logger);
      // grpc-js's declaration names the parameters the other way round; the first is the identity.
      creds = grpc.experimental.createCertificateProviderServerCredentials(this.certificate, null, false);
    }
    // BUFFERED mode sends a whole body in one message: allow the larger of the two body limits.
    const maxMessage = Math.max(this.opts.maxBodyBytes ?? 8 * 1024 * 1024, this.opts.maxResponseBufferBytes ?? 16 * 1024 * 1024) + 1024 * 1024;

    const main = new grpc.Server(grpcServerOptions(this.opts, maxMessage));
    main.addService(this.processService(protos), { Process: (call: ProcessDuplex) => this.process(call) });
    this.addHealth(main, protos);
    let grpcPort: number;
    try {
      grpcPort = await bind(main, host, wantGrpcPort, creds, 'ext_proc');
    } catch (err) {
      main.forceShutdown();
      this.certificate?.close();
      this.certificate = undefined;
      throw err;
    }
    this.main = main;

    let healthPort: number | undefined;
    if (hp !== null) {
      const health = new grpc.Server(grpcServerOptions(this.opts));
      this.addHealth(health, protos);
      try {
        healthPort = await bind(health, host, hp, grpc.ServerCredentials.createInsecure(), 'health');
      } catch (err) {
        health.forceShutdown();
        main.forceShutdown();
        this.main = undefined;
        this.certificate?.close();
        this.certificate = undefined;
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
   * streams get `graceMs` to finish, then the rest are ended with UNAVAILABLE.
   * @param graceMs drain deadline, @default 5000
   */
  async stop(graceMs = 5000): Promise<ExtProcStopResult> {
    this.certificate?.close();
    this.certificate = undefined;
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
      shutdown(main, graceMs, () => {
        forcedStreams = this.streams.size;
        for (const call of [...this.streams.values()]) call.cancelAtDeadline();
      }),
      health ? shutdown(health, graceMs) : undefined,
    ]);
    this.logger.info({ forcedStreams }, 'ext_proc server stopped');
    this.stopping = false;
    return { forcedStreams };
  }

  /**
   * The ext_proc service with a deserializer that never throws: an undecodable frame becomes a
   * value, answered `INVALID_ARGUMENT` and counted as `error` (a client bug), rather than grpc-js's
   * generic INTERNAL.
   */
  private processService(protos: LoadedProtos): grpc.ServiceDefinition {
    const def = protos.extProcService.Process!;
    const deserialize = def.requestDeserialize as (b: Buffer) => ProcessingRequest;
    return {
      Process: {
        ...def,
        requestDeserialize: (b: Buffer): ProcessingRequest | MalformedFrame => {
          try {
            return deserialize(b);
          } catch (err) {
            return new MalformedFrame(err instanceof Error ? err.message : String(err));
          }
        },
      },
    };
  }

  private process(call: ProcessDuplex): void {
    this.streamOptions ??= {
      director: this.opts.director,
      maxBodyBytes: this.opts.maxBodyBytes ?? 8 * 1024 * 1024,
      maxResponseBufferBytes: this.opts.maxResponseBufferBytes ?? 16 * 1024 * 1024,
      models: this.opts.models ?? [],
      defaultBodyMode: this.opts.defaultBodyMode ?? 'duplex',
      observer: this.observer,
      logger: this.logger,
    };
    new ProcessCall(this.streams, call, this.streamOptions);
  }

  private addHealth(server: grpc.Server, protos: LoadedProtos): void {
    server.addService(protos.healthService, {
      Check: (_call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, cb: grpc.sendUnaryData<HealthCheckResponse>) => cb(null, { status: this.servingStatus() }),
      List: (_call: grpc.ServerUnaryCall<object, HealthListResponse>, cb: grpc.sendUnaryData<HealthListResponse>) => {
        const s = { status: this.servingStatus() };
        cb(null, { statuses: { '': s, [ServiceNames.extProc]: s } });
      },
      Watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const w: Watcher = { call, last: this.servingStatus() };
        call.write({ status: w.last });
        if (this.stopping) {
          call.end();
          return;
        }
        this.watchers.add(w);
        call.on('cancelled', () => this.watchers.delete(w));
      },
    });
  }
}
