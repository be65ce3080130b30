/**
 * The ONE mapping from an error to an ext_proc ImmediateResponse. `ApiError`s keep their HTTP
 * status (400/404/413/429/503 ...); anything else is a bug and becomes 500. The body is the same
 * JSON the HTTP API returns: `{"error": {"code": "...", "message": "..."}}`.
 */
import { errorBody } from '../contract/errors.js';
import { HeaderAppendAction, type ProcessingResponse } from './types.js';

export interface ImmediateOutcome {
  readonly response: ProcessingResponse;
  /** Stable error code (`bad_json`, `no_endpoint`, ..., `internal`). */
  readonly code: string;
  readonly status: number;
  readonly message: string;
}

export function toImmediateResponse(err: unknown): ImmediateOutcome {
  const { status, body } = errorBody(err);
  return {
    code: body.error.code,
    status,
    message: body.error.message,
    response: {
      immediate_response: {
        status: { code: status },
        headers: {
          set_headers: [
            { header: { key: 'content-type', raw_value: Buffer.from('application/json') }, append_action: HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD },
          ],
        },
        body: Buffer.from(JSON.stringify(body)),
        details: `kvroute_${body.error.code}`,
      },
    },
  };
}
