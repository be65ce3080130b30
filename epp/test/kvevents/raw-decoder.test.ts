/**
 * The fast decoder against the general one: whenever `decodeRawBatch` answers, its events (turned
 * into the general decoder's shape by `materialize`) must equal what `decodeKvEventBatch` decodes
 * from the same bytes, with no problems reported; everything outside its subset must be left to
 * the general decoder (`undefined`).
 */
import { materialize } from '../../src/kvevents/applier.js';
import { decodeKvEventBatch } from '../../src/kvevents/decoder.js';
import { RawBatchDecoder, decodeRawBatch } from '../../src/kvevents/raw-decoder.js';
import type { KvEvent } from '../../src/kvevents/types.js';
import { type EventEncoding, F64, MsgMap, type MsgValue, type PubEvent, type WireHash, encodeBatch, packMsgspec } from '../../testkit/vllm-publisher.js';
import { fixtures, mutatePayload as mutate, prng } from './helpers.js';

type Rnd = () => number;
const int = (r: Rnd, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rnd, xs: readonly T[]): T => xs[int(r, xs.length)] as T;

/** The general decoder's events with an all-null `extraKeys` removed (it means "no extra keys"). */
function general(payload: Uint8Array): { events: KvEvent[]; dpRank: number | undefined; ts: number } | undefined {
  const r = decodeKvEventBatch(payload);
  if (!r.ok || r.problems.length > 0) return undefined;
  const events = r.batch.events.map((e) => {
    if (e.type !== 'BlockStored' || e.extraKeys === undefined || !e.extraKeys.every((k) => k === null)) return e;
    const { extraKeys: _dropped, ...rest } = e;
    return rest;
  });
  return { events, dpRank: r.batch.dpRank, ts: r.batch.ts };
}

function fast(payload: Uint8Array): { events: KvEvent[]; dpRank: number | undefined; ts: number } | undefined {
  const b = decodeRawBatch(payload);
  if (b === undefined) return undefined;
  return { events: b.events.map((e) => materialize(e, b)), dpRank: b.dpRank, ts: b.ts };
}

function stored(over: Partial<PubEvent & { type: 'BlockStored' }> = {}): PubEvent {
  return {
    type: 'BlockStored',
    blockHashes: [0xfedcba9876543210n, 7n],
    parentBlockHash: null,
    tokenIds: Array.from({ length: 32 }, (_, i) => i * 4099),
    blockSize: 16,
    ...over,
  } as PubEvent;
}

describe('decodeRawBatch: the fast subset decodes exactly like decodeKvEventBatch', () => {
  const encodings: EventEncoding[] = ['array', 'map', 'array-v09'];
  const cases: [string, PubEvent[]][] = [
    ['a root BlockStored', [stored()]],
    ['a continuation with a u64 parent', [stored({ parentBlockHash: 0x8000000000000001n })]],
    ['small, 16-bit, 32-bit and 64-bit int hashes', [stored({ blockHashes: [5n, 300n, 70_000n, 5_000_000_000n], tokenIds: Array.from({ length: 64 }, (_, i) => i) })]],
    ['digest-bytes hashes (32 bytes and shorter)', [stored({ blockHashes: [Uint8Array.from({ length: 32 }, (_, i) => i + 1), Uint8Array.from([1, 2, 3])] })]],
    ['token ids of every uint width', [stored({ blockHashes: [1n], tokenIds: [0, 127, 128, 255, 256, 65_535, 65_536, 4_294_967_295, 9, 10, 11, 12, 13, 14, 15, 16] })]],
    ['mediums (CPU lower-cased, nil and empty → gpu)', [stored({ medium: 'CPU' }), stored({ medium: null }), stored({ medium: '' })]],
    ['all-null extra keys, group 0, sliding window and locality skipped', [stored({ extraKeys: [null, null], groupIdx: 0, kvCacheSpecSlidingWindow: 128, locality: 'local' })]],
    ['BlockRemoved and AllBlocksCleared', [{ type: 'BlockRemoved', blockHashes: [3n, 0xffffffffffffffffn], medium: 'CPU' }, { type: 'AllBlocksCleared' }, stored()]],
    ['an empty batch', []],
  ];
  for (const enc of encodings) {
    for (const [name, events] of cases) {
      it(`${enc}: ${name}`, () => {
        const payload = encodeBatch(events, enc, 1_700_000_000.25, 2);
        const want = general(payload);
        expect(want).toBeDefined();
        const got = fast(payload);
        expect(got).toEqual(want);
      });
    }
  }

  it('negative i64 hashes (vLLM builtin hash) become two’s complement u64 as in the general decoder', () => {
    const payload = packMsgspec([new F64(1), [['BlockStored', [-1, -129, -40_000, -3_000_000_000, -(2 ** 40)], null, Array.from({ length: 80 }, (_, i) => i), 16, null, 'GPU']], 0]);
    const got = fast(payload);
    expect(got).toEqual(general(payload));
    const ev = got?.events[0];
    const hashes = ev !== undefined && ev.type === 'BlockStored' ? ev.blockHashes : [];
    expect(hashes[0]).toBe(0xffffffffffffffffn);
    expect(hashes[4]).toBe((1n << 64n) - (1n << 40n));
  });

  it('dp rank absent, nil or set; integer ts', () => {
    for (const batch of [
      [7, [['AllBlocksCleared']]],
      [new F64(2.5), [], null],
      [new F64(2.5), [], 65_535],
    ] as MsgValue[]) {
      const payload = packMsgspec(batch);
      expect(fast(payload)).toEqual(general(payload));
    }
  });

  it('vLLM payload fixtures: equal whenever the fast decoder answers', () => {
    let answered = 0;
    for (const f of fixtures.kv_event_payloads) {
      const payload = Buffer.from(f.payload_hex, 'hex');
      const got = fast(payload);
      if (got === undefined) continue;
      answered++;
      expect({ name: f.name, ...got }).toEqual({ name: f.name, ...general(payload) });
    }
    expect(answered).toBeGreaterThan(0);
  });
});

