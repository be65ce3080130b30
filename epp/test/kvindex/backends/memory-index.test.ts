import { seededRandom } from '../../../src/util/random.js';
import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { DEFAULT_MEMORY_BUDGET_BYTES, MIN_MEMORY_BUDGET_BYTES, MemoryIndex } from '../../../src/kvindex/backends/memory-index.js';
import { engineGroups } from '../../../src/kvindex/keys/engine-mapping.js';
import type { BlockKey, PodEntry } from '../../../src/kvindex/types.js';
import { runIndexContract } from './index-contract.js';

runIndexContract('MemoryIndex', async () => new MemoryIndex());
runIndexContract('MemoryIndex (initialCapacity 4: growth inside every test)', async () => new MemoryIndex({ initialCapacity: 4 }));

/** Deterministic PRNG (mulberry32). */
const rng = seededRandom;

const key = (i: number): BlockKey => (BigInt(i) * 0x9e3779b97f4a7c15n + 12345n) & 0xffffffffffffffffn;
const gpu = (pod: string): PodEntry => ({ pod, tier: 'gpu' });

describe('MemoryIndex options', () => {
  it('defaults to a 512 MiB budget, like index.memoryBudgetBytes', () => {
    const idx = new MemoryIndex();
    expect(idx.budgetBytes).toBe(DEFAULT_MEMORY_BUDGET_BYTES);
    expect(DEFAULT_MEMORY_BUDGET_BYTES).toBe(512 * 1024 * 1024);
    expect(idx.stats).toMatchObject({ keys: 0, entries: 0, engineEdges: 0, lruEvictions: 0, droppedEntries: 0 });
    // Allocated at the default initial capacity of 1024 records per pool.
    expect(idx.approxBytes).toBeGreaterThan(1024 * (24 + 24 + 20));
    expect(idx.approxBytes).toBeLessThan(256 * 1024);
  });

  it('initialCapacity defaults to 1024 and is shrunk to fit small budgets', () => {
    const def = new MemoryIndex().approxBytes;
    expect(new MemoryIndex({ initialCapacity: 1024 }).approxBytes).toBe(def);
    expect(new MemoryIndex({ initialCapacity: 64 }).approxBytes).toBeLessThan(def);
    const tiny = new MemoryIndex({ memoryBudgetBytes: MIN_MEMORY_BUDGET_BYTES });
    expect(tiny.approxBytes).toBeLessThanOrEqual(MIN_MEMORY_BUDGET_BYTES);
  });

  it('rejects a budget that is too small or not an integer, naming the value and the fix', () => {
    expect(() => new MemoryIndex({ memoryBudgetBytes: 1000 })).toThrow(/memoryBudgetBytes: 1000 .*integer ≥ 16384/);
    expect(() => new MemoryIndex({ memoryBudgetBytes: 1.5e6 + 0.5 })).toThrow(/memoryBudgetBytes: 1500000.5/);
    expect(() => new MemoryIndex({ initialCapacity: 0 })).toThrow(/initialCapacity: 0 is invalid/);
  });

  it('refuses writes after close', async () => {
    const idx = new MemoryIndex();
    await idx.close();
    await expect(idx.add([], [1n], [gpu('a:1')])).rejects.toThrow(/closed/);
  });

  it('rejects malformed pod entries with a clear error', async () => {
    const idx = new MemoryIndex();
    await expect(idx.add([], [1n], [{ pod: '', tier: 'gpu' }])).rejects.toThrow(/entries\[0\].*non-empty pod/);
    await expect(idx.add([], [1n], [{ pod: 'a:1' } as unknown as PodEntry])).rejects.toThrow(/entries\[0\]: \{"pod":"a:1"\} is not a pod entry/);
    expect(idx.size).toBe(0);
  });
});

