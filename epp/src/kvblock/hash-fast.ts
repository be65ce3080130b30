/**
 * Non-cryptographic 64-bit hashes in pure JS with 32-bit limb arithmetic (no bigint on the hot
 * path): FNV-1a-64 and XXH64. Both follow their public specifications bit for bit (tests check the
 * published vectors), so keys can be reproduced by any other implementation.
 *
 * Results are returned through `out` (a 2-element Uint32Array: [hi, lo]) so that hashing a block
 * allocates nothing. `toBigInt` turns them into a `BlockKey`.
 *
 * Which one the `fast` key mode uses is decided in token-processor.ts (by benchmark).
 */

/** [hi, lo] of a 64-bit value. */
export type U64Out = Uint32Array;

/** Fresh [hi, lo] holder. */
export function u64Out(): U64Out {
  return new Uint32Array(2);
}

const scratch = new DataView(new ArrayBuffer(8));

/**
 * The 64-bit value in `out` as an unsigned bigint. Through a DataView: one bigint allocation
 * instead of three (`(BigInt(hi) << 32n) | BigInt(lo)`), ~1.7× faster in a micro-benchmark.
 */
export function toBigInt(out: U64Out): bigint {
  scratch.setUint32(0, out[0]);
  scratch.setUint32(4, out[1]);
  return scratch.getBigUint64(0);
}

const TWO_32 = 4294967296;

/**
 * FNV-1a-64 over `data[0, len)`. The prime 0x100000001b3 = 2^40 + 0x1b3, so h·prime mod 2^64 is
 * h·0x1b3 + (lo << 40): the low limb times 0x1b3 split in 16-bit halves (exact int32 products),
 * the high limb by Math.imul, plus one shift. Everything stays in int32 registers.
 */
export function fnv1a64(data: Uint8Array, len: number, out: U64Out): void {
  let hi = 0xcbf29ce4 | 0;
  let lo = 0x84222325 | 0;
  for (let i = 0; i < len; i++) {
    lo ^= data[i];
    const m0 = (lo & 0xffff) * 0x1b3;
    const carry = ((lo >>> 16) * 0x1b3 + (m0 >>> 16)) >>> 16;
    hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) | 0;
    lo = Math.imul(lo, 0x1b3);
  }
  out[0] = hi;
  out[1] = lo;
}

// XXH64 primes as [hi, lo].
const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;

// Result registers of the limb helpers below (module scope: no allocation, inlined by the JIT).
let rh = 0;
let rl = 0;

/** (ah,al)·(bh,bl) mod 2^64 → (rh, rl). */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff, a1 = al >>> 16;
  const b0 = bl & 0xffff, b1 = bl >>> 16;
  const mid = a0 * b1 + a1 * b0; // < 2^33
  const low = a0 * b0 + (mid % 65536) * 65536; // < 2^33
  const lo = low >>> 0;
  const carry = (low - lo) / TWO_32;
  rh = (a1 * b1 + Math.floor(mid / 65536) + carry + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
  rl = lo;
}

/** (ah,al) + (bh,bl) mod 2^64 → (rh, rl). */
function add(ah: number, al: number, bh: number, bl: number): void {
  const l = al + bl;
  rl = l >>> 0;
  rh = (ah + bh + (l > 0xffffffff ? 1 : 0)) >>> 0;
}

/** XXH64 round: rotl(acc + input·P2, 31)·P1 → (rh, rl). */
function round(acch: number, accl: number, ih: number, il: number): void {
  mul(ih, il, P2H, P2L);
  add(acch, accl, rh, rl);
  const h = ((rh << 31) | (rl >>> 1)) >>> 0; // rotl 31
  const l = ((rl << 31) | (rh >>> 1)) >>> 0;
  mul(h, l, P1H, P1L);
}

/** rotl(x, r) for 0 < r < 32 → (rh, rl). */
function rotl(h: number, l: number, r: number): void {
  rh = ((h << r) | (l >>> (32 - r))) >>> 0;
  rl = ((l << r) | (h >>> (32 - r))) >>> 0;
}

function readU32(d: Uint8Array, i: number): number {
  return (d[i] | (d[i + 1] << 8) | (d[i + 2] << 16) | (d[i + 3] << 24)) >>> 0;
}

