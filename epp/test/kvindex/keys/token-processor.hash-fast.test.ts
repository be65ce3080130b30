/** The 64-bit limb hashes behind the `fast` mode (and the benchmarked alternative) against their specs. */
import { fnv1a64, toBigInt, u64Out, xxh64 } from '../../../src/kvindex/keys/hash-fast.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const out = u64Out();
const fnv = (b: Uint8Array): bigint => {
  fnv1a64(b, b.length, out);
  return toBigInt(out);
};
const xx = (b: Uint8Array, seed = 0n): bigint => {
  xxh64(b, b.length, out, Number(seed >> 32n), Number(seed & 0xffffffffn));
  return toBigInt(out);
};

// Straightforward bigint versions of both specs, to compare with the limb code on random input.
const M = (1n << 64n) - 1n;
function fnvRef(d: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of d) h = ((h ^ BigInt(b)) * 0x100000001b3n) & M;
  return h;
}
const P1 = 0x9e3779b185ebca87n, P2 = 0xc2b2ae3d27d4eb4fn, P3 = 0x165667b19e3779f9n, P4 = 0x85ebca77c2b2ae63n, P5 = 0x27d4eb2f165667c5n;
const rotl = (x: bigint, r: bigint): bigint => ((x << r) | (x >> (64n - r))) & M;
const rd = (d: Uint8Array, i: number, n: number): bigint => {
  let v = 0n;
  for (let k = n - 1; k >= 0; k--) v = (v << 8n) | BigInt(d[i + k]);
  return v;
};
const rnd = (a: bigint, x: bigint): bigint => (rotl((a + x * P2) & M, 31n) * P1) & M;
function xxRef(d: Uint8Array, seed: bigint): bigint {
  let i = 0;
  let h: bigint;
  const n = d.length;
  if (n >= 32) {
    let v1 = (seed + P1 + P2) & M, v2 = (seed + P2) & M, v3 = seed, v4 = (seed - P1) & M;
    for (; i + 32 <= n; i += 32) {
      v1 = rnd(v1, rd(d, i, 8));
      v2 = rnd(v2, rd(d, i + 8, 8));
      v3 = rnd(v3, rd(d, i + 16, 8));
      v4 = rnd(v4, rd(d, i + 24, 8));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M;
    for (const v of [v1, v2, v3, v4]) h = ((h ^ rnd(0n, v)) * P1 + P4) & M;
  } else {
    h = (seed + P5) & M;
  }
  h = (h + BigInt(n)) & M;
  for (; i + 8 <= n; i += 8) h = (rotl(h ^ rnd(0n, rd(d, i, 8)), 27n) * P1 + P4) & M;
  if (i + 4 <= n) {
    h = (rotl(h ^ ((rd(d, i, 4) * P1) & M), 23n) * P2 + P3) & M;
    i += 4;
  }
  for (; i < n; i++) h = (rotl(h ^ ((BigInt(d[i]) * P5) & M), 11n) * P1) & M;
  h ^= h >> 33n;
  h = (h * P2) & M;
  h ^= h >> 29n;
  h = (h * P3) & M;
  return h ^ (h >> 32n);
}

describe('FNV-1a-64', () => {
  test('published vectors', () => {
    expect(fnv(utf8(''))).toBe(0xcbf29ce484222325n);
    expect(fnv(utf8('a'))).toBe(0xaf63dc4c8601ec8cn);
    expect(fnv(utf8('foobar'))).toBe(0x85944171f73967e8n);
    // llm-d's request-key root: seedHash("42")
    expect(fnv(utf8('42'))).toBe(571532774284038691n);
  });

  test('matches the bigint definition on random inputs of every length 0..200', () => {
    let s = 12345;
    for (let n = 0; n <= 200; n++) {
      const d = new Uint8Array(n);
      for (let i = 0; i < n; i++) d[i] = (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24;
      expect(fnv(d)).toBe(fnvRef(d));
    }
  });

  test('hashes only the first len bytes', () => {
    const d = utf8('abcdef');
    fnv1a64(d, 3, out);
    expect(toBigInt(out)).toBe(fnv(utf8('abc')));
  });
});

describe('XXH64', () => {
  test('published vectors', () => {
    expect(xx(utf8(''))).toBe(0xef46db3751d8e999n);
    expect(xx(utf8('abc'))).toBe(0x44bc2cf5ad770999n);
    expect(xx(utf8('xxhash'))).toBe(0x32dd38952c4bc720n);
    expect(xx(utf8('Nobody inspects the spammish repetition'))).toBe(0xfbcea83c8a378bf1n);
    // xxh64("42"), derived independently
    expect(xx(utf8('42'))).toBe(7919287270473417401n);
  });

  test('matches the bigint definition on random inputs and seeds, lengths 0..150', () => {
    let s = 777;
    const next = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
    for (let n = 0; n <= 150; n++) {
      const d = new Uint8Array(n);
      for (let i = 0; i < n; i++) d[i] = next() >>> 24;
      const seed = n % 3 === 0 ? 0n : (BigInt(next()) << 32n) | BigInt(next());
      expect(xx(d, seed)).toBe(xxRef(d, seed));
    }
  });
});
