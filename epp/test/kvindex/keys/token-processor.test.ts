import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { encodeCanonical, type CborValue } from '../../../src/kvindex/keys/cbor.js';
import { fnv1a64, toBigInt, u64Out } from '../../../src/kvindex/keys/hash-fast.js';
import { createTokenProcessor, KEY_ALGOS, noneHash, TokenProcessorError } from '../../../src/kvindex/keys/token-processor.js';
import { rawKeyProcessor } from '../../../src/kvindex/keys/token-processor.js';
import type { BlockExtraKeys, BlockKey, ChainState, KeyAlgo, TokenProcessor } from '../../../src/kvindex/types.js';

// ---------------------------------------------------------------------------------------------
// The vLLM vectors (copied from the research share): every chain, bit for bit.
// ---------------------------------------------------------------------------------------------

interface U64 {
  dec: string;
  hex: string;
}
interface CborBlock {
  index: number;
  token_range: [number, number];
  parent_hex: string;
  digest_hex: string;
  event_u64: U64;
}
interface VectorCase {
  name: string;
  block_size: number;
  PYTHONHASHSEED: string;
  num_tokens: number;
  num_full_blocks: number;
  unhashed_tail_tokens: number;
  tokens: number[];
  extra_keys_spec: { lora_name?: string; cache_salt?: string; mm_items?: [string, number, number][] } | null;
  sha256_cbor: { none_hash_hex: string; blocks: CborBlock[] };
  sha256_cbor_64bit_legacy?: { none_hash: U64; blocks: { index: number; hash_u64: U64 }[] };
}

const vectors = JSON.parse(readFileSync(new URL('../../data/vllm-vectors.json', import.meta.url), 'utf8')) as { cases: VectorCase[] };

