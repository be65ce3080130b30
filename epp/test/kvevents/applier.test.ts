import { Registry } from 'prom-client';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import type { BlockKey } from '../../src/kvindex/types.js';
import { EventApplier, type EventApplierOptions } from '../../src/kvevents/applier.js';
import { decodeKvEventBatch } from '../../src/kvevents/decoder.js';
import { KvEventsMetricNames, createPromKvEventsMetrics } from '../../src/kvevents/observe.js';
import type { BlockStoredEvent, KvEvent } from '../../src/kvevents/types.js';
import { counter, fixtures, hashCase, range, recordingLogger } from './helpers.js';

const MODEL = 'meta-llama/Llama-3.2-1B';
const POD = '10.0.0.1:8000';
const SEED = '42';

function setup(over: Partial<EventApplierOptions> = {}, indexBlockSize = 16) {
  const index = new MemoryIndex({ memoryBudgetBytes: 8 << 20 });
  const registry = new Registry();
  const logger = recordingLogger();
  const applier = new EventApplier({
    index,
    blockSize: indexBlockSize,
    hashSeed: SEED,
    metrics: createPromKvEventsMetrics(registry),
    logger,
    ...over,
  });
  const tp = createTokenProcessor({ algo: 'fast', blockSize: indexBlockSize, hashSeed: SEED, model: MODEL });
  /** Request keys the read path would compute for `tokens`. */
  const promptKeys = (tokens: number[], model = MODEL): BlockKey[] =>
    (model === MODEL ? tp : createTokenProcessor({ algo: 'fast', blockSize: indexBlockSize, hashSeed: SEED, model })).blockKeys(tokens);
  /** Consecutive leading blocks of `tokens` held by `pod` (any tier unless given). */
  const held = async (tokens: number[], pod = POD, tier?: string, model = MODEL): Promise<number> => {
    const keys = promptKeys(tokens, model);
    const hits = await index.lookup(keys, new Set([pod]));
    let n = 0;
    for (const k of keys) {
      const h = hits.get(k);
      if (!h || !h.some((e) => e.pod === pod && (tier === undefined || e.tier === tier))) break;
      n++;
    }
    return n;
  };
  return { index, registry, logger, applier, promptKeys, held };
}

/** Engine hashes for tests that do not check hashes: distinct arbitrary u64s. */
const eh = (i: number): bigint => 0xabc0000000000000n + BigInt(i);

function stored(hashes: bigint[], tokens: number[], blockSize: number, parent?: bigint, extra: Partial<BlockStoredEvent> = {}): BlockStoredEvent {
  return { type: 'BlockStored', blockHashes: hashes, tokenIds: tokens, blockSize, medium: 'gpu', ...(parent !== undefined ? { parentBlockHash: parent } : {}), ...extra };
}

const apply = async (a: EventApplier, ...events: KvEvent[]): Promise<void> => a.applyBatch(POD, MODEL, { ts: 1, events });

describe('EventApplier: BlockStored', () => {
  it('adds a root chain under the request keys the read path computes, and maps engine → request keys', async () => {
    const { applier, index, held, promptKeys, registry } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([eh(0), eh(1), eh(2)], range(0, 48), 16));
    expect(await held(range(0, 60))).toBe(3);
    expect(await held(range(0, 60), '10.0.0.2:8000')).toBe(0);
    expect(await index.requestKeyFor(eh(1))).toBe(promptKeys(range(0, 48))[1]);
    expect(await counter(registry, KvEventsMetricNames.applied, { type: 'BlockStored' })).toBe(1);
  });

  it('continues a chain from the parent engine hash (request keys equal the whole prompt keys)', async () => {
    const { applier, held } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([eh(0), eh(1)], range(0, 32), 16));
    await apply(applier, stored([eh(2), eh(3)], range(32, 64), 16, eh(1)));
    expect(await held(range(0, 64))).toBe(4);
    // a different prompt sharing only the first block
    expect(await held([...range(0, 16), ...range(100, 148)])).toBe(1);
  });

  it('drops a continuation whose parent is unknown (counted, nothing added)', async () => {
    const { applier, held, registry, logger } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([eh(5)], range(16, 32), 16, eh(4)));
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'parent_unknown' })).toBe(1);
    expect(await held(range(0, 32))).toBe(0);
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('cannot be placed'))).toBe(true);
  });

  it('keys LoRA blocks by the LoRA name instead of the model', async () => {
    const { applier, held } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([eh(0), eh(1)], range(0, 32), 16, undefined, { loraName: 'sql-lora' }));
    expect(await held(range(0, 32))).toBe(0);
    expect(await held(range(0, 32), POD, undefined, 'sql-lora')).toBe(2);
  });

  it('records the medium as the tier and handles a token-less tier update', async () => {
    const { applier, held, registry } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([eh(0), eh(1)], range(0, 32), 16));
    await apply(applier, stored([eh(0), eh(1), eh(9)], [], 0, undefined, { medium: 'cpu' }));
    expect(await held(range(0, 32), POD, 'cpu')).toBe(2);
    expect(await held(range(0, 32), POD, 'gpu')).toBe(2);
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'unresolved_tier_update' })).toBe(1);
    await apply(applier, { type: 'BlockRemoved', blockHashes: [eh(1)], medium: 'gpu' });
    expect(await held(range(0, 32), POD, 'gpu')).toBe(1);
    expect(await held(range(0, 32), POD, 'cpu')).toBe(2);
  });

  it('skips non-prefix cache groups and non-dense spans', async () => {
    const { applier, held, registry } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([eh(0)], range(0, 16), 16, undefined, { kvCacheSpecKind: 'sliding_window' }));
    await apply(applier, stored([eh(1)], range(0, 32), 16)); // 32 tokens for 1 block of 16
    expect(await held(range(0, 32))).toBe(0);
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'bad_event' })).toBe(2);
  });
});