/** XXH64 over `data[0, len)` with a 64-bit seed given as (seedHi, seedLo). */
export function xxh64(data: Uint8Array, len: number, out: U64Out, seedHi = 0, seedLo = 0): void {
  let i = 0;
  let hh: number, hl: number;
  if (len >= 32) {
    add(seedHi, seedLo, P1H, P1L);
    add(rh, rl, P2H, P2L);
    let v1h = rh, v1l = rl;
    add(seedHi, seedLo, P2H, P2L);
    let v2h = rh, v2l = rl;
    let v3h = seedHi, v3l = seedLo;
    // seed - P1 = seed + (2^64 - P1); P1's low limb is non-zero, so -P1 = (~P1H, -P1L).
    add(seedHi, seedLo, ~P1H >>> 0, -P1L >>> 0);
    let v4h = rh, v4l = rl;
    const limit = len - 32;
    while (i <= limit) {
      round(v1h, v1l, readU32(data, i + 4), readU32(data, i)); v1h = rh; v1l = rl;
      round(v2h, v2l, readU32(data, i + 12), readU32(data, i + 8)); v2h = rh; v2l = rl;
      round(v3h, v3l, readU32(data, i + 20), readU32(data, i + 16)); v3h = rh; v3l = rl;
      round(v4h, v4l, readU32(data, i + 28), readU32(data, i + 24)); v4h = rh; v4l = rl;
      i += 32;
    }
    rotl(v1h, v1l, 1); hh = rh; hl = rl;
    rotl(v2h, v2l, 7); add(hh, hl, rh, rl); hh = rh; hl = rl;
    rotl(v3h, v3l, 12); add(hh, hl, rh, rl); hh = rh; hl = rl;
    rotl(v4h, v4l, 18); add(hh, hl, rh, rl); hh = rh; hl = rl;
    // merge rounds: h = (h ^ round(0, v))·P1 + P4
    round(0, 0, v1h, v1l); mul((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, P1H, P1L); add(rh, rl, P4H, P4L); hh = rh; hl = rl;
    round(0, 0, v2h, v2l); mul((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, P1H, P1L); add(rh, rl, P4H, P4L); hh = rh; hl = rl;
    round(0, 0, v3h, v3l); mul((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, P1H, P1L); add(rh, rl, P4H, P4L); hh = rh; hl = rl;
    round(0, 0, v4h, v4l); mul((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, P1H, P1L); add(rh, rl, P4H, P4L); hh = rh; hl = rl;
  } else {
    add(seedHi, seedLo, P5H, P5L);
    hh = rh;
    hl = rl;
  }
  // h += len (len < 2^53)
  add(hh, hl, Math.floor(len / TWO_32) >>> 0, len >>> 0);
  hh = rh;
  hl = rl;
  while (i + 8 <= len) {
    round(0, 0, readU32(data, i + 4), readU32(data, i));
    rotl((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, 27);
    mul(rh, rl, P1H, P1L);
    add(rh, rl, P4H, P4L);
    hh = rh;
    hl = rl;
    i += 8;
  }
  if (i + 4 <= len) {
    mul(0, readU32(data, i), P1H, P1L);
    rotl((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, 23);
    mul(rh, rl, P2H, P2L);
    add(rh, rl, P3H, P3L);
    hh = rh;
    hl = rl;
    i += 4;
  }
  while (i < len) {
    mul(0, data[i], P5H, P5L);
    rotl((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, 11);
    mul(rh, rl, P1H, P1L);
    hh = rh;
    hl = rl;
    i++;
  }
  // avalanche
  hl = (hl ^ (hh >>> 1)) >>> 0; // h ^= h >> 33
  mul(hh, hl, P2H, P2L);
  // h ^= h >> 29
  hl = (rl ^ ((rl >>> 29) | (rh << 3))) >>> 0;
  hh = (rh ^ (rh >>> 29)) >>> 0;
  mul(hh, hl, P3H, P3L);
  hh = rh;
  hl = (rl ^ rh) >>> 0; // h ^= h >> 32
  out[0] = hh;
  out[1] = hl;
}
