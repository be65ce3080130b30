/**
 * Decoder of vLLM's `KVEventBatch` msgpack payloads (docs/facts/vllm-kv-events.md, "KV events").
 *
 * - The batch is always a positional array `[ts, events, data_parallel_rank?]` (2 elements before
 *   vLLM PR #18925, 3 after).
 * - Events come in two encodings: tagged arrays `["BlockStored", f1, f2, …]` (≤ v0.23, every field
 *   present, the array grows as fields are appended) and maps whose `type` key holds the tag
 *   (≥ v0.24, fields that have a default are omitted when `None`). Both are read into the same
 *   {@link KvEvent} types.
 * - Block hashes are u64 ints (msgpack uint64 `cf` above 2^63), signed i64 (`builtin`, ≤ v0.10.1),
 *   or raw digest bytes (`VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0`). All are normalised to an
 *   unsigned 64-bit `bigint`: ints through `BigInt.asUintN(64, …)`, bytes as their last 8 bytes
 *   read big-endian (left-padded with zeros when shorter), which is exactly vLLM's int form.
 *   @msgpack/msgpack runs with `useBigInt64: true` (every int64/uint64 is a bigint), so an int
 *   beyond 2^53 is never rounded.
 * - Unknown event types and unknown fields are skipped. A malformed event is dropped and reported
 *   in `problems` while the batch's other events are kept. Only an undecodable payload or a bad
 *   envelope fails the whole batch. The decoder never throws.
 */
import { Decoder } from '@msgpack/msgpack';
import type { BlockKey } from '../kvindex/types.js';
import type { AllBlocksClearedEvent, BlockRemovedEvent, BlockStoredEvent, KvEvent, KvEventBatch } from './types.js';

/** Why a whole batch was dropped. */
export type BatchDropReason = 'msgpack' | 'bad_batch';
/** Why one event of a batch was dropped or skipped. */
export type EventDropReason = 'bad_event' | 'unknown_event_type';

export interface EventProblem {
  /** Position of the event in the batch. */
  readonly index: number;
  readonly reason: EventDropReason;
  /** Human-readable: what was wrong, with the offending value. */
  readonly detail: string;
}

export type DecodeResult =
  | { readonly ok: true; readonly batch: KvEventBatch; readonly problems: readonly EventProblem[] }
  | { readonly ok: false; readonly reason: BatchDropReason; readonly detail: string };

/** Field names in array position order (position = index + 1, after the tag); docs/facts/vllm-kv-events.md, "KV events". */
export const BLOCK_STORED_FIELDS = [
  'block_hashes',
  'parent_block_hash',
  'token_ids',
  'block_size',
  'lora_id',
  'medium',
  'lora_name',
  'extra_keys',
  'group_idx',
  'kv_cache_spec_kind',
  'kv_cache_spec_sliding_window',
  'locality',
] as const;
export const BLOCK_REMOVED_FIELDS = ['block_hashes', 'medium', 'group_idx', 'locality'] as const;

/**
 * One decoder for every payload (it keeps its buffers and key cache between calls). Maps become
 * plain objects; a map whose key is neither a string nor a number fails the payload, as does a
 * `__proto__` key. Extension types come back as `ExtData` (timestamp ext −1 as a `Date`); the
 * validators below refuse them where a field needs another type.
 */
const msgpack = new Decoder({ useBigInt64: true });

const U64_MASK = (1n << 64n) - 1n;

/** Thrown internally for a malformed event; never escapes {@link decodeKvEventBatch}. */
class BadEvent extends Error {}

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (v instanceof Uint8Array) return `bytes(${v.length})`;
  if (Array.isArray(v)) return `array(${v.length})`;
  if (v === undefined) return 'nothing';
  if (typeof v === 'object' && v !== null) return 'map';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Normalise one engine hash (int, bigint, or digest bytes) to an unsigned 64-bit key. */
export function normaliseBlockHash(v: unknown, field: string): BlockKey {
  if (typeof v === 'bigint') return v >= 0n ? v : v & U64_MASK; // two's complement for negative i64
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new BadEvent(`${field}: expected an integer or bytes hash, got ${show(v)}`);
    return BigInt(v) & U64_MASK;
  }
  if (v instanceof Uint8Array) {
    if (v.length === 0) throw new BadEvent(`${field}: empty bytes hash`);
    let k = 0n;
    for (let i = Math.max(0, v.length - 8); i < v.length; i++) k = (k << 8n) | BigInt(v[i] as number);
    return k;
  }
  throw new BadEvent(`${field}: expected an integer or bytes hash, got ${show(v)}`);
}

function hashList(v: unknown, field: string): BlockKey[] {
  if (!Array.isArray(v)) throw new BadEvent(`${field}: expected a list of hashes, got ${show(v)}`);
  const out = new Array<BlockKey>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = normaliseBlockHash(v[i], `${field}[${i}]`);
  return out;
}

