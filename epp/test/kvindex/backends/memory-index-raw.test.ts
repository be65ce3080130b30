/**
 * MemoryIndex's raw write path (keys as [hi, lo] u32 pairs) against `addSync` with the same keys
 * as bigints: same holders, mappings, LRU evictions and statistics; plus its input checks and the
 * decorator's pass-through.
 */
import { Registry } from 'prom-client';
import { InstrumentedIndex, RAW_TIMING_SAMPLE } from '../../../src/kvindex/backends/instrumented-index.js';
import { MemoryIndex } from '../../../src/kvindex/backends/memory-index.js';
import type { BlockKey, Index, PodEntry } from '../../../src/kvindex/types.js';
import { seededRandom } from '../../../src/util/random.js';

function halves(keys: readonly bigint[]): Uint32Array {
  const a = new Uint32Array(2 * keys.length);
  keys.forEach((k, i) => {
    a[2 * i] = Number(k >> 32n);
    a[2 * i + 1] = Number(k & 0xffffffffn);
  });
  return a;
}

describe('MemoryIndex.addRawSync', () => {
  it.each([
    ['a roomy budget', 8 << 20, false],
    ['a budget that forces LRU evictions', 64 * 1024, true],
  ])('matches addSync key for key (%s)', (_name, budget, evicts) => {
    const r = seededRandom(7);
    const a = new MemoryIndex({ memoryBudgetBytes: budget, initialCapacity: 16 });
    const b = new MemoryIndex({ memoryBudgetBytes: budget, initialCapacity: 16 });
    const pool: bigint[] = Array.from({ length: 3000 }, (_, i) => (BigInt(i + 1) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn);
    const key = (): bigint => pool[Math.floor(r() * pool.length)] as bigint;
    const written: bigint[][] = [];
    for (let step = 0; step < 2000; step++) {
      const n = 1 + Math.floor(r() * 8);
      // repeats on purpose: the same key twice in one add, keys already held, engine keys remapped
      const req = Array.from({ length: n }, key);
      const eng = Array.from({ length: n }, key);
      const entry: PodEntry = { pod: `10.0.0.${Math.floor(r() * 5)}:8000`, tier: r() < 0.2 ? 'cpu' : 'gpu' };
      a.addSync(eng, req, [entry]);
      // offsets inside bigger arrays
      const e = halves([0n, ...eng]);
      const q = halves([0n, 0n, ...req]);
      b.addRawSync(e, 2, q, 4, n, entry);
      written.push(req);
      if (step % 50 === 0) {
        const victim = `10.0.0.${Math.floor(r() * 5)}:8000`;
        a.clearSync(victim);
        b.clearSync(victim);
      }
    }
    expect(b.stats).toEqual(a.stats);
    expect(a.stats.lruEvictions > 0).toBe(evicts);
    for (const k of pool) {
      expect(b.requestKeyForSync(k)).toBe(a.requestKeyForSync(k));
      const out = new Uint32Array(3);
      const hit = b.requestKeyForRawSync(Number(k >> 32n), Number(k & 0xffffffffn), out, 1);
      expect(hit ? (BigInt(out[1] as number) << 32n) | BigInt(out[2] as number) : undefined).toBe(a.requestKeyForSync(k));
    }
    for (const req of written.slice(-300)) expect([...b.lookupSync(req).entries()]).toEqual([...a.lookupSync(req).entries()]);
  });

  it('rejects pairs that do not fit the arrays, a bad entry, and a closed index', async () => {
    const idx = new MemoryIndex();
    const four = new Uint32Array(4);
    expect(() => idx.addRawSync(four, 0, four, 2, 2, { pod: 'p:1', tier: 'gpu' })).toThrow(
      'MemoryIndex.addRawSync: 2 key pairs from offsets 0/2 do not fit arrays of 4/4 u32s; pass [hi, lo] pairs and n ≤ (length - offset) / 2',
    );
    expect(() => idx.addRawSync(four, 0, four, 0, 1, { pod: '', tier: 'gpu' })).toThrow(/MemoryIndex.addRawSync entry: .* is not a pod entry/);
    await idx.close();
    expect(() => idx.addRawSync(four, 0, four, 0, 1, { pod: 'p:1', tier: 'gpu' })).toThrow(/the index is closed/);
  });
});

describe('Index.raw', () => {
  it('MemoryIndex is its own raw writer; the decorator passes it through with metrics', async () => {
    const mem = new MemoryIndex();
    expect(mem.raw).toBe(mem);
    const registry = new Registry();
    const inst = new InstrumentedIndex(mem, { registry });
    const raw = inst.raw;
    expect(raw).toBeDefined();
    expect(inst.raw).toBe(raw); // built once
    raw?.addRawSync(halves([1n, 2n]), 0, halves([11n, 12n]), 0, 2, { pod: 'p:1', tier: 'gpu' });
    expect(mem.requestKeyForSync(2n)).toBe(12n);
    const added = await registry.getSingleMetric('kvroute_index_added_entries_total')?.get();
    expect(added?.values[0]?.value).toBe(2);
    const ops = await registry.getSingleMetric('kvroute_index_operations_total')?.get();
    expect(ops?.values.find((v) => v.labels.op === 'add')?.value).toBe(1);
  });

  it('counts every raw call and times one in RAW_TIMING_SAMPLE', async () => {
    const registry = new Registry();
    const raw = new InstrumentedIndex(new MemoryIndex(), { registry }).raw;
    const calls = 2 * RAW_TIMING_SAMPLE + 1;
    for (let i = 0; i < calls; i++) raw?.addRawSync(halves([BigInt(i + 1)]), 0, halves([BigInt(i + 100)]), 0, 1, { pod: 'p:1', tier: 'gpu' });
    const out = new Uint32Array(2);
    expect(raw?.requestKeyForRawSync(0, 5, out, 0)).toBe(true);
    expect(Array.from(out)).toEqual([0, 104]);
    const ops = await registry.getSingleMetric('kvroute_index_operations_total')?.get();
    expect(ops?.values.find((v) => v.labels.op === 'add')?.value).toBe(calls);
    expect(ops?.values.find((v) => v.labels.op === 'requestKeyFor')?.value).toBe(1);
    const added = await registry.getSingleMetric('kvroute_index_added_entries_total')?.get();
    expect(added?.values[0]?.value).toBe(calls);
    const dur = await registry.getSingleMetric('kvroute_index_operation_duration_seconds')?.get();
    const count = (op: string): number | undefined => dur?.values.find((v) => v.labels.op === op && (v as { metricName?: string }).metricName?.endsWith('_count'))?.value;
    expect(count('add')).toBe(3); // calls 0, 16 and 32
    expect(count('requestKeyFor')).toBe(1);
  });

  it('a backend without a raw path has none behind the decorator either', () => {
    const bare: Index = {
      lookup: async () => new Map<BlockKey, PodEntry[]>(),
      add: async () => undefined,
      evict: async () => undefined,
      requestKeyFor: async () => undefined,
      clear: async () => undefined,
      close: async () => undefined,
    };
    expect(new InstrumentedIndex(bare, { registry: new Registry() }).raw).toBeUndefined();
  });
});