describe('EventApplier: engine block size ≠ index block size', () => {
  it('engine 32, index 16: each engine block maps to its two index blocks', async () => {
    const { applier, held, index, promptKeys } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([eh(0), eh(1)], range(0, 64), 32));
    expect(await held(range(0, 64))).toBe(4);
    expect(await index.requestKeyFor(eh(0))).toBe(promptKeys(range(0, 64))[1]);
    await apply(applier, stored([eh(2)], range(64, 96), 32, eh(1)));
    expect(await held(range(0, 96))).toBe(6);
    await apply(applier, { type: 'BlockRemoved', blockHashes: [eh(2)], medium: 'gpu' });
    expect(await held(range(0, 96))).toBe(4);
  });

  it('engine 8, index 16: leftover tokens are carried into the continuation', async () => {
    const { applier, held, registry } = setup({ hashCheck: { enabled: false } });
    // 3 engine blocks = 24 tokens: one index block + 8 leftover tokens
    await apply(applier, stored([eh(0), eh(1), eh(2)], range(0, 24), 8));
    expect(await held(range(0, 48))).toBe(1);
    // continuation from the unaligned engine block 2 (tokens 24..39): index block 1 = 16..31
    await apply(applier, stored([eh(3), eh(4)], range(24, 40), 8, eh(2)));
    expect(await held(range(0, 48))).toBe(2);
    // a branch from the aligned engine block 1 (ends at 16) continues with other tokens
    await apply(applier, stored([eh(5), eh(6)], range(200, 216), 8, eh(1)));
    expect(await held([...range(0, 16), ...range(200, 216)])).toBe(2);
    expect(await counter(registry, KvEventsMetricNames.dropped)).toBe(0);
    // eh(4) holds only leftover tokens 32..39: removing it evicts no index block
    await apply(applier, { type: 'BlockRemoved', blockHashes: [eh(4)], medium: 'gpu' });
    expect(await held(range(0, 48))).toBe(2);
    // index block 1 (tokens 16..31) ends inside eh(3): removing eh(3) evicts it
    await apply(applier, { type: 'BlockRemoved', blockHashes: [eh(3)], medium: 'gpu' });
    expect(await held(range(0, 48))).toBe(1);
  });

  it('engine 24, index 16 (neither divides the other): chains re-chunk at absolute offsets', async () => {
    const { applier, held, registry } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([eh(0), eh(1)], range(0, 48), 24)); // index blocks 0..2, no leftover
    expect(await held(range(0, 96))).toBe(3);
    await apply(applier, stored([eh(2)], range(48, 72), 24, eh(1))); // block 3 (48..63), leftover 64..71
    expect(await held(range(0, 96))).toBe(4);
    await apply(applier, stored([eh(3)], range(72, 96), 24, eh(2))); // 64..79, 80..95
    expect(await held(range(0, 96))).toBe(6);
    expect(await counter(registry, KvEventsMetricNames.dropped)).toBe(0);
  });

  it('engine 16, index 64: blocks appear once a whole index block is covered', async () => {
    const { applier, held } = setup({ hashCheck: { enabled: false } }, 64);
    await apply(applier, stored([eh(0), eh(1)], range(0, 32), 16));
    expect(await held(range(0, 128))).toBe(0);
    await apply(applier, stored([eh(2), eh(3), eh(4)], range(32, 80), 16, eh(1)));
    expect(await held(range(0, 128))).toBe(1);
    await apply(applier, stored([eh(5), eh(6), eh(7)], range(80, 128), 16, eh(4)));
    expect(await held(range(0, 128))).toBe(2);
  });

  it('remembers at most carryEntriesPerPod (default 4096) unaligned chain ends per pod', async () => {
    const { applier, held, registry } = setup({ hashCheck: { enabled: false } });
    for (let i = 0; i <= 4096; i++) await apply(applier, stored([eh(i)], range(i * 8, i * 8 + 8), 8));
    // the oldest (eh(0)) was forgotten; the newest is still continuable
    await apply(applier, stored([eh(9000)], range(8, 16), 8, eh(0)));
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'parent_unknown' })).toBe(1);
    await apply(applier, stored([eh(9001)], range(9000, 9008), 8, eh(4096)));
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'parent_unknown' })).toBe(1);
    expect(await held([...range(4096 * 8, 4096 * 8 + 8), ...range(9000, 9008)])).toBe(1);
  });

  it('forgets carried tokens of a removed block (continuation becomes unplaceable)', async () => {
    const { applier, registry } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([eh(0)], range(0, 8), 8));
    await apply(applier, { type: 'BlockRemoved', blockHashes: [eh(0)], medium: 'gpu' });
    await apply(applier, stored([eh(1)], range(8, 16), 8, eh(0)));
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'parent_unknown' })).toBe(1);
  });
});

