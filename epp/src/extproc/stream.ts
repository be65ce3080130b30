/**
 * One ext_proc stream = one HTTP request. The state machine (epp-protocol.md §1.2, §7.2):
 *
 *   headers ──(end_of_stream)──────────────────────────────▶ pick ─▶ response
 *      │                                                        ▲
 *      └──▶ body (buffer chunks) ──(end_of_stream | trailers)───┘
 *
 * Body modes, from `protocol_config` in the first message (or `defaultBodyMode` when the gateway
 * does not send it):
 *
 * - FULL_DUPLEX_STREAMED: Envoy streams chunks without waiting for us. We hold the headers
 *   response until the body is complete, then send HeadersResponse (destination header,
 *   clear_route_cache, `envoy.lb` dynamic metadata) followed by the body as `streamed_response`
 *   chunks of ≤ 62,000 bytes, the last with end_of_stream (or, when the body ended with trailers,
 *   without it and followed by a TrailersResponse).
 * - BUFFERED (and BUFFERED_PARTIAL): Envoy waits for the headers response before it buffers and
 *   sends the body, so holding the headers response would deadlock. We answer the headers at once
 *   with CONTINUE, and put the decision on the BodyResponse: CommonResponse with the same header
 *   mutation, clear_route_cache and dynamic metadata; `body_mutation.body` only when the model was
 *   rewritten (otherwise CONTINUE leaves the body as is). Header mutations on a body response are
 *   allowed in BUFFERED modes because the headers have not gone upstream yet. The one body message
 *   is taken as the whole body (end_of_stream or not; Envoy sends trailers after it if any).
 * - NONE / STREAMED: the body cannot influence routing (Envoy forwards headers upstream right
 *   after our headers response), so we pick at the headers like a body-less request and answer
 *   any body chunk with CONTINUE.
 *
 * Response side: headers answered at once; SSE bodies (`text/event-stream`) are passed on chunk by
 * chunk, other bodies are buffered to end of stream (in FULL_DUPLEX) so the model name can be
 * rewritten back; in BUFFERED/STREAMED modes each body message gets one BodyResponse.
 *
 * Messages are handled strictly in order (one at a time), so responses keep the order
 * headers → body → trailers even while a pick is pending.
 */
import { randomUUID } from 'node:crypto';
import { Headers, MetadataNamespaces } from '../contract/names.js';
import { ApiError } from '../contract/errors.js';
import type { InferenceRequest, PickResult, RequestDirector, ResponseInfo } from './director.js';
import { formatDestination, subsetAllows } from './endpoints.js';
import { toImmediateResponse } from './immediate.js';
import type { ExtProcObserver, StreamOutcome } from './observer.js';
import { apiKindForPath, parseRequestBody, show } from './parse.js';
import { LineHoldback, ModelRewriter, SseUsageTracker, StreamingRewriter, usageFromJson } from './response.js';
import {
  BodySendMode,
  HeaderAppendAction,
  type HeaderMap,
  type HeaderValueOption,
  type HttpBody,
  type HttpHeaders,
  type Metadata,
  type PbStruct,
  type ProcessingRequest,
  type ProcessingResponse,
} from './types.js';
import type { Logger } from '../util/logger.js';

/** Largest body chunk the EPP sends back (LR:pkg/common/envoy/chunking.go `BodyByteLimit`). */
export const BODY_CHUNK_BYTES = 62_000;

/** Request-id header (read, or generated and set upstream). */
export const REQUEST_ID_HEADER = 'x-request-id';

export type BodyMode = 'duplex' | 'buffered' | 'headers-only';

export interface StreamOptions {
  readonly director: RequestDirector;
  /** Largest request body (413 beyond). */
  readonly maxBodyBytes: number;
  /** Served models; when non-empty other models get 404. */
  readonly models: readonly string[];
  /** Largest non-SSE response body buffered for the model rewrite and usage; beyond it, streamed. */
  readonly maxResponseBufferBytes: number;
  /** Body mode when the gateway sends no `protocol_config`. */
  readonly defaultBodyMode: 'duplex' | 'buffered';
  readonly observer: ExtProcObserver;
  readonly logger: Logger;
}