function tokenList(v: unknown): number[] {
  if (!Array.isArray(v)) throw new BadEvent(`token_ids: expected a list of ints, got ${show(v)}`);
  for (let i = 0; i < v.length; i++) {
    const t: unknown = v[i];
    if (typeof t !== 'number' || t >>> 0 !== t) {
      throw new BadEvent(`token_ids[${i}]: expected a uint32 token id, got ${show(t)}`);
    }
  }
  return v as number[];
}

function optInt(v: unknown, field: string): number | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  throw new BadEvent(`${field}: expected an int or nil, got ${show(v)}`);
}

function optStr(v: unknown, field: string): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string') return v;
  throw new BadEvent(`${field}: expected a string or nil, got ${show(v)}`);
}

function medium(v: unknown): string {
  const m = optStr(v, 'medium');
  return m === undefined || m === '' ? 'gpu' : m.toLowerCase();
}

/** Reads fields of one event regardless of its encoding. */
type FieldReader = (name: string) => unknown;

function arrayReader(arr: readonly unknown[], fields: readonly string[]): FieldReader {
  return (name) => {
    const i = fields.indexOf(name);
    return i >= 0 && i + 1 < arr.length ? arr[i + 1] : undefined;
  };
}

function mapReader(obj: Record<string, unknown>): FieldReader {
  return (name) => (Object.prototype.hasOwnProperty.call(obj, name) ? obj[name] : undefined);
}

function blockStored(get: FieldReader, hasField: (name: string) => boolean): BlockStoredEvent {
  for (const f of ['block_hashes', 'token_ids', 'block_size'] as const) {
    if (!hasField(f)) throw new BadEvent(`BlockStored: required field ${f} is missing`);
  }
  const blockHashes = hashList(get('block_hashes'), 'block_hashes');
  const parentRaw = get('parent_block_hash');
  const parentBlockHash = parentRaw === null || parentRaw === undefined ? undefined : normaliseBlockHash(parentRaw, 'parent_block_hash');
  const tokenIds = tokenList(get('token_ids'));
  const blockSize = optInt(get('block_size'), 'block_size');
  if (blockSize === undefined || blockSize < 0 || (blockSize === 0 && tokenIds.length > 0)) {
    throw new BadEvent(`block_size: expected a positive int, got ${show(get('block_size'))}`);
  }
  const loraId = optInt(get('lora_id'), 'lora_id');
  const loraName = optStr(get('lora_name'), 'lora_name');
  const extraRaw = get('extra_keys');
  if (extraRaw !== null && extraRaw !== undefined && !Array.isArray(extraRaw)) {
    throw new BadEvent(`extra_keys: expected a list or nil, got ${show(extraRaw)}`);
  }
  const groupIdx = optInt(get('group_idx'), 'group_idx');
  const kvCacheSpecKind = optStr(get('kv_cache_spec_kind'), 'kv_cache_spec_kind');
  const ev: BlockStoredEvent = {
    type: 'BlockStored',
    blockHashes,
    tokenIds,
    blockSize,
    medium: medium(get('medium')),
    ...(parentBlockHash !== undefined ? { parentBlockHash } : {}),
    ...(loraId !== undefined ? { loraId } : {}),
    ...(loraName !== undefined && loraName !== '' ? { loraName } : {}),
    ...(Array.isArray(extraRaw) ? { extraKeys: extraRaw as unknown[] } : {}),
    ...(groupIdx !== undefined ? { groupIdx } : {}),
    ...(kvCacheSpecKind !== undefined ? { kvCacheSpecKind } : {}),
  };
  return ev;
}

function blockRemoved(get: FieldReader, hasField: (name: string) => boolean): BlockRemovedEvent {
  if (!hasField('block_hashes')) throw new BadEvent('BlockRemoved: required field block_hashes is missing');
  const groupIdx = optInt(get('group_idx'), 'group_idx');
  return {
    type: 'BlockRemoved',
    blockHashes: hashList(get('block_hashes'), 'block_hashes'),
    medium: medium(get('medium')),
    ...(groupIdx !== undefined ? { groupIdx } : {}),
  };
}

const ALL_BLOCKS_CLEARED: AllBlocksClearedEvent = Object.freeze({ type: 'AllBlocksCleared' });

