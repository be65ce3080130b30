/**
 * Workload files: JSONL (one request per line) or JSON (an array of requests, or
 * `{"requests": [...]}`). Mooncake traces (FAST'25) are read as they are.
 *
 * Fields of a request:
 * - `timestamp_ms` or `timestamp` (Mooncake): arrival in ms from the start, ≥ 0; or
 *   `after_previous_ms`: closed loop, ms after the previous request of the same session completes.
 * - `session_id` (string or integer, optional; default: one session per request).
 * - `output_length` (integer ≥ 1, required).
 * - the prompt, one of:
 *   - `token_ids`: integer token ids (`input_length`, if given, must equal their count);
 *   - `hash_ids` + `input_length`: chained block ids (equal id ⇒ equal prefix) of
 *     `hash_block_size` tokens each (per line, or the reader's `hashBlockSize`, 512 for Mooncake);
 *     the last block may be partial. The simulator expands them to its engine block size.
 *     `hash_covered_tokens` (optional, default `input_length`): how many tokens of prompt + output
 *     the ids describe; more than the prompt when the output is known (multi-turn chat, where the
 *     next turn's prompt repeats it), so the pod caches those output blocks as vLLM does.
 * - `stage` (integer ≥ 0, optional): load stage for per-stage reporting (default 0).
 *
 * Every problem is reported with its line (or array index), field, the value seen and the fix;
 * up to 20 problems are listed, then the count of the rest.
 */
import { readFile } from 'node:fs/promises';
import type { SimRequest } from './request.js';

export interface WorkloadFileOptions {
  /** Tokens per `hash_ids` entry when a line has no `hash_block_size`. @default 512 (Mooncake) */
  readonly hashBlockSize?: number;
  /** Divide arrival times by this (2 = twice as fast). @default 1 */
  readonly speed?: number;
  /** Keep only the first N requests. @default all */
  readonly limit?: number;
  /** Name used in messages. @default 'workload' */
  readonly source?: string;
}

export class WorkloadFileError extends Error {
  constructor(
    message: string,
    readonly problems: readonly string[],
  ) {
    super(message);
    this.name = 'WorkloadFileError';
  }
}