/** Transport side of a stream (the gRPC call). */
export interface StreamSink {
  send(msg: ProcessingResponse): void;
  /** Ends the call: OK status, or an error status with a message. */
  end(error?: { code: 'invalid_argument' | 'internal'; message: string }): void;
}

type State = 'headers' | 'body' | 'response' | 'done';

/** Thrown for frames that break the ext_proc protocol (a gateway bug or a broken client). */
class ProtocolError extends Error {}

function bodyModeOf(mode: number | undefined, fallback: 'duplex' | 'buffered'): BodyMode {
  switch (mode) {
    case undefined:
      return fallback;
    case BodySendMode.FULL_DUPLEX_STREAMED:
    case BodySendMode.GRPC:
      return 'duplex';
    case BodySendMode.BUFFERED:
    case BodySendMode.BUFFERED_PARTIAL:
      return 'buffered';
    default:
      return 'headers-only';
  }
}

function headerMapToRecord(m: HeaderMap | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of m?.headers ?? []) {
    const key = h.key.toLowerCase();
    const v = h.raw_value !== undefined && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('utf8') : (h.value ?? '');
    out[key] = key in out ? `${out[key]},${v}` : v;
  }
  return out;
}

/**
 * Drops the request's payload once the decision is out (InferenceRequest.body documents it): the
 * stream lives on through the response, which can stream for minutes, and must not pin the prompt.
 */
function releasePayload(req: InferenceRequest): void {
  // Assigned, not deleted: the object keeps its shape (no slow dictionary mode for later reads).
  req.body = undefined;
  if (req.prompt !== undefined) req.prompt = undefined;
  if (req.tokenIds !== undefined) req.tokenIds = undefined;
  if (req.messages !== undefined) req.messages = undefined;
}

function setHeader(key: string, value: string): HeaderValueOption {
  return { header: { key, raw_value: Buffer.from(value) }, append_action: HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD };
}

/** Header names the director may not set (Envoy ignores or owns them). */
function isReservedHeader(k: string): boolean {
  return k.startsWith(':') || k === 'host' || k.startsWith('x-envoy-') || k === Headers.destinationEndpoint || k === 'content-length';
}

/** Reads `filter_metadata[ns][key]` as a list of strings (a string value is split on commas). */
function metadataStrings(md: Metadata | undefined, ns: string, key: string): string[] | undefined {
  const s: PbStruct | undefined = md?.filter_metadata?.[ns];
  const v = s?.fields?.[key];
  if (v === undefined) return undefined;
  if (v.list_value) return (v.list_value.values ?? []).flatMap((x) => (typeof x.string_value === 'string' && x.string_value !== '' ? [x.string_value] : []));
  if (typeof v.string_value === 'string') return v.string_value.split(',').map((x) => x.trim()).filter((x) => x !== '');
  return [];
}

function chunksOf(buf: Buffer): Buffer[] {
  if (buf.length <= BODY_CHUNK_BYTES) return [buf];
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += BODY_CHUNK_BYTES) out.push(buf.subarray(i, i + BODY_CHUNK_BYTES));
  return out;
}

export class ExtProcStream {
  private state: State = 'headers';
  private requestMode: BodyMode | undefined;
  private responseMode: BodyMode | undefined;
  private metadata: Metadata | undefined;

  // Request phase.
  private headers: Record<string, string> = {};
  private requestId: string | undefined;
  private generatedRequestId = false;
  private receivedAt = 0;
  private chunks: Buffer[] = [];
  private bodyBytes = 0;
  private req: InferenceRequest | undefined;
  private picked: string[] = [];
  private pickResolved = false;
  /** The decision went out (the request is routed; ImmediateResponse no longer possible). */
  private routed = false;
  private observedPick = false;
  private released = false;
  private rejected = false;
  private decisionStartedAt = 0;

