/**
 * A small gRPC server transport written directly on `node:http2` (h2c, or TLS with ALPN `h2`).
 *
 *   const server = new H2GrpcServer({ maxReceiveMessageBytes: 17 << 20 });
 *   server.addMethod('/pkg.Service/Method', {
 *     requestDeserialize, responseSerialize,            // from @grpc/proto-loader
 *     open: (call) => ({ message(m) { call.send(reply(m)); }, halfClose() { call.end(); }, cancelled() {}, failed() {} }),
 *   });
 *   const port = await server.listen(9002, '0.0.0.0');
 *   ...
 *   await server.shutdown(5000); // GOAWAY, drain, then UNAVAILABLE for the rest
 *
 * Why not grpc-js's server: the EPP serves one bidi method whose every message is decoded and
 * answered by our own code; grpc-js's per-call machinery (metadata objects, interceptors, stream
 * wrappers, compression filters, deadline timers) sits on top of the same node:http2, and dropping
 * it saved ≈ 10–15 % of the server's CPU per ext_proc stream (../extproc/README.md, Performance).
 *
 * Wire protocol (grpc/doc/PROTOCOL-HTTP2.md) as implemented here:
 * - Requests: `:method POST` (else HTTP 405 + grpc-status INTERNAL), `content-type` starting with
 *   `application/grpc` (else HTTP 415 + grpc-status INVALID_ARGUMENT), routed on `:path`
 *   (unknown → HTTP 200 trailers-only grpc-status UNIMPLEMENTED naming the path).
 * - Messages: 1-byte compressed flag + 4-byte big-endian length + payload, reassembled across DATA
 *   chunks split anywhere, any number per chunk. Only the `identity` encoding is supported: a
 *   message with the compressed flag set fails the call with UNIMPLEMENTED (+ `grpc-accept-encoding:
 *   identity`) when the client declared another `grpc-encoding`, INTERNAL when it declared none or
 *   `identity` (grpc/doc/compression.md). A message longer than `maxReceiveMessageBytes` fails the
 *   call with RESOURCE_EXHAUSTED. Responses are never compressed.
 * - Responses: `:status 200`, `content-type: application/grpc+proto`, length-prefixed messages,
 *   trailers `grpc-status` (+ percent-encoded `grpc-message`); a call ended before any message is
 *   answered trailers-only. When the server finishes before the client half-closed, no RST_STREAM
 *   NO_ERROR follows the trailers (PROTOCOL-HTTP2.md's "Early Server Closure" suggests one, but
 *   grpc-js clients then report INTERNAL instead of the status they were sent; like grpc-js's own
 *   server we leave closing the stream to the client, which grpc-js clients do on the trailers;
 *   shutdown() destroys whatever a client left open).
 * - `grpc-timeout` is ignored (the EPP's peer, Envoy, cancels with RST_STREAM when its own timeout
 *   fires, which arrives here as a cancel). Custom metadata is neither read nor sent.
 * - Client RST_STREAM or a lost connection → `cancelled()`; END_STREAM → `halfClose()` (deferred by
 *   one `setImmediate`, and skipped when a reset arrived meanwhile: a client cancel can arrive as
 *   END_STREAM just before RST_STREAM).
 *
 * Back-pressure: incoming DATA is consumed as it arrives (HTTP/2 flow control windows are returned
 * at once, like grpc-js does); the handler is expected to bound what it keeps. Outgoing messages
 * are queued on the stream; when more than `maxQueuedResponseBytes` are waiting because the client
 * stopped reading, the stream is reset (ENHANCE_YOUR_CALM, which the client sees as
 * RESOURCE_EXHAUSTED) and the handler gets `failed()`.
 *
 * Robustness: 'error' is handled on the server, every session and every stream; a handler that
 * throws fails only its own call (INTERNAL). Nothing here throws into the event loop.
 *
 * HTTP/2 settings: SETTINGS_INITIAL_WINDOW_SIZE 1 MiB per stream and a 16 MiB connection window
 * (so 8 KB+ bodies from many streams never wait for WINDOW_UPDATEs), `maxSessionMemory` 256 MiB
 * (node's default of 10 MiB would refuse new streams while a few large responses are queued; each
 * stream is bounded by `maxQueuedResponseBytes` anyway), max concurrent streams left at node's
 * default (unlimited).
 */
