/**
 * One ext_proc stream = one HTTP request. The state machine (docs/facts/gateway-protocol.md, "The stream"):
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
 *
 * Code layout: this file is the dispatcher and the stream's lifecycle (close, failure → immediate
 * response, release); the request phase is `RequestPhase` (request-phase.ts), the response phase
 * `ResponsePhase` (response-phase.ts), and what they share (the stream's state, the options, `send`)
 * is one `StreamContext` (stream-context.ts).
 */
import { ApiError } from '../contract/errors.js';
import { toImmediateResponse } from './immediate.js';
import type { StreamOutcome } from './observer.js';
import { RequestPhase } from './request-phase.js';
import { ResponsePhase } from './response-phase.js';
import { bodyModeOf, ProtocolError, type StreamContext, type StreamOptions, type StreamState } from './stream-context.js';
import type { ProcessingRequest, ProcessingResponse } from './types.js';

export { BODY_CHUNK_BYTES, type BodyMode, type StreamOptions } from './stream-context.js';
export { REQUEST_ID_HEADER } from './request-phase.js';

/** Transport side of a stream (the gRPC call). */
export interface StreamSink {
  send(msg: ProcessingResponse): void;
  /** Ends the call: OK status, or an error status with a message. */
  end(error?: { code: 'invalid_argument' | 'internal'; message: string }): void;
}

export class ExtProcStream {
  private readonly state: StreamState = { phase: 'headers', requestMode: undefined, responseMode: undefined, metadata: undefined, ended: false };
  private readonly ctx: StreamContext;
  private readonly request: RequestPhase;
  private response: ResponsePhase | undefined;
  private released = false;
  private rejected = false;
  private observabilityModeSeen = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly opts: StreamOptions,
    private readonly sink: StreamSink,
  ) {
    const state = this.state;
    this.ctx = {
      opts,
      state,
      send: (msg) => {
        if (!state.ended) sink.send(msg);
      },
    };
    this.request = new RequestPhase(this.ctx, () => this.release());
  }

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
    this.queue = this.queue.then(() => {
      const routed = this.request.routed !== undefined;
      this.close(routed || this.rejected || this.state.phase === 'headers' ? 'completed' : 'cancelled', routed ? undefined : 'half-closed before routing');
    });
  }

  /** The call was cancelled or failed: stop at once. */
  abort(outcome: 'cancelled' | 'error', detail?: string): void {
    this.close(outcome, detail, undefined, false);
  }

  /** Resolves when every queued message has been handled. */
  idle(): Promise<void> {
    return this.queue;
  }

  private close(outcome: StreamOutcome, detail?: string, error?: { code: 'invalid_argument' | 'internal'; message: string }, endCall = true): void {
    if (this.state.ended) return;
    this.state.ended = true;
    this.state.phase = 'done';
    if (this.rejected && outcome === 'completed') outcome = 'immediate_response';
    this.release();
    this.opts.observer.streamEnded(outcome, detail);
    if (endCall) this.sink.end(error);
  }

  /** The director's `onDone` (and the observer's `released`), once, for a request whose pick resolved. */
  private release(): void {
    const req = this.request.req;
    if (!this.request.pickResolved || this.released || !req) return;
    this.released = true;
    if (this.request.routed) this.opts.observer.released(req);
    try {
      this.opts.director.onDone?.(req);
    } catch (err) {
      this.opts.logger.error({ err, requestId: req.requestId }, 'director.onDone threw');
    }
  }

  private async handle(msg: ProcessingRequest): Promise<void> {
    const st = this.state;
    if (st.ended) return;
    // Filter metadata accumulates by namespace (the subset hint usually comes with the request
    // headers, the served endpoint with the response).
    if (msg.metadata_context?.filter_metadata) {
      st.metadata = { filter_metadata: { ...st.metadata?.filter_metadata, ...msg.metadata_context.filter_metadata } };
    }
    if (msg.observability_mode && !this.observabilityModeSeen) {
      this.observabilityModeSeen = true;
      this.opts.observer.observabilityMode();
    }
    if (msg.protocol_config && st.requestMode === undefined) {
      st.requestMode = bodyModeOf(msg.protocol_config.request_body_mode, this.opts.defaultBodyMode);
      st.responseMode = bodyModeOf(msg.protocol_config.response_body_mode, this.opts.defaultBodyMode);
    }
    try {
      if (msg.request_headers) await this.request.onHeaders(msg.request_headers);
      else if (msg.request_body) await this.request.onBody(msg.request_body);
      else if (msg.request_trailers) await this.request.onTrailers();
      else if (msg.response_headers) this.responsePhase('response_headers').onHeaders(msg.response_headers);
      else if (msg.response_body) this.responsePhase('response_body').onBody(msg.response_body);
      else if (msg.response_trailers) this.responsePhase('response_trailers').onTrailers();
      else throw new ProtocolError('ProcessingRequest carries no request/response phase');
    } catch (err) {
      this.fail(err);
    }
  }

  /** The response phase of the routed request; a response message before routing breaks the protocol. */
  private responsePhase(what: string): ResponsePhase {
    const routed = this.request.routed;
    if (!routed) throw new ProtocolError(`${what} received before the request was routed (state ${this.state.phase})`);
    this.response ??= new ResponsePhase(this.ctx, routed);
    return this.response;
  }

  private fail(err: unknown): void {
    if (err instanceof ProtocolError) {
      this.close('protocol_error', err.message, { code: 'invalid_argument', message: err.message });
      return;
    }
    const requestId = this.request.requestId;
    if (this.request.routed) {
      // Too late for an ImmediateResponse: the request went upstream. Only a bug gets here.
      const message = err instanceof Error ? err.message : String(err);
      this.opts.logger.error({ err, requestId }, 'ext_proc response phase failed');
      this.close('error', message, { code: 'internal', message });
      return;
    }
    const out = toImmediateResponse(err);
    if (!(err instanceof ApiError)) this.opts.logger.error({ err, requestId }, 'ext_proc request failed unexpectedly');
    this.rejected = true;
    const req = this.request.req;
    this.opts.observer.rejected({ requestId, model: req?.model, targetModel: req?.targetModel, path: this.request.headers[':path'] }, out.code, out.status, out.message);
    this.ctx.send(out.response);
    this.close('immediate_response');
  }
}
