/**
 * The ingest fast path's decoder: reads a msgpack `KVEventBatch` straight into typed arrays
 * (engine hashes as [hi, lo] u32 pairs, token ids as u32), without the msgpack library's intermediate JS
 * arrays and one bigint per hash. It accepts the common, well-formed subset of what
 * {@link decodeKvEventBatch} accepts and returns `undefined` for everything else, so the caller
 * falls back to the general decoder, which owns every error message and every rare case:
 *
 * - both event encodings (tagged arrays ≤ v0.23, maps ≥ v0.24) of BlockStored, BlockRemoved and
 *   AllBlocksCleared; unknown fields are skipped as the general decoder skips them;
 * - hashes as msgpack ints of any width (negative i64 as two's complement) or digest bytes (last 8
 *   bytes, big-endian), exactly as `normaliseBlockHash`;
 * - fallback for: an unknown event type, a malformed field, token ids that are not msgpack uints
 *   below 2^32, a LoRA (name or id), non-null extra keys, a kv-cache kind, a token-less
 *   BlockStored, a duplicate map key, floats where ints belong, trailing bytes.
 *
 * A differential test decodes random and mutated batches with both decoders and requires the same
 * events whenever this one answers.
 */

/** One event of a {@link RawBatch}. Hashes and tokens index the batch's shared arrays. */
export interface RawEvent {
  readonly type: 'BlockStored' | 'BlockRemoved' | 'AllBlocksCleared';
  /** First u32 of the event's hashes in `RawBatch.hashes` ([hi, lo] per hash). */
  readonly hashOff: number;
  readonly nHashes: number;
  /** BlockStored: whether `parent_block_hash` was set, and its halves. */
  readonly hasParent: boolean;
  readonly parentHi: number;
  readonly parentLo: number;
  /** BlockStored: first token in `RawBatch.tokens`, and the count. */
  readonly tokenOff: number;
  readonly nTokens: number;
  /** BlockStored: engine block size (> 0). */
  readonly blockSize: number;
  /** Lower-cased medium (`gpu` when absent or empty), as the general decoder normalises it. */
  readonly medium: string;
  /** KV-cache group, when set (the applier does not use it; kept so events convert back whole). */
  readonly groupIdx: number | undefined;
}

export interface RawBatch {
  readonly ts: number;
  readonly dpRank: number | undefined;
  readonly events: readonly RawEvent[];
  /** [hi, lo] u32 pairs of every hash of the batch (owned by the batch). */
  readonly hashes: Uint32Array;
  /** Token ids of every BlockStored of the batch (owned by the batch). */
  readonly tokens: Uint32Array;
}

/** Thrown inside the decoder to give up (never escapes `decodeRawBatch`). */
const GIVE_UP = Symbol('give up');
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });
const PROTO = Buffer.from('__proto__');

const MAX_DEPTH = 32;
/** Scratch arrays larger than this (u32s) are dropped after use. */
const MAX_KEPT_SCRATCH = 1 << 22;

/** Field ids, shared by both encodings. */
const F_BLOCK_HASHES = 1;
const F_PARENT = 2;
const F_TOKENS = 3;
const F_BLOCK_SIZE = 4;
const F_LORA_ID = 5;
const F_MEDIUM = 6;
const F_LORA_NAME = 7;
const F_EXTRA_KEYS = 8;
const F_GROUP_IDX = 9;
const F_KIND = 10;
const F_SKIP = 0;

