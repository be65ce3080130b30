import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CborWriter, encodeCanonical, type CborValue } from '../../../src/kvindex/keys/cbor.js';
import { fnv1a64, toBigInt, u64Out } from '../../../src/kvindex/keys/hash-fast.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const enc = (v: CborValue): string => hex(encodeCanonical(v));

describe('canonical CBOR: unsigned integers at every width boundary', () => {
  test.each<[number | bigint, string]>([
    [0, '00'],
    [1, '01'],
    [23, '17'],
    [24, '1818'],
    [255, '18ff'],
    [256, '190100'],
    [65535, '19ffff'],
    [65536, '1a00010000'],
    [2 ** 32 - 1, '1affffffff'],
    [2 ** 32, '1b0000000100000000'],
    [Number.MAX_SAFE_INTEGER, '1b001fffffffffffff'],
    [0n, '00'],
    [23n, '17'],
    [24n, '1818'],
    [255n, '18ff'],
    [256n, '190100'],
    [65535n, '19ffff'],
    [65536n, '1a00010000'],
    [2n ** 32n - 1n, '1affffffff'],
    [2n ** 32n, '1b0000000100000000'],
    [2n ** 64n - 1n, '1bffffffffffffffff'],
    [0xa74ffcc4f31c1780n, '1ba74ffcc4f31c1780'],
  ])('%p → %s', (v, want) => {
    expect(enc(v)).toBe(want);
  });
});

describe('canonical CBOR: negative integers (major type 1, -1-n)', () => {
  test.each<[number | bigint, string]>([
    [-1, '20'],
    [-6, '25'],
    [-24, '37'],
    [-25, '3818'],
    [-256, '38ff'],
    [-257, '390100'],
    [-65536, '39ffff'],
    [-65537, '3a00010000'],
    [-(2 ** 32), '3affffffff'],
    [-(2 ** 32) - 1, '3b0000000100000000'],
    [-(2n ** 64n), '3bffffffffffffffff'],
  ])('%p → %s', (v, want) => {
    expect(enc(v)).toBe(want);
  });
});

describe('canonical CBOR: strings, bytes, null, arrays', () => {
  test('text strings: length heads and UTF-8', () => {
    expect(enc('')).toBe('60');
    expect(enc('42')).toBe('623432');
    expect(enc('a'.repeat(23))).toBe(`77${'61'.repeat(23)}`);
    expect(enc('a'.repeat(24))).toBe(`7818${'61'.repeat(24)}`);
    expect(enc('a'.repeat(256))).toBe(`790100${'61'.repeat(256)}`);
    expect(enc('é€')).toBe('65c3a9e282ac');
    expect(enc('😀')).toBe('64f09f9880');
  });

  test('byte strings: major type 2, never a typed-array tag', () => {
    expect(enc(new Uint8Array())).toBe('40');
    expect(enc(new Uint8Array([1, 2, 3]))).toBe('43010203');
    expect(enc(new Uint8Array(32).fill(0xab))).toBe(`5820${'ab'.repeat(32)}`);
    expect(enc(new Uint8Array(256))).toBe(`590100${'00'.repeat(256)}`);
    expect(enc(Buffer.from('ff', 'hex'))).toBe('41ff');
    // A subarray view encodes only its own bytes.
    expect(enc(new Uint8Array([9, 8, 7, 6]).subarray(1, 3))).toBe('420807');
  });

  test('null and nested definite-length arrays', () => {
    expect(enc(null)).toBe('f6');
    expect(enc([])).toBe('80');
    expect(enc([1, [2, [3, null]], 'x'])).toBe('8301820282 03f6 6178'.replace(/ /g, ''));
    expect(enc(Array.from({ length: 23 }, () => 0))).toBe(`97${'00'.repeat(23)}`);
    expect(enc(Array.from({ length: 24 }, () => 0))).toBe(`9818${'00'.repeat(24)}`);
    expect(enc(Array.from({ length: 256 }, () => 1))).toBe(`990100${'01'.repeat(256)}`);
    expect(enc(['sql-lora', ['f00dfeed', -6], 'tenant-a'])).toBe('836873716c2d6c6f726182686630306466656564256874656e616e742d61');
  });

  test('uintArray writes the same bytes as a generic array of the slice', () => {
    const vals = [0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 7];
    const w = new CborWriter(4); // small initial buffer: exercises growth
    w.uintArray(vals, 1, 8);
    expect(hex(w.view())).toBe(enc(vals.slice(1, 8)));
  });

  test('uint64BE: a u64 given as 8 big-endian bytes encodes like the bigint, at any offset', () => {
    for (const v of [0n, 1n, 23n, 24n, 255n, 256n, 65535n, 65536n, 2n ** 32n - 1n, 2n ** 32n, 0xa74ffcc4f31c1780n, 2n ** 64n - 1n]) {
      const b = Buffer.alloc(11);
      b.writeBigUInt64BE(v, 3);
      expect(hex(new CborWriter().uint64BE(b, 3).view())).toBe(enc(v));
    }
  });

  test('the writer is reusable after reset, and toBytes is a stable copy', () => {
    const w = new CborWriter();
    const a = w.array(2).uint(1).text('a').toBytes();
    w.reset().null();
    expect(hex(a)).toBe('820161 61'.replace(/ /g, ''));
    expect(hex(w.view())).toBe('f6');
    expect(w.length).toBe(1);
  });

  test('a buffer that grows keeps what was written before', () => {
    const w = new CborWriter(16);
    w.array(3).bytes(new Uint8Array(32).fill(1)).text('x'.repeat(300)).null();
    expect(hex(w.view())).toBe(enc([new Uint8Array(32).fill(1), 'x'.repeat(300), null]));
  });
});

