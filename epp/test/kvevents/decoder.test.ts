import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type EventProblem, decodeEvent, decodeKvEventBatch, normaliseBlockHash } from '../../src/kvevents/decoder.js';
import type { BlockRemovedEvent, BlockStoredEvent, KvEventBatch } from '../../src/kvevents/types.js';
import { F64, MsgMap, encodeBatch, packMsgspec, type PubEvent } from '../../testkit/vllm-publisher.js';

const here = dirname(fileURLToPath(import.meta.url));
interface Payload {
  name: string;
  payload_hex: string;
}
const fixtures = JSON.parse(readFileSync(join(here, 'fixtures/kv-event-payloads.json'), 'utf8')) as { kv_event_payloads: Payload[] };
const payload = (prefix: string): Buffer => {
  const p = fixtures.kv_event_payloads.find((x) => x.name.startsWith(prefix));
  if (!p) throw new Error(`fixture ${prefix} missing`);
  return Buffer.from(p.payload_hex, 'hex');
};

const H0 = 2863503375995570957n; // 0x27bd352623590b0d, from the vectors
const H1 = 13957787785847563040n; // 0xc1b4060a29bae320 (≥ 2^63: msgpack uint64)
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

function ok(buf: Uint8Array): { batch: KvEventBatch; problems: readonly EventProblem[] } {
  const r = decodeKvEventBatch(buf);
  if (!r.ok) throw new Error(`expected ok, got ${r.reason}: ${r.detail}`);
  return r;
}

function expectVectorBatch(batch: KvEventBatch): void {
  expect(batch.ts).toBe(1754530000.25);
  expect(batch.events).toHaveLength(3);
  const st = batch.events[0] as BlockStoredEvent;
  expect(st.type).toBe('BlockStored');
  expect(st.blockHashes).toEqual([H0, H1]);
  expect(typeof st.blockHashes[1]).toBe('bigint');
  expect(st.parentBlockHash).toBeUndefined();
  expect(st.tokenIds).toEqual(range(0, 32));
  expect(st.blockSize).toBe(16);
  expect(st.medium).toBe('gpu');
  expect(st.loraName).toBeUndefined();
  const rm = batch.events[1] as BlockRemovedEvent;
  expect(rm).toEqual({ type: 'BlockRemoved', blockHashes: [H0], medium: 'gpu', groupIdx: 0 });
  expect(batch.events[2]).toEqual({ type: 'AllBlocksCleared' });
}

describe('decodeKvEventBatch on the vLLM vector payloads', () => {
  it('decodes the array encoding (v0.9–v0.23)', () => {
    const { batch, problems } = ok(payload('array_like_events'));
    expect(problems).toEqual([]);
    expectVectorBatch(batch);
    expect(batch.dpRank).toBe(0);
    const st = batch.events[0] as BlockStoredEvent;
    expect(st.groupIdx).toBe(0);
    expect(st.kvCacheSpecKind).toBe('full_attention');
    expect(st.extraKeys).toEqual([null, null]);
  });

  it('decodes the map encoding (v0.24+)', () => {
    const { batch, problems } = ok(payload('map_events__'));
    expect(problems).toEqual([]);
    expectVectorBatch(batch);
    expect((batch.events[0] as BlockStoredEvent).kvCacheSpecKind).toBe('full_attention');
  });

  it('decodes byte hashes to the last 8 bytes big-endian (the same value as the int form)', () => {
    const { batch } = ok(payload('map_events_bytes_hashes'));
    expectVectorBatch(batch);
  });

  it('decodes the original v0.9.0 layout (2-element batch, 5-field BlockStored)', () => {
    const { batch, problems } = ok(payload('original_v0.9.0'));
    expect(problems).toEqual([]);
    expect(batch.dpRank).toBeUndefined();
    const st = batch.events[0] as BlockStoredEvent;
    expect(st.blockHashes).toEqual([H0, H1]);
    expect(st.medium).toBe('gpu');
  });

  it('our test publisher writes byte-identical payloads to msgspec', () => {
    const events: PubEvent[] = [
      {
        type: 'BlockStored',
        blockHashes: [H0, H1],
        parentBlockHash: null,
        tokenIds: range(0, 32),
        blockSize: 16,
        medium: 'GPU',
        extraKeys: [null, null],
        groupIdx: 0,
        kvCacheSpecKind: 'full_attention',
      },
      { type: 'BlockRemoved', blockHashes: [H0], medium: 'GPU', groupIdx: 0 },
      { type: 'AllBlocksCleared' },
    ];
    expect(encodeBatch(events, 'array', 1754530000.25, 0).toString('hex')).toBe(payload('array_like_events').toString('hex'));
    expect(encodeBatch(events, 'map', 1754530000.25, 0).toString('hex')).toBe(payload('map_events__').toString('hex'));
  });
});

