/**
 * OpenAI request bodies, parsed by `:path` suffix (docs/facts/gateway-protocol.md, "Request bodies"):
 *   - `.../chat/completions`: `messages`, an array of ≥ 1 objects with a string `role`;
 *   - `.../completions`: `prompt`, a string, an array of strings, or an array of token ids;
 *   - anything else (`other`): passed through; a JSON body's string `model` is still read.
 * `model` must be a string for completions and chat. Failures are `ApiError`s whose message names
 * the field, the value received, and the fix.
 */
import { isUtf8 } from 'node:buffer';
import { ApiError } from '../contract/errors.js';
import type { ApiKind, ChatMessage } from './director.js';

export interface ParsedBody {
  readonly body: Readonly<Record<string, unknown>> | undefined;
  readonly model: string | undefined;
  readonly prompt?: string | readonly string[];
  readonly tokenIds?: readonly number[];
  readonly messages?: readonly ChatMessage[];
  readonly stream: boolean;
}

/** API kind by path suffix; the query string is ignored. */
export function apiKindForPath(path: string): Exclude<ApiKind, 'none'> {
  const q = path.search(/[?#]/);
  const p = (q >= 0 ? path.slice(0, q) : path).replace(/\/+$/, '');
  if (p.endsWith('/chat/completions')) return 'chat';
  if (p.endsWith('/completions')) return 'completions';
  return 'other';
}

/** Short JSON rendering of a value for error messages. */
export function show(v: unknown, max = 80): string {
  let s: string;
  try {
    s = v === undefined ? 'nothing' : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}


function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isTokenId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

function decodeJson(bytes: Uint8Array): unknown {
  if (!isUtf8(bytes)) throw new ApiError('bad_json', 'request body is not valid UTF-8; send a UTF-8 encoded JSON object');
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new ApiError('bad_json', `request body is not valid JSON (${why}); got ${show(text)}; send a JSON object such as {"model": "...", "prompt": "..."}`);
  }
}

function parsePrompt(prompt: unknown): Pick<ParsedBody, 'prompt' | 'tokenIds'> {
  if (typeof prompt === 'string') return { prompt };
  if (Array.isArray(prompt) && prompt.length > 0) {
    if (prompt.every((p): p is string => typeof p === 'string')) return { prompt };
    if (prompt.every(isTokenId)) return { tokenIds: prompt };
  }
  if (prompt === undefined || prompt === null) {
    throw new ApiError('missing_prompt', 'request body has no "prompt"; /completions needs "prompt" as a string, an array of strings, or an array of token ids');
  }
  throw new ApiError(
    'missing_prompt',
    `"prompt" must be a string, a non-empty array of strings, or a non-empty array of non-negative integer token ids; got ${show(prompt)}`,
  );
}

function parseMessages(messages: unknown): readonly ChatMessage[] {
  if (messages === undefined || messages === null) {
    throw new ApiError('missing_prompt', 'request body has no "messages"; /chat/completions needs "messages": [{"role": "user", "content": "..."}]');
  }
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new ApiError('missing_prompt', `"messages" must be a non-empty array of {"role", "content"} objects; got ${show(messages)}`);
  }
  messages.forEach((m: unknown, i) => {
    if (!isRecord(m) || typeof m.role !== 'string') {
      throw new ApiError('missing_prompt', `"messages[${i}]" must be an object with a string "role"; got ${show(m)}`);
    }
  });
  return messages as ChatMessage[];
}

export interface ParseOptions {
  /** Served model names; when non-empty, any other `model` is answered with 404. */
  readonly models?: readonly string[];
}

/** Parses and validates a request body for the given API kind. */
export function parseRequestBody(kind: Exclude<ApiKind, 'none'>, bytes: Uint8Array, opts: ParseOptions = {}): ParsedBody {
  if (kind === 'other') {
    // Not an API the EPP understands: route it, reading the model when the body is JSON.
    let body: Record<string, unknown> | undefined;
    try {
      const v = bytes.length > 0 ? decodeJson(bytes) : undefined;
      body = isRecord(v) ? v : undefined;
    } catch {
      body = undefined;
    }
    const model = body && typeof body.model === 'string' ? body.model : undefined;
    if (model !== undefined) checkModel(model, opts);
    return { body, model, stream: body?.stream === true };
  }
  const v = decodeJson(bytes);
  if (!isRecord(v)) {
    throw new ApiError('bad_json', `request body must be a JSON object; got ${show(v)}`);
  }
  const model = v.model;
  if (typeof model !== 'string' || model === '') {
    throw new ApiError(
      'missing_model',
      model === undefined
        ? 'model not found in request body; add "model": "<served model name>"'
        : `"model" must be a non-empty string naming the served model; got ${show(model)}`,
    );
  }
  checkModel(model, opts);
  const stream = v.stream === true;
  if (kind === 'chat') return { body: v, model, messages: parseMessages(v.messages), stream };
  return { body: v, model, ...parsePrompt(v.prompt), stream };
}

function checkModel(model: string, opts: ParseOptions): void {
  if (opts.models && opts.models.length > 0 && !opts.models.includes(model)) {
    throw new ApiError('unknown_model', `model ${show(model)} is not served by this pool; use one of ${show(opts.models)}`);
  }
}