  // Response phase.
  private status: number | undefined;
  private streaming = false;
  private rewriter: ModelRewriter | undefined;
  private holdback: LineHoldback | undefined;
  private sseUsage: SseUsageTracker | undefined;
  private respChunks: Buffer[] = [];
  private respBuffered = 0;
  private respBytes = 0;
  /** Set when a non-SSE response outgrew the buffer: it is streamed from then on. */
  private respStreaming: StreamingRewriter | 'plain' | undefined;
  private responded = false;
  private responseHeadersSeen = false;
  private firstChunkSeen = false;
  private servedEndpoint: string | undefined;

  private observabilityModeSeen = false;
  private queue: Promise<void> = Promise.resolve();
  private ended = false;

  constructor(
    private readonly opts: StreamOptions,
    private readonly sink: StreamSink,
  ) {}

  /** Queues one message; messages are processed one at a time, in order. */
  push(msg: ProcessingRequest): void {
    this.queue = this.queue.then(() => this.handle(msg));
  }

  /**
   * The gateway half-closed the stream: finish after queued messages. Envoy half-closes only after
   * the exchange; a half-close before the request was routed means the request was abandoned and
   * counts as `cancelled`.
   */
  endOfInput(): void {
    this.queue = this.queue.then(() =>
      this.close(this.routed || this.rejected || this.state === 'headers' ? 'completed' : 'cancelled', this.routed ? undefined : 'half-closed before routing'),
    );
  }

  /** The call was cancelled or failed: stop at once. */
  abort(outcome: 'cancelled' | 'error', detail?: string): void {
    this.close(outcome, detail, undefined, false);
  }

  /** Resolves when every queued message has been handled. */
  idle(): Promise<void> {
    return this.queue;
  }

  private send(msg: ProcessingResponse): void {
    if (!this.ended) this.sink.send(msg);
  }

  private close(outcome: StreamOutcome, detail?: string, error?: { code: 'invalid_argument' | 'internal'; message: string }, endCall = true): void {
    if (this.ended) return;
    this.ended = true;
    this.state = 'done';
    if (this.rejected && outcome === 'completed') outcome = 'immediate_response';
    this.release();
    this.opts.observer.streamEnded(outcome, detail);
    if (endCall) this.sink.end(error);
  }

  private release(): void {
    if (!this.pickResolved || this.released || !this.req) return;
    this.released = true;
    if (this.observedPick) this.opts.observer.released(this.req);
    try {
      this.opts.director.onDone?.(this.req);
    } catch (err) {
      this.opts.logger.error({ err, requestId: this.req.requestId }, 'director.onDone threw');
    }
  }