describe('decodeKvEventBatch value handling', () => {
  const stored = (over: Record<string, unknown>): MsgMap => {
    const base: Record<string, unknown> = { type: 'BlockStored', block_hashes: [1n], parent_block_hash: null, token_ids: [1, 2], block_size: 2, lora_id: null, medium: 'GPU', lora_name: null };
    const merged = { ...base, ...over };
    return new MsgMap(Object.entries(merged).filter(([, v]) => v !== undefined) as [string, never][]);
  };
  const batchOf = (...events: unknown[]): Buffer => packMsgspec([new F64(1.5), events as never[], 0]);

  it('keeps u64 hashes above 2^53 exact, as bigint', () => {
    const big = (1n << 64n) - 3n;
    const { batch } = ok(batchOf(stored({ block_hashes: [big, 9007199254740993n], parent_block_hash: (1n << 63n) + 1n })));
    const st = batch.events[0] as BlockStoredEvent;
    expect(st.blockHashes).toEqual([big, 9007199254740993n]);
    expect(st.parentBlockHash).toBe((1n << 63n) + 1n);
  });

  it('maps negative i64 hashes (builtin hash()) to their u64 two-complement', () => {
    const { batch } = ok(batchOf(stored({ block_hashes: [-1n, -(1n << 63n), -5n] })));
    expect((batch.events[0] as BlockStoredEvent).blockHashes).toEqual([(1n << 64n) - 1n, 1n << 63n, (1n << 64n) - 5n]);
  });

  it('reads bytes hashes: 32-byte digest, short bytes left-padded, 16-byte xxhash', () => {
    const d32 = Buffer.from('63876f948a5f9ef88191c7d6554fbeeea5c622d4da15d0d527bd352623590b0d', 'hex');
    const { batch } = ok(batchOf(stored({ block_hashes: [d32, Buffer.from([1, 2]), Buffer.alloc(16, 0xff)] })));
    expect((batch.events[0] as BlockStoredEvent).blockHashes).toEqual([H0, 0x0102n, (1n << 64n) - 1n]);
    expect(normaliseBlockHash(new Uint8Array([0xab]), 'x')).toBe(0xabn);
  });

  it('reads a bytes parent hash and an int64 (d3) hash below 2^63', () => {
    const parent = Buffer.from('0000000000000000000000000000000000000000000000007fffffffffffffff', 'hex');
    const { batch } = ok(batchOf(stored({ parent_block_hash: parent, block_hashes: [-(1n << 40n)] })));
    const st = batch.events[0] as BlockStoredEvent;
    expect(st.parentBlockHash).toBe((1n << 63n) - 1n);
    expect(st.blockHashes).toEqual([(1n << 64n) - (1n << 40n)]);
  });

  it('normalises medium and lora fields', () => {
    const { batch } = ok(batchOf(stored({ medium: 'CPU', lora_name: 'sql-lora', lora_id: 3 }), stored({ medium: null })));
    const [a, b] = batch.events as BlockStoredEvent[];
    expect(a).toMatchObject({ medium: 'cpu', loraName: 'sql-lora', loraId: 3 });
    expect(b?.medium).toBe('gpu');
  });

  it('skips unknown event types and unknown fields without failing the batch', () => {
    const unknownMap = new MsgMap([['type', 'BlockPromoted'], ['block_hashes', [1n]]]);
    const unknownArr = ['TierMoved', 1, 2];
    const withExtra = stored({ ownership: 'x', origin: new MsgMap([['a', 1]]), locality: 'LOCAL' });
    const { batch, problems } = ok(batchOf(unknownMap, withExtra, unknownArr, new MsgMap([['type', 'AllBlocksCleared'], ['future', true]])));
    expect(batch.events.map((e) => e.type)).toEqual(['BlockStored', 'AllBlocksCleared']);
    expect(problems.map((p) => p.reason)).toEqual(['unknown_event_type', 'unknown_event_type']);
    expect(problems[0]?.detail).toContain('BlockPromoted');
  });

  it('reads extra trailing array fields (a future vLLM) and drops the surplus', () => {
    const arr = ['BlockStored', [7n], null, [1, 2], 2, null, 'GPU', null, null, null, null, null, 'LOCAL', 'future1', 42];
    const { batch, problems } = ok(batchOf(arr, ['BlockRemoved', [7n], 'GPU', null, 'LOCAL', 'x']));
    expect(problems).toEqual([]);
    expect(batch.events).toEqual([
      { type: 'BlockStored', blockHashes: [7n], tokenIds: [1, 2], blockSize: 2, medium: 'gpu' },
      { type: 'BlockRemoved', blockHashes: [7n], medium: 'gpu' },
    ]);
  });

  it('drops a malformed event and keeps the good ones around it, naming the problem', () => {
    const { batch, problems } = ok(
      batchOf(
        stored({ block_hashes: [1n] }),
        stored({ token_ids: [1, -2] }),
        stored({ block_hashes: [1.5] }),
        stored({ block_hashes: 'nope' }),
        new MsgMap([['type', 'BlockStored'], ['token_ids', [1]]]),
        ['BlockRemoved'],
        42,
        [17, 1],
        stored({ medium: 5 }),
        stored({ block_size: 0 }),
        stored({ block_hashes: [Buffer.alloc(0)] }),
        stored({ block_hashes: [2n] }),
      ),
    );
    expect(batch.events.map((e) => (e as BlockStoredEvent).blockHashes[0])).toEqual([1n, 2n]);
    expect(problems).toHaveLength(10);
    expect(problems.every((p) => p.reason === 'bad_event')).toBe(true);
    expect(problems.map((p) => p.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(problems[0]?.detail).toContain('token_ids[1]');
    expect(problems[3]?.detail).toContain('block_hashes');
    expect(problems[4]?.detail).toContain('block_hashes is missing');
  });

  it('accepts a token-less offloading placeholder (block_size 0)', () => {
    const { batch } = ok(batchOf(stored({ token_ids: [], block_size: 0, medium: 'CPU' })));
    expect(batch.events[0]).toMatchObject({ tokenIds: [], blockSize: 0, medium: 'cpu' });
  });

  it.each([
    ['truncated array header', Buffer.from([0xdd, 0, 0]), 'msgpack'],
    ['a bare scalar', Buffer.from([0x01]), 'bad_batch'],
    ['the never-used type byte 0xc1', Buffer.from([0xc1]), 'msgpack'],
    ['truncated', payload('map_events__').subarray(0, 40), 'msgpack'],
    ['empty', Buffer.alloc(0), 'msgpack'],
    ['not an array', packMsgspec(new MsgMap([['ts', 1]])), 'bad_batch'],
    ['1 element', packMsgspec([new F64(1)]), 'bad_batch'],
    ['ts string', packMsgspec(['x', []]), 'bad_batch'],
    ['events not a list', packMsgspec([new F64(1), 'x', 0]), 'bad_batch'],
    ['rank negative', packMsgspec([new F64(1), [], -1]), 'bad_batch'],
    ['rank float', packMsgspec([new F64(1), [], 0.5]), 'bad_batch'],
  ])('fails the whole batch for %s', (_name, buf, reason) => {
    const r = decodeKvEventBatch(buf);
    expect(r).toMatchObject({ ok: false, reason });
    expect(r.ok ? '' : r.detail).toMatch(/.{10}/);
  });

  it('rejects trailing bytes after the batch, with a short message', () => {
    const big = encodeBatch([{ type: 'BlockStored', blockHashes: [1n], parentBlockHash: null, tokenIds: range(0, 4096), blockSize: 4096 }], 'map', 1);
    const r = decodeKvEventBatch(Buffer.concat([big, Buffer.from([1])]));
    expect(r).toMatchObject({ ok: false, reason: 'msgpack' });
    // the library's wording: "Extra 1 of <n> byte(s) found at buffer[<n-1>]"
    expect(r.ok ? '' : r.detail).toContain(`is not valid msgpack: Extra 1 of ${big.length + 1} byte(s)`);
    expect((r.ok ? '' : r.detail).length).toBeLessThan(300);
  });

  it('accepts a nil data_parallel_rank', () => {
    const { batch } = ok(packMsgspec([new F64(2), [], null]));
    expect(batch).toEqual({ ts: 2, events: [] });
  });

  it('decodeEvent reports a non-string tag', () => {
    expect(decodeEvent([1, 2])).toMatchObject({ reason: 'bad_event' });
    expect(decodeEvent(new Map())).toMatchObject({ reason: 'bad_event' });
  });
});