function extraOf(c: VectorCase, shift = 0): BlockExtraKeys | undefined {
  const s = c.extra_keys_spec;
  if (s === null) return undefined;
  return {
    ...(s.lora_name !== undefined ? { loraName: s.lora_name } : {}),
    ...(s.cache_salt !== undefined ? { cacheSalt: s.cache_salt } : {}),
    ...(s.mm_items !== undefined ? { mmInputs: s.mm_items.map(([identifier, offset, length]) => ({ identifier, offset: offset - shift, length })) } : {}),
  };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('vLLM vectors', () => {
  test('the file holds the four documented cases', () => {
    expect(vectors.cases.map((c) => c.name)).toEqual(
      expect.arrayContaining(['range_0_40__bs16__seed42', 'pseudo_random_100__bs16__seed42', 'range_0_40__bs16__seed0', 'extra_keys_lora_mm_salt__bs16__seed42']),
    );
  });

  describe.each(vectors.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const tp = createTokenProcessor({ algo: 'sha256_cbor', blockSize: c.block_size, hashSeed: c.PYTHONHASHSEED });

    test('NONE_HASH = sha256(CBOR text(PYTHONHASHSEED))', () => {
      expect(hex(noneHash(c.PYTHONHASHSEED))).toBe(c.sha256_cbor.none_hash_hex);
    });

    test('sha256_cbor: every event value, hashing the whole prompt at once', () => {
      expect(c.tokens).toHaveLength(c.num_tokens);
      const keys = tp.blockKeys(c.tokens, extraOf(c));
      expect(keys).toHaveLength(c.num_full_blocks);
      expect(keys.map(String)).toEqual(c.sha256_cbor.blocks.map((b) => b.event_u64.dec));
      expect(keys.map((k) => k.toString(16).padStart(16, '0'))).toEqual(c.sha256_cbor.blocks.map((b) => b.event_u64.hex));
      for (const k of keys) expect(typeof k).toBe('bigint');
    });

    test('sha256_cbor: every full 32-byte digest, walking the chain block by block', () => {
      let state: ChainState | undefined;
      for (const b of c.sha256_cbor.blocks) {
        const [s, e] = b.token_range;
        expect(state === undefined ? c.sha256_cbor.none_hash_hex : hex(state.parent)).toBe(b.parent_hex);
        // Continuing a chain: offsets are relative to the first token passed.
        const { keys, last } = tp.blockChain(c.tokens.slice(s, e), extraOf(c, s), state);
        expect(keys.map(String)).toEqual([b.event_u64.dec]);
        expect(hex(last.parent)).toBe(b.digest_hex);
        expect(last.algo).toBe('sha256_cbor');
        state = last;
      }
    });

    const legacy = c.sha256_cbor_64bit_legacy;
    if (legacy !== undefined) {
      const tp64 = createTokenProcessor({ algo: 'sha256_cbor_64bit', blockSize: c.block_size, hashSeed: c.PYTHONHASHSEED });
      test('sha256_cbor_64bit: the legacy integer chain', () => {
        expect(tp64.blockKeys(c.tokens).map(String)).toEqual(legacy.blocks.map((b) => b.hash_u64.dec));
      });
      test('sha256_cbor_64bit: chainFromKey(NONE_HASH) and per-block chainFromKey reproduce it', () => {
        expect(tp64.blockKeys(c.tokens, undefined, tp64.chainFromKey(BigInt(legacy.none_hash.dec))).map(String)).toEqual(
          legacy.blocks.map((b) => b.hash_u64.dec),
        );
        let prev = BigInt(legacy.none_hash.dec);
        for (const b of legacy.blocks) {
          const s = b.index * c.block_size;
          const [k] = tp64.blockKeys(c.tokens.slice(s, s + c.block_size), undefined, tp64.chainFromKey(prev));
          expect(k.toString()).toBe(b.hash_u64.dec);
          prev = k;
        }
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Properties, for every mode.
// ---------------------------------------------------------------------------------------------

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    s ^= s >>> 13;
    return s >>> 0;
  };
}

function randomTokens(n: number, seed: number, vocab = 151936): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => r() % vocab);
}

const procs = (bs: number): TokenProcessor[] => KEY_ALGOS.map((algo) => createTokenProcessor({ algo, blockSize: bs, hashSeed: '42', model: 'm' }));

describe.each(KEY_ALGOS.map((a) => [a]))('%s properties', (algo: KeyAlgo) => {
  const bs = 16;
  const tp = createTokenProcessor({ algo, blockSize: bs, hashSeed: '42', model: 'm' });
  const tokens = randomTokens(16 * 9, 7);

  test('a trailing partial block is never hashed, and fewer tokens than a block give no key', () => {
    const full = tp.blockKeys(tokens.slice(0, 16 * 5));
    expect(full).toHaveLength(5);
    for (let r = 1; r < bs; r++) expect(tp.blockKeys(tokens.slice(0, 16 * 5 + r))).toEqual(full);
    expect(tp.blockKeys(tokens.slice(0, bs - 1))).toEqual([]);
    expect(tp.blockKeys([])).toEqual([]);
  });

  test('keys are distinct u64 bigints and a prefix has the prefix of the keys', () => {
    const all = tp.blockKeys(tokens);
    expect(all).toHaveLength(9);
    expect(new Set(all).size).toBe(9);
    for (const k of all) {
      expect(typeof k).toBe('bigint');
      expect(k >= 0n && k < 2n ** 64n).toBe(true);
    }
    expect(tp.blockKeys(tokens.slice(0, 48))).toEqual(all.slice(0, 3));
  });

  test('deterministic, and a new processor with the same options gives the same keys', () => {
    const again = createTokenProcessor({ algo, blockSize: bs, hashSeed: '42', model: 'm' });
    expect(again.blockKeys(tokens)).toEqual(tp.blockKeys(tokens));
    expect(tp.blockKeys(tokens)).toEqual(tp.blockKeys(tokens));
  });

  test('number[] and Uint32Array give the same keys', () => {
    expect(tp.blockKeys(Uint32Array.from(tokens))).toEqual(tp.blockKeys(tokens));
  });

  test('one changed token changes its block and every later one, never an earlier one', () => {
    const base = tp.blockKeys(tokens);
    const t2 = [...tokens];
    t2[16 * 4 + 3] ^= 1;
    const changed = tp.blockKeys(t2);
    expect(changed.slice(0, 4)).toEqual(base.slice(0, 4));
    for (let i = 4; i < 9; i++) expect(changed[i]).not.toBe(base[i]);
  });

  test('the seed changes every key', () => {
    const other = createTokenProcessor({ algo, blockSize: bs, hashSeed: '0', model: 'm' });
    const a = tp.blockKeys(tokens);
    const b = other.blockKeys(tokens);
    for (let i = 0; i < a.length; i++) expect(b[i]).not.toBe(a[i]);
  });

  test('blockChain(a).last continues into b exactly like hashing a‖b at once', () => {
    const lora: BlockExtraKeys = algo === 'sha256_cbor_64bit' ? { loraId: 1 } : { loraName: 'sql-lora' };
    const extra = (shift: number): BlockExtraKeys => ({ ...lora, cacheSalt: 'salt', mmInputs: [{ identifier: 'img', offset: 40 - shift, length: 50 }] });
    for (const split of [0, 1, 4, 8, 9]) {
      const all = tp.blockKeys(tokens, extra(0));
      const first = tp.blockChain(tokens.slice(0, split * bs), extra(0));
      expect(first.keys).toEqual(all.slice(0, split));
      // The continuation's offsets are relative to its first token; the salt belongs to block 0.
      const rest = tp.blockKeys(tokens.slice(split * bs), extra(split * bs), split === 0 ? undefined : first.last);
      expect([...first.keys, ...rest]).toEqual(all);
    }
  });

  test('chain states are copies: mutating one does not change later keys', () => {
    const before = tp.blockKeys(tokens);
    const root = tp.blockChain([]).last;
    root.parent.fill(0xee);
    const mid = tp.blockChain(tokens.slice(0, 32)).last;
    mid.parent.fill(0xee);
    expect(tp.blockKeys(tokens)).toEqual(before);
    expect(hex(tp.blockChain([]).last.parent)).not.toBe('ee'.repeat(root.parent.length));
  });

  test('blockChain of no full block returns the state it started from', () => {
    const st = tp.blockChain(tokens.slice(0, 32)).last;
    const again = tp.blockChain(tokens.slice(32, 40), undefined, st);
    expect(again.keys).toEqual([]);
    expect(hex(again.last.parent)).toBe(hex(st.parent));
  });

  test('chainFromKey: continues a 64-bit chain from a key alone; undefined for sha256_cbor', () => {
    const all = tp.blockKeys(tokens);
    const st = tp.chainFromKey(all[3]);
    const restorable = algo !== 'sha256_cbor';
    expect(st !== undefined).toBe(restorable);
    const cont = st === undefined ? undefined : tp.blockKeys(tokens.slice(4 * bs), undefined, st);
    expect(cont).toEqual(restorable ? all.slice(4) : undefined);
    // The key is also what blockChain reports as the chain position.
    const pos = hex(tp.blockChain(tokens.slice(0, 4 * bs)).last.parent);
    expect(st === undefined ? undefined : hex(st.parent)).toBe(restorable ? pos : undefined);
  });

  /** Blocks whose preimage carries an extra key: key differs from the same block hashed with no extra keys on the same parent. */
  function blocksWithExtra(extra: BlockExtraKeys, toks = tokens): number[] {
    const keys = tp.blockKeys(toks, extra);
    const out: number[] = [];
    for (let k = 0; k < keys.length; k++) {
      const state = k === 0 ? undefined : tp.blockChain(toks.slice(0, k * bs), extra).last;
      const [plain] = tp.blockKeys(toks.slice(k * bs, (k + 1) * bs), undefined, state);
      if (plain !== keys[k]) out.push(k);
    }
    return out;
  }

  test('LoRA keys every block', () => {
    const every = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    expect(blocksWithExtra({ loraId: 3 })).toEqual(every);
    const byName = (name: string): number[] | 'rejected' => {
      try {
        return blocksWithExtra({ loraName: name });
      } catch {
        return 'rejected';
      }
    };
    // sha256_cbor_64bit needs lora_int_id (tested under errors); a LoRA with an empty name is still a LoRA.
    const want = algo === 'sha256_cbor_64bit' ? 'rejected' : every;
    expect(byName('sql-lora')).toEqual(want);
    expect(byName('')).toEqual(want);
  });

  test('cache_salt keys block 0 only; an empty salt keys nothing (Python truthiness)', () => {
    expect(blocksWithExtra({ cacheSalt: 'tenant-a' })).toEqual([0]);
    expect(blocksWithExtra({ cacheSalt: '' })).toEqual([]);
    expect(tp.blockKeys(tokens, { cacheSalt: '' })).toEqual(tp.blockKeys(tokens));
  });

  test('a multimodal item keys exactly the blocks its placeholder tokens overlap', () => {
    const mm = (offset: number, length: number): BlockExtraKeys => ({ mmInputs: [{ identifier: 'f00dfeed', offset, length }] });
    expect(blocksWithExtra(mm(20, 20))).toEqual([1, 2]); // [20,40)
    expect(blocksWithExtra(mm(32, 16))).toEqual([2]); // exactly block 2: neither neighbour
    expect(blocksWithExtra(mm(31, 2))).toEqual([1, 2]);
    expect(blocksWithExtra(mm(0, 1))).toEqual([0]);
    expect(blocksWithExtra(mm(143, 1))).toEqual([8]);
    expect(blocksWithExtra(mm(144, 10))).toEqual([]); // only in the unhashed region
    expect(blocksWithExtra({ mmInputs: [{ identifier: 'a', offset: 5, length: 3 }, { identifier: 'b', offset: 70, length: 40 }] })).toEqual([0, 4, 5, 6]);
  });

  test('the identifier and the offset within the block both matter', () => {
    const a = tp.blockKeys(tokens, { mmInputs: [{ identifier: 'x', offset: 20, length: 4 }] });
    expect(tp.blockKeys(tokens, { mmInputs: [{ identifier: 'y', offset: 20, length: 4 }] })[1]).not.toBe(a[1]);
    const moved = tp.blockKeys(tokens, { mmInputs: [{ identifier: 'x', offset: 21, length: 3 }] })[1];
    // vLLM 0.10 (sha256_cbor_64bit) hashed the identifier only; later versions add the offset.
    expect(moved === a[1]).toBe(algo === 'sha256_cbor_64bit');
  });

  test('multimodal items given out of order are keyed in placeholder order', () => {
    const items = [
      { identifier: 'b', offset: 8, length: 20 },
      { identifier: 'a', offset: 2, length: 3 },
    ];
    expect(tp.blockKeys(tokens, { mmInputs: items })).toEqual(tp.blockKeys(tokens, { mmInputs: [items[1], items[0]] }));
  });

  test('inputs are not mutated', () => {
    const items = [
      { identifier: 'b', offset: 8, length: 20 },
      { identifier: 'a', offset: 2, length: 3 },
    ];
    const copy = JSON.stringify(items);
    const toks = [...tokens];
    tp.blockKeys(toks, { mmInputs: items, loraName: 'l', loraId: 1 });
    expect(JSON.stringify(items)).toBe(copy);
    expect(toks).toEqual(tokens);
  });

  test('the extreme token ids 0 and 2^32-1 are accepted', () => {
    const keys = tp.blockKeys([...Array(8).fill(0), ...Array(8).fill(0xffffffff)]);
    expect(keys).toHaveLength(1);
  });

  test('block sizes 1, 2 and 256 chunk as expected', () => {
    for (const size of [1, 2, 256]) {
      const p = createTokenProcessor({ algo, blockSize: size, hashSeed: '42' });
      expect(p.blockSize).toBe(size);
      expect(p.algo).toBe(algo);
      expect(p.blockKeys(randomTokens(513, 3))).toHaveLength(Math.floor(513 / size));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Exact preimage shapes beyond the vectors (reference: the spec formula, built with the encoder).
// ---------------------------------------------------------------------------------------------

const low64 = (b: Uint8Array): bigint => createHash('sha256').update(b).digest().readBigUInt64BE(24);
const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

describe('exact extra-key shapes', () => {
  const toks = randomTokens(40, 99);

  test('sha256_cbor: [lora, [id, off-start] in placeholder order, salt] per block', () => {
    const tp = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '7' });
    const extra: BlockExtraKeys = {
      loraName: 'L',
      cacheSalt: 'S',
      mmInputs: [
        { identifier: 'B', offset: 8, length: 20 },
        { identifier: 'A', offset: 2, length: 3 },
      ],
    };
    const root = noneHash('7');
    const want: bigint[] = [];
    const e0: CborValue = ['L', ['A', 2], ['B', 8], 'S'];
    const d0 = sha(encodeCanonical([root, toks.slice(0, 16), e0]));
    want.push(d0.readBigUInt64BE(24));
    const e1: CborValue = ['L', ['B', -8]];
    const d1 = sha(encodeCanonical([d0, toks.slice(16, 32), e1]));
    want.push(d1.readBigUInt64BE(24));
    expect(tp.blockKeys(toks, extra)).toEqual(want);
  });

  test('sha256_cbor: loraId stands in for the LoRA key when no name is given (vLLM < 0.11.1)', () => {
    const tp = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '7' });
    expect(tp.blockKeys(toks.slice(0, 16), { loraId: 5 })).toEqual([low64(encodeCanonical([noneHash('7'), toks.slice(0, 16), [5]]))]);
    // The name wins when both are set.
    expect(tp.blockKeys(toks.slice(0, 16), { loraId: 5, loraName: 'n' })).toEqual([low64(encodeCanonical([noneHash('7'), toks.slice(0, 16), ['n']]))]);
  });

  test('sha256_cbor_64bit: LoRA as lora_int_id, multimodal identifier only, salt on block 0', () => {
    const tp = createTokenProcessor({ algo: 'sha256_cbor_64bit', blockSize: 16, hashSeed: '7' });
    const root = low64(encodeCanonical('7'));
    const k0 = low64(encodeCanonical([root, toks.slice(0, 16), [3, 'img', 'salt']]));
    const k1 = low64(encodeCanonical([k0, toks.slice(16, 32), [3, 'img']]));
    expect(tp.blockKeys(toks, { loraId: 3, cacheSalt: 'salt', mmInputs: [{ identifier: 'img', offset: 10, length: 10 }] })).toEqual([k0, k1]);
  });

  test('sha256_cbor_64bit: a zero parent is replaced by NONE_HASH, as Python does for a falsy parent', () => {
    const tp = createTokenProcessor({ algo: 'sha256_cbor_64bit', blockSize: 16, hashSeed: '42' });
    expect(tp.blockKeys(toks, undefined, tp.chainFromKey(0n))).toEqual(tp.blockKeys(toks));
  });

  test('fast: the documented layout (FNV-1a-64 over parent LE, tokens LE, extra digest LE)', () => {
    const fnv = (b: Uint8Array): bigint => {
      const o = u64Out();
      fnv1a64(b, b.length, o);
      return toBigInt(o);
    };
    const le64 = (v: bigint): Buffer => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(v);
      return b;
    };
    const le32s = (ts: number[]): Buffer => Buffer.concat(ts.map((t) => { const b = Buffer.alloc(4); b.writeUInt32LE(t); return b; }));
    const root = fnv(encodeCanonical(['kvroute-fast-v1', 's', 'model-x']));
    const k0 = fnv(Buffer.concat([le64(root), le32s(toks.slice(0, 16)), le64(fnv(encodeCanonical(['lo', 'salt'])))]));
    const k1 = fnv(Buffer.concat([le64(k0), le32s(toks.slice(16, 32)), le64(fnv(encodeCanonical(['lo'])))]));
    const tp = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: 's', model: 'model-x' });
    expect(tp.blockKeys(toks, { loraName: 'lo', cacheSalt: 'salt' })).toEqual([k0, k1]);
    const rootNoModel = fnv(encodeCanonical(['kvroute-fast-v1', 's', null]));
    const plain = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: 's' });
    expect(plain.blockKeys(toks.slice(0, 16))).toEqual([fnv(Buffer.concat([le64(rootNoModel), le32s(toks.slice(0, 16))]))]);
  });

  test('fast: the model separates keys (default: no model), and fast keys are not vLLM keys', () => {
    const a = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: '42', model: 'a' }).blockKeys(toks);
    const b = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: '42', model: 'b' }).blockKeys(toks);
    const none = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: '42' }).blockKeys(toks);
    const empty = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: '42', model: '' }).blockKeys(toks);
    expect(new Set([a[0], b[0], none[0], empty[0]]).size).toBe(4);
    expect(createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '42' }).blockKeys(toks)).not.toEqual(none);
  });

  test('vLLM modes ignore the model option (vLLM hashes do not include it)', () => {
    for (const algo of ['sha256_cbor', 'sha256_cbor_64bit'] as const) {
      expect(createTokenProcessor({ algo, blockSize: 16, hashSeed: '42', model: 'a' }).blockKeys(toks)).toEqual(
        createTokenProcessor({ algo, blockSize: 16, hashSeed: '42' }).blockKeys(toks),
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Errors name the field, the value and the fix.
// ---------------------------------------------------------------------------------------------

describe('errors', () => {
  const opts = { algo: 'sha256_cbor' as KeyAlgo, blockSize: 16, hashSeed: '42' };
  const bad = (o: unknown): (() => TokenProcessor) => () => createTokenProcessor(o as Parameters<typeof createTokenProcessor>[0]);

  test.each<[string, unknown, RegExp]>([
    ['algo', { ...opts, algo: 'builtin' }, /^algo: "builtin" is not a key algorithm; use one of sha256_cbor, sha256_cbor_64bit, fast$/],
    ['algo missing', { blockSize: 16, hashSeed: '42' }, /^algo: undefined is not a key algorithm/],
    ['blockSize 0', { ...opts, blockSize: 0 }, /^blockSize: 0 is not a power of two in \[1, 1048576\]; use the block size of the vLLM pods \(vLLM's default is 16\)$/],
    ['blockSize 12', { ...opts, blockSize: 12 }, /^blockSize: 12 is not a power of two/],
    ['blockSize 1.5', { ...opts, blockSize: 1.5 }, /^blockSize: 1\.5 is not/],
    ['blockSize -16', { ...opts, blockSize: -16 }, /^blockSize: -16 is not/],
    ['blockSize "16"', { ...opts, blockSize: '16' }, /^blockSize: "16" is not/],
    ['blockSize 2^21', { ...opts, blockSize: 2 ** 21 }, /^blockSize: 2097152 is not/],
    ['hashSeed number', { ...opts, hashSeed: 42 }, /^hashSeed: 42 is not a string; pass the PYTHONHASHSEED value of the vLLM pods as a string, e\.g\. "42"$/],
    ['model number', { ...opts, model: 5 }, /^model: 5 is not a string/],
    ['options null', null, /^options: null is not an object; pass \{ algo, blockSize, hashSeed \}$/],
  ])('option %s', (_n, o, msg) => {
    expect(bad(o)).toThrow(msg);
    expect(bad(o)).toThrow(TokenProcessorError);
  });

  const tp = createTokenProcessor(opts);
  const ok = Array.from({ length: 20 }, (_, i) => i);

  test.each<[string, unknown, RegExp]>([
    ['negative', -1, /^tokens\[3\]: -1 is not a token id; token ids are integers in \[0, 4294967295\]$/],
    ['fraction', 1.5, /^tokens\[3\]: 1\.5 is not a token id/],
    ['2^32', 2 ** 32, /^tokens\[3\]: 4294967296 is not a token id/],
    ['NaN', Number.NaN, /^tokens\[3\]: NaN is not a token id/],
    ['string', '5', /^tokens\[3\]: "5" is not a token id/],
    ['null', null, /^tokens\[3\]: null is not a token id/],
  ])('token id: %s', (_n, v, msg) => {
    const toks = [...ok] as unknown[];
    toks[3] = v;
    expect(() => tp.blockKeys(toks as number[])).toThrow(msg);
  });

  test('a bad token in the unhashed tail is still reported', () => {
    const toks = [...ok] as unknown[];
    toks[18] = -5;
    expect(() => tp.blockKeys(toks as number[])).toThrow(/^tokens\[18\]: -5 is not a token id/);
  });

  test.each<[string, unknown]>([
    ['null', null],
    ['a number', 5],
  ])('tokens that are %s', (_n, v) => {
    expect(() => tp.blockKeys(v as number[])).toThrow(/^tokens: .* is not an array of token ids; pass number\[\] or Uint32Array$/);
  });

  test.each<[string, unknown, RegExp]>([
    ['loraName', { loraName: 5 }, /^extra\.loraName: 5 is not a string; pass the LoRA adapter name/],
    ['loraId', { loraId: -1 }, /^extra\.loraId: -1 is not a non-negative integer; pass vLLM's lora_int_id$/],
    ['cacheSalt', { cacheSalt: 1 }, /^extra\.cacheSalt: 1 is not a string/],
    ['mmInputs', { mmInputs: 'x' }, /^extra\.mmInputs: "x" is not an array; pass \[\{ identifier, offset, length \}, \.\.\.\]$/],
    ['mm item', { mmInputs: [null] }, /^extra\.mmInputs\[0\]: null is not an object/],
    ['mm identifier', { mmInputs: [{ offset: 0, length: 1 }] }, /^extra\.mmInputs\[0\]\.identifier: undefined is not a string; pass the mm hash/],
    ['mm offset', { mmInputs: [{ identifier: 'a', offset: 0, length: 1 }, { identifier: 'a', offset: 1.5, length: 1 }] }, /^extra\.mmInputs\[1\]\.offset: 1\.5 is not an integer/],
    ['mm length', { mmInputs: [{ identifier: 'a', offset: 0, length: 0 }] }, /^extra\.mmInputs\[0\]\.length: 0 is not a positive integer/],
    ['extra', 'lora', /^extra: "lora" is not an object/],
  ])('extra key %s', (_n, extra, msg) => {
    expect(() => tp.blockKeys(ok, extra as BlockExtraKeys)).toThrow(msg);
  });

  test('sha256_cbor_64bit rejects a LoRA name without its integer id, naming the fix', () => {
    const t64 = createTokenProcessor({ ...opts, algo: 'sha256_cbor_64bit' });
    expect(() => t64.blockKeys(ok, { loraName: 'sql-lora' })).toThrow(
      /^extra\.loraName: "sql-lora" cannot key a sha256_cbor_64bit block: vLLM 0\.10\.0–0\.10\.1 hashed the adapter's integer lora_int_id; pass extra\.loraId \(CLI --lora-id\)$/,
    );
  });

  test('a chain state from another mode, or of the wrong length, is rejected', () => {
    const [s256, s64, fast] = procs(16);
    const st64 = s64.blockChain(ok).last;
    expect(() => s256.blockKeys(ok, undefined, st64)).toThrow(/^parent: chain state \(algo "sha256_cbor_64bit", 8 parent bytes\) does not belong to a sha256_cbor processor \(needs 32 parent bytes\)/);
    expect(() => fast.blockKeys(ok, undefined, st64)).toThrow(/does not belong to a fast processor/);
    expect(() => s64.blockKeys(ok, undefined, { algo: 'sha256_cbor_64bit', parent: new Uint8Array(7) })).toThrow(/7 parent bytes\) does not belong/);
  });

  test.each<[string, unknown]>([
    ['negative', -1n],
    ['2^64', 2n ** 64n],
    ['a number', 5],
  ])('chainFromKey rejects a key that is %s', (_n, k) => {
    for (const p of procs(16)) expect(() => p.chainFromKey(k as BlockKey)).toThrow(/^key: .* is not a u64 block key; pass a bigint in \[0, 2\^64\)$/);
  });
});

// ---------------------------------------------------------------------------------------------
// Randomized: the optimized paths equal the spec formula written naively with the generic encoder.
// ---------------------------------------------------------------------------------------------

describe('randomized against the naive spec formula (vllm-kv-spec.md §1.3–§1.6)', () => {
  interface Mm {
    identifier: string;
    offset: number;
    length: number;
  }

  /** generate_block_hash_extra_keys, literally: lora + overlapping mm (sorted) + salt on block 0. */
  function naiveExtra(algo: KeyAlgo, e: BlockExtraKeys, start: number, end: number): CborValue {
    const keys: CborValue[] = [];
    const lora = algo === 'sha256_cbor_64bit' ? e.loraId : (e.loraName ?? e.loraId);
    if (lora !== undefined) keys.push(lora);
    const items = [...(e.mmInputs ?? [])].sort((a, b) => a.offset - b.offset);
    for (const it of items) {
      if (it.offset < end && it.offset + it.length > start) keys.push(algo === 'sha256_cbor_64bit' ? it.identifier : [it.identifier, it.offset - start]);
    }
    if (start === 0 && e.cacheSalt) keys.push(e.cacheSalt);
    return keys.length > 0 ? keys : null;
  }

  function naiveKeys(algo: 'sha256_cbor' | 'sha256_cbor_64bit', seed: string, bs: number, toks: number[], e: BlockExtraKeys): bigint[] {
    const out: bigint[] = [];
    let parent: Uint8Array | bigint = algo === 'sha256_cbor' ? sha(encodeCanonical(seed)) : low64(encodeCanonical(seed));
    for (let s = 0; s + bs <= toks.length; s += bs) {
      const d = sha(encodeCanonical([parent, toks.slice(s, s + bs), naiveExtra(algo, e, s, s + bs)]));
      out.push(d.readBigUInt64BE(24));
      parent = algo === 'sha256_cbor' ? d : d.readBigUInt64BE(24);
    }
    return out;
  }

  test('200 random prompts, block sizes, seeds, LoRA, salts and multimodal items', () => {
    const r = rng(2026);
    for (let t = 0; t < 200; t++) {
      const bs = 2 ** (r() % 6); // 1..32
      const n = r() % (bs * 6 + 3);
      const toks = Array.from({ length: n }, () => (r() % 4 === 0 ? r() : r() % 70000)); // all CBOR widths
      const mmInputs: Mm[] = [];
      let cursor = r() % 8;
      for (let k = r() % 4; k > 0; k--) {
        const length = 1 + (r() % (bs * 2));
        mmInputs.push({ identifier: `img-${r() % 1000}-é`, offset: cursor, length });
        cursor += length + (r() % 5);
      }
      if (r() % 2 === 0) mmInputs.reverse();
      const e: BlockExtraKeys = {
        ...(r() % 2 === 0 ? { loraName: `lora-${t}` } : {}),
        ...(r() % 2 === 0 ? { loraId: r() % 70000 } : {}),
        ...(r() % 2 === 0 ? { cacheSalt: r() % 5 === 0 ? '' : `salt-${r() % 100}` } : {}),
        ...(mmInputs.length > 0 ? { mmInputs } : {}),
      };
      const seed = String(r() % 100);
      const want = naiveKeys('sha256_cbor', seed, bs, toks, e);
      expect(createTokenProcessor({ algo: 'sha256_cbor', blockSize: bs, hashSeed: seed }).blockKeys(toks, e)).toEqual(want);
      // sha256_cbor_64bit needs the integer LoRA id; give it one when the case has only a name.
      const e64: BlockExtraKeys = e.loraName !== undefined && e.loraId === undefined ? { ...e, loraId: t } : e;
      expect(createTokenProcessor({ algo: 'sha256_cbor_64bit', blockSize: bs, hashSeed: seed }).blockKeys(toks, e64)).toEqual(
        naiveKeys('sha256_cbor_64bit', seed, bs, toks, e64),
      );
    }
  });
});

describe('engineExtraKeys: the per-block extra keys of a BlockStored event, verbatim', () => {
  const c = vectors.cases.find((x) => x.name.startsWith('extra_keys')) as VectorCase;
  const blocks = (c.sha256_cbor.blocks as (CborBlock & { extra_keys: unknown })[]).map((b) => b.extra_keys);

  test('the extra-keys vector reproduces from the event form alone (LoRA, mm with negative offset, salt)', () => {
    const tp = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: c.PYTHONHASHSEED });
    expect(tp.blockKeys(c.tokens, { engineExtraKeys: blocks }).map(String)).toEqual(c.sha256_cbor.blocks.map((b) => b.event_u64.dec));
  });

  test('null entries are blocks without keys; equals deriving the same keys, in every mode', () => {
    const toks = randomTokens(48, 5);
    for (const algo of KEY_ALGOS) {
      const tp = createTokenProcessor({ algo, blockSize: 16, hashSeed: '1', model: 'm' });
      expect(tp.blockKeys(toks, { engineExtraKeys: [null, null, null] })).toEqual(tp.blockKeys(toks));
      expect(tp.blockKeys(toks, { engineExtraKeys: [[7, 'salt'], [7], [7]] })).toEqual(tp.blockKeys(toks, { loraId: 7, cacheSalt: 'salt' }));
    }
  });

  test('bytes (prompt-embeds digests) and bigints are hashed as CBOR bytes and integers', () => {
    const toks = randomTokens(16, 6);
    const digest = new Uint8Array(32).fill(3);
    const tp = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '1' });
    expect(tp.blockKeys(toks, { engineExtraKeys: [[digest, 2n ** 63n]] })).toEqual([
      low64(encodeCanonical([noneHash('1'), toks, [digest, 2n ** 63n]])),
    ]);
  });

  test.each<[string, BlockExtraKeys, RegExp]>([
    ['mixed with derived fields', { engineExtraKeys: [null], loraName: 'x' }, /^extra\.engineExtraKeys: is set together with loraName\/loraId\/cacheSalt\/mmInputs; it replaces them, so pass one or the other$/],
    ['not an array', { engineExtraKeys: 'x' as unknown as unknown[] }, /^extra\.engineExtraKeys: "x" is not an array; pass BlockStored\.extra_keys/],
    ['entry not null or array', { engineExtraKeys: [null, 'x'] }, /^extra\.engineExtraKeys\[1\]: "x" is neither null nor an array; pass the entry of BlockStored\.extra_keys as decoded$/],
    ['float inside', { engineExtraKeys: [[1.5]] }, /^extra\.engineExtraKeys\[0\]: 1\.5 is not an integer/],
    ['object inside', { engineExtraKeys: [[{ a: 1 }]] }, /^extra\.engineExtraKeys\[0\]: \[object Object\] is not a string, integer, bytes, null or array/],
    ['too few entries', { engineExtraKeys: [null] }, /^extra\.engineExtraKeys: has 1 entries for 2 full blocks; pass one entry \(null or an array\) per block$/],
  ])('%s', (_n, extra, msg) => {
    const tp = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '1' });
    expect(() => tp.blockKeys(randomTokens(40, 1), extra)).toThrow(msg);
  });
});