  private async handle(msg: ProcessingRequest): Promise<void> {
    if (this.ended) return;
    // Filter metadata accumulates by namespace (the subset hint usually comes with the request
    // headers, the served endpoint with the response).
    if (msg.metadata_context?.filter_metadata) {
      this.metadata = { filter_metadata: { ...this.metadata?.filter_metadata, ...msg.metadata_context.filter_metadata } };
    }
    if (msg.observability_mode && !this.observabilityModeSeen) {
      this.observabilityModeSeen = true;
      this.opts.observer.observabilityMode();
    }
    if (msg.protocol_config && this.requestMode === undefined) {
      this.requestMode = bodyModeOf(msg.protocol_config.request_body_mode, this.opts.defaultBodyMode);
      this.responseMode = bodyModeOf(msg.protocol_config.response_body_mode, this.opts.defaultBodyMode);
    }
    try {
      if (msg.request_headers) await this.onRequestHeaders(msg.request_headers);
      else if (msg.request_body) await this.onRequestBody(msg.request_body);
      else if (msg.request_trailers) await this.onRequestTrailers();
      else if (msg.response_headers) this.onResponseHeaders(msg.response_headers);
      else if (msg.response_body) this.onResponseBody(msg.response_body);
      else if (msg.response_trailers) this.onResponseTrailers();
      else throw new ProtocolError('ProcessingRequest carries no request/response phase');
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (err instanceof ProtocolError) {
      this.close('protocol_error', err.message, { code: 'invalid_argument', message: err.message });
      return;
    }
    if (this.routed) {
      // Too late for an ImmediateResponse: the request went upstream. Only a bug gets here.
      const message = err instanceof Error ? err.message : String(err);
      this.opts.logger.error({ err, requestId: this.requestId }, 'ext_proc response phase failed');
      this.close('error', message, { code: 'internal', message });
      return;
    }
    const out = toImmediateResponse(err);
    if (!(err instanceof ApiError)) this.opts.logger.error({ err, requestId: this.requestId }, 'ext_proc request failed unexpectedly');
    this.rejected = true;
    this.opts.observer.rejected(
      { requestId: this.requestId, model: this.req?.model, targetModel: this.req?.targetModel, path: this.headers[':path'] },
      out.code,
      out.status,
      out.message,
    );
    this.send(out.response);
    this.close('immediate_response');
  }

  private get reqMode(): BodyMode {
    return this.requestMode ?? this.opts.defaultBodyMode;
  }

  private get respMode(): BodyMode {
    return this.responseMode ?? this.opts.defaultBodyMode;
  }

  // ---- request phase -------------------------------------------------------------------

  private async onRequestHeaders(h: HttpHeaders): Promise<void> {
    if (this.state !== 'headers') throw new ProtocolError(`request_headers received twice (state ${this.state})`);
    this.receivedAt = performance.now();
    this.headers = headerMapToRecord(h.headers);
    const given = this.headers[REQUEST_ID_HEADER];
    this.requestId = given !== undefined && given !== '' ? given : randomUUID();
    this.generatedRequestId = given === undefined || given === '';
    if (h.end_of_stream || this.reqMode === 'headers-only') {
      this.state = 'response';
      await this.decide(undefined, 'headers', false);
      return;
    }
    this.state = 'body';
    if (this.reqMode === 'buffered') this.send({ request_headers: { response: {} } });
  }

  private async onRequestBody(b: HttpBody): Promise<void> {
    if (this.state === 'response' && this.reqMode === 'headers-only') {
      this.send({ request_body: { response: {} } });
      return;
    }
    if (this.state !== 'body') throw new ProtocolError(`request_body received in state ${this.state}`);
    const chunk = b.body && b.body.length > 0 ? Buffer.from(b.body.buffer, b.body.byteOffset, b.body.length) : undefined;
    if (chunk) {
      this.bodyBytes += chunk.length;
      if (this.bodyBytes > this.opts.maxBodyBytes) {
        throw new ApiError(
          'body_too_large',
          `request body exceeds ${this.opts.maxBodyBytes} bytes (received ${this.bodyBytes} so far); send a shorter prompt or raise server.maxBodyBytes`,
        );
      }
      this.chunks.push(chunk);
    }
    if (this.reqMode === 'buffered') {
      this.state = 'response';
      await this.decide(this.body(), 'buffered-body', false);
    } else if (b.end_of_stream) {
      this.state = 'response';
      await this.decide(this.body(), 'duplex-body', false);
    }
  }

  private async onRequestTrailers(): Promise<void> {
    if (this.state === 'body') {
      // FULL_DUPLEX: trailers end the body.
      this.state = 'response';
      await this.decide(this.body(), this.reqMode === 'buffered' ? 'buffered-body' : 'duplex-body', true);
      return;
    }
    if (this.state !== 'response') throw new ProtocolError(`request_trailers received in state ${this.state}`);
    this.send({ request_trailers: {} });
  }

  private body(): Buffer {
    const b = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bodyBytes);
    this.chunks = [];
    return b;
  }