describe('EventApplier: BlockRemoved and AllBlocksCleared', () => {
  it('evicts by engine hash with reference counts', async () => {
    const { applier, held } = setup({ hashCheck: { enabled: false } });
    const ev = stored([eh(0), eh(1)], range(0, 32), 16);
    await apply(applier, ev, ev); // the engine stored the same hash twice
    await apply(applier, { type: 'BlockRemoved', blockHashes: [eh(1)], medium: 'gpu' });
    expect(await held(range(0, 32))).toBe(2);
    await apply(applier, { type: 'BlockRemoved', blockHashes: [eh(1)], medium: 'gpu' });
    expect(await held(range(0, 32))).toBe(1);
  });

  it('AllBlocksCleared clears only the publishing pod', async () => {
    const { applier, held } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([eh(0)], range(0, 16), 16));
    await applier.applyBatch('10.0.0.2:8000', MODEL, { ts: 1, events: [stored([eh(0)], range(0, 16), 16)] });
    await apply(applier, { type: 'AllBlocksCleared' });
    expect(await held(range(0, 16))).toBe(0);
    expect(await held(range(0, 16), '10.0.0.2:8000')).toBe(1);
  });

  it('counts an index failure as apply_error and keeps going', async () => {
    const { applier, index, registry } = setup({ hashCheck: { enabled: false } });
    await index.close();
    await apply(applier, stored([eh(0)], range(0, 16), 16));
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'apply_error' })).toBe(1);
  });
});

