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
  return fromHalves(out[0] as number, out[1] as number);
}

/** The unsigned 64-bit value (hi << 32) | lo as a bigint (hi, lo: u32, signed int32 accepted). */
export function fromHalves(hi: number, lo: number): bigint {
  scratch.setUint32(0, hi >>> 0);
  scratch.setUint32(4, lo >>> 0);
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

// Result registers of the limb helpers below. A typed array, not module-level `let`s: a u32
// above 2^30 stored in a plain variable slot is boxed as a heap number on every write.
const R = new Uint32Array(2);

/** (ah,al)·(bh,bl) mod 2^64 → R, with 16-bit partial products (no float division). */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff, a1 = al >>> 16;
  const b0 = bl & 0xffff, b1 = bl >>> 16;
  const p01 = a0 * b1, p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  R[0] = (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16) + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
  R[1] = Math.imul(al, bl) >>> 0;
}

/** (ah,al) + (bh,bl) mod 2^64 → R. */
function add(ah: number, al: number, bh: number, bl: number): void {
  const l = al + bl;
  R[1] = l >>> 0;
  R[0] = (ah + bh + (l > 0xffffffff ? 1 : 0)) >>> 0;
}

/** XXH64 round: rotl(acc + input·P2, 31)·P1 → R. */
function round(acch: number, accl: number, ih: number, il: number): void {
  mul(ih, il, P2H, P2L);
  add(acch, accl, R[0], R[1]);
  const h = ((R[0] << 31) | (R[1] >>> 1)) >>> 0; // rotl 31
  const l = ((R[1] << 31) | (R[0] >>> 1)) >>> 0;
  mul(h, l, P1H, P1L);
}

/** rotl(x, r) for 0 < r < 32 → R. */
function rotl(h: number, l: number, r: number): void {
  R[0] = ((h << r) | (l >>> (32 - r))) >>> 0;
  R[1] = ((l << r) | (h >>> (32 - r))) >>> 0;
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
    add(R[0], R[1], P2H, P2L);
    let v1h = R[0], v1l = R[1];
    add(seedHi, seedLo, P2H, P2L);
    let v2h = R[0], v2l = R[1];
    let v3h = seedHi, v3l = seedLo;
    // seed - P1 = seed + (2^64 - P1); P1's low limb is non-zero, so -P1 = (~P1H, -P1L).
    add(seedHi, seedLo, ~P1H >>> 0, -P1L >>> 0);
    let v4h = R[0], v4l = R[1];
    const limit = len - 32;
    while (i <= limit) {
      round(v1h, v1l, readU32(data, i + 4), readU32(data, i)); v1h = R[0]; v1l = R[1];
      round(v2h, v2l, readU32(data, i + 12), readU32(data, i + 8)); v2h = R[0]; v2l = R[1];
      round(v3h, v3l, readU32(data, i + 20), readU32(data, i + 16)); v3h = R[0]; v3l = R[1];
      round(v4h, v4l, readU32(data, i + 28), readU32(data, i + 24)); v4h = R[0]; v4l = R[1];
      i += 32;
    }
    rotl(v1h, v1l, 1); hh = R[0]; hl = R[1];
    rotl(v2h, v2l, 7); add(hh, hl, R[0], R[1]); hh = R[0]; hl = R[1];
    rotl(v3h, v3l, 12); add(hh, hl, R[0], R[1]); hh = R[0]; hl = R[1];
    rotl(v4h, v4l, 18); add(hh, hl, R[0], R[1]); hh = R[0]; hl = R[1];
    // merge rounds: h = (h ^ round(0, v))·P1 + P4
    round(0, 0, v1h, v1l); mul((hh ^ R[0]) >>> 0, (hl ^ R[1]) >>> 0, P1H, P1L); add(R[0], R[1], P4H, P4L); hh = R[0]; hl = R[1];
    round(0, 0, v2h, v2l); mul((hh ^ R[0]) >>> 0, (hl ^ R[1]) >>> 0, P1H, P1L); add(R[0], R[1], P4H, P4L); hh = R[0]; hl = R[1];
    round(0, 0, v3h, v3l); mul((hh ^ R[0]) >>> 0, (hl ^ R[1]) >>> 0, P1H, P1L); add(R[0], R[1], P4H, P4L); hh = R[0]; hl = R[1];
    round(0, 0, v4h, v4l); mul((hh ^ R[0]) >>> 0, (hl ^ R[1]) >>> 0, P1H, P1L); add(R[0], R[1], P4H, P4L); hh = R[0]; hl = R[1];
  } else {
    add(seedHi, seedLo, P5H, P5L);
    hh = R[0];
    hl = R[1];
  }
  // h += len (len < 2^53)
  add(hh, hl, Math.floor(len / TWO_32) >>> 0, len >>> 0);
  hh = R[0];
  hl = R[1];
  while (i + 8 <= len) {
    round(0, 0, readU32(data, i + 4), readU32(data, i));
    rotl((hh ^ R[0]) >>> 0, (hl ^ R[1]) >>> 0, 27);
    mul(R[0], R[1], P1H, P1L);
    add(R[0], R[1], P4H, P4L);
    hh = R[0];
    hl = R[1];
    i += 8;
  }
  if (i + 4 <= len) {
    mul(0, readU32(data, i), P1H, P1L);
    rotl((hh ^ R[0]) >>> 0, (hl ^ R[1]) >>> 0, 23);
    mul(R[0], R[1], P2H, P2L);
    add(R[0], R[1], P3H, P3L);
    hh = R[0];
    hl = R[1];
    i += 4;
  }
  while (i < len) {
    mul(0, data[i], P5H, P5L);
    rotl((hh ^ R[0]) >>> 0, (hl ^ R[1]) >>> 0, 11);
    mul(R[0], R[1], P1H, P1L);
    hh = R[0];
    hl = R[1];
    i++;
  }
  // avalanche
  hl = (hl ^ (hh >>> 1)) >>> 0; // h ^= h >> 33
  mul(hh, hl, P2H, P2L);
  // h ^= h >> 29
  hl = (R[1] ^ ((R[1] >>> 29) | (R[0] << 3))) >>> 0;
  hh = (R[0] ^ (R[0] >>> 29)) >>> 0;
  mul(hh, hl, P3H, P3L);
  hh = R[0];
  hl = (R[1] ^ R[0]) >>> 0; // h ^= h >> 32
  out[0] = hh;
  out[1] = hl;
}