  /** Parses, asks the director, sends the decision in the shape the phase needs. */
  private async decide(body: Buffer | undefined, phase: 'headers' | 'buffered-body' | 'duplex-body', viaTrailers: boolean): Promise<void> {
    this.decisionStartedAt = performance.now();
    const path = this.headers[':path'] ?? this.headers['x-original-path'] ?? this.headers['x-forwarded-path'] ?? '/';
    const parsed = body === undefined ? undefined : parseRequestBody(apiKindForPath(path), body, { models: this.opts.models });
    const subset = metadataStrings(this.metadata, MetadataNamespaces.subsetHint, Headers.destinationEndpointSubset);
    const req: InferenceRequest = {
      requestId: this.requestId!,
      path,
      method: (this.headers[':method'] ?? 'POST').toUpperCase(),
      apiKind: body === undefined ? 'none' : apiKindForPath(path),
      model: parsed?.model,
      targetModel: parsed?.model,
      headers: this.headers,
      body: parsed?.body,
      ...(parsed?.prompt !== undefined ? { prompt: parsed.prompt } : {}),
      ...(parsed?.tokenIds !== undefined ? { tokenIds: parsed.tokenIds } : {}),
      ...(parsed?.messages !== undefined ? { messages: parsed.messages } : {}),
      sessionId: this.headers[Headers.sessionId] || undefined,
      stream: parsed?.stream ?? false,
      subsetCandidates: subset,
      bodyBytes: this.bodyBytes,
      receivedAt: this.receivedAt,
    };
    this.req = req;
    if (subset !== undefined && subset.length === 0) {
      throw new ApiError('no_endpoint', `the gateway's subset hint ${MetadataNamespaces.subsetHint}/${Headers.destinationEndpointSubset} is empty; no endpoint may serve this request`);
    }
    const pick: PickResult = await this.opts.director.pick(req);
    this.pickResolved = true;
    if (this.ended) {
      releasePayload(req);
      this.release();
      return;
    }
    // If this throws (subset mismatch, bad endpoint), fail() answers and close() calls onDone.
    try {
      this.sendDecision(req, pick, body, phase, viaTrailers);
    } finally {
      releasePayload(req);
    }
  }

  private sendDecision(req: InferenceRequest, pick: PickResult, body: Buffer | undefined, phase: 'headers' | 'buffered-body' | 'duplex-body', viaTrailers: boolean): void {
    const allowed = pick.endpoints.filter((e) => subsetAllows(req.subsetCandidates, e));
    if (allowed.length === 0 && pick.endpoints.length > 0) {
      throw new ApiError(
        'no_endpoint',
        `none of the picked endpoints ${show(pick.endpoints)} is in the gateway's subset hint ${show(req.subsetCandidates)}; no endpoint may serve this request`,
      );
    }
    const dest = formatDestination(allowed);
    this.picked = dest.list;

    let newBody: Buffer | undefined;
    if (pick.targetModel !== undefined && pick.targetModel !== req.model && req.body !== undefined && req.model !== undefined) {
      newBody = Buffer.from(JSON.stringify({ ...req.body, model: pick.targetModel }));
      req.targetModel = pick.targetModel;
      this.rewriter = new ModelRewriter(pick.targetModel, req.model);
    }

    const set: HeaderValueOption[] = [setHeader(Headers.destinationEndpoint, dest.value)];
    for (const [k, v] of Object.entries(pick.headers ?? {})) {
      const key = k.toLowerCase();
      if (isReservedHeader(key)) {
        this.opts.logger.warn({ header: key, requestId: req.requestId }, 'director tried to set a reserved header; ignored');
        continue;
      }
      set.push(setHeader(key, v));
    }
    if (this.generatedRequestId) set.push(setHeader(REQUEST_ID_HEADER, req.requestId));
    if (newBody) set.push(setHeader('content-length', String(newBody.length)));
    const metadata: PbStruct = {
      fields: { [MetadataNamespaces.lb]: { struct_value: { fields: { [Headers.destinationEndpoint]: { string_value: dest.value } } } } },
    };
    const common = { header_mutation: { set_headers: set }, clear_route_cache: true };

    this.routed = true;
    this.observedPick = true;
    this.opts.observer.picked(req, dest.value, (performance.now() - this.decisionStartedAt) / 1000);
    if (phase === 'buffered-body') {
      this.send({ request_body: { response: newBody ? { ...common, body_mutation: { body: newBody } } : common }, dynamic_metadata: metadata });
      return;
    }
    this.send({ request_headers: { response: common }, dynamic_metadata: metadata });
    if (phase === 'duplex-body') {
      const parts = chunksOf(newBody ?? body ?? Buffer.alloc(0));
      parts.forEach((p, i) => {
        const last = i === parts.length - 1;
        this.send({ request_body: { response: { body_mutation: { streamed_response: last && !viaTrailers ? { body: p, end_of_stream: true } : { body: p } } } } });
      });
      if (viaTrailers) this.send({ request_trailers: {} });
    }
  }