describe('fast: blockKeysInto (the write path without bigints)', () => {
  it.each([1, 4, 16, 64])('equals blockKeys for roots, continuations and offsets (block size %i)', (bs) => {
    const tp = createTokenProcessor({ algo: 'fast', blockSize: bs, hashSeed: '42', model: 'm' });
    const raw = rawKeyProcessor(tp);
    expect(raw).toBeDefined();
    const tokens = Array.from({ length: bs * 9 + 3 }, (_, i) => (i * 2654435761) >>> 0);
    const want = tp.blockKeys(tokens);
    const out = new Uint32Array(2 + 2 * 9);
    raw?.blockKeysInto(Uint32Array.from(tokens), 0, 9, undefined, 0, out, 2);
    const got = Array.from({ length: 9 }, (_, i) => (BigInt(out[2 + 2 * i] as number) << 32n) | BigInt(out[3 + 2 * i] as number));
    expect(got).toEqual(want.slice(0, 9));
    // continue after block 3 from its key, reading tokens at an offset of a plain array
    const parent = want[3] as bigint;
    raw?.blockKeysInto(tokens, 4 * bs, 5, Number(parent >> 32n), Number(parent & 0xffffffffn), out, 0);
    const cont = Array.from({ length: 5 }, (_, i) => (BigInt(out[2 * i] as number) << 32n) | BigInt(out[2 * i + 1] as number));
    expect(cont).toEqual(want.slice(4, 9));
  });

  it('is only offered by the fast processor', () => {
    expect(rawKeyProcessor(createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '42' }))).toBeUndefined();
  });
});
