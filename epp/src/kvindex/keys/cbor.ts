/**
 * Minimal canonical CBOR encoder (RFC 8949 §4.2.1 "core deterministic" = cbor2 `canonical=True`
 * for the types below) for vLLM's block-hash preimages.
 *
 * Types: unsigned int (major 0), negative int (major 1), byte string (2), text string (3),
 * definite-length array (4) and null (0xf6). Every length and integer uses the shortest form;
 * no tags, no indefinite lengths, no floats. That is all vLLM's `[parent, tokens, extra_keys]`
 * preimage needs (docs/facts/vllm-kv-events.md, "Block hashes").
 *
 * DECISION: this minimal encoder, not cbor-x (which is therefore not a dependency; the keys bench
 * compares the two when cbor-x is installed with `npm install --no-save cbor-x`).
 * `npx tsx lab/bench/keys.bench.ts` (node 20.20; 2 cores
 * shared with other jobs, load ~16; 2,000-token prompt = 125 preimages of block 16; cases
 * interleaved, medians), last 3 runs:
 * - speed: own CborWriter 9.9–17.5 µs per prompt, cbor-x `Encoder` 74–85 µs: cbor-x is 4.7× to
 *   7.5× slower (it walks generic JS values, allocates a result per call and needs a sliced token
 *   array per block; the writer copies token ids straight from the caller's array into one reused
 *   buffer). On the whole sha256_cbor path (SHA-256 included) cbor-x takes 1.86× to 2.04× the
 *   time: 217–267 µs vs 117–131 µs per prompt.
 * - bytes: with `tagUint8Array: false, useRecords: false` cbor-x reproduces the vLLM preimages
 *   (125/125 identical, and the vectors' extra keys), but it is not canonical at edges we also
 *   need: a number ≥ 2^32 becomes a float64 (`fb…`), and every bigint is written as an 8-byte
 *   `1b` even when small (12n → `1b000000000000000c`, canonical `0c`), so the legacy
 *   sha256_cbor_64bit parent (a u64) would need value-dependent shims to stay byte-exact.
 * Five types, shortest forms, one reused buffer: smaller, faster, and exact by construction.
 */

/** A value this encoder can write. Numbers must be safe integers; bigints must fit in [-2^64, 2^64). */
export type CborValue = number | bigint | string | Uint8Array | null | readonly CborValue[];

const TWO_64 = 1n << 64n;
const UTF8 = new TextEncoder();

/**
 * Appends canonical CBOR items to a growable buffer that is reused between preimages, so the
 * hot path (one preimage per block) allocates nothing once the buffer has grown.
 */