describe('MemoryIndex memory budget and LRU', () => {
  it('never exceeds the budget while it keeps accepting writes, and evicts to make room', () => {
    const budget = 64 * 1024;
    const idx = new MemoryIndex({ memoryBudgetBytes: budget });
    const pods = ['p0:1', 'p1:1', 'p2:1'];
    let maxBytes = 0;
    for (let i = 0; i < 5000; i++) {
      idx.addSync([key(1_000_000 + i)], [key(i)], [gpu(pods[i % 3] as string)]);
      maxBytes = Math.max(maxBytes, idx.approxBytes);
      expect(idx.approxBytes).toBeLessThanOrEqual(budget);
    }
    expect(maxBytes).toBeGreaterThan(budget / 2);
    const s = idx.stats;
    expect(s.lruEvictions).toBeGreaterThan(0);
    expect(s.keys + s.lruEvictions).toBe(5000);
    expect(s.entries).toBe(s.keys);
    expect(s.engineEdges).toBe(s.keys);
    // The newest key survives, with its mapping.
    expect(idx.lookupSync([key(4999)]).size).toBe(1);
    expect(idx.requestKeyForSync(key(1_004_999))).toBe(key(4999));
    // The oldest is gone, mapping included.
    expect(idx.lookupSync([key(0)]).size).toBe(0);
    expect(idx.requestKeyForSync(key(1_000_000))).toBeUndefined();
  });

  it('evicts the least recently used keys first; lookup and add both count as use', () => {
    const idx = new MemoryIndex({ memoryBudgetBytes: 32 * 1024 });
    // Fill until the first eviction, to learn the capacity.
    let n = 0;
    while (idx.stats.lruEvictions === 0) idx.addSync([], [key(n++)], [gpu('a:1')]);
    const cap = idx.size;
    expect(idx.lookupSync([key(0)]).size).toBe(0); // the very first key went first
    // Live now: key(1) .. key(n-1). Touch key(1) by lookup and key(2) by add (a second reference).
    expect(idx.lookupSync([key(1)]).size).toBe(1);
    idx.addSync([], [key(2)], [gpu('a:1')]);
    const before = idx.stats.lruEvictions;
    const extra = 10;
    for (let i = 0; i < extra; i++) idx.addSync([], [key(n + i)], [gpu('a:1')]);
    const evicted = idx.stats.lruEvictions - before;
    expect(evicted).toBeGreaterThanOrEqual(extra);
    // Touched keys survive, the oldest untouched ones (3, 4, ...) are gone, in order.
    const alive = (i: number): boolean => idx.lookupSync([key(i)]).size === 1;
    expect(alive(1)).toBe(true);
    expect(alive(2)).toBe(true);
    const firstAlive = Array.from({ length: n }, (_, i) => i).find((i) => i >= 3 && alive(i));
    expect(firstAlive).toBe(3 + evicted);
    expect(idx.size).toBeLessThanOrEqual(cap + 1);
  });

  it('approximate LRU at scale: keys looked up between floods of new keys survive, cold ones go', () => {
    // Promotions are skipped for keys already promoted in the current epoch (1/8 of the live keys);
    // such keys sit in the newest eighth of the list, so they must still outlive every cold key.
    const idx = new MemoryIndex({ memoryBudgetBytes: 2 << 20 });
    let n = 0;
    while (idx.stats.lruEvictions === 0) idx.addSync([], [key(n++)], [gpu('a:1')]);
    const cap = idx.size;
    expect(cap).toBeGreaterThan(5000);
    const hot = Array.from({ length: 200 }, (_, i) => key(1 + Math.floor((i * (n - 2)) / 200)));
    for (let round = 0; round < 30; round++) {
      for (const k of hot) expect(idx.lookupSync([k]).size).toBe(1);
      for (let i = 0; i < Math.ceil(cap / 10); i++) idx.addSync([], [key(n++)], [gpu('a:1')]);
    }
    for (const k of hot) expect(idx.lookupSync([k]).size).toBe(1);
    // Three capacities of new keys went in: every untouched original key is gone.
    const coldAlive = Array.from({ length: 1000 }, (_, i) => key(2 + i * 7)).filter((k) => !hot.includes(k) && idx.lookupSync([k]).size === 1);
    expect(coldAlive).toEqual([]);
  });

  it('evicting a key with many holders frees their records (entries stay consistent)', () => {
    const idx = new MemoryIndex({ memoryBudgetBytes: 48 * 1024 });
    const pods = Array.from({ length: 16 }, (_, i) => gpu(`10.0.0.${i}:8000`));
    for (let i = 0; i < 3000; i++) idx.addSync([key(50_000 + i)], [key(i)], pods);
    const s = idx.stats;
    expect(s.lruEvictions).toBeGreaterThan(0);
    expect(s.entries).toBe(16 * s.keys);
    expect(idx.approxBytes).toBeLessThanOrEqual(48 * 1024);
    idx.clearSync('10.0.0.3:8000');
    expect(idx.stats.entries).toBe(15 * s.keys);
  });

  it('an add larger than the whole budget keeps what fits, counts the rest, and stays within budget', () => {
    const budget = MIN_MEMORY_BUDGET_BYTES;
    const idx = new MemoryIndex({ memoryBudgetBytes: budget });
    const pods = Array.from({ length: 2000 }, (_, i) => gpu(`p${i}:1`));
    idx.addSync([], [key(1)], pods.slice(0, 4));
    idx.addSync([], [key(2)], pods);
    expect(idx.approxBytes).toBeLessThanOrEqual(budget + 2000 * 300); // pools within budget; 2000 interned names beyond the reserve
    expect(idx.stats.droppedEntries).toBeGreaterThan(0);
    const got = idx.lookupSync([key(2)]).get(key(2)) ?? [];
    expect(got.length).toBe(2000 - idx.stats.droppedEntries);
  });

  it('reports its stats as kvroute_index_memory_* metrics on the registry given', async () => {
    const registry = new Registry();
    const idx = new MemoryIndex({ memoryBudgetBytes: 32 * 1024, registry });
    for (let i = 0; i < 2000; i++) idx.addSync([key(9_000_000 + i)], [key(i)], [gpu('a:1'), gpu('b:1')]);
    const text = await registry.metrics();
    const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('kvroute_index_memory_keys')).toBe(idx.size);
    expect(value('kvroute_index_memory_entries')).toBe(2 * idx.size);
    expect(value('kvroute_index_memory_engine_edges')).toBe(idx.size);
    expect(value('kvroute_index_memory_bytes')).toBe(idx.approxBytes);
    expect(value('kvroute_index_memory_budget_bytes')).toBe(32 * 1024);
    expect(value('kvroute_index_memory_lru_evictions_total')).toBe(2000 - idx.size);
    expect(value('kvroute_index_memory_dropped_entries_total')).toBe(0);
    // Counters stay monotonic across scrapes.
    idx.addSync([], [key(99_999)], [gpu('a:1')]);
    const text2 = await registry.metrics();
    expect(Number(/^kvroute_index_memory_lru_evictions_total (\S+)$/m.exec(text2)?.[1])).toBe(idx.stats.lruEvictions);
  });
});