  // ---- response phase ------------------------------------------------------------------

  private requireRouted(phase: string): InferenceRequest {
    if (!this.routed || !this.req) throw new ProtocolError(`${phase} received before the request was routed (state ${this.state})`);
    if (this.responded) throw new ProtocolError(`${phase} received after the response completed`);
    return this.req;
  }

  private onResponseHeaders(h: HttpHeaders): void {
    this.requireRouted('response_headers');
    if (this.responseHeadersSeen) throw new ProtocolError('response_headers received twice');
    this.responseHeadersSeen = true;
    const hdr = headerMapToRecord(h.headers);
    const status = Number(hdr[':status']);
    this.status = Number.isInteger(status) && status > 0 ? status : undefined;
    this.streaming = (hdr['content-type'] ?? '').toLowerCase().includes('text/event-stream');
    this.served();
    if (this.streaming) this.sseUsage = new SseUsageTracker();
    if (this.rewriter && this.streaming && this.respMode === 'duplex') this.holdback = new LineHoldback();
    // The rewritten body can differ in length: let the gateway re-frame it.
    this.send({ response_headers: { response: this.rewriter && 'content-length' in hdr ? { header_mutation: { remove_headers: ['content-length'] } } : {} } });
    if (h.end_of_stream) this.complete();
  }

  private onResponseBody(b: HttpBody): void {
    const req = this.requireRouted('response_body');
    this.served();
    const chunk = b.body && b.body.length > 0 ? Buffer.from(b.body.buffer, b.body.byteOffset, b.body.length) : Buffer.alloc(0);
    if (!this.firstChunkSeen && chunk.length > 0) {
      this.firstChunkSeen = true;
      try {
        this.opts.director.onFirstChunk?.(req);
      } catch (err) {
        this.opts.logger.error({ err, requestId: req.requestId }, 'director.onFirstChunk threw');
      }
    }
    const eos = b.end_of_stream === true;
    this.respBytes += chunk.length;
    if (this.sseUsage) this.sseUsage.push(chunk);

    if (this.respMode !== 'duplex') {
      // One BodyResponse per body message.
      if (!this.streaming) this.keepForUsage(chunk);
      const out = this.rewriter ? this.rewriter.rewrite(chunk) : undefined;
      this.send({ response_body: { response: out && !out.equals(chunk) ? { body_mutation: { body: out } } : {} } });
      if (eos) this.complete();
      return;
    }
    if (this.streaming) {
      let out = chunk;
      if (this.holdback && this.rewriter) {
        out = this.rewriter.rewrite(this.holdback.push(chunk));
        if (eos) out = Buffer.concat([out, this.rewriter.rewrite(this.holdback.flush())]);
      }
      if (out.length > 0 || eos) this.sendResponseBody(out, eos);
    } else if (this.respStreaming) {
      const out = this.respStreaming === 'plain' ? chunk : this.respStreaming.push(chunk, eos);
      if (out.length > 0 || eos) this.sendResponseBody(out, eos);
    } else {
      this.respChunks.push(chunk);
      this.respBuffered += chunk.length;
      if (eos) {
        this.sendResponseBody(this.bufferedResponse(), true);
      } else if (this.respBuffered > this.opts.maxResponseBufferBytes) {
        // Too big to hold: stream it from here on (usage from this body is not read).
        this.opts.logger.debug({ requestId: this.requestId, bytes: this.respBuffered }, 'response body over maxResponseBufferBytes; streaming it');
        const whole = Buffer.concat(this.respChunks);
        this.respChunks = [];
        this.respStreaming = this.rewriter ? new StreamingRewriter(this.rewriter) : 'plain';
        const out = this.respStreaming === 'plain' ? whole : this.respStreaming.push(whole, false);
        if (out.length > 0) this.sendResponseBody(out, false);
      }
    }
    if (eos) this.complete();
  }