export class CborWriter {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
  }

  /** Forget what was written; keeps the buffer. */
  reset(): this {
    this.pos = 0;
    return this;
  }

  /** Bytes written so far (a view into the internal buffer, valid until the next write or reset). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** A copy of the bytes written so far. */
  toBytes(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  get length(): number {
    return this.pos;
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** Major type `major` (0..7) with argument `n`, 0 ≤ n < 2^53, in shortest form. */
  head(major: number, n: number): this {
    this.ensure(9);
    const b = this.buf;
    const m = major << 5;
    if (n < 24) {
      b[this.pos++] = m | n;
    } else if (n < 0x100) {
      b[this.pos++] = m | 24;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos++] = m | 25;
      b[this.pos++] = n >>> 8;
      b[this.pos++] = n & 0xff;
    } else if (n < 0x100000000) {
      b[this.pos++] = m | 26;
      b[this.pos++] = n >>> 24;
      b[this.pos++] = (n >>> 16) & 0xff;
      b[this.pos++] = (n >>> 8) & 0xff;
      b[this.pos++] = n & 0xff;
    } else {
      const hi = Math.floor(n / 0x100000000);
      const lo = n >>> 0;
      b[this.pos++] = m | 27;
      b[this.pos++] = hi >>> 24;
      b[this.pos++] = (hi >>> 16) & 0xff;
      b[this.pos++] = (hi >>> 8) & 0xff;
      b[this.pos++] = hi & 0xff;
      b[this.pos++] = lo >>> 24;
      b[this.pos++] = (lo >>> 16) & 0xff;
      b[this.pos++] = (lo >>> 8) & 0xff;
      b[this.pos++] = lo & 0xff;
    }
    return this;
  }

  /** Major type with a 64-bit argument given as a bigint in [0, 2^64). */
  private head64(major: number, n: bigint): this {
    if (n < 0x100000000n) return this.head(major, Number(n));
    this.ensure(9);
    const b = this.buf;
    b[this.pos++] = (major << 5) | 27;
    for (let shift = 56n; shift >= 0n; shift -= 8n) b[this.pos++] = Number((n >> shift) & 0xffn);
    return this;
  }

  /** Unsigned integer from 8 big-endian bytes `b[at, at+8)`, in shortest form (no bigint). */
  uint64BE(b: Uint8Array, at = 0): this {
    const hi = ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
    if (hi === 0) return this.head(0, ((b[at + 4] << 24) | (b[at + 5] << 16) | (b[at + 6] << 8) | b[at + 7]) >>> 0);
    this.ensure(9);
    this.buf[this.pos++] = 0x1b;
    this.buf.set(b.subarray(at, at + 8), this.pos);
    this.pos += 8;
    return this;
  }

  /** Unsigned integer (safe integer ≥ 0). */
  uint(n: number): this {
    return this.head(0, n);
  }

  /** Any integer: a safe-integer number, or a bigint in [-2^64, 2^64). */
  int(n: number | bigint): this {
    if (typeof n === 'bigint') {
      if (n >= TWO_64 || n < -TWO_64) throw new RangeError(`CBOR integer ${n} is outside [-2^64, 2^64); CBOR major types 0/1 carry at most 64 bits`);
      return n >= 0n ? this.head64(0, n) : this.head64(1, -1n - n);
    }
    if (!Number.isSafeInteger(n)) {
      throw new RangeError(`CBOR integer ${n} is not a safe integer; pass a bigint for values beyond 2^53, floats are not supported`);
    }
    return n >= 0 ? this.head(0, n) : this.head(1, -1 - n);
  }

  /** Byte string. */
  bytes(data: Uint8Array): this {
    this.head(2, data.length);
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
    return this;
  }

  /** Text string, written as UTF-8. */
  text(s: string): this {
    return this.utf8(UTF8.encode(s));
  }

  /** Text string from bytes that are already UTF-8 (lets callers encode a string once). */
  utf8(data: Uint8Array): this {
    this.head(3, data.length);
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
    return this;
  }

  /** Definite-length array header; the caller writes the `n` items next. */
  array(n: number): this {
    return this.head(4, n);
  }

  null(): this {
    this.ensure(1);
    this.buf[this.pos++] = 0xf6;
    return this;
  }

  /** Array of unsigned ints (token ids, validated by the caller) written in one pass. */
  uintArray(values: ArrayLike<number>, start: number, end: number): this {
    const n = end - start;
    this.head(4, n);
    this.ensure(n * 5);
    const b = this.buf;
    let p = this.pos;
    for (let i = start; i < end; i++) {
      const v = values[i];
      if (v < 24) {
        b[p++] = v;
      } else if (v < 0x100) {
        b[p++] = 0x18;
        b[p++] = v;
      } else if (v < 0x10000) {
        b[p++] = 0x19;
        b[p++] = v >>> 8;
        b[p++] = v & 0xff;
      } else {
        b[p++] = 0x1a;
        b[p++] = v >>> 24;
        b[p++] = (v >>> 16) & 0xff;
        b[p++] = (v >>> 8) & 0xff;
        b[p++] = v & 0xff;
      }
    }
    this.pos = p;
    return this;
  }

  /** Any supported value, recursively. */
  value(v: CborValue): this {
    if (v === null) return this.null();
    switch (typeof v) {
      case 'number':
      case 'bigint':
        return this.int(v);
      case 'string':
        return this.text(v);
      default:
        break;
    }
    if (v instanceof Uint8Array) return this.bytes(v);
    if (Array.isArray(v)) {
      this.array(v.length);
      for (const item of v as readonly CborValue[]) this.value(item);
      return this;
    }
    throw new TypeError(`cannot CBOR-encode ${Object.prototype.toString.call(v)}; supported: integer, bigint, string, Uint8Array, null, array`);
  }
}

/** Canonical CBOR bytes of `value` (a fresh copy). */
export function encodeCanonical(value: CborValue): Uint8Array {
  return new CborWriter().value(value).toBytes();
}
