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
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { EppPorts } from '../contract/names.js';
import type { RequestDirector } from '../extproc/director.js';
import { combineObservers, ExtProcLogging, ExtProcMetrics, type ExtProcObserver } from '../extproc/observer.js';
import { loadProtos, ServiceNames } from '../extproc/proto.js';
import { ExtProcStream } from '../extproc/stream.js';
import {
  ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthListResponse,
  type ProcessingRequest,
  type ProcessingResponse,
  type ServingStatusValue,
} from '../extproc/types.js';
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

function bindAsync(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

export class ExtProcServer {
  readonly metrics: ExtProcMetrics;
  private readonly observer: ExtProcObserver;
  private readonly logger: Logger;
  /** Open ext_proc streams and their calls (to cancel them at the drain deadline). */
  private readonly streams = new Map<ExtProcStream, grpc.ServerDuplexStream<ProcessingRequest | MalformedFrame, ProcessingResponse>>();
  private readonly watchers = new Set<{ call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>; last: ServingStatusValue }>();
  private main: grpc.Server | undefined;
  private health: grpc.Server | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private stopping = false;

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
      const pair = createSelfSignedCertificate(tls.hosts ? { hosts: tls.hosts } : {});
      certPem = pair.certPem;
      creds = grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(pair.certPem), private_key: Buffer.from(pair.keyPem) }], false);
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
      creds = grpc.ServerCredentials.createSsl(null, [{ cert_chain: cert, private_key: key }], false);
    }
    // BUFFERED mode sends a whole body in one message: allow the larger of the two body limits.
    const maxMessage = Math.max(this.opts.maxBodyBytes ?? 8 * 1024 * 1024, this.opts.maxResponseBufferBytes ?? 16 * 1024 * 1024) + 1024 * 1024;
    const serverOptions: grpc.ServerOptions = {
      'grpc.max_receive_message_length': maxMessage,
      'grpc.max_send_message_length': maxMessage,
      // channelz bookkeeping costs CPU on every call and nothing here reads it.
      'grpc.enable_channelz': 0,
    };

    const main = new grpc.Server(serverOptions);
    main.addService(this.processService(protos.extProcService), { Process: (call: grpc.ServerDuplexStream<ProcessingRequest | MalformedFrame, ProcessingResponse>) => this.process(call) });
    main.addService(protos.healthService, this.healthHandlers());
    const grpcPort = await bindAsync(main, hostPort(host, wantGrpcPort), creds);
    this.main = main;

    let healthPort: number | undefined;
    if (hp !== null) {
      const health = new grpc.Server({ 'grpc.enable_channelz': 0 });
      health.addService(protos.healthService, this.healthHandlers());
      try {
        healthPort = await bindAsync(health, hostPort(host, hp), grpc.ServerCredentials.createInsecure());
      } catch (err) {
        main.forceShutdown();
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
   * Graceful stop: health turns NOT_SERVING, no new calls are accepted, open ext_proc streams get
   * `graceMs` to finish, then the rest are cancelled.
   * @param graceMs drain deadline, @default 5000
   */
  async stop(graceMs = 5000): Promise<ExtProcStopResult> {
    if (!this.main) return { forcedStreams: 0 };
    this.stopping = true;
    this.notifyHealthChanged();
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
    if (this.watchTimer) clearInterval(this.watchTimer);
    const servers = [this.main, this.health].filter((s): s is grpc.Server => s !== undefined);
    this.main = undefined;
    this.health = undefined;
    let forcedStreams = 0;
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              forcedStreams = Math.max(forcedStreams, this.streams.size);
              this.cancelOpenStreams();
              s.forceShutdown();
              resolve();
            }, graceMs);
            s.tryShutdown(() => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    this.logger.info({ forcedStreams }, 'ext_proc server stopped');
    this.stopping = false;
    return { forcedStreams };
  }

  /**
   * Ends every open ext_proc call with UNAVAILABLE. grpc-js's forceShutdown() only destroys the
   * sessions it tracks for channelz, which is off here, so open calls are ended explicitly.
   */
  private cancelOpenStreams(): void {
    for (const [stream, call] of [...this.streams]) {
      this.streams.delete(stream);
      stream.abort('cancelled', 'drain deadline passed at shutdown');
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'EPP shutting down: drain deadline passed' });
    }
  }

  /** The ext_proc service definition with a deserializer that turns bad frames into values. */
  private processService(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
    const process = def.Process!;
    const deserialize = process.requestDeserialize as (b: Buffer) => ProcessingRequest;
    return {
      Process: {
        ...process,
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

  private process(call: grpc.ServerDuplexStream<ProcessingRequest | MalformedFrame, ProcessingResponse>): void {
    const stream = new ExtProcStream(
      {
        director: this.opts.director,
        maxBodyBytes: this.opts.maxBodyBytes ?? 8 * 1024 * 1024,
        maxResponseBufferBytes: this.opts.maxResponseBufferBytes ?? 16 * 1024 * 1024,
        models: this.opts.models ?? [],
        defaultBodyMode: this.opts.defaultBodyMode ?? 'duplex',
        observer: this.observer,
        logger: this.logger,
      },
      {
        send: (msg) => {
          call.write(msg);
        },
        end: (error) => {
          this.streams.delete(stream);
          if (error) {
            const code = error.code === 'invalid_argument' ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL;
            call.emit('error', { code, details: error.message });
          } else {
            call.end();
          }
        },
      },
    );
    this.streams.set(stream, call);
    call.on('data', (msg: ProcessingRequest | MalformedFrame) => {
      if (msg instanceof MalformedFrame) {
        stream.abort('error', `undecodable ProcessingRequest: ${msg.reason}`);
        this.streams.delete(stream);
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `undecodable ProcessingRequest frame (${msg.reason}); the client must send envoy.service.ext_proc.v3.ProcessingRequest` });
        return;
      }
      stream.push(msg);
    });
    // A client cancel can surface as 'end' just before 'cancelled'; let 'cancelled' win.
    call.on('end', () => setImmediate(() => (call.cancelled ? stream.abort('cancelled') : stream.endOfInput())));
    call.on('cancelled', () => {
      this.streams.delete(stream);
      stream.abort('cancelled');
    });
    call.on('error', (err: Error) => {
      this.streams.delete(stream);
      stream.abort('error', err.message);
    });
  }

  private healthHandlers(): grpc.UntypedServiceImplementation {
    return {
      Check: (_call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, cb: grpc.sendUnaryData<HealthCheckResponse>) => {
        cb(null, { status: this.servingStatus() });
      },
      List: (_call: grpc.ServerUnaryCall<object, HealthListResponse>, cb: grpc.sendUnaryData<HealthListResponse>) => {
        const s = { status: this.servingStatus() };
        cb(null, { statuses: { '': s, [ServiceNames.extProc]: s } });
      },
      Watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const w = { call, last: this.servingStatus() };
        call.write({ status: w.last });
        if (this.stopping) {
          call.end();
          return;
        }
        this.watchers.add(w);
        call.on('cancelled', () => this.watchers.delete(w));
        call.on('error', () => this.watchers.delete(w));
      },
    };
  }
}
