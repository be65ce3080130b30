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

const STATUS: Record<ApiErrorCode, number> = {
  bad_json: 400,
  bad_request: 400,
  missing_model: 400,
  missing_prompt: 400,
  unknown_model: 404,
  body_too_large: 413,
  no_endpoint: 503,
  shed: 429,
  not_ready: 503,
  internal: 500,
};

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