describe('canonical CBOR: rejected values name the value and the fix', () => {
  test.each<[unknown, RegExp]>([
    [1.5, /1\.5 is not a safe integer.*bigint/],
    [Number.NaN, /NaN is not a safe integer/],
    [2 ** 53, /9007199254740992 is not a safe integer; pass a bigint/],
    [2n ** 64n, /18446744073709551616 is outside \[-2\^64, 2\^64\)/],
    [-(2n ** 64n) - 1n, /is outside \[-2\^64, 2\^64\)/],
    [{ a: 1 }, /cannot CBOR-encode \[object Object\]; supported: integer, bigint, string, Uint8Array, null, array/],
    [true, /cannot CBOR-encode \[object Boolean\]/],
    [undefined, /cannot CBOR-encode \[object Undefined\]/],
  ])('%p', (v, msg) => {
    expect(() => encodeCanonical(v as CborValue)).toThrow(msg);
  });
});

describe('vLLM vectors: every sha256_cbor preimage, byte for byte', () => {
  interface Block {
    index: number;
    token_range: [number, number];
    extra_keys: CborValue;
    parent_hex: string;
    cbor_preimage_hex: string;
    digest_hex: string;
  }
  interface Case {
    name: string;
    PYTHONHASHSEED: string;
    tokens: number[];
    sha256_cbor: { none_hash_preimage_cbor_hex: string; none_hash_hex: string; blocks: Block[] };
    block_size: number;
    sha256_cbor_64bit_legacy?: { none_hash: { dec: string }; blocks: { index: number; cbor_preimage_hex: string; hash_u64: { dec: string } }[] };
  }
  const vectors = JSON.parse(readFileSync(new URL('../../data/vllm-vectors.json', import.meta.url), 'utf8')) as { cases: Case[] };

  test('the file has cases with blocks', () => {
    expect(vectors.cases.length).toBeGreaterThanOrEqual(4);
  });

  describe.each(vectors.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    test('NONE_HASH preimage is CBOR text of PYTHONHASHSEED', () => {
      expect(enc(c.PYTHONHASHSEED)).toBe(c.sha256_cbor.none_hash_preimage_cbor_hex);
    });

    test.each(c.sha256_cbor.blocks.map((b) => [b.index, b] as const))('block %i', (_i, b) => {
      const [s, e] = b.token_range;
      const pre = encodeCanonical([Buffer.from(b.parent_hex, 'hex'), c.tokens.slice(s, e), b.extra_keys]);
      expect(hex(pre)).toBe(b.cbor_preimage_hex);
      expect(createHash('sha256').update(pre).digest('hex')).toBe(b.digest_hex);
    });

    const legacy = c.sha256_cbor_64bit_legacy;
    if (legacy !== undefined) {
      test('sha256_cbor_64bit preimages: u64 parent as a shortest-form uint', () => {
        let parent = BigInt(legacy.none_hash.dec);
        for (const b of legacy.blocks) {
          const pre = encodeCanonical([parent, c.tokens.slice(b.index * c.block_size, (b.index + 1) * c.block_size), null]);
          expect(hex(pre)).toBe(b.cbor_preimage_hex);
          parent = createHash('sha256').update(pre).digest().readBigUInt64BE(24);
          expect(parent.toString()).toBe(b.hash_u64.dec);
        }
      });
    }
  });
});

describe('cross-check with llm-d (Go, fxamacker canonical CBOR + FNV-1a-64)', () => {
  // llm-d's request-key root = FNV(CBOR [FNV(seed bytes), null, model]),
  // key = FNV(CBOR [root, tokens, null]); golden request key from llm-d's e2e test.
  const fnv = (b: Uint8Array): bigint => {
    const o = u64Out();
    fnv1a64(b, b.length, o);
    return toBigInt(o);
  };

  test('byte example [FNV(""), null, "m"]', () => {
    expect(enc([fnv(new Uint8Array()), null, 'm'])).toBe('831bcbf29ce484222325f6616d');
  });

  test('granite golden key 1334984470577408192', () => {
    const seedHash = fnv(new TextEncoder().encode(''));
    const root = fnv(encodeCanonical([seedHash, null, 'ibm-granite/granite-3.1-8b-instruct']));
    expect(root).toBe(2648472209273074206n);
    expect(fnv(encodeCanonical([root, [8197, 438, 322, 18926], null]))).toBe(1334984470577408192n);
  });
});