/** Position of each field in the tagged-array encoding (decoder.ts BLOCK_STORED_FIELDS / BLOCK_REMOVED_FIELDS). */
const STORED_POSITIONS = [F_BLOCK_HASHES, F_PARENT, F_TOKENS, F_BLOCK_SIZE, F_LORA_ID, F_MEDIUM, F_LORA_NAME, F_EXTRA_KEYS, F_GROUP_IDX, F_KIND, F_SKIP, F_SKIP];
const REMOVED_POSITIONS = [F_BLOCK_HASHES, F_MEDIUM, F_GROUP_IDX, F_SKIP];
const STORED_KEYS = new Map<string, number>([
  ['block_hashes', F_BLOCK_HASHES],
  ['parent_block_hash', F_PARENT],
  ['token_ids', F_TOKENS],
  ['block_size', F_BLOCK_SIZE],
  ['lora_id', F_LORA_ID],
  ['medium', F_MEDIUM],
  ['lora_name', F_LORA_NAME],
  ['extra_keys', F_EXTRA_KEYS],
  ['group_idx', F_GROUP_IDX],
  ['kv_cache_spec_kind', F_KIND],
]);
const REMOVED_KEYS = new Map<string, number>([
  ['block_hashes', F_BLOCK_HASHES],
  ['medium', F_MEDIUM],
  ['group_idx', F_GROUP_IDX],
]);

/** Growable u32 scratch, copied out per batch. */
class U32Scratch {
  a = new Uint32Array(4096);
  n = 0;
  /** Largest array ever allocated (u32s). */
  peak = 4096;
  reserve(k: number): void {
    if (this.n + k <= this.a.length) return;
    const b = new Uint32Array(Math.max(this.a.length * 2, this.n + k));
    this.peak = Math.max(this.peak, b.length);
    b.set(this.a.subarray(0, this.n));
    this.a = b;
  }
}

class Reader {
  buf: Uint8Array = new Uint8Array(0);
  view: DataView = new DataView(new ArrayBuffer(0));
  pos = 0;
  readonly hashes = new U32Scratch();
  readonly tokens = new U32Scratch();

  /**
   * A count read from the wire, checked against the bytes left (every element takes at least one
   * byte), so a forged header cannot make the decoder allocate or loop for what is not there.
   */
  count(n: number): number {
    if (n > this.buf.length - this.pos) throw GIVE_UP;
    return n;
  }

  reset(buf: Uint8Array): void {
    // Do not keep the scratch of an unusually large batch around.
    if (this.tokens.a.length > MAX_KEPT_SCRATCH) this.tokens.a = new Uint32Array(4096);
    if (this.hashes.a.length > MAX_KEPT_SCRATCH) this.hashes.a = new Uint32Array(4096);
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = 0;
    this.hashes.n = 0;
    this.tokens.n = 0;
  }

  byte(): number {
    if (this.pos >= this.buf.length) throw GIVE_UP;
    return this.buf[this.pos++] as number;
  }