describe('EventApplier: engine-hash mismatch detection', () => {
  const c42 = hashCase('range_0_40__bs16__seed42');
  const vllmStored = (hashes: string[], parent?: string): BlockStoredEvent =>
    stored(
      hashes.map((h) => BigInt(h)),
      c42.tokens.slice(0, 16 * hashes.length),
      16,
      parent === undefined ? undefined : BigInt(parent),
    );

  it('reproduces vLLM sha256_cbor hashes (seed 42): checks pass, no warning', async () => {
    const { applier, registry, logger } = setup({ hashCheck: { sampleEvery: 1 } });
    await apply(applier, vllmStored(c42.sha256_cbor_u64));
    expect(await counter(registry, KvEventsMetricNames.hashChecks)).toBe(1);
    expect(await counter(registry, KvEventsMetricNames.hashMismatch)).toBe(0);
    expect(logger.lines.filter((l) => l.level === 'warn')).toEqual([]);
  });

  it.each(['array_like_events', 'map_events__', 'map_events_bytes_hashes'])('vLLM vector payload %s: decoded, applied, hashes verified', async (name) => {
    const { applier, registry, held, index } = setup({ hashCheck: { sampleEvery: 1 } });
    const hex = fixtures.kv_event_payloads.find((p) => p.name.startsWith(name))?.payload_hex as string;
    const r = decodeKvEventBatch(Buffer.from(hex, 'hex'));
    if (!r.ok) throw new Error(r.detail);
    // the vector batch is [BlockStored(2 blocks), BlockRemoved(block 0), AllBlocksCleared]; apply the store alone first
    await applier.applyBatch(POD, MODEL, { ts: r.batch.ts, events: r.batch.events.slice(0, 1) });
    expect(await held(c42.tokens.slice(0, 32))).toBe(2);
    expect(await index.requestKeyFor(BigInt(c42.sha256_cbor_u64[1] as string))).toBeDefined();
    expect(await counter(registry, KvEventsMetricNames.hashChecks)).toBe(1);
    expect(await counter(registry, KvEventsMetricNames.hashMismatch)).toBe(0);
    await applier.applyBatch(POD, MODEL, { ts: r.batch.ts, events: r.batch.events.slice(1) });
    expect(await held(c42.tokens.slice(0, 32))).toBe(0);
  });

  it('flags a PYTHONHASHSEED mismatch', async () => {
    const c0 = hashCase('range_0_40__bs16__seed0');
    const { applier, registry, logger } = setup({ hashCheck: { sampleEvery: 1 } });
    await apply(applier, stored(c0.sha256_cbor_u64.map((h) => BigInt(h)), c0.tokens.slice(0, 32), 16));
    expect(await counter(registry, KvEventsMetricNames.hashMismatch)).toBe(1);
    const warn = logger.lines.find((l) => l.level === 'warn');
    expect(warn?.msg).toContain('PYTHONHASHSEED');
    expect(warn?.msg).toContain('"42"');
  });

  it('names the legacy 64-bit algorithm when that is what vLLM uses', async () => {
    const { applier, registry, logger } = setup({ hashCheck: { sampleEvery: 1 } });
    await apply(applier, vllmStored(c42.sha256_cbor_64bit_u64));
    expect(await counter(registry, KvEventsMetricNames.hashMismatch)).toBe(1);
    expect(logger.lines.find((l) => l.level === 'warn')?.msg).toContain('uses --prefix-caching-hash-algo sha256_cbor_64bit');
  });

  it('checks continuations for sha256_cbor_64bit (parent restorable), not for sha256_cbor', async () => {
    const h64 = c42.sha256_cbor_64bit_u64;
    const a = setup({ hashAlgo: 'sha256_cbor_64bit', hashCheck: { sampleEvery: 1 } });
    await apply(a.applier, vllmStored([h64[0] as string]));
    await a.applier.applyBatch(POD, MODEL, { ts: 1, events: [stored([BigInt(h64[1] as string)], c42.tokens.slice(16, 32), 16, BigInt(h64[0] as string))] });
    expect(await counter(a.registry, KvEventsMetricNames.hashChecks)).toBe(2);
    expect(await counter(a.registry, KvEventsMetricNames.hashMismatch)).toBe(0);
    const b = setup({ hashCheck: { sampleEvery: 1 } });
    await apply(b.applier, vllmStored([c42.sha256_cbor_u64[0] as string]));
    await apply(b.applier, stored([BigInt(c42.sha256_cbor_u64[1] as string)], c42.tokens.slice(16, 32), 16, BigInt(c42.sha256_cbor_u64[0] as string)));
    expect(await counter(b.registry, KvEventsMetricNames.hashChecks)).toBe(1);
  });

  it('samples one eligible event in sampleEvery (default 8) and skips events with unknown extra keys', async () => {
    const { applier, registry } = setup();
    for (let i = 0; i < 16; i++) await apply(applier, vllmStored(c42.sha256_cbor_u64));
    expect(await counter(registry, KvEventsMetricNames.hashChecks)).toBe(2);
    const s = setup({ hashCheck: { sampleEvery: 1 } });
    await apply(s.applier, stored([1n], range(0, 16), 16, undefined, { extraKeys: [['tenant-a']] }));
    await apply(s.applier, stored([1n], range(0, 16), 16, undefined, { loraId: 3 }));
    expect(await counter(s.registry, KvEventsMetricNames.hashChecks)).toBe(0);
  });

  it('can be disabled', async () => {
    const { applier, registry } = setup({ hashCheck: { enabled: false } });
    await apply(applier, stored([1n], range(0, 16), 16));
    expect(await counter(registry, KvEventsMetricNames.hashChecks)).toBe(0);
  });
});
