/**
 * What both phases of an ext_proc stream share, in one place: the stream's lifecycle state (which
 * phase it is in, the body modes, the accumulated filter metadata, whether it ended), the options,
 * and the one way to send a reply. `ExtProcStream` (stream.ts) owns it; `RequestPhase`
 * (request-phase.ts) and `ResponsePhase` (response-phase.ts) read and advance it. Also the small
 * message helpers both phases use.
 */
import type { InferenceRequest, RequestDirector } from './director.js';
import type { ExtProcObserver } from './observer.js';
import type { ModelRewriter } from './response.js';
import { BodySendMode, type HeaderMap, type Metadata, type PbStruct, type ProcessingResponse } from './types.js';
import type { Logger } from '../util/logger.js';

/** Largest body chunk the EPP sends back (LR:pkg/common/envoy/chunking.go `BodyByteLimit`). */
export const BODY_CHUNK_BYTES = 62_000;

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

/** Where a stream is: waiting for headers, buffering the body, routed (response), or done. */
export type Phase = 'headers' | 'body' | 'response' | 'done';

/** The stream's shared state. */
export interface StreamState {
  phase: Phase;
  /** From the first `protocol_config` (undefined: the gateway sent none). */
  requestMode: BodyMode | undefined;
  responseMode: BodyMode | undefined;
  /** Filter metadata, accumulated by namespace over the messages. */
  metadata: Metadata | undefined;
  /** The call is over: nothing more is sent. */
  ended: boolean;
}

/** What a phase gets from its stream. */
export interface StreamContext {
  readonly opts: StreamOptions;
  readonly state: StreamState;
  /** Sends a reply unless the stream ended. */
  send(msg: ProcessingResponse): void;
}

/** The request once it is routed: what the response phase needs of the request phase. */
export interface RoutedRequest {
  readonly req: InferenceRequest;
  /** Endpoints sent to the gateway (formatted). */
  readonly picked: readonly string[];
  /** Set when the model was rewritten: the response is rewritten back with it. */
  readonly rewriter: ModelRewriter | undefined;
}

/** Thrown for frames that break the ext_proc protocol (a gateway bug or a broken client). */
export class ProtocolError extends Error {}

export function requestModeOf(ctx: StreamContext): BodyMode {
  return ctx.state.requestMode ?? ctx.opts.defaultBodyMode;
}

export function responseModeOf(ctx: StreamContext): BodyMode {
  return ctx.state.responseMode ?? ctx.opts.defaultBodyMode;
}

export function bodyModeOf(mode: number | undefined, fallback: 'duplex' | 'buffered'): BodyMode {
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

export function headerMapToRecord(m: HeaderMap | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of m?.headers ?? []) {
    const key = h.key.toLowerCase();
    const v = h.raw_value !== undefined && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('utf8') : (h.value ?? '');
    out[key] = key in out ? `${out[key]},${v}` : v;
  }
  return out;
}

/** Reads `filter_metadata[ns][key]` as a list of strings (a string value is split on commas). */
export function metadataStrings(md: Metadata | undefined, ns: string, key: string): string[] | undefined {
  const s: PbStruct | undefined = md?.filter_metadata?.[ns];
  const v = s?.fields?.[key];
  if (v === undefined) return undefined;
  if (v.list_value) return (v.list_value.values ?? []).flatMap((x) => (typeof x.string_value === 'string' && x.string_value !== '' ? [x.string_value] : []));
  if (typeof v.string_value === 'string') return v.string_value.split(',').map((x) => x.trim()).filter((x) => x !== '');
  return [];
}

export function chunksOf(buf: Buffer): Buffer[] {
  if (buf.length <= BODY_CHUNK_BYTES) return [buf];
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += BODY_CHUNK_BYTES) out.push(buf.subarray(i, i + BODY_CHUNK_BYTES));
  return out;
}

/** A body message's bytes (a view, no copy); empty when it carries none. */
export function bodyBytesOf(body: Buffer | Uint8Array | undefined): Buffer | undefined {
  return body && body.length > 0 ? Buffer.from(body.buffer, body.byteOffset, body.length) : undefined;
}
