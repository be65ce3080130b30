/**
 * The ingest fast path (fast decoder → `applyRawBatch` → raw hashing → `addRawSync`) must leave
 * the index exactly as the general path (`decodeKvEventBatch` → `applyBatch` → `add`) does, on
 * realistic event streams: chains that continue across events, removals, clears, a second engine
 * block size, LoRA batches (general decoder), unknown parents, bad token counts; with the index
 * bare and behind the metrics decorator. Also: the drop and apply counters agree.
 */
import { Registry } from 'prom-client';
import { InstrumentedIndex } from '../../src/kvindex/backends/instrumented-index.js';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import type { BlockKey, Index } from '../../src/kvindex/types.js';
import { EventApplier } from '../../src/kvevents/applier.js';
import { decodeKvEventBatch } from '../../src/kvevents/decoder.js';
import { type DropReason, type KvEventsMetrics, noopMetrics } from '../../src/kvevents/observe.js';
import { decodeRawBatch } from '../../src/kvevents/raw-decoder.js';
import type { KvEvent } from '../../src/kvevents/types.js';
import { type PubEvent, encodeBatch } from '../../testkit/vllm-publisher.js';
import { prng } from './helpers.js';

const MODEL = 'm/one';
const SEED = '42';
type Rnd = () => number;
const int = (r: Rnd, n: number): number => Math.floor(r() * n);

function recorder(): { metrics: KvEventsMetrics; counts: Map<string, number> } {
  const counts = new Map<string, number>();
  const bump = (k: string, n = 1): void => void counts.set(k, (counts.get(k) ?? 0) + n);
  return {
    counts,
    metrics: {
      ...noopMetrics,
      dropped: (reason: DropReason, n = 1) => bump(`dropped:${reason}`, n),
      applied: (type: KvEvent['type']) => bump(`applied:${type}`),
      hashCheck: (matched: boolean) => bump(`hash:${matched}`),
    },
  };
}

interface Chain {
  pod: string;
  tokens: number[];
  hashes: bigint[];
  blockSize: number;
}