const MAX_LISTED = 20;

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** Parse workload text (JSONL or JSON). Throws WorkloadFileError listing every problem. */
export function parseWorkloadText(text: string, opts: WorkloadFileOptions = {}): SimRequest[] {
  const source = opts.source ?? 'workload';
  const defaultHb = opts.hashBlockSize ?? 512;
  const speed = opts.speed ?? 1;
  if (!(speed > 0) || !Number.isFinite(speed)) throw new RangeError(`speed is ${speed}; use a positive number (2 = twice as fast)`);
  if (!Number.isInteger(defaultHb) || defaultHb < 1) throw new RangeError(`hashBlockSize is ${defaultHb}; use a positive integer (512 for Mooncake traces)`);
  const problems: string[] = [];
  const items: { where: string; value: unknown; parseError?: string }[] = [];
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[') || (trimmed.startsWith('{') && /^\{\s*"requests"\s*:/.test(trimmed))) {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new WorkloadFileError(`${source}: not valid JSON (${(e as Error).message}); write a JSON array of requests or one JSON object per line (JSONL)`, []);
    }
    const arr = Array.isArray(doc) ? doc : (doc as { requests?: unknown }).requests;
    if (!Array.isArray(arr)) throw new WorkloadFileError(`${source}: "requests" is ${show(arr)}; it must be an array of requests`, []);
    arr.forEach((value, i) => items.push({ where: `request [${i}]`, value }));
  } else {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = (lines[i] as string).trim();
      if (line === '' || line.startsWith('#') || line.startsWith('//')) continue;
      try {
        items.push({ where: `line ${i + 1}`, value: JSON.parse(line) });
      } catch (e) {
        items.push({ where: `line ${i + 1}`, value: undefined, parseError: (e as Error).message });
      }
      if (opts.limit !== undefined && items.length >= opts.limit) break;
    }
  }
  const requests: SimRequest[] = [];
  const sessionsSeen = new Set<string>();
  for (const { where, value, parseError } of items) {
    if (opts.limit !== undefined && requests.length >= opts.limit) break;
    if (parseError !== undefined) {
      problems.push(`${where}: not valid JSON (${parseError}); each line must be one JSON object like {"timestamp": 0, "input_length": 1000, "output_length": 100, "hash_ids": [0, 1]}`);
      continue;
    }
    const before = problems.length;
    const bad = (field: string, v: unknown, fix: string): void => {
      problems.push(`${where}: field "${field}" is ${show(v)}; ${fix}`);
    };
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      problems.push(`${where}: expected a JSON object, got ${show(value)}`);
      continue;
    }
    const o = value as Record<string, unknown>;
    const ts = o.timestamp_ms ?? o.timestamp;
    const after = o.after_previous_ms;
    if (ts !== undefined && after !== undefined) bad('after_previous_ms', after, 'give either timestamp_ms or after_previous_ms, not both');
    if (ts === undefined && after === undefined) bad('timestamp_ms', ts, 'add the arrival time in ms ("timestamp_ms", or "timestamp" as in Mooncake) or "after_previous_ms"');
    if (ts !== undefined && !(typeof ts === 'number' && Number.isFinite(ts) && ts >= 0)) bad(o.timestamp_ms !== undefined ? 'timestamp_ms' : 'timestamp', ts, 'use a number of ms ≥ 0');
    if (after !== undefined && !(typeof after === 'number' && Number.isFinite(after) && after >= 0)) bad('after_previous_ms', after, 'use a number of ms ≥ 0');
    let sessionId: string;
    if (o.session_id === undefined) sessionId = `request-${requests.length}`;
    else if (typeof o.session_id === 'string' && o.session_id !== '') sessionId = o.session_id;
    else if (isNonNegInt(o.session_id)) sessionId = String(o.session_id);
    else {
      bad('session_id', o.session_id, 'use a non-empty string or an integer');
      sessionId = '';
    }
    if (after !== undefined && sessionId !== '' && !sessionsSeen.has(sessionId)) {
      bad('after_previous_ms', after, `the session "${sessionId}" has no earlier request; give the first request of a session a timestamp_ms`);
    }
    const out = o.output_length;
    if (!(isNonNegInt(out) && out >= 1)) bad('output_length', out, 'use an integer ≥ 1 (tokens to generate)');
    const stage = o.stage ?? 0;
    if (!isNonNegInt(stage)) bad('stage', stage, 'use an integer ≥ 0');
    const tokens = o.token_ids;
    const hashIds = o.hash_ids;
    let content: SimRequest['content'] | undefined;
    let inputLength = 0;
    if (tokens !== undefined && hashIds !== undefined) {
      bad('hash_ids', '[...]', 'give either token_ids or hash_ids, not both');
    } else if (tokens !== undefined) {
      if (!Array.isArray(tokens) || tokens.length === 0) bad('token_ids', tokens, 'use a non-empty array of integer token ids');
      else {
        const k = tokens.findIndex((t) => !isNonNegInt(t) || t > 0xffffffff);
        if (k >= 0) bad(`token_ids[${k}]`, tokens[k], 'token ids are integers in 0..4294967295');
        else {
          inputLength = tokens.length;
          if (o.input_length !== undefined && o.input_length !== tokens.length) {
            bad('input_length', o.input_length, `it must equal the number of token_ids (${tokens.length}), or be left out`);
          }
          content = { kind: 'tokens', tokens: Uint32Array.from(tokens as number[]) };
        }
      }
    } else if (hashIds !== undefined) {
      const hb = o.hash_block_size ?? defaultHb;
      const L = o.input_length;
      if (!(isNonNegInt(hb) && hb >= 1)) bad('hash_block_size', hb, 'use a positive integer (tokens per hash id; 512 for Mooncake)');
      else if (!(isNonNegInt(L) && L >= 1)) bad('input_length', L, 'use an integer ≥ 1 (prompt tokens; required with hash_ids)');
      else if (!Array.isArray(hashIds) || hashIds.length === 0) bad('hash_ids', hashIds, 'use a non-empty array of integer block ids');
      else {
        const k = hashIds.findIndex((t) => !isNonNegInt(t) || t > 0xffffffff);
        const need = Math.ceil(L / hb);
        if (k >= 0) bad(`hash_ids[${k}]`, hashIds[k], 'block ids are integers in 0..4294967295');
        else if (hashIds.length < need) {
          bad('hash_ids', `${hashIds.length} ids`, `input_length ${L} needs ⌈${L}/${hb}⌉ = ${need} ids of ${hb} tokens; fix input_length or hash_block_size`);
        } else {
          const covered = o.hash_covered_tokens ?? L;
          const maxCovered = Math.min(hashIds.length * hb, L + (isNonNegInt(out) ? out : 0));
          if (!(isNonNegInt(covered) && covered >= L && covered <= maxCovered)) {
            bad('hash_covered_tokens', covered, `use an integer from input_length (${L}) to min(ids × hash_block_size, input_length + output_length) = ${maxCovered}`);
          } else {
            inputLength = L;
            content = { kind: 'ids', ids: Uint32Array.from(hashIds as number[]), idBlockSize: hb, coveredTokens: covered };
          }
        }
      }
    } else {
      bad('token_ids', undefined, 'give the prompt as "token_ids" (integer array) or "hash_ids" (chained block ids) with "input_length"');
    }
    if (problems.length > before || !content) continue;
    sessionsSeen.add(sessionId);
    requests.push({
      id: requests.length,
      sessionId,
      ...(after !== undefined ? { afterPreviousMs: (after as number) / speed } : { arrivalMs: (ts as number) / speed }),
      inputLength,
      outputLength: out as number,
      stage: stage as number,
      warmup: false,
      content,
    });
  }
  if (problems.length > 0) {
    const listed = problems.slice(0, MAX_LISTED);
    const more = problems.length > MAX_LISTED ? `\n  ... and ${problems.length - MAX_LISTED} more` : '';
    throw new WorkloadFileError(`${source} has ${problems.length} problem(s):\n  - ${listed.join('\n  - ')}${more}`, problems);
  }
  if (requests.length === 0) throw new WorkloadFileError(`${source} has no requests; write one JSON object per line`, []);
  return requests;
}