/**
 * A naive model of the MemoryIndex semantics, checked against the real thing under random
 * operations (adds with all three engine/request ratios, evicts, clears).
 */
class ModelIndex {
  readonly holders = new Map<BlockKey, Map<string, number>>();
  readonly engine = new Map<BlockKey, BlockKey[]>();

  add(e: BlockKey[], r: BlockKey[], entries: PodEntry[]): void {
    if (entries.length > 0) {
      for (const k of r) {
        let m = this.holders.get(k);
        if (m === undefined) this.holders.set(k, (m = new Map()));
        for (const en of entries) m.set(`${en.pod}|${en.tier}`, (m.get(`${en.pod}|${en.tier}`) ?? 0) + 1);
      }
    }
    for (const g of engineGroups(e, r)) {
      const held = g.requestKeys.filter((k) => this.holders.has(k));
      if (held.length > 0) this.engine.set(g.engineKey, held);
      else this.engine.delete(g.engineKey);
    }
  }

  private drop(k: BlockKey): void {
    this.holders.delete(k);
    for (const [ek, list] of this.engine) {
      const rest = list.filter((x) => x !== k);
      if (rest.length === 0) this.engine.delete(ek);
      else this.engine.set(ek, rest);
    }
  }

  evict(ek: BlockKey, entries: PodEntry[]): void {
    const list = this.engine.get(ek);
    if (list === undefined) return;
    for (const k of [...list]) {
      const m = this.holders.get(k);
      if (m === undefined) continue;
      for (const en of entries) {
        const f = `${en.pod}|${en.tier}`;
        const c = m.get(f);
        if (c === undefined) continue;
        if (c > 1) m.set(f, c - 1);
        else m.delete(f);
      }
      if (m.size === 0) this.drop(k);
    }
  }

  clear(pod: string): void {
    for (const [k, m] of [...this.holders]) {
      for (const f of [...m.keys()]) if (f.slice(0, f.lastIndexOf('|')) === pod) m.delete(f);
      if (m.size === 0) this.drop(k);
    }
  }
}

/** Every way `idx` disagrees with `model` (holders of every key, newest mapping, counts). */
function disagreements(step: number, idx: MemoryIndex, model: ModelIndex, R: number, E: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < R; i++) {
    const got = (idx.lookupSync([key(i)]).get(key(i)) ?? []).map((p) => `${p.pod}|${p.tier}`).sort();
    const want = [...(model.holders.get(key(i))?.keys() ?? [])].sort();
    if (got.join() !== want.join()) out.push(`step ${step} key ${i}: got [${got.join()}], want [${want.join()}]`);
  }
  for (let j = 0; j < E; j++) {
    const ek = key(100_000 + j);
    const list = model.engine.get(ek);
    const want = list === undefined ? undefined : list[list.length - 1];
    const got = idx.requestKeyForSync(ek);
    if (got !== want) out.push(`step ${step} engine ${j}: got ${String(got)}, want ${String(want)}`);
  }
  let entries = 0;
  for (const m of model.holders.values()) entries += m.size;
  const s = idx.stats;
  if (s.keys !== model.holders.size || s.entries !== entries) out.push(`step ${step}: stats ${s.keys}/${s.entries}, want ${model.holders.size}/${entries}`);
  return out;
}

