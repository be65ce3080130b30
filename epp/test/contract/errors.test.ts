/** The error catalogue: one status per code, and docs/errors.md lists every code with that status. */
import { readFileSync } from 'node:fs';
import { API_ERRORS, ApiError, errorBody, type ApiErrorCode } from '../../src/contract/errors.js';

const DOC = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

describe('API error catalogue', () => {
  const codes = Object.keys(API_ERRORS) as ApiErrorCode[];

  it.each(codes)('%s: ApiError takes its status from the catalogue and errorBody answers it', (code) => {
    const err = new ApiError(code, `m-${code}`);
    expect(err.status).toBe(API_ERRORS[code].status);
    expect(errorBody(err)).toEqual({ status: API_ERRORS[code].status, body: { error: { code, message: `m-${code}` } } });
  });

  it.each(codes)('%s: docs/errors.md lists the code with its status, and the catalogue has a fix', (code) => {
    const row = DOC.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
    expect(row).toBeDefined();
    expect(row?.split('|')[2]?.trim()).toBe(String(API_ERRORS[code].status));
    expect(API_ERRORS[code].fix.length).toBeGreaterThan(10);
  });

  it('anything that is not an ApiError answers 500 internal', () => {
    expect(errorBody(new TypeError('x'))).toEqual({ status: 500, body: { error: { code: 'internal', message: 'x' } } });
  });
});
