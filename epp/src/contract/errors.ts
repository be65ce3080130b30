/**
 * Domain errors with an HTTP status and a stable code. One function (`toHttp`) maps them to
 * responses; the ext_proc side maps the same codes to ImmediateResponses.
 */
export type ApiErrorCode =
  | 'bad_json'
  | 'bad_request'
  | 'missing_model'
  | 'missing_prompt'
  | 'unknown_model'
  | 'body_too_large'
  | 'no_endpoint'
  | 'shed'
  | 'not_ready'
  | 'internal';

/** What each code means to a client or operator, its HTTP status, and what fixes it (docs/errors.md). */
export interface ApiErrorInfo {
  readonly status: number;
  readonly meaning: string;
  readonly fix: string;
}

/**
 * The catalogue of error codes: the one place that says which status a code gets and how to fix it.
 * The HTTP API answers `{"error": {"code", "message"}}` with `status`; ext_proc answers the same body
 * in an ImmediateResponse with `details: kvroute_<code>`.
 */
export const API_ERRORS: Readonly<Record<ApiErrorCode, ApiErrorInfo>> = {
  bad_json: { status: 400, meaning: 'the request body is not valid JSON', fix: 'send a JSON object body (OpenAI completions or chat completions shape)' },
  bad_request: { status: 400, meaning: 'a field of the request has the wrong shape (e.g. a message without a role, a non-integer token id)', fix: 'correct the field the message names' },
  missing_model: { status: 400, meaning: 'the body has no "model" field', fix: 'add "model" with the served model name' },
  missing_prompt: { status: 400, meaning: 'the body has neither "prompt", "messages" nor "token_ids"', fix: 'send a prompt (completions), messages (chat) or token_ids' },
  unknown_model: { status: 404, meaning: 'the model is not served by this pool', fix: 'use the model name the EPP is configured with (config "model", flag --model)' },
  body_too_large: { status: 413, meaning: 'the body exceeds the EPP\'s body limit', fix: 'shorten the request or raise the EPP config "server.maxBodyBytes"' },
  no_endpoint: { status: 503, meaning: 'no ready endpoint can take the request (none discovered, all filtered out, or all stale)', fix: 'check that model-server pods are Ready and match the InferencePool selector; see the EPP log and inference_pool_ready_pods' },
  shed: { status: 429, meaning: 'a sheddable request (objective priority < 0) was refused while the pool is saturated', fix: 'retry later, raise the objective\'s priority, or add capacity' },
  not_ready: { status: 503, meaning: 'the EPP has not finished starting (tokenizer, index or discovery not ready)', fix: 'wait for /readyz to answer 200; the message names the component that is not ready' },
  internal: { status: 500, meaning: 'a bug in the EPP', fix: 'report it with the EPP log line of the request' },
};

const STATUS: Record<ApiErrorCode, number> = Object.fromEntries(Object.entries(API_ERRORS).map(([code, info]) => [code, info.status])) as Record<ApiErrorCode, number>;

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = STATUS[code];
  }
}

/** JSON body of an error response. */
export function errorBody(err: unknown): { status: number; body: { error: { code: string; message: string } } } {
  if (err instanceof ApiError) return { status: err.status, body: { error: { code: err.code, message: err.message } } };
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, body: { error: { code: 'internal', message } } };
}
