/**
 * The response phase of an ext_proc stream, from the routed request on: headers answered at once;
 * SSE bodies passed on chunk by chunk, other bodies buffered to end of stream (in FULL_DUPLEX) so
 * the model name can be rewritten back; one BodyResponse per body message in BUFFERED/STREAMED
 * modes. Along the way it reads the token usage vLLM reports (the JSON body's `usage`, or the last
 * SSE `data:` line carrying one, which vLLM sends when the client asked for
 * `stream_options.include_usage`; the EPP does not add that option, so a stream without it has no
 * usage) and tells the observer and the director once: `onFirstChunk` at the first body bytes,
 * `onResponse` with the ResponseInfo when the response completed.
 */
import { Headers, MetadataNamespaces } from '../contract/names.js';
import type { ResponseInfo } from './director.js';
import { LineHoldback, SseUsageTracker, StreamingRewriter, usageFromJson } from './response.js';
import { bodyBytesOf, chunksOf, headerMapToRecord, metadataStrings, ProtocolError, responseModeOf, type RoutedRequest, type StreamContext } from './stream-context.js';
import type { HttpBody, HttpHeaders } from './types.js';

export class ResponsePhase {
  private status: number | undefined;
  private streaming = false;
  private holdback: LineHoldback | undefined;
  private sseUsage: SseUsageTracker | undefined;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private bytes = 0;
  /** Set when a non-SSE response outgrew the buffer: it is streamed from then on. */
  private streamingRewrite: StreamingRewriter | 'plain' | undefined;
  /** The response completed (onResponse went out). */
  responded = false;
  private headersSeen = false;
  private firstChunkSeen = false;
  private servedEndpoint: string | undefined;

  constructor(
    private readonly ctx: StreamContext,
    private readonly routed: RoutedRequest,
  ) {}

  private check(what: string): void {
    if (this.responded) throw new ProtocolError(`${what} received after the response completed`);
  }

  onHeaders(h: HttpHeaders): void {
    this.check('response_headers');
    if (this.headersSeen) throw new ProtocolError('response_headers received twice');
    this.headersSeen = true;
    const rewriter = this.routed.rewriter;
    const hdr = headerMapToRecord(h.headers);
    const status = Number(hdr[':status']);
    this.status = Number.isInteger(status) && status > 0 ? status : undefined;
    this.streaming = (hdr['content-type'] ?? '').toLowerCase().includes('text/event-stream');
    this.served();
    if (this.streaming) this.sseUsage = new SseUsageTracker();
    if (rewriter && this.streaming && responseModeOf(this.ctx) === 'duplex') this.holdback = new LineHoldback();
    // The rewritten body can differ in length: let the gateway re-frame it.
    this.ctx.send({ response_headers: { response: rewriter && 'content-length' in hdr ? { header_mutation: { remove_headers: ['content-length'] } } : {} } });
    if (h.end_of_stream) this.complete();
  }