/** A stream of vLLM-like batches for 3 pods: roots, continuations, removals, clears, odd events. */
function scenario(r: Rnd, batches: number): { pod: string; payload: Buffer }[] {
  const pods = ['10.0.0.1:8000', '10.0.0.2:8000', '[fd00::3]:8000'];
  const chains: Chain[] = [];
  let nextHash = 1n;
  const out: { pod: string; payload: Buffer }[] = [];
  for (let b = 0; b < batches; b++) {
    const pod = pods[int(r, pods.length)] as string;
    const events: PubEvent[] = [];
    for (let e = 0; e < 1 + int(r, 4); e++) {
      const k = r();
      const mine = chains.filter((c) => c.pod === pod);
      if (k < 0.45 || mine.length === 0) {
        const blockSize = r() < 0.1 ? 32 : 16;
        const n = 1 + int(r, 6);
        const tokens = Array.from({ length: n * blockSize }, () => int(r, r() < 0.3 ? 100 : 150_000));
        const hashes = Array.from({ length: n }, () => (nextHash++ * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn);
        chains.push({ pod, tokens, hashes, blockSize });
        events.push({ type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: tokens, blockSize, medium: r() < 0.2 ? 'CPU' : 'GPU', loraName: r() < 0.05 ? 'lora-a' : null });
      } else if (k < 0.8) {
        const c = mine[int(r, mine.length)] as Chain;
        const n = 1 + int(r, 4);
        const tokens = Array.from({ length: n * c.blockSize }, () => int(r, 150_000));
        const hashes = Array.from({ length: n }, () => (nextHash++ * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn);
        // now and then a parent nobody stored, or a token count that does not match
        const parent = r() < 0.05 ? 0x1234n : (c.hashes[c.hashes.length - 1] as bigint);
        const bad = r() < 0.03;
        events.push({ type: 'BlockStored', blockHashes: hashes, parentBlockHash: parent, tokenIds: bad ? tokens.slice(1) : tokens, blockSize: c.blockSize });
        c.tokens.push(...tokens);
        c.hashes.push(...hashes);
      } else if (k < 0.995) {
        const c = mine[int(r, mine.length)] as Chain;
        events.push({ type: 'BlockRemoved', blockHashes: c.hashes.slice(-1 - int(r, 2)), medium: 'GPU' });
      } else {
        events.push({ type: 'AllBlocksCleared' });
      }
    }
    out.push({ pod, payload: encodeBatch(events, r() < 0.5 ? 'map' : 'array', 1, 0) });
  }
  return out;
}

async function run(index: Index, mem: MemoryIndex, stream: { pod: string; payload: Buffer }[], fast: boolean) {
  const rec = recorder();
  const applier = new EventApplier({ index, blockSize: 16, hashSeed: SEED, metrics: rec.metrics, hashCheck: { sampleEvery: 3 } });
  let rawBatches = 0;
  for (const m of stream) {
    const raw = fast ? decodeRawBatch(m.payload) : undefined;
    if (raw) {
      rawBatches++;
      await applier.applyRawBatch(m.pod, MODEL, raw);
    } else {
      const d = decodeKvEventBatch(m.payload);
      if (!d.ok) throw new Error(d.detail);
      await applier.applyBatch(m.pod, MODEL, d.batch);
    }
  }
  return { stats: mem.stats, counts: rec.counts, rawBatches };
}

describe('applyRawBatch ≡ applyBatch', () => {
  for (const decorated of [false, true]) {
    it(`leaves the same index, engine mappings and counters (${decorated ? 'InstrumentedIndex' : 'MemoryIndex'})`, async () => {
      const stream = scenario(prng(99), 600);
      const memA = new MemoryIndex({ memoryBudgetBytes: 32 << 20 });
      const memB = new MemoryIndex({ memoryBudgetBytes: 32 << 20 });
      const registry = new Registry();
      const a = await run(memA, memA, stream, false);
      const b = await run(decorated ? new InstrumentedIndex(memB, { registry }) : memB, memB, stream, true);
      expect(b.rawBatches).toBeGreaterThan(400);
      expect(b.stats).toEqual(a.stats);
      expect(Object.fromEntries(b.counts)).toEqual(Object.fromEntries(a.counts));
      expect(a.counts.get('dropped:parent_unknown')).toBeGreaterThan(0);
      expect(a.counts.get('dropped:bad_event')).toBeGreaterThan(0);
      expect(a.stats.entries).toBeGreaterThan(100);

      // Every engine hash resolves to the same request key, and every prefix is held alike.
      const tp = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: SEED, model: MODEL });
      for (let h = 1n; h < 5000n; h++) {
        const e = (h * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
        expect(memB.requestKeyForSync(e)).toBe(memA.requestKeyForSync(e));
      }
      const keysOf = (payload: Buffer): BlockKey[][] => {
        const d = decodeKvEventBatch(payload);
        return d.ok ? d.batch.events.flatMap((ev) => (ev.type === 'BlockStored' && ev.parentBlockHash === undefined ? [tp.blockKeys(ev.tokenIds)] : [])) : [];
      };
      for (const m of stream.slice(0, 200)) {
        for (const keys of keysOf(m.payload)) {
          const la = memA.lookupSync(keys);
          const lb = memB.lookupSync(keys);
          expect([...lb.entries()]).toEqual([...la.entries()]);
        }
      }
    });
  }

  it('the decorator counts the fast path’s adds and parent lookups', async () => {
    const mem = new MemoryIndex({ memoryBudgetBytes: 32 << 20 });
    const registry = new Registry();
    const out = await run(new InstrumentedIndex(mem, { registry }), mem, scenario(prng(5), 100), true);
    const value = async (name: string, op?: string): Promise<number | undefined> =>
      (await registry.getSingleMetric(name)?.get())?.values.find((v) => op === undefined || v.labels.op === op)?.value;
    expect(out.rawBatches).toBeGreaterThan(50);
    expect(await value('kvroute_index_added_entries_total')).toBeGreaterThan(0);
    expect(await value('kvroute_index_operations_total', 'add')).toBeGreaterThan(0);
    expect(await value('kvroute_index_operations_total', 'requestKeyFor')).toBeGreaterThan(0);
  });

  it('a hash mismatch found on the fast path is counted as on the general path', async () => {
    // vLLM hashed with another seed: the sampled check must report the mismatch on both paths.
    const other = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '7' });
    const tokens = Array.from({ length: 32 }, (_, i) => i + 1);
    const payload = encodeBatch([{ type: 'BlockStored', blockHashes: other.blockKeys(tokens), parentBlockHash: null, tokenIds: tokens, blockSize: 16 }], 'array');
    const mem = new MemoryIndex();
    const rec = recorder();
    const applier = new EventApplier({ index: mem, blockSize: 16, hashSeed: SEED, metrics: rec.metrics });
    const raw = decodeRawBatch(payload);
    expect(raw).toBeDefined();
    await applier.applyRawBatch('10.0.0.1:8000', MODEL, raw!);
    expect(rec.counts.get('hash:false')).toBe(1);
    expect(mem.stats.entries).toBe(2);
  });
});