import * as http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { silentLogger, type Logger } from '../util/logger.js';

/** gRPC status codes (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** A non-OK final status. */
export interface GrpcError {
  readonly code: GrpcStatusCode;
  readonly message: string;
}

/** The server side of one call, as a handler sees it. */
export interface GrpcCall<Res> {
  /** The `:path` the call was routed on. */
  readonly path: string;
  /** True once the call is over (ended by the handler or the transport, or cancelled). */
  readonly finished: boolean;
  /** Sends one response message (sends the response headers first if needed). No-op once finished. */
  send(msg: Res): void;
  /** Ends the call: OK, or the given error status. No-op once finished. */
  end(error?: GrpcError): void;
}

/** What a handler does with the events of one call. Each callback runs synchronously. */
export interface CallHandlers<Req> {
  /** One decoded request message. */
  message(msg: Req): void;
  /** The client half-closed (sent END_STREAM); it sends no more messages. */
  halfClose(): void;
  /** The client reset the stream, its connection went away, or the server was shut down past the drain deadline. The call is over. */
  cancelled(reason: string): void;
  /** The transport ended the call with `error` (oversized, compressed, undecodable or truncated message; client not reading; the handler threw). The call is over. */
  failed(error: GrpcError): void;
}

/** One method: (de)serializers (e.g. from @grpc/proto-loader) and the call handler. */
export interface GrpcMethod<Req, Res> {
  /** Turns one request payload into a message; a throw fails the call with INTERNAL. */
  readonly requestDeserialize: (payload: Buffer) => Req;
  readonly responseSerialize: (msg: Res) => Buffer;
  /** Called once per call, before any message is delivered. */
  readonly open: (call: GrpcCall<Res>) => CallHandlers<Req>;
}