/** Decode one event (array or map encoding). Returns a problem instead of throwing. */
export function decodeEvent(raw: unknown, index = 0): KvEvent | EventProblem {
  let tag: unknown;
  let get: FieldReader;
  let has: (name: string) => boolean;
  if (Array.isArray(raw)) {
    tag = raw[0];
    const arr = raw;
    const fields: readonly string[] = tag === 'BlockStored' ? BLOCK_STORED_FIELDS : tag === 'BlockRemoved' ? BLOCK_REMOVED_FIELDS : [];
    get = arrayReader(arr, fields);
    has = (name) => {
      const i = fields.indexOf(name);
      return i >= 0 && i + 1 < arr.length;
    };
  } else if (typeof raw === 'object' && raw !== null && !(raw instanceof Uint8Array) && !(raw instanceof Map)) {
    const obj = raw as Record<string, unknown>;
    tag = Object.prototype.hasOwnProperty.call(obj, 'type') ? obj['type'] : undefined;
    get = mapReader(obj);
    has = (name) => Object.prototype.hasOwnProperty.call(obj, name);
  } else {
    return { index, reason: 'bad_event', detail: `event ${index}: expected a tagged array or a map with "type", got ${show(raw)}` };
  }
  if (typeof tag !== 'string') {
    return { index, reason: 'bad_event', detail: `event ${index}: the event tag must be a string, got ${show(tag)}` };
  }
  try {
    switch (tag) {
      case 'BlockStored':
        return blockStored(get, has);
      case 'BlockRemoved':
        return blockRemoved(get, has);
      case 'AllBlocksCleared':
        return ALL_BLOCKS_CLEARED;
      default:
        return { index, reason: 'unknown_event_type', detail: `event ${index}: unknown event type ${show(tag)} skipped` };
    }
  } catch (e) {
    if (e instanceof BadEvent) return { index, reason: 'bad_event', detail: `event ${index} (${tag}): ${e.message}` };
    return { index, reason: 'bad_event', detail: `event ${index} (${tag}): ${String(e)}` };
  }
}

function isProblem(v: KvEvent | EventProblem): v is EventProblem {
  return 'reason' in v;
}

/** Decode an already-unpacked batch value. */
export function decodeBatchValue(value: unknown): DecodeResult {
  if (!Array.isArray(value)) {
    return { ok: false, reason: 'bad_batch', detail: `KVEventBatch must be an array [ts, events, dp_rank], got ${show(value)}` };
  }
  if (value.length < 2) {
    return { ok: false, reason: 'bad_batch', detail: `KVEventBatch must have at least 2 elements [ts, events], got ${value.length}` };
  }
  const tsRaw: unknown = value[0];
  const ts = typeof tsRaw === 'number' ? tsRaw : typeof tsRaw === 'bigint' ? Number(tsRaw) : NaN;
  if (!Number.isFinite(ts)) {
    return { ok: false, reason: 'bad_batch', detail: `KVEventBatch ts must be a number, got ${show(tsRaw)}` };
  }
  const rawEvents: unknown = value[1];
  if (!Array.isArray(rawEvents)) {
    return { ok: false, reason: 'bad_batch', detail: `KVEventBatch events must be a list, got ${show(rawEvents)}` };
  }
  const rankRaw: unknown = value.length > 2 ? value[2] : undefined;
  let dpRank: number | undefined;
  if (rankRaw !== null && rankRaw !== undefined) {
    if (typeof rankRaw !== 'number' || !Number.isInteger(rankRaw) || rankRaw < 0 || rankRaw > 65535) {
      return { ok: false, reason: 'bad_batch', detail: `KVEventBatch data_parallel_rank must be an int in [0, 65535] or nil, got ${show(rankRaw)}` };
    }
    dpRank = rankRaw;
  }
  const events: KvEvent[] = [];
  const problems: EventProblem[] = [];
  for (let i = 0; i < rawEvents.length; i++) {
    const r = decodeEvent(rawEvents[i], i);
    if (isProblem(r)) problems.push(r);
    else events.push(r);
  }
  return { ok: true, batch: dpRank === undefined ? { ts, events } : { ts, events, dpRank }, problems };
}

/** Decode a msgpack `KVEventBatch` payload. Never throws. */
export function decodeKvEventBatch(payload: Uint8Array): DecodeResult {
  let value: unknown;
  // Garbage makes the msgpack decoder throw; a stack trace per bad payload is most of the cost of a flood.
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    value = msgpack.decode(payload);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // Keep log lines short whatever the library puts in its message.
    const short = msg.length > 200 ? `${msg.slice(0, 197)}...` : msg;
    return { ok: false, reason: 'msgpack', detail: `payload (${payload.length} bytes) is not valid msgpack: ${short}` };
  } finally {
    Error.stackTraceLimit = stackLimit;
  }
  try {
    return decodeBatchValue(value);
  } catch (e) {
    // Defensive: the validators above do not throw, but a decoder must never take the pool down.
    return { ok: false, reason: 'bad_batch', detail: `KVEventBatch could not be read: ${e instanceof Error ? e.message : String(e)}` };
  }
}
