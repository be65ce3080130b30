/**
 * Errors of the tokenization layer. Each carries a stable `code` and the HTTP status the API layer
 * should answer with, so the score endpoint and the ext_proc path map them without string matching.
 */

/** Stable error codes; the names match the API layer's codes where they overlap. */
export type TokenizationErrorCode =
  /** The request body is malformed (bad prompt or message shape); HTTP 400. */
  | 'bad_request'
  /** The request names a model this tokenizer does not serve; HTTP 404. */
  | 'unknown_model'
  /** The tokenizer files could not be found, downloaded or parsed; HTTP 503. */
  | 'tokenizer_unavailable'
  /** The worker queue is full; HTTP 429. */
  | 'shed'
  /** The tokenizer was closed; HTTP 503. */
  | 'closed'
  /** A worker failed unexpectedly; HTTP 500. */
  | 'internal';

const STATUS: Record<TokenizationErrorCode, number> = {
  bad_request: 400,
  unknown_model: 404,
  tokenizer_unavailable: 503,
  shed: 429,
  closed: 503,
  internal: 500,
};

/** An error naming what was wrong, the offending value, and the fix. */
export class TokenizationError extends Error {
  /** HTTP status matching `code`. */
  readonly status: number;
  constructor(
    readonly code: TokenizationErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TokenizationError';
    this.status = STATUS[code];
  }
}

/** A short, single-line rendering of a user value for error messages. */
export function show(value: unknown, max = 80): string {
  let s: string;
  try {
    s = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    s = String(value);
  }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