/** Read a workload file (JSONL/JSON, or a Mooncake trace) from `path`. */
export async function readWorkloadFile(path: string, opts: WorkloadFileOptions = {}): Promise<SimRequest[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new WorkloadFileError(`cannot read workload file ${path}: ${(e as Error).message}; pass an existing JSONL/JSON file`, []);
  }
  return parseWorkloadText(text, { ...opts, source: opts.source ?? path });
}

/**
 * One JSONL line per request in the format `parseWorkloadText` reads (ids workloads: `hash_ids` at
 * their own block size, including the ids of a known output).
 */
export function toWorkloadJsonl(requests: readonly SimRequest[]): string {
  const lines: string[] = [];
  for (const r of requests) {
    const c = r.content;
    const base: Record<string, unknown> = {
      ...(r.arrivalMs !== undefined ? { timestamp_ms: Math.round(r.arrivalMs * 1000) / 1000 } : { after_previous_ms: r.afterPreviousMs }),
      session_id: r.sessionId,
      input_length: r.inputLength,
      output_length: r.outputLength,
      stage: r.stage,
    };
    if (c.kind === 'tokens') base.token_ids = Array.from(c.tokens);
    else {
      base.hash_block_size = c.idBlockSize;
      if (c.coveredTokens !== r.inputLength) base.hash_covered_tokens = c.coveredTokens;
      base.hash_ids = Array.from(c.ids).slice(0, Math.ceil(c.coveredTokens / c.idBlockSize));
    }
    lines.push(JSON.stringify(base));
  }
  return lines.join('\n') + '\n';
}