  onBody(b: HttpBody): void {
    this.check('response_body');
    const { req, rewriter } = this.routed;
    const { opts } = this.ctx;
    this.served();
    const chunk = bodyBytesOf(b.body) ?? Buffer.alloc(0);
    if (!this.firstChunkSeen && chunk.length > 0) {
      this.firstChunkSeen = true;
      try {
        opts.director.onFirstChunk?.(req);
      } catch (err) {
        opts.logger.error({ err, requestId: req.requestId }, 'director.onFirstChunk threw');
      }
    }
    const eos = b.end_of_stream === true;
    this.bytes += chunk.length;
    if (this.sseUsage) this.sseUsage.push(chunk);

    if (responseModeOf(this.ctx) !== 'duplex') {
      // One BodyResponse per body message.
      if (!this.streaming) this.keepForUsage(chunk);
      const out = rewriter ? rewriter.rewrite(chunk) : undefined;
      this.ctx.send({ response_body: { response: out && !out.equals(chunk) ? { body_mutation: { body: out } } : {} } });
      if (eos) this.complete();
      return;
    }
    if (this.streaming) {
      let out = chunk;
      if (this.holdback && rewriter) {
        out = rewriter.rewrite(this.holdback.push(chunk));
        if (eos) out = Buffer.concat([out, rewriter.rewrite(this.holdback.flush())]);
      }
      if (out.length > 0 || eos) this.sendBody(out, eos);
    } else if (this.streamingRewrite) {
      const out = this.streamingRewrite === 'plain' ? chunk : this.streamingRewrite.push(chunk, eos);
      if (out.length > 0 || eos) this.sendBody(out, eos);
    } else {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (eos) {
        this.sendBody(this.bufferedBody(), true);
      } else if (this.buffered > opts.maxResponseBufferBytes) {
        // Too big to hold: stream it from here on (usage from this body is not read).
        opts.logger.debug({ requestId: req.requestId, bytes: this.buffered }, 'response body over maxResponseBufferBytes; streaming it');
        const whole = Buffer.concat(this.chunks);
        this.chunks = [];
        this.streamingRewrite = rewriter ? new StreamingRewriter(rewriter) : 'plain';
        const out = this.streamingRewrite === 'plain' ? whole : this.streamingRewrite.push(whole, false);
        if (out.length > 0) this.sendBody(out, false);
      }
    }
    if (eos) this.complete();
  }

  onTrailers(): void {
    this.check('response_trailers');
    const rewriter = this.routed.rewriter;
    this.served();
    if (responseModeOf(this.ctx) === 'duplex') {
      let rest: Buffer;
      if (this.streaming) rest = this.holdback && rewriter ? rewriter.rewrite(this.holdback.flush()) : Buffer.alloc(0);
      else if (this.streamingRewrite instanceof StreamingRewriter) rest = this.streamingRewrite.push(Buffer.alloc(0), true);
      else rest = this.streamingRewrite ? Buffer.alloc(0) : this.bufferedBody();
      if (rest.length > 0) this.sendBody(rest, false);
    }
    this.ctx.send({ response_trailers: {} });
    this.complete();
  }

  /** Keeps a BUFFERED-mode body for usage parsing, within the buffer limit. */
  private keepForUsage(chunk: Buffer): void {
    this.buffered += chunk.length;
    if (this.buffered <= this.ctx.opts.maxResponseBufferBytes) this.chunks.push(chunk);
    else this.chunks = [];
  }

  /** The buffered (non-SSE) response body, rewritten; keeps a copy for usage parsing. */
  private bufferedBody(): Buffer {
    const whole = Buffer.concat(this.chunks);
    this.chunks = [whole];
    const rewriter = this.routed.rewriter;
    return rewriter ? rewriter.rewrite(whole) : whole;
  }

  private sendBody(buf: Buffer, eos: boolean): void {
    const parts = chunksOf(buf);
    parts.forEach((p, i) => {
      const last = i === parts.length - 1;
      this.ctx.send({ response_body: { response: { body_mutation: { streamed_response: last && eos ? { body: p, end_of_stream: true } : { body: p } } } } });
    });
  }

  private served(): void {
    const s = metadataStrings(this.ctx.state.metadata, MetadataNamespaces.lb, Headers.destinationEndpointServed);
    if (s && s.length > 0) this.servedEndpoint = s.join(',');
  }

  private complete(): void {
    if (this.responded) return;
    this.responded = true;
    const { req, picked } = this.routed;
    const { opts } = this.ctx;
    let usage = this.sseUsage?.usage;
    if (this.sseUsage) {
      this.sseUsage.end();
      usage = this.sseUsage.usage;
    } else if (this.chunks.length > 0) {
      usage = usageFromJson(Buffer.concat(this.chunks));
    }
    this.chunks = [];
    const info: ResponseInfo = {
      status: this.status,
      usage,
      servedEndpoint: this.servedEndpoint,
      pickedEndpoints: picked,
      streaming: this.streaming,
      responseBytes: this.bytes,
    };
    opts.observer.responded(req, info);
    try {
      opts.director.onResponse?.(req, info);
    } catch (err) {
      opts.logger.error({ err, requestId: req.requestId }, 'director.onResponse threw');
    }
  }
}
