/**
 * The boundary between the ext_proc protocol layer and scheduling.
 *
 * The protocol layer (this folder) turns one ext_proc stream into one {@link InferenceRequest},
 * asks a {@link RequestDirector} where to send it, and reports the response back. Everything about
 * *how* the endpoint is chosen (filters, scorers, picker, metrics scraping, discovery, P/D) lives
 * behind `RequestDirector` and knows nothing about Envoy.
 *
 * Errors: `pick` rejects with an `ApiError` (epp/src/api/errors.ts) for policy outcomes
 * (`no_endpoint` → 503, `shed` → 429, `unknown_model` → 404, ...). The protocol layer maps every
 * error to an ext_proc ImmediateResponse with one function (`toImmediateResponse`); anything that
 * is not an ApiError becomes a 500 and is logged as a bug.
 */

/** OpenAI API flavour, from the `:path` suffix. `none`: body-less request (e.g. GET). */
export type ApiKind = 'completions' | 'chat' | 'other' | 'none';

/** One chat message as sent by the client (`role` is checked, the rest is passed on untouched). */
export interface ChatMessage {
  readonly role: string;
  readonly content?: unknown;
  readonly [key: string]: unknown;
}

/** Everything the scheduler may need to know about one HTTP request. */
export interface InferenceRequest {
  /** `x-request-id` from the client, or a generated UUID (then also set on the upstream request). */
  readonly requestId: string;
  /** `:path` (with query string) as the gateway saw it. */
  readonly path: string;
  /** `:method`, upper case (`POST` when the gateway did not send one). */
  readonly method: string;
  readonly apiKind: ApiKind;
  /** `model` from the body; `undefined` for body-less and non-OpenAI requests. */
  readonly model: string | undefined;
  /**
   * The model the upstream will be asked for. Equals `model` until the director returns
   * `PickResult.targetModel`, then the protocol layer sets it (and rewrites the body).
   */
  targetModel: string | undefined;
  /** Request headers, lower-case names (pseudo-headers such as `:path` included). */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The parsed JSON body (`undefined` for body-less or non-JSON `other` requests).
   *
   * `body`, `prompt`, `tokenIds` and `messages` are the request's payload: they are there for
   * `pick()` and are released (set to `undefined`) once the decision is sent, so a response that
   * streams for minutes does not keep its prompt in memory. `onResponse` and `onDone` see the
   * request without them; a director that needs them later copies what it needs in `pick()`.
   */
  body: Readonly<Record<string, unknown>> | undefined;
  /** Completions prompt given as text (`prompt: string | string[]`). Released after the decision (see `body`). */
  prompt?: string | readonly string[];
  /** Completions prompt given as token ids (`prompt: number[]`). Released after the decision (see `body`). */
  tokenIds?: readonly number[];
  /** Chat messages (`/chat/completions`), at least one. Released after the decision (see `body`). */
  messages?: readonly ChatMessage[];
  /** `x-session-id` header, for session affinity. */
  readonly sessionId: string | undefined;
  /** `stream: true` in the body (the response will be SSE). */
  readonly stream: boolean;
  /**
   * Endpoints the gateway allows (`envoy.lb.subset_hint`), as sent (`ip:port`). `undefined` when
   * the gateway sent no hint (every endpoint is allowed). Never empty: an empty hint is answered
   * with 503 before the director is asked. Matching is by IP only (see `subsetAllows`).
   */
  readonly subsetCandidates: readonly string[] | undefined;
  /** Size of the request body in bytes (0 when body-less). */
  readonly bodyBytes: number;
  /** `performance.now()` when the request headers arrived. */
  readonly receivedAt: number;
}

/** The director's decision. */
export interface PickResult {
  /**
   * Endpoints in preference order, `ip:port` (IPv6 bracketed or not; the protocol layer brackets).
   * At least one. Several only when the gateway should fail over in order.
   */
  readonly endpoints: readonly string[];
  /** Extra upstream request headers, e.g. `x-prefiller-host-port` (names lower-case). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Rewrite the request's `model` to this name; responses are rewritten back. */
  readonly targetModel?: string;
}

/** Token usage reported by the model server (OpenAI `usage`). */
export interface Usage {
  readonly promptTokens?: number;
  readonly completionTokens?: number;
  readonly cachedTokens?: number;
}

/** What the protocol layer learned about the response. */
export interface ResponseInfo {
  /** `:status` of the upstream response (undefined if the gateway did not send it). */
  readonly status: number | undefined;
  /** From the JSON `usage` or the last SSE `data:` line carrying `usage`. */
  readonly usage: Usage | undefined;
  /** `envoy.lb` / `x-gateway-destination-endpoint-served`, when the gateway reports it. */
  readonly servedEndpoint: string | undefined;
  /** Endpoints the pick returned (formatted, as sent to the gateway). */
  readonly pickedEndpoints: readonly string[];
  /** True when the response was SSE (`text/event-stream`). */
  readonly streaming: boolean;
  /** Response body bytes seen by the EPP. */
  readonly responseBytes: number;
}

/** Decides where each request goes. Implemented by the scheduler. */
export interface RequestDirector {
  /**
   * Picks the endpoint(s) for a request. Called once per request after the whole body arrived
   * (or at once for body-less requests). Reject with an `ApiError` for policy outcomes.
   */
  pick(req: InferenceRequest): Promise<PickResult>;
  /**
   * Called once when the response has passed completely (body end of stream or trailers).
   * Not called when the stream breaks first. Errors thrown here are logged and ignored.
   * @default not called
   */
  onResponse?(req: InferenceRequest, info: ResponseInfo): void;
  /**
   * Called once at the first non-empty response body chunk: the model server has produced the
   * first token (its prefill is done). Needs the gateway to send the response body (streamed or
   * buffered; with a buffered body it comes at the end). Errors thrown here are logged and ignored.
   * @default not called
   */
  onFirstChunk?(req: InferenceRequest): void;
  /**
   * Called exactly once for every request whose `pick` resolved, when its ext_proc stream ends
   * for whatever reason (completed, client cancelled, error). Use it to release in-flight counts.
   * Errors thrown here are logged and ignored.
   * @default not called
   */
  onDone?(req: InferenceRequest): void;
}