  need(k: number): void {
    if (this.pos + k > this.buf.length) throw GIVE_UP;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** Array header → element count, or -1 (position unchanged) when the value is not an array. */
  arrayHeader(): number {
    const b = this.buf[this.pos];
    if (b === undefined) throw GIVE_UP;
    if (b >= 0x90 && b <= 0x9f) {
      this.pos++;
      return b & 0x0f;
    }
    if (b === 0xdc) {
      this.pos++;
      return this.u16();
    }
    if (b === 0xdd) {
      this.pos++;
      return this.u32();
    }
    return -1;
  }

  mapHeader(): number {
    const b = this.buf[this.pos];
    if (b === undefined) throw GIVE_UP;
    if (b >= 0x80 && b <= 0x8f) {
      this.pos++;
      return b & 0x0f;
    }
    if (b === 0xde) {
      this.pos++;
      return this.u16();
    }
    if (b === 0xdf) {
      this.pos++;
      return this.u32();
    }
    return -1;
  }

  isNil(): boolean {
    if (this.buf[this.pos] === 0xc0) {
      this.pos++;
      return true;
    }
    return false;
  }

  /** A msgpack str (any width); gives up on anything else. */
  str(): string {
    const b = this.byte();
    let len: number;
    if (b >= 0xa0 && b <= 0xbf) len = b & 0x1f;
    else if (b === 0xd9) len = this.byte();
    else if (b === 0xda) len = this.u16();
    else if (b === 0xdb) len = this.u32();
    else throw GIVE_UP;
    this.need(len);
    const start = this.pos;
    this.pos += len;
    let ascii = len <= 64;
    for (let i = start; ascii && i < start + len; i++) if ((this.buf[i] as number) >= 0x80) ascii = false;
    if (ascii) {
      let s = '';
      for (let i = start; i < start + len; i++) s += String.fromCharCode(this.buf[i] as number);
      return s;
    }
    // Invalid UTF-8 (never sent by vLLM) is decoded differently by @msgpack/msgpack's own UTF-8
    // decoder (short strings) and by a replacing TextDecoder: the general path decides.
    try {
      return STRICT_UTF8.decode(this.buf.subarray(start, start + len));
    } catch {
      throw GIVE_UP;
    }
  }

  /** A safe integer from a msgpack int of width ≤ 32 bits; gives up on floats, 64-bit ints and the rest. */
  smallInt(): number {
    const b = this.byte();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 256;
    switch (b) {
      case 0xcc:
        return this.byte();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xd0: {
        const v = this.byte();
        return v >= 0x80 ? v - 256 : v;
      }
      case 0xd1:
        return (this.u16() << 16) >> 16;
      case 0xd2:
        return this.u32() | 0;
      default:
        throw GIVE_UP;
    }
  }

  /** ts: any msgpack int up to 32 bits or a finite float. */
  number(): number {
    const b = this.buf[this.pos];
    if (b === 0xcb) {
      this.pos++;
      this.need(8);
      const v = this.view.getFloat64(this.pos);
      this.pos += 8;
      if (!Number.isFinite(v)) throw GIVE_UP;
      return v;
    }
    if (b === 0xca) {
      this.pos++;
      this.need(4);
      const v = this.view.getFloat32(this.pos);
      this.pos += 4;
      if (!Number.isFinite(v)) throw GIVE_UP;
      return v;
    }
    return this.smallInt();
  }

  /** One engine hash, normalised like `normaliseBlockHash`, appended to `hashes` as [hi, lo]. */
  hash(): void {
    const h = this.hashes;
    h.reserve(2);
    const b = this.byte();
    let hi = 0;
    let lo: number;
    if (b <= 0x7f) lo = b;
    else if (b >= 0xe0) {
      lo = (b - 256) >>> 0;
      hi = 0xffffffff;
    } else {
      switch (b) {
        case 0xcc:
          lo = this.byte();
          break;
        case 0xcd:
          lo = this.u16();
          break;
        case 0xce:
          lo = this.u32();
          break;
        case 0xcf:
        case 0xd3:
          hi = this.u32();
          lo = this.u32();
          break;
        case 0xd0: {
          const v = this.byte();
          lo = v >= 0x80 ? (v - 256) >>> 0 : v;
          if (v >= 0x80) hi = 0xffffffff;
          break;
        }
        case 0xd1: {
          const v = (this.u16() << 16) >> 16;
          lo = v >>> 0;
          if (v < 0) hi = 0xffffffff;
          break;
        }
        case 0xd2: {
          const v = this.u32() | 0;
          lo = v >>> 0;
          if (v < 0) hi = 0xffffffff;
          break;
        }
        case 0xc4:
        case 0xc5:
        case 0xc6: {
          const len = b === 0xc4 ? this.byte() : b === 0xc5 ? this.u16() : this.u32();
          if (len === 0) throw GIVE_UP;
          this.need(len);
          // Last 8 bytes big-endian, left-padded with zeros.
          const end = this.pos + len;
          let i = Math.max(this.pos, end - 8);
          hi = 0;
          lo = 0;
          for (; i < end; i++) {
            hi = ((hi << 8) | (lo >>> 24)) >>> 0;
            lo = ((lo << 8) | (this.buf[i] as number)) >>> 0;
          }
          this.pos = end;
          break;
        }
        default:
          throw GIVE_UP;
      }
    }
    h.a[h.n++] = hi;
    h.a[h.n++] = lo;
  }

  /** A list of hashes; returns its count (appended to `hashes`). */
  hashList(): number {
    const n = this.arrayHeader();
    if (n < 0) throw GIVE_UP;
    this.count(n);
    for (let i = 0; i < n; i++) this.hash();
    return n;
  }

  /** Token ids: msgpack uints below 2^32 only (what vLLM sends); appended to `tokens`. */
  tokenList(): number {
    const n = this.arrayHeader();
    if (n < 0) throw GIVE_UP;
    this.count(n);
    const t = this.tokens;
    t.reserve(n);
    const a = t.a;
    const buf = this.buf;
    let k = t.n;
    let p = this.pos;
    const end = buf.length;
    for (let i = 0; i < n; i++) {
      if (p >= end) throw GIVE_UP;
      const b = buf[p] as number;
      if (b <= 0x7f) {
        a[k++] = b;
        p += 1;
      } else if (b === 0xcd) {
        if (p + 3 > end) throw GIVE_UP;
        a[k++] = ((buf[p + 1] as number) << 8) | (buf[p + 2] as number);
        p += 3;
      } else if (b === 0xce) {
        if (p + 5 > end) throw GIVE_UP;
        a[k++] = (((buf[p + 1] as number) << 24) | ((buf[p + 2] as number) << 16) | ((buf[p + 3] as number) << 8) | (buf[p + 4] as number)) >>> 0;
        p += 5;
      } else if (b === 0xcc) {
        if (p + 2 > end) throw GIVE_UP;
        a[k++] = buf[p + 1] as number;
        p += 2;
      } else {
        throw GIVE_UP;
      }
    }
    this.pos = p;
    t.n = k;
    return n;
  }

  /** Skip any one msgpack value. */
  skip(depth = 0): void {
    if (depth > MAX_DEPTH) throw GIVE_UP;
    const b = this.byte();
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return;
    if (b >= 0xa0 && b <= 0xbf) return this.advance(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return this.skipItems(b & 0x0f, depth);
    if (b >= 0x80 && b <= 0x8f) return this.skipMap(b & 0x0f, depth);
    switch (b) {
      case 0xcc:
      case 0xd0:
        return this.advance(1);
      case 0xcd:
      case 0xd1:
        return this.advance(2);
      case 0xce:
      case 0xd2:
      case 0xca:
        return this.advance(4);
      case 0xcf:
      case 0xd3:
      case 0xcb:
        return this.advance(8);
      case 0xd9:
      case 0xc4:
        return this.advance(this.byte());
      case 0xda:
      case 0xc5:
        return this.advance(this.u16());
      case 0xdb:
      case 0xc6:
        return this.advance(this.u32());
      case 0xdc:
        return this.skipItems(this.u16(), depth);
      case 0xdd:
        return this.skipItems(this.u32(), depth);
      case 0xde:
        return this.skipMap(this.u16(), depth);
      case 0xdf:
        return this.skipMap(this.u32(), depth);
      default:
        // ext types (the library turns them into ExtData or Date): the general path decides.
        throw GIVE_UP;
    }
  }

  private advance(k: number): void {
    this.need(k);
    this.pos += k;
  }

  /**
   * Skip a map of `n` pairs. The general decoder (@msgpack/msgpack, objects for maps) rejects a
   * whole payload whose map has a key other than a string or a number that fits a JS number (an
   * array, map, bytes, ext, nil, bool or 64-bit int key), or a `__proto__` key; this decoder hands
   * such maps to it, to stay equal to the general one.
   */
  private skipMap(n: number, depth: number): void {
    this.count(2 * n);
    for (let i = 0; i < n; i++) {
      const k = this.buf[this.pos];
      if (k === undefined) throw GIVE_UP;
      if ((k >= 0x80 && k <= 0x9f) || k === 0xdc || k === 0xdd || k === 0xde || k === 0xdf || (k >= 0xc4 && k <= 0xc9) || (k >= 0xd4 && k <= 0xd8)) throw GIVE_UP;
      if (k === 0xc0 || k === 0xc2 || k === 0xc3 || k === 0xcf || k === 0xd3) throw GIVE_UP;
      if (k === 0xa9 && this.buf[this.pos + 1] === 0x5f && this.buf[this.pos + 2] === 0x5f && PROTO.equals(this.buf.subarray(this.pos + 1, this.pos + 10))) throw GIVE_UP;
      this.skip(depth + 1);
      this.skip(depth + 1);
    }
  }

  private skipItems(n: number, depth: number): void {
    this.count(n);
    for (let i = 0; i < n; i++) this.skip(depth + 1);
  }
}

/** Event under construction. */
interface Draft {
  hashOff: number;
  nHashes: number;
  seen: number;
  hasParent: boolean;
  parentHi: number;
  parentLo: number;
  tokenOff: number;
  nTokens: number;
  blockSize: number;
  medium: string;
  groupIdx: number | undefined;
}

function readField(r: Reader, field: number, d: Draft): void {
  if (field === F_SKIP) {
    r.skip();
    return;
  }
  // A map may repeat a key (the general decoder keeps the last one): leave such oddities to the general path.
  const bit = 1 << field;
  if ((d.seen & bit) !== 0) throw GIVE_UP;
  d.seen |= bit;
  switch (field) {
    case F_BLOCK_HASHES:
      d.hashOff = r.hashes.n;
      d.nHashes = r.hashList();
      return;
    case F_PARENT:
      if (r.isNil()) return;
      r.hash();
      r.hashes.n -= 2;
      d.hasParent = true;
      d.parentHi = r.hashes.a[r.hashes.n] as number;
      d.parentLo = r.hashes.a[r.hashes.n + 1] as number;
      return;
    case F_TOKENS:
      d.tokenOff = r.tokens.n;
      d.nTokens = r.tokenList();
      return;
    case F_BLOCK_SIZE: {
      const v = r.smallInt();
      if (v <= 0) throw GIVE_UP; // 0 (token-less tier update) and bad sizes: general path
      d.blockSize = v;
      return;
    }
    case F_MEDIUM: {
      if (r.isNil()) return;
      const m = r.str();
      d.medium = m === '' ? 'gpu' : m.toLowerCase();
      return;
    }
    case F_GROUP_IDX:
      if (!r.isNil()) d.groupIdx = r.smallInt();
      return;
    case F_EXTRA_KEYS: {
      if (r.isNil()) return;
      // An all-null list is what a block without extra keys reports; anything else: general path.
      const n = r.arrayHeader();
      if (n < 0) throw GIVE_UP;
      for (let i = 0; i < n; i++) if (!r.isNil()) throw GIVE_UP;
      return;
    }
    case F_LORA_ID:
    case F_LORA_NAME:
    case F_KIND:
      if (!r.isNil()) throw GIVE_UP;
      return;
    default:
      throw GIVE_UP;
  }
}

function newDraft(): Draft {
  return { hashOff: 0, nHashes: 0, seen: 0, hasParent: false, parentHi: 0, parentLo: 0, tokenOff: 0, nTokens: 0, blockSize: 0, medium: 'gpu', groupIdx: undefined };
}

function readEvent(r: Reader): RawEvent {
  let type: RawEvent['type'];
  const d = newDraft();
  const n = r.arrayHeader();
  if (n >= 0) {
    if (n === 0) throw GIVE_UP;
    const tag = r.str();
    if (tag === 'AllBlocksCleared') {
      for (let i = 1; i < n; i++) r.skip();
      return cleared();
    }
    if (tag !== 'BlockStored' && tag !== 'BlockRemoved') throw GIVE_UP;
    type = tag;
    const positions = tag === 'BlockStored' ? STORED_POSITIONS : REMOVED_POSITIONS;
    for (let i = 1; i < n; i++) {
      const f = positions[i - 1];
      if (f === undefined) r.skip();
      else readField(r, f, d);
    }
  } else {
    const m = r.mapHeader();
    if (m < 0) throw GIVE_UP;
    // vLLM writes `type` first; a map with its tag elsewhere goes to the general path.
    if (m === 0) throw GIVE_UP;
    if (r.str() !== 'type') throw GIVE_UP;
    const tag = r.str();
    if (tag === 'AllBlocksCleared') {
      for (let i = 1; i < m; i++) {
        const k = r.str();
        if (k === 'type' || k === '__proto__') throw GIVE_UP;
        r.skip();
      }
      return cleared();
    }
    if (tag !== 'BlockStored' && tag !== 'BlockRemoved') throw GIVE_UP;
    type = tag;
    const keys = tag === 'BlockStored' ? STORED_KEYS : REMOVED_KEYS;
    for (let i = 1; i < m; i++) {
      const k = r.str();
      // '__proto__' fails the whole payload in the general decoder (the library refuses that key)
      if (k === 'type' || k === '__proto__') throw GIVE_UP;
      const f = keys.get(k);
      if (f === undefined) r.skip();
      else readField(r, f, d);
    }
  }
  if ((d.seen & (1 << F_BLOCK_HASHES)) === 0) throw GIVE_UP;
  if (type === 'BlockStored' && ((d.seen & (1 << F_TOKENS)) === 0 || (d.seen & (1 << F_BLOCK_SIZE)) === 0 || d.nTokens === 0)) throw GIVE_UP;
  return {
    type,
    hashOff: d.hashOff,
    nHashes: d.nHashes,
    hasParent: d.hasParent,
    parentHi: d.parentHi,
    parentLo: d.parentLo,
    tokenOff: d.tokenOff,
    nTokens: d.nTokens,
    blockSize: d.blockSize,
    medium: d.medium,
    groupIdx: d.groupIdx,
  };
}

const CLEARED: RawEvent = Object.freeze({
  type: 'AllBlocksCleared',
  hashOff: 0,
  nHashes: 0,
  hasParent: false,
  parentHi: 0,
  parentLo: 0,
  tokenOff: 0,
  nTokens: 0,
  blockSize: 0,
  medium: 'gpu',
  groupIdx: undefined,
});

function cleared(): RawEvent {
  return CLEARED;
}

/**
 * A fast decoder with its own scratch arrays. `decode(payload)` returns batches whose `hashes` and
 * `tokens` are views of that scratch: valid until the next `decode` of the same instance, so a
 * caller that finishes a batch before decoding the next one (the pool gives each shard its own
 * decoder) allocates no per-batch arrays. `decodeRawBatch` copies instead.
 */
export class RawBatchDecoder {
  private readonly reader = new Reader();

  /** See {@link decodeRawBatch}; the arrays of the result are views (see the class comment). */
  decode(payload: Uint8Array): RawBatch | undefined {
    return decodeWith(this.reader, payload, false);
  }

  /** The largest scratch array this decoder ever allocated, in u32s (diagnostics and tests). */
  get peakScratch(): number {
    return Math.max(this.reader.tokens.peak, this.reader.hashes.peak);
  }
}

const shared = new Reader();

/**
 * Decode `payload` on the fast path, or `undefined` when it is outside the fast subset (then use
 * `decodeKvEventBatch`, which also explains what is wrong with a bad payload). Never throws. The
 * batch owns its arrays.
 */
export function decodeRawBatch(payload: Uint8Array): RawBatch | undefined {
  return decodeWith(shared, payload, true);
}

function decodeWith(r: Reader, payload: Uint8Array, copy: boolean): RawBatch | undefined {
  r.reset(payload);
  try {
    const n = r.arrayHeader();
    if (n < 2) return undefined;
    const ts = r.number();
    const nEvents = r.arrayHeader();
    if (nEvents < 0) return undefined;
    r.count(nEvents);
    const events: RawEvent[] = new Array<RawEvent>(nEvents);
    for (let i = 0; i < nEvents; i++) events[i] = readEvent(r);
    let dpRank: number | undefined;
    if (n > 2 && !r.isNil()) {
      const v = r.smallInt();
      if (v < 0 || v > 65535) return undefined;
      dpRank = v;
    }
    for (let i = 3; i < n; i++) r.skip();
    if (r.pos !== payload.length) return undefined;
    const hashes = copy ? r.hashes.a.slice(0, r.hashes.n) : r.hashes.a.subarray(0, r.hashes.n);
    const tokens = copy ? r.tokens.a.slice(0, r.tokens.n) : r.tokens.a.subarray(0, r.tokens.n);
    return { ts, dpRank, events, hashes, tokens };
  } catch (e) {
    if (e === GIVE_UP) return undefined;
    return undefined;
  } finally {
    r.reset(EMPTY);
  }
}

const EMPTY = new Uint8Array(0);