/** TLS material for the listener (PEM). */
export interface H2GrpcTls {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

export interface H2GrpcServerOptions {
  /**
   * Largest request message payload in bytes; a longer one fails the call with RESOURCE_EXHAUSTED.
   * @default 4 MiB (grpc's usual default)
   */
  readonly maxReceiveMessageBytes?: number;
  /**
   * Largest response message payload in bytes; sending a longer one fails the call with
   * RESOURCE_EXHAUSTED.
   * @default maxReceiveMessageBytes
   */
  readonly maxSendMessageBytes?: number;
  /**
   * Response bytes one stream may have queued (the client is not reading) before it is reset.
   * @default 2 × maxSendMessageBytes + 1 MiB
   */
  readonly maxQueuedResponseBytes?: number;
  /**
   * Every this many ms each connection is PINGed; a peer that does not answer within
   * `keepaliveTimeoutMs` is dropped and its calls cancelled (a crashed gateway or a partition
   * sends no FIN: without this its calls, and the in-flight counts they hold, would stay forever).
   * TCP keepalive probes start after the same idle time. 0 turns both off.
   * @default 30000
   */
  readonly keepaliveIntervalMs?: number;
  /** @default 10000 */
  readonly keepaliveTimeoutMs?: number;
  /**
   * Concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS), so one client cannot park
   * unbounded partial messages. @default 10000
   */
  readonly maxConcurrentStreams?: number;
  /** Serve TLS (ALPN `h2` only) instead of h2c. @default undefined (h2c) */
  readonly tls?: H2GrpcTls;
  /** @default silentLogger() */
  readonly logger?: Logger;
}

const MiB = 1024 * 1024;
const STREAM_WINDOW_BYTES = MiB;
const CONNECTION_WINDOW_BYTES = 16 * MiB;
const MAX_SESSION_MEMORY_MIB = 256;
/** At shutdown, once every call has its status queued: how long clients get to read it and close. */
const FLUSH_MS = 250;
const DEFAULT_KEEPALIVE_MS = 30_000;
const DEFAULT_KEEPALIVE_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_CONCURRENT_STREAMS = 10_000;

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;
const EMPTY = Buffer.alloc(0);
const RESPONSE_HEADERS: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc+proto' };
const OK_TRAILERS: http2.OutgoingHttpHeaders = { 'grpc-status': '0' };

/** `grpc-message` value: UTF-8, percent-encoded outside printable ASCII and for `%` itself. */
export function encodeGrpcMessage(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = '';
  for (const b of Buffer.from(message, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function statusHeaders(error: GrpcError | undefined): http2.OutgoingHttpHeaders {
  return error ? { 'grpc-status': String(error.code), 'grpc-message': encodeGrpcMessage(error.message) } : OK_TRAILERS;
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Unary method: exactly one request message, then half-close; `handle` returns the one response. */
export function unaryMethod<Req, Res>(
  requestDeserialize: (payload: Buffer) => Req,
  responseSerialize: (msg: Res) => Buffer,
  handle: (req: Req) => Res,
): GrpcMethod<Req, Res> {
  return singleRequestMethod('unary', requestDeserialize, responseSerialize, (req, call) => {
    call.send(handle(req));
    call.end();
  });
}

/**
 * Server-streaming method: exactly one request message, then half-close; `start` then sends and
 * ends as it likes, and may return what to do when the call is cancelled.
 */
export function serverStreamMethod<Req, Res>(
  requestDeserialize: (payload: Buffer) => Req,
  responseSerialize: (msg: Res) => Buffer,
  start: (req: Req, call: GrpcCall<Res>) => { onCancel?: () => void } | void,
): GrpcMethod<Req, Res> {
  return singleRequestMethod('server-streaming', requestDeserialize, responseSerialize, start);
}

/** A method taking exactly one request message: a second one ends the call at once (nothing more is held). */
function singleRequestMethod<Req, Res>(
  kind: 'unary' | 'server-streaming',
  requestDeserialize: (payload: Buffer) => Req,
  responseSerialize: (msg: Res) => Buffer,
  start: (req: Req, call: GrpcCall<Res>) => { onCancel?: () => void } | void,
): GrpcMethod<Req, Res> {
  return {
    requestDeserialize,
    responseSerialize,
    open: (call) => {
      const got: Req[] = [];
      let onCancel: (() => void) | undefined;
      const wrongCount = (n: number): void =>
        call.end({ code: GrpcStatus.UNIMPLEMENTED, message: `${call.path} is a ${kind} method: send exactly one request message (got ${n})` });
      return {
        message: (m) => {
          if (got.length >= 1) wrongCount(got.length + 1);
          else got.push(m);
        },
        halfClose: () => {
          if (got.length !== 1 || call.finished) {
            wrongCount(got.length);
            return;
          }
          onCancel = start(got[0] as Req, call)?.onCancel;
        },
        cancelled: () => onCancel?.(),
        failed: () => onCancel?.(),
      };
    },
  };
}

/** What the server keeps per live call. */
interface LiveCall {
  readonly finished: boolean;
  /** Ends the call with `error` and tells the handler it was cancelled. */
  forceCancel(error: GrpcError, reason: string): void;
}

/** Limits and bookkeeping the calls share with their server. */
interface CallContext {
  readonly maxReceive: number;
  readonly maxSend: number;
  readonly maxQueued: number;
  readonly logger: Logger;
  readonly calls: Set<LiveCall>;
  callClosed(call: LiveCall): void;
}

/** Payloads up to this size are copied next to their prefix; larger ones are written as is. */
const SMALL_FRAME_BYTES = 2048;

function uncork(call: { corked: boolean; readonly stream: http2.ServerHttp2Stream }): void {
  call.corked = false;
  if (!call.stream.destroyed) call.stream.uncork();
}

class ServerCall<Req, Res> implements GrpcCall<Res>, LiveCall {
  finished = false;
  private handlers: CallHandlers<Req> | undefined;
  private headersSent = false;
  private trailers: http2.OutgoingHttpHeaders = OK_TRAILERS;
  /** Writes are corked until the next tick (see send()). */
  corked = false;
  /** Set when a message used an unsupported grpc-encoding (the answer lists what is accepted). */
  private encodingRejected = false;
  // Message reassembly: `need < 0` while reading the 5-byte prefix (`prefixFill` bytes of it in
  // `prefix`), else the payload length being collected in `parts`.
  private prefix: Buffer | undefined;
  private prefixFill = 0;
  private need = -1;
  private parts: Buffer[] = [];
  private partsBytes = 0;

  constructor(
    private readonly ctx: CallContext,
    readonly stream: http2.ServerHttp2Stream,
    readonly path: string,
    private readonly method: GrpcMethod<Req, Res>,
    private readonly encoding: string | undefined,
  ) {}

  start(): void {
    const s = this.stream;
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('end', () => this.onEnd());
    s.on('close', () => this.onClose());
    try {
      this.handlers = this.method.open(this);
    } catch (err) {
      this.ctx.logger.error({ err, path: this.path }, 'gRPC handler threw when opening a call');
      this.end({ code: GrpcStatus.INTERNAL, message: `server error opening ${this.path}: ${reasonOf(err)}` });
    }
  }

  send(msg: Res): void {
    if (this.finished) return;
    let payload: Buffer;
    try {
      payload = this.method.responseSerialize(msg);
    } catch (err) {
      this.fail({ code: GrpcStatus.INTERNAL, message: `server could not encode a response message for ${this.path}: ${reasonOf(err)}` });
      return;
    }
    if (payload.length > this.ctx.maxSend) {
      this.fail({ code: GrpcStatus.RESOURCE_EXHAUSTED, message: `response message of ${payload.length} bytes exceeds the server's send limit of ${this.ctx.maxSend} bytes` });
      return;
    }
    const s = this.stream;
    if (s.destroyed) return; // 'close' follows and cancels the call
    if (!this.headersSent) this.respond();
    // Messages sent in the same tick leave in one write (one native request, fewer DATA frames).
    if (!this.corked) {
      this.corked = true;
      s.cork();
      process.nextTick(uncork, this);
    }
    const n = payload.length;
    if (n <= SMALL_FRAME_BYTES) {
      // Small: prefix and payload in one pooled buffer.
      const frame = Buffer.allocUnsafe(5 + n);
      frame[0] = 0;
      frame.writeUInt32BE(n, 1);
      payload.copy(frame, 5);
      s.write(frame);
    } else {
      // Large: no copy; the prefix and the payload go out in the same writev.
      const prefix = Buffer.allocUnsafe(5);
      prefix[0] = 0;
      prefix.writeUInt32BE(n, 1);
      s.write(prefix);
      s.write(payload);
    }
    if (s.writableLength > this.ctx.maxQueued) {
      const error = { code: GrpcStatus.RESOURCE_EXHAUSTED, message: `client is not reading: ${s.writableLength} response bytes queued on ${this.path} (limit ${this.ctx.maxQueued})` };
      this.finished = true;
      s.close(NGHTTP2_ENHANCE_YOUR_CALM);
      this.ctx.logger.warn({ path: this.path, queued: s.writableLength }, 'gRPC stream reset: the client stopped reading responses');
      this.notifyFailed(error);
    }
  }

  end(error?: GrpcError): void {
    if (this.finished) return;
    this.finished = true;
    const s = this.stream;
    if (s.destroyed || s.closed) return;
    try {
      if (!this.headersSent) {
        this.headersSent = true;
        s.respond({ ...RESPONSE_HEADERS, ...statusHeaders(error), ...(error?.code === GrpcStatus.UNIMPLEMENTED && this.encodingRejected ? { 'grpc-accept-encoding': 'identity' } : {}) }, { endStream: true });
      } else {
        this.trailers = { ...statusHeaders(error), ...(error?.code === GrpcStatus.UNIMPLEMENTED && this.encodingRejected ? { 'grpc-accept-encoding': 'identity' } : {}) };
        s.end();
      }
    } catch (err) {
      // The stream went away between the checks and the call (e.g. a session destroyed meanwhile).
      this.ctx.logger.debug({ err, path: this.path }, 'could not end a gRPC stream');
    }
  }

  forceCancel(error: GrpcError, reason: string): void {
    if (this.finished) return;
    this.end(error);
    this.notify(() => this.handlers?.cancelled(reason));
  }

  private respond(): void {
    this.headersSent = true;
    const s = this.stream;
    s.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    s.once('wantTrailers', () => {
      try {
        s.sendTrailers(this.trailers);
      } catch (err) {
        this.ctx.logger.debug({ err, path: this.path }, 'could not send gRPC trailers');
      }
    });
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      if (this.need < 0) {
        let flag: number;
        let len: number;
        if (this.prefixFill === 0 && n - off >= 5) {
          flag = chunk[off]!;
          len = chunk.readUInt32BE(off + 1);
          off += 5;
        } else {
          const p = (this.prefix ??= Buffer.allocUnsafe(5));
          const take = Math.min(5 - this.prefixFill, n - off);
          chunk.copy(p, this.prefixFill, off, off + take);
          this.prefixFill += take;
          off += take;
          if (this.prefixFill < 5) return;
          this.prefixFill = 0;
          flag = p[0]!;
          len = p.readUInt32BE(1);
        }
        if (!this.acceptPrefix(flag, len)) return;
        if (len === 0) {
          this.deliver(EMPTY);
        } else if (n - off >= len) {
          this.deliver(chunk.subarray(off, off + len));
          off += len;
        } else {
          this.need = len;
        }
        if (this.finished) return;
      } else {
        const take = Math.min(this.need - this.partsBytes, n - off);
        this.parts.push(chunk.subarray(off, off + take));
        this.partsBytes += take;
        off += take;
        if (this.partsBytes === this.need) {
          const payload = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.need);
          this.parts = [];
          this.partsBytes = 0;
          this.need = -1;
          this.deliver(payload);
          if (this.finished) return;
        }
      }
    }
  }

  private acceptPrefix(flag: number, len: number): boolean {
    if (flag !== 0) {
      if (flag === 1 && this.encoding !== undefined && this.encoding !== 'identity') {
        this.encodingRejected = true;
        this.fail({ code: GrpcStatus.UNIMPLEMENTED, message: `request message compressed with grpc-encoding "${this.encoding}", which this server does not support (identity only); disable compression on the client channel` });
      } else if (flag === 1) {
        this.fail({ code: GrpcStatus.INTERNAL, message: `request message has the compressed flag set but the call declares no grpc-encoding (or identity); send it uncompressed with flag 0` });
      } else {
        this.fail({ code: GrpcStatus.INTERNAL, message: `request message has compressed flag ${flag}; it must be 0 or 1` });
      }
      return false;
    }
    if (len > this.ctx.maxReceive) {
      this.fail({ code: GrpcStatus.RESOURCE_EXHAUSTED, message: `request message of ${len} bytes exceeds the server's limit of ${this.ctx.maxReceive} bytes` });
      return false;
    }
    return true;
  }

  private deliver(payload: Buffer): void {
    let msg: Req;
    try {
      msg = this.method.requestDeserialize(payload);
    } catch (err) {
      this.fail({ code: GrpcStatus.INTERNAL, message: `could not decode a request message for ${this.path}: ${reasonOf(err)}` });
      return;
    }
    const h = this.handlers;
    if (!h) return;
    try {
      h.message(msg);
    } catch (err) {
      this.handlerThrew(err);
    }
  }

  private onEnd(): void {
    if (this.finished) return;
    if (this.need >= 0 || this.prefixFill > 0) {
      const got = this.need >= 0 ? `${this.partsBytes} of ${this.need} payload bytes` : `${this.prefixFill} of 5 prefix bytes`;
      this.fail({ code: GrpcStatus.INTERNAL, message: `client half-closed in the middle of a request message (${got} received)` });
      return;
    }
    // A client cancel can arrive as END_STREAM just before RST_STREAM: give the reset a turn.
    setImmediate(() => {
      if (this.finished) return;
      if (this.stream.aborted || this.stream.destroyed) {
        this.finished = true;
        this.notify(() => this.handlers?.cancelled('stream reset by the client'));
        return;
      }
      try {
        this.handlers?.halfClose();
      } catch (err) {
        this.handlerThrew(err);
      }
    });
  }

  private onClose(): void {
    this.ctx.callClosed(this);
    if (this.finished) return;
    this.finished = true;
    const code = this.stream.rstCode;
    const reason = code === NGHTTP2_CANCEL ? 'cancelled by the client' : code === NGHTTP2_NO_ERROR ? 'stream closed by the client' : `stream reset (HTTP/2 error code ${code})`;
    this.notify(() => this.handlers?.cancelled(reason));
  }

  /** Ends the call with `error` and tells the handler. */
  private fail(error: GrpcError): void {
    if (this.finished) return;
    this.end(error);
    this.notifyFailed(error);
  }

  private notifyFailed(error: GrpcError): void {
    this.notify(() => this.handlers?.failed(error));
  }

  private handlerThrew(err: unknown): void {
    this.ctx.logger.error({ err, path: this.path }, 'gRPC handler threw');
    this.fail({ code: GrpcStatus.INTERNAL, message: `server error in ${this.path}: ${reasonOf(err)}` });
  }

  /** Runs a handler callback after the call is over; a throw is logged, never propagated. */
  private notify(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.ctx.logger.error({ err, path: this.path }, 'gRPC handler threw while the call was ending');
    }
  }
}

/** What `shutdown()` did. */
export interface H2GrpcShutdownResult {
  /** Calls still open at the drain deadline (ended with UNAVAILABLE). */
  readonly forcedCalls: number;
}

type Route = (stream: http2.ServerHttp2Stream, encoding: string | undefined) => void;

export class H2GrpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly ctx: CallContext;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly sockets = new Set<Socket>();
  private server: http2.Http2Server | http2.Http2SecureServer | undefined;
  private draining = false;
  /** Set when the drain deadline passed: streams still arriving then are refused. */
  private pastDeadline = false;

  constructor(private readonly opts: H2GrpcServerOptions = {}) {
    const maxReceive = opts.maxReceiveMessageBytes ?? 4 * MiB;
    const maxSend = opts.maxSendMessageBytes ?? maxReceive;
    const calls = new Set<LiveCall>();
    this.ctx = {
      maxReceive,
      maxSend,
      maxQueued: opts.maxQueuedResponseBytes ?? 2 * maxSend + MiB,
      logger: opts.logger ?? silentLogger(),
      calls,
      callClosed: (c) => {
        calls.delete(c);
      },
    };
  }

  /** Calls whose stream is still open. */
  get openCalls(): number {
    return this.ctx.calls.size;
  }

  /** Registers a method under its full path (`/package.Service/Method`). */
  addMethod<Req, Res>(path: string, method: GrpcMethod<Req, Res>): this {
    if (this.routes.has(path)) throw new Error(`gRPC method ${path} registered twice`);
    this.routes.set(path, (stream, encoding) => {
      const call = new ServerCall(this.ctx, stream, path, method, encoding);
      this.ctx.calls.add(call);
      call.start();
    });
    return this;
  }

  /** Starts listening; resolves with the bound port. */
  async listen(port: number, host: string): Promise<number> {
    if (this.server) throw new Error('H2GrpcServer.listen() called twice; shutdown() it first');
    const common = {
      settings: { initialWindowSize: STREAM_WINDOW_BYTES, maxConcurrentStreams: this.opts.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS },
      maxSessionMemory: MAX_SESSION_MEMORY_MIB,
    };
    const tls = this.opts.tls;
    const server = tls ? http2.createSecureServer({ ...common, cert: tls.cert, key: tls.key, allowHTTP1: false, minVersion: 'TLSv1.2' }) : http2.createServer(common);
    const log = this.ctx.logger;
    const keepalive = this.opts.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS;
    server.on('connection', (sock: Socket) => {
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
      if (keepalive > 0) sock.setKeepAlive(true, keepalive);
    });
    server.on('session', (session: http2.ServerHttp2Session) => this.onSession(session));
    server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.onStream(stream, headers));
    server.on('sessionError', (err: Error) => log.debug({ err }, 'HTTP/2 session error'));
    if (tls) server.on('tlsClientError', (err: Error) => log.debug({ err }, 'TLS handshake failed'));
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => {
        const code = (err as NodeJS.ErrnoException).code;
        const hint = code === 'EADDRINUSE' ? 'choose a free port or stop the process holding it' : code === 'EADDRNOTAVAIL' ? 'use an address of this host (or 0.0.0.0)' : 'check the host and port';
        reject(new Error(`gRPC server cannot listen on ${host}:${port}: ${err.message}; ${hint}`));
      };
      server.once('error', fail);
      server.listen(port, host, () => {
        server.off('error', fail);
        resolve();
      });
    });
    server.on('error', (err: Error) => log.error({ err }, 'gRPC listener error'));
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  /**
   * Graceful stop: no new connections, GOAWAY on every session (no new streams), open calls get
   * `graceMs` to finish; then `onDeadline` runs (the owner may end its calls its own way), the
   * remaining calls end with UNAVAILABLE, and every connection is closed.
   */
  async shutdown(graceMs: number, onDeadline?: () => void): Promise<H2GrpcShutdownResult> {
    const server = this.server;
    if (!server) return { forcedCalls: 0 };
    this.server = undefined;
    this.draining = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // One GOAWAY (the real last stream id): node's API has no way to send gRPC's two-step
    // "shutdown notice" (nghttp2 caps the last stream id), so streams the gateway sent after it
    // are refused with REFUSED_STREAM, which HTTP/2 marks as safe to retry.
    for (const s of this.sessions) this.closeSession(s);
    let forcedCalls = 0;
    if (!(await this.waitUntil(() => this.unfinishedCalls().length === 0, graceMs))) {
      forcedCalls = this.unfinishedCalls().length;
      this.pastDeadline = true;
      try {
        onDeadline?.();
      } catch (err) {
        this.ctx.logger.error({ err }, 'shutdown deadline callback threw');
      }
      const reason = 'server shutting down: drain deadline passed';
      for (const c of this.unfinishedCalls()) c.forceCancel({ code: GrpcStatus.UNAVAILABLE, message: reason }, reason);
    }
    // Every call has its status queued: let the clients read it and close, then cut what is left.
    await this.waitUntil(() => this.sessions.size === 0, FLUSH_MS);
    for (const s of this.sessions) s.destroy();
    for (const sock of this.sockets) sock.destroy();
    await closed;
    this.draining = false;
    this.pastDeadline = false;
    return { forcedCalls };
  }

  private unfinishedCalls(): LiveCall[] {
    return [...this.ctx.calls].filter((c) => !c.finished);
  }

  /** Polls `done` every 10 ms (shutdown only); resolves true once it holds, false after `ms`. */
  private async waitUntil(done: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, Math.min(10, Math.max(1, deadline - Date.now()))));
    }
    return true;
  }

  /**
   * Replace the TLS certificate and key for new connections (open ones keep theirs), e.g. after
   * cert-manager rotated the files. Throws when the server is not serving TLS or the pair is bad.
   */
  setTls(tls: H2GrpcTls): void {
    const server = this.server;
    if (server === undefined || !('setSecureContext' in server)) {
      throw new Error('H2GrpcServer.setTls: the server is not listening with TLS; start it with the tls option first');
    }
    server.setSecureContext({ cert: tls.cert, key: tls.key });
  }

  private closeSession(s: http2.ServerHttp2Session): void {
    try {
      s.close();
    } catch (err) {
      this.ctx.logger.debug({ err }, 'HTTP/2 session close failed');
      s.destroy();
    }
  }

  private onSession(session: http2.ServerHttp2Session): void {
    this.sessions.add(session);
    session.on('error', (err: Error) => this.ctx.logger.debug({ err }, 'HTTP/2 session error'));
    const stopKeepalive = this.keepalive(session);
    session.on('close', () => {
      stopKeepalive();
      this.sessions.delete(session);
    });
    try {
      session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    } catch (err) {
      this.ctx.logger.debug({ err }, 'could not widen the HTTP/2 connection window');
    }
    if (this.draining) this.closeSession(session);
  }

  /** PINGs `session` every keepalive interval; destroys it when an answer does not come in time. */
  private keepalive(session: http2.ServerHttp2Session): () => void {
    const every = this.opts.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS;
    const timeout = this.opts.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS;
    if (every <= 0) return () => undefined;
    let deadline: NodeJS.Timeout | undefined;
    const timer = setInterval(() => {
      if (deadline !== undefined || session.closed || session.destroyed) return;
      deadline = setTimeout(() => {
        this.ctx.logger.warn({ timeoutMs: timeout }, 'HTTP/2 peer did not answer a keepalive PING; dropping the connection and cancelling its calls');
        session.destroy();
      }, timeout);
      deadline.unref();
      try {
        const sent = session.ping((err) => {
          clearTimeout(deadline);
          deadline = undefined;
          if (err) this.ctx.logger.debug({ err }, 'keepalive PING failed');
        });
        if (!sent) {
          clearTimeout(deadline);
          deadline = undefined;
        }
      } catch (err) {
        clearTimeout(deadline);
        deadline = undefined;
        this.ctx.logger.debug({ err }, 'keepalive PING could not be sent');
      }
    }, every);
    timer.unref();
    return () => {
      clearInterval(timer);
      if (deadline !== undefined) clearTimeout(deadline);
    };
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', (err: Error) => this.ctx.logger.debug({ err }, 'HTTP/2 stream error'));
    const method = headers[':method'];
    const path = headers[':path'] ?? '';
    if (method !== 'POST') {
      this.refuse(stream, 405, { code: GrpcStatus.INTERNAL, message: `gRPC requires :method POST, got ${String(method)} for ${path}` }, { allow: 'POST' });
      return;
    }
    const contentType = headers['content-type'];
    // application/grpc, optionally +proto/+json or ;params; not grpc-web (its framing differs).
    if (typeof contentType !== 'string' || !/^application\/grpc(?:$|[+;])/.test(contentType)) {
      this.refuse(stream, 415, { code: GrpcStatus.INVALID_ARGUMENT, message: `content-type must be application/grpc (or application/grpc+proto), got ${String(contentType)} for ${path}` });
      return;
    }
    if (this.pastDeadline) {
      this.refuse(stream, 200, { code: GrpcStatus.UNAVAILABLE, message: 'server shutting down; retry on another endpoint' });
      return;
    }
    const route = this.routes.get(path);
    if (!route) {
      this.refuse(stream, 200, { code: GrpcStatus.UNIMPLEMENTED, message: `unknown method ${path}; this port serves ${[...this.routes.keys()].join(', ')}` });
      return;
    }
    const encoding = headers['grpc-encoding'];
    route(stream, typeof encoding === 'string' ? encoding : undefined);
  }

  /** Trailers-only answer to a stream no handler sees; the request body is discarded. */
  private refuse(stream: http2.ServerHttp2Stream, httpStatus: number, error: GrpcError, extra: http2.OutgoingHttpHeaders = {}): void {
    try {
      stream.respond({ ':status': httpStatus, 'content-type': 'application/grpc+proto', ...statusHeaders(error), ...extra }, { endStream: true });
      stream.resume();
    } catch (err) {
      this.ctx.logger.debug({ err }, 'could not answer a refused HTTP/2 stream');
    }
  }
}
