/**
 * The request phase of an ext_proc stream: request headers, the body buffered to its end (or
 * trailers), the director's pick, and the decision sent in the shape the body mode needs (see the
 * state machine in stream.ts). Ends when the request is routed (`routed` set) or fails (the stream
 * answers with an ImmediateResponse).
 */
import { randomUUID } from 'node:crypto';
import { Headers, MetadataNamespaces } from '../contract/names.js';
import { ApiError } from '../contract/errors.js';
import type { InferenceRequest, PickResult } from './director.js';
import { formatDestination, subsetAllows } from './endpoints.js';
import { apiKindForPath, parseRequestBody, show } from './parse.js';
import { ModelRewriter } from './response.js';
import { bodyBytesOf, chunksOf, headerMapToRecord, metadataStrings, ProtocolError, requestModeOf, type RoutedRequest, type StreamContext } from './stream-context.js';
import { HeaderAppendAction, type HeaderValueOption, type HttpBody, type HttpHeaders, type PbStruct } from './types.js';

/** Request-id header (read, or generated and set upstream). */
export const REQUEST_ID_HEADER = 'x-request-id';

type DecisionShape = 'headers' | 'buffered-body' | 'duplex-body';

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

export class RequestPhase {
  headers: Record<string, string> = {};
  requestId: string | undefined;
  private generatedRequestId = false;
  private receivedAt = 0;
  private chunks: Buffer[] = [];
  private bodyBytes = 0;
  /** The request as built for the director (set before `pick` is called). */
  req: InferenceRequest | undefined;
  /** `pick` resolved: the director's `onDone` is owed. */
  pickResolved = false;
  /** The decision went out (the request is routed; ImmediateResponse no longer possible). */
  routed: RoutedRequest | undefined;
  private decisionStartedAt = 0;

  /**
   * @param ctx the stream's shared state
   * @param endedDuringPick called when the stream ended while the director was picking (the
   *   stream releases the request then)
   */
  constructor(
    private readonly ctx: StreamContext,
    private readonly endedDuringPick: () => void,
  ) {}

  async onHeaders(h: HttpHeaders): Promise<void> {
    const st = this.ctx.state;
    if (st.phase !== 'headers') throw new ProtocolError(`request_headers received twice (state ${st.phase})`);
    this.receivedAt = performance.now();
    this.headers = headerMapToRecord(h.headers);
    const given = this.headers[REQUEST_ID_HEADER];
    this.requestId = given !== undefined && given !== '' ? given : randomUUID();
    this.generatedRequestId = given === undefined || given === '';
    if (h.end_of_stream || requestModeOf(this.ctx) === 'headers-only') {
      st.phase = 'response';
      await this.decide(undefined, 'headers', false);
      return;
    }
    st.phase = 'body';
    if (requestModeOf(this.ctx) === 'buffered') this.ctx.send({ request_headers: { response: {} } });
  }

  async onBody(b: HttpBody): Promise<void> {
    const st = this.ctx.state;
    const mode = requestModeOf(this.ctx);
    if (st.phase === 'response' && mode === 'headers-only') {
      this.ctx.send({ request_body: { response: {} } });
      return;
    }
    if (st.phase !== 'body') throw new ProtocolError(`request_body received in state ${st.phase}`);
    const chunk = bodyBytesOf(b.body);
    if (chunk) {
      this.bodyBytes += chunk.length;
      const max = this.ctx.opts.maxBodyBytes;
      if (this.bodyBytes > max) {
        throw new ApiError('body_too_large', `request body exceeds ${max} bytes (received ${this.bodyBytes} so far); send a shorter prompt or raise server.maxBodyBytes`);
      }
      this.chunks.push(chunk);
    }
    if (mode === 'buffered') {
      st.phase = 'response';
      await this.decide(this.body(), 'buffered-body', false);
    } else if (b.end_of_stream) {
      st.phase = 'response';
      await this.decide(this.body(), 'duplex-body', false);
    }
  }