/** A BlockRemoved map with `block_hashes` twice (a JS object cannot hold that: spliced in as bytes). */
function repeatedKey(): Buffer {
  const p = packMsgspec([new F64(1), [new MsgMap([['type', 'BlockRemoved'], ['block_hashes', [1]], ['XXXXXXXXXXXX', [2]]])], 0]);
  const at = p.indexOf(Buffer.from('XXXXXXXXXXXX'));
  return Buffer.concat([p.subarray(0, at), Buffer.from('block_hashes'), p.subarray(at + 12)]);
}

describe('decodeRawBatch: leaves the rest to the general decoder', () => {
  const cases: [string, Buffer][] = [
    ['a LoRA name', encodeBatch([stored({ loraName: 'sql-lora' })], 'map')],
    ['a LoRA id', encodeBatch([stored({ loraId: 3 })], 'array')],
    ['non-null extra keys', encodeBatch([stored({ extraKeys: [['img', 0], null] })], 'array')],
    ['a kv-cache kind', encodeBatch([stored({ kvCacheSpecKind: 'full_attention' })], 'map')],
    ['a token-less BlockStored (tier update)', encodeBatch([stored({ tokenIds: [], blockSize: 0 })], 'array')],
    ['an unknown event type', packMsgspec([new F64(1), [['Mystery', 1]], 0])],
    ['a float token id', packMsgspec([new F64(1), [['BlockStored', [1], null, [new F64(3.5)], 1, null, 'GPU']], 0])],
    ['a token id ≥ 2^32', packMsgspec([new F64(1), [['BlockStored', [1], null, [2 ** 32], 1, null, 'GPU']], 0])],
    ['a map whose type is not the first key', packMsgspec([new F64(1), [new MsgMap([['block_hashes', [1]], ['type', 'BlockRemoved']])], 0])],
    ['a repeated map key', repeatedKey()],
    ['trailing bytes', Buffer.concat([encodeBatch([stored()], 'array'), Buffer.from([0])])],
    ['a truncated payload', encodeBatch([stored()], 'array').subarray(0, 40)],
    ['a bad dp rank', packMsgspec([new F64(1), [], 70_000])],
    ['not a batch', packMsgspec(new MsgMap([['a', 1]]))],
  ];
  it.each(cases)('%s', (_name, payload) => {
    expect(decodeRawBatch(payload)).toBeUndefined();
  });
});

describe('decodeRawBatch: differential fuzz', () => {
  function randomHash(r: Rnd): WireHash {
    switch (int(r, 4)) {
      case 0:
        return BigInt(int(r, 1 << 30));
      case 1:
        return (BigInt(int(r, 1 << 30)) << 34n) | BigInt(int(r, 1 << 30)) | (1n << 63n);
      case 2:
        return Uint8Array.from({ length: 32 }, () => int(r, 256));
      default:
        return Uint8Array.from({ length: 1 + int(r, 16) }, () => int(r, 256));
    }
  }
  function randomEvents(r: Rnd): PubEvent[] {
    return Array.from({ length: int(r, 5) }, (): PubEvent => {
      const k = r();
      if (k < 0.7) {
        const blocks = 1 + int(r, 3);
        const bs = pick(r, [4, 16]);
        return stored({
          blockHashes: Array.from({ length: blocks }, () => randomHash(r)),
          parentBlockHash: r() < 0.5 ? null : randomHash(r),
          tokenIds: Array.from({ length: blocks * bs }, () => int(r, r() < 0.5 ? 200 : 2 ** 32)),
          blockSize: bs,
          medium: pick(r, ['GPU', 'CPU', null]),
          groupIdx: r() < 0.5 ? 0 : null,
          extraKeys: r() < 0.3 ? Array.from({ length: blocks }, () => null) : null,
          loraName: r() < 0.05 ? 'x' : null,
        });
      }
      if (k < 0.95) return { type: 'BlockRemoved', blockHashes: [randomHash(r)], medium: pick(r, ['GPU', 'CPU']) };
      return { type: 'AllBlocksCleared' };
    });
  }
  it('20,000 random and mutated payloads: the fast answer always equals the general one', () => {
    const r = prng(424242);
    let answered = 0;
    let mutatedAnswered = 0;
    const show = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));
    const mismatches: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const valid = encodeBatch(randomEvents(r), pick(r, ['array', 'map', 'array-v09'] as const), r() * 2e9, int(r, 3));
      const payload = i % 2 === 0 ? valid : mutate(r, valid);
      const got = fast(payload);
      if (got === undefined) continue;
      answered++;
      if (i % 2 === 1) mutatedAnswered++;
      const want = general(payload);
      if (show(got) !== show(want)) mismatches.push(`${payload.toString('hex')}: fast ${show(got)} general ${show(want)}`);
    }
    expect(mismatches).toEqual([]);
    // Most valid batches are in the subset, and some mutations still decode (and must agree).
    expect(answered).toBeGreaterThan(8_000);
    expect(mutatedAnswered).toBeGreaterThan(100);
  });
});