describe('MemoryIndex against a reference model (random operations)', () => {
  it.each([1, 2, 3])('seed %i: 3000 operations agree on holders, counts and mappings', (seed) => {
    const rand = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const idx = new MemoryIndex({ initialCapacity: 4 });
    const model = new ModelIndex();
    const pods = ['10.0.0.1:8000', '10.0.0.2:8000', '[fd00::1]:8000', 'p|odd:1'];
    const tiers = ['gpu', 'cpu'];
    const R = 60;
    const E = 80;
    const problems: string[] = [];
    for (let step = 0; step < 3000; step++) {
      const op = rand();
      if (op < 0.55) {
        const start = Math.floor(rand() * R);
        const nr = 1 + Math.floor(rand() * 6);
        const ratio = pick([0.25, 0.5, 1, 2, 4, 0]);
        const r = Array.from({ length: Math.min(nr, R - start) }, (_, i) => key(start + i));
        const ne = ratio === 0 ? 0 : Math.max(1, Math.round(r.length * ratio));
        const es = Math.floor(rand() * (E - ne));
        const e = Array.from({ length: ne }, (_, i) => key(100_000 + es + i));
        const entries = rand() < 0.05 ? [] : Array.from({ length: 1 + Math.floor(rand() * 2) }, () => ({ pod: pick(pods), tier: pick(tiers) }));
        idx.addSync(e, r, entries);
        model.add(e, r, entries);
      } else if (op < 0.93) {
        const ek = key(100_000 + Math.floor(rand() * E));
        const entries = [{ pod: pick(pods), tier: pick(tiers) }];
        idx.evictSync(ek, entries);
        model.evict(ek, entries);
      } else {
        const pod = pick(pods);
        idx.clearSync(pod);
        model.clear(pod);
      }
      if (step % 50 === 49 || step === 2999) problems.push(...disagreements(step, idx, model, R, E));
    }
    expect(problems).toEqual([]);
    expect(idx.size).toBe(model.holders.size);
  });
});

describe('MemoryIndex under budget pressure (random operations)', () => {
  it.each([7, 8])('seed %i: stays within budget and internally consistent while evicting', (seed) => {
    const rand = rng(seed);
    const budget = MIN_MEMORY_BUDGET_BYTES;
    const idx = new MemoryIndex({ memoryBudgetBytes: budget });
    const pods = Array.from({ length: 6 }, (_, i) => `10.0.0.${i}:8000`);
    const R = 400;
    const E = 500;
    const problems: string[] = [];
    for (let step = 0; step < 4000; step++) {
      const op = rand();
      if (op < 0.7) {
        const start = Math.floor(rand() * (R - 8));
        const nr = 1 + Math.floor(rand() * 8);
        const ne = [0, 1, Math.max(1, nr >> 1), nr, nr * 2][Math.floor(rand() * 5)] as number;
        const es = Math.floor(rand() * (E - ne));
        const entries = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => ({ pod: pods[Math.floor(rand() * pods.length)] as string, tier: rand() < 0.7 ? 'gpu' : 'cpu' }));
        idx.addSync(
          Array.from({ length: ne }, (_, i) => key(100_000 + es + i)),
          Array.from({ length: nr }, (_, i) => key(start + i)),
          entries,
        );
      } else if (op < 0.95) {
        idx.evictSync(key(100_000 + Math.floor(rand() * E)), [{ pod: pods[Math.floor(rand() * pods.length)] as string, tier: 'gpu' }]);
      } else {
        idx.clearSync(pods[Math.floor(rand() * pods.length)] as string);
      }
      if (idx.approxBytes > budget) problems.push(`step ${step}: ${idx.approxBytes} bytes > ${budget}`);
      if (step % 200 === 199) {
        let keys = 0;
        let entries = 0;
        for (let i = 0; i < R; i++) {
          const got = idx.lookupSync([key(i)]).get(key(i));
          if (got === undefined) continue;
          keys++;
          entries += got.length;
          if (new Set(got.map((g) => `${g.pod}|${g.tier}`)).size !== got.length) problems.push(`step ${step}: duplicate holders of key ${i}`);
        }
        if (keys !== idx.stats.keys || entries !== idx.stats.entries) problems.push(`step ${step}: walked ${keys}/${entries}, stats ${idx.stats.keys}/${idx.stats.entries}`);
        for (let j = 0; j < E; j++) {
          const rk = idx.requestKeyForSync(key(100_000 + j));
          if (rk !== undefined && idx.lookupSync([rk]).size !== 1) problems.push(`step ${step}: engine ${j} maps to a key that is not held`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(idx.stats.lruEvictions).toBeGreaterThan(0);
  });
});