  /** Keeps a BUFFERED-mode body for usage parsing, within the buffer limit. */
  private keepForUsage(chunk: Buffer): void {
    this.respBuffered += chunk.length;
    if (this.respBuffered <= this.opts.maxResponseBufferBytes) this.respChunks.push(chunk);
    else this.respChunks = [];
  }

  private onResponseTrailers(): void {
    this.requireRouted('response_trailers');
    this.served();
    if (this.respMode === 'duplex') {
      let rest: Buffer;
      if (this.streaming) rest = this.holdback && this.rewriter ? this.rewriter.rewrite(this.holdback.flush()) : Buffer.alloc(0);
      else if (this.respStreaming instanceof StreamingRewriter) rest = this.respStreaming.push(Buffer.alloc(0), true);
      else rest = this.respStreaming ? Buffer.alloc(0) : this.bufferedResponse();
      if (rest.length > 0) this.sendResponseBody(rest, false);
    }
    this.send({ response_trailers: {} });
    this.complete();
  }

  /** The buffered (non-SSE) response body, rewritten; keeps a copy for usage parsing. */
  private bufferedResponse(): Buffer {
    const whole = Buffer.concat(this.respChunks);
    this.respChunks = [whole];
    return this.rewriter ? this.rewriter.rewrite(whole) : whole;
  }

  private sendResponseBody(buf: Buffer, eos: boolean): void {
    const parts = chunksOf(buf);
    parts.forEach((p, i) => {
      const last = i === parts.length - 1;
      this.send({ response_body: { response: { body_mutation: { streamed_response: last && eos ? { body: p, end_of_stream: true } : { body: p } } } } });
    });
  }

  private served(): void {
    const s = metadataStrings(this.metadata, MetadataNamespaces.lb, Headers.destinationEndpointServed);
    if (s && s.length > 0) this.servedEndpoint = s.join(',');
  }

  private complete(): void {
    if (this.responded || !this.req) return;
    this.responded = true;
    let usage = this.sseUsage?.usage;
    if (this.sseUsage) {
      this.sseUsage.end();
      usage = this.sseUsage.usage;
    } else if (this.respChunks.length > 0) {
      usage = usageFromJson(Buffer.concat(this.respChunks));
    }
    this.respChunks = [];
    const info: ResponseInfo = {
      status: this.status,
      usage,
      servedEndpoint: this.servedEndpoint,
      pickedEndpoints: this.picked,
      streaming: this.streaming,
      responseBytes: this.respBytes,
    };
    this.opts.observer.responded(this.req, info);
    try {
      this.opts.director.onResponse?.(this.req, info);
    } catch (err) {
      this.opts.logger.error({ err, requestId: this.req.requestId }, 'director.onResponse threw');
    }
  }
}