  async onTrailers(): Promise<void> {
    const st = this.ctx.state;
    if (st.phase === 'body') {
      // FULL_DUPLEX: trailers end the body.
      st.phase = 'response';
      await this.decide(this.body(), requestModeOf(this.ctx) === 'buffered' ? 'buffered-body' : 'duplex-body', true);
      return;
    }
    if (st.phase !== 'response') throw new ProtocolError(`request_trailers received in state ${st.phase}`);
    this.ctx.send({ request_trailers: {} });
  }

  private body(): Buffer {
    const b = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bodyBytes);
    this.chunks = [];
    return b;
  }

  /** Parses, asks the director, sends the decision in the shape the phase needs. */
  private async decide(body: Buffer | undefined, shape: DecisionShape, viaTrailers: boolean): Promise<void> {
    const { opts, state } = this.ctx;
    this.decisionStartedAt = performance.now();
    const path = this.headers[':path'] ?? this.headers['x-original-path'] ?? this.headers['x-forwarded-path'] ?? '/';
    const parsed = body === undefined ? undefined : parseRequestBody(apiKindForPath(path), body, { models: opts.models });
    const subset = metadataStrings(state.metadata, MetadataNamespaces.subsetHint, Headers.destinationEndpointSubset);
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
    const pick: PickResult = await opts.director.pick(req);
    this.pickResolved = true;
    if (state.ended) {
      releasePayload(req);
      this.endedDuringPick();
      return;
    }
    // If this throws (subset mismatch, bad endpoint), the stream answers and its close calls onDone.
    try {
      this.sendDecision(req, pick, body, shape, viaTrailers);
    } finally {
      releasePayload(req);
    }
  }

  private sendDecision(req: InferenceRequest, pick: PickResult, body: Buffer | undefined, shape: DecisionShape, viaTrailers: boolean): void {
    const { opts } = this.ctx;
    const allowed = pick.endpoints.filter((e) => subsetAllows(req.subsetCandidates, e));
    if (allowed.length === 0 && pick.endpoints.length > 0) {
      throw new ApiError(
        'no_endpoint',
        `none of the picked endpoints ${show(pick.endpoints)} is in the gateway's subset hint ${show(req.subsetCandidates)}; no endpoint may serve this request`,
      );
    }
    const dest = formatDestination(allowed);

    let newBody: Buffer | undefined;
    let rewriter: ModelRewriter | undefined;
    if (pick.targetModel !== undefined && pick.targetModel !== req.model && req.body !== undefined && req.model !== undefined) {
      newBody = Buffer.from(JSON.stringify({ ...req.body, model: pick.targetModel }));
      req.targetModel = pick.targetModel;
      rewriter = new ModelRewriter(pick.targetModel, req.model);
    }

    const set: HeaderValueOption[] = [setHeader(Headers.destinationEndpoint, dest.value)];
    for (const [k, v] of Object.entries(pick.headers ?? {})) {
      const key = k.toLowerCase();
      if (isReservedHeader(key)) {
        opts.logger.warn({ header: key, requestId: req.requestId }, 'director tried to set a reserved header; ignored');
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

    this.routed = { req, picked: dest.list, rewriter };
    opts.observer.picked(req, dest.value, (performance.now() - this.decisionStartedAt) / 1000);
    if (shape === 'buffered-body') {
      this.ctx.send({ request_body: { response: newBody ? { ...common, body_mutation: { body: newBody } } : common }, dynamic_metadata: metadata });
      return;
    }
    this.ctx.send({ request_headers: { response: common }, dynamic_metadata: metadata });
    if (shape === 'duplex-body') {
      const parts = chunksOf(newBody ?? body ?? Buffer.alloc(0));
      parts.forEach((p, i) => {
        const last = i === parts.length - 1;
        this.ctx.send({ request_body: { response: { body_mutation: { streamed_response: last && !viaTrailers ? { body: p, end_of_stream: true } : { body: p } } } } });
      });
      if (viaTrailers) this.ctx.send({ request_trailers: {} });
    }
  }
}