describe('RawBatchDecoder (the pool’s per-shard decoder)', () => {
  it('decodes like decodeRawBatch into its own scratch: views valid until its next decode', () => {
    const a = encodeBatch([stored({ blockHashes: [1n, 2n] })], 'array');
    const b = encodeBatch([stored({ blockHashes: [3n, 4n], tokenIds: Array.from({ length: 32 }, () => 9) })], 'map');
    const d = new RawBatchDecoder();
    const first = d.decode(a);
    expect(first?.events.map((e) => materialize(e, first))).toEqual(fast(a)?.events);
    const firstHashes = Array.from(first?.hashes ?? []);
    const copy = decodeRawBatch(a);
    const second = d.decode(b);
    expect(second?.events.map((e) => materialize(e, second))).toEqual(fast(b)?.events);
    // the first batch's views now show the second batch's data; a decodeRawBatch copy does not change
    expect(Array.from(first?.hashes ?? [])).not.toEqual(firstHashes);
    expect(Array.from(copy?.hashes ?? [])).toEqual(firstHashes);
    expect(d.decode(Buffer.from([0xc1]))).toBeUndefined();
  });
});

describe('decodeRawBatch: forged lengths and keys the general decoder rejects', () => {
  it('a count larger than the bytes left is refused before anything is allocated', () => {
    const before = process.memoryUsage().arrayBuffers;
    // 3e7 events claimed in 7 bytes; 2^28 and 2^32-1 token ids claimed in a tiny BlockStored.
    const events = Buffer.from('9201dd01c9c380', 'hex');
    const tokenBomb = (n: string): Buffer =>
      Buffer.concat([Buffer.from('93cb3ff0000000000000' + '91' + '96' + 'ab426c6f636b53746f726564' + '9101' + 'c0', 'hex'), Buffer.from(`dd${n}`, 'hex'), Buffer.from('1001', 'hex')]);
    const d = new RawBatchDecoder();
    for (const p of [events, tokenBomb('10000000'), tokenBomb('ffffffff')]) {
      expect(decodeRawBatch(p)).toBeUndefined();
      expect(d.decode(p)).toBeUndefined();
      expect(decodeKvEventBatch(p).ok).toBe(false);
    }
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 << 20);
    expect(d.peakScratch).toBe(4096); // nothing was ever grown for the forged counts
  });

  it('a map with an array key inside a skipped field sends the batch to the general decoder', () => {
    const tokens16 = Array.from({ length: 16 }, (_, i) => i);
    const placeholder = packMsgspec([new F64(1), [['BlockStored', [1], null, tokens16, 16, null, 'GPU', null, null, null, null, null, 'XX']], 0]);
    const at = placeholder.indexOf(Buffer.from('a25858', 'hex'));
    const bad = Buffer.concat([placeholder.subarray(0, at), Buffer.from('81910102', 'hex'), placeholder.subarray(at + 3)]); // locality = {[1]: 2}
    expect(decodeKvEventBatch(bad)).toMatchObject({ ok: false, reason: 'msgpack' });
    expect(decodeRawBatch(bad)).toBeUndefined();
    // the same with a string key is fine on both paths
    // nil, bool and 64-bit int keys, and '__proto__', fail the payload in @msgpack/msgpack too
    for (const key of ['c0', 'c3', 'cf0000000000000001', 'a95f5f70726f746f5f5f']) {
      const odd = Buffer.concat([placeholder.subarray(0, at), Buffer.from(`81${key}02`, 'hex'), placeholder.subarray(at + 3)]);
      expect(decodeKvEventBatch(odd)).toMatchObject({ ok: false, reason: 'msgpack' });
      expect(decodeRawBatch(odd)).toBeUndefined();
    }
    const good = Buffer.concat([placeholder.subarray(0, at), Buffer.from('81a16b02', 'hex'), placeholder.subarray(at + 3)]); // {k: 2}
    expect(fast(good)).toEqual(general(good));
    expect(fast(good)).toBeDefined();
  });
});

