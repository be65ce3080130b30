import { AIBRIX_DEFAULTS, AibrixBlockStore, AibrixPolicy, SlotMap, aibrixBlockHashes, loadGate } from '../../../../lab/sim/peers/aibrix.js';
import { createPolicy } from '../../../../lab/sim/policy-factory.js';
import { ctx } from './helpers.js';

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

describe('aibrix prefix-cache', () => {
  it('defaults: block 4 bytes (one derived token), LRU 200,000 blocks, imbalance 8, mean + 1σ, 20 min idle', () => {
    const p = createPolicy('aibrix', ctx()) as AibrixPolicy;
    expect(p.o).toEqual({ maxBlocks: 200_000, imbalanceThreshold: 8, stdDevFactor: 1, idleEvictMs: 1_200_000 });
    expect(AIBRIX_DEFAULTS.blockBytes / AIBRIX_DEFAULTS.bytesPerToken).toBe(1);
    expect(p.store.capacity).toBe(200_000);
    // chained hashes: equal prefixes hash equal, a different first token changes every later hash
    const a = aibrixBlockHashes([1, 2, 3]);
    expect(aibrixBlockHashes([1, 2, 9]).slice(0, 2)).toEqual(a.slice(0, 2));
    expect(aibrixBlockHashes([7, 2, 3]).some((h, i) => h === a[i])).toBe(false);
    for (const h of a) expect(Number.isSafeInteger(h)).toBe(true);
  });

  it('imbalance > 8 restricts the candidates to the min-count pods', () => {
    const p = new AibrixPolicy(ctx());
    const h = aibrixBlockHashes(range(1, 20));
    p.record(h, 2, 0);
    // spread 8 (not > 8): every pod stays a candidate; the holder (count 8) passes the gate 6 + 3.46 = 9.46
    expect(p.decide(h, [0, 8, 8, 8])).toEqual({ pod: 2, reason: 'prefix' });
    // spread 9 → only pod 0 (count 0) is a candidate
    expect(p.decide(h, [0, 9, 9, 9])).toEqual({ pod: 0, reason: 'least-request' });
  });

  it('match % from the deepest contiguous block; load gate mean + 1σ; fallback least-request', () => {
    const p = new AibrixPolicy(ctx());
    const h = aibrixBlockHashes(range(1, 10));
    p.record(h.slice(0, 5), 1, 0); // pod 1: 50 %
    p.record(h, 3, 0); // pod 3: 100 %
    expect(p.matchPercents(h, [0, 1, 2, 3])).toEqual(new Map([[1, 50], [3, 100]]));
    // pod 3 first by match %; equal counts → gate = mean → pod 3
    expect(p.decide(h, [1, 1, 1, 1])).toEqual({ pod: 3, reason: 'prefix' });
    // counts [1,1,1,2]: gate 1.25 + 0.433 = 1.68 < 2 → pod 3 fails the gate, pod 1 (50 %) is next
    expect(p.decide(h, [1, 1, 1, 2])).toEqual({ pod: 1, reason: 'prefix' });
    // counts [0,0,0,6]: mean 1.5, σ 2.60 → gate 4.10; pod 3 (6) fails, pod 1 (0) passes
    expect(loadGate([0, 0, 0, 6], 1)).toBeCloseTo(1.5 + Math.sqrt(6.75), 12);
    expect(p.decide(h, [0, 0, 0, 6])).toEqual({ pod: 1, reason: 'prefix' });
    // no pod matched → least request
    expect(p.decide(aibrixBlockHashes(range(500, 10)), [3, 2, 5, 4])).toEqual({ pod: 1, reason: 'least-request' });
  });

  it('block store: LRU of whole hashes, idle sweep drops hashes unused for 20 min', () => {
    const s = new AibrixBlockStore(3, 2);
    s.touch(1, 0, 0);
    s.touch(2, 1, 0);
    s.touch(3, 0, 0);
    s.touch(1, 1, 5); // 1 becomes most recent
    s.touch(4, 0, 6); // evicts 2
    expect(s.lastUse(2, 1)).toBeNaN();
    expect(s.lastUse(1, 1)).toBe(5);
    expect(s.size).toBe(3);
    s.sweepIdle(1_200_005, 1_200_000); // 3 (t 0) is idle > 20 min; 1 (t 5) and 4 (t 6) are not
    expect(s.size).toBe(2);
    expect(s.lastUse(3, 0)).toBeNaN();
    s.touch(9, 0, 1_200_010); // reuses the freed slot without evicting
    expect(s.size).toBe(3);
    expect(s.lastUse(1, 1)).toBe(5);
  });

  it('slot map agrees with a Map under random inserts, updates and deletes (probe runs and wrap-around)', () => {
    const m = new SlotMap(300);
    const ref = new Map<number, number>();
    let x = 12345;
    const rnd = (): number => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x;
    };
    // a small key universe with 53-bit keys forces collisions and long runs
    const universe = Array.from({ length: 400 }, (_, i) => (i % 7) * 2 ** 40 + rnd());
    const mismatches: string[] = [];
    for (let step = 0; step < 20_000; step++) {
      const k = universe[rnd() % universe.length] as number;
      if (rnd() % 3 === 0) {
        m.delete(k);
        ref.delete(k);
      } else if (ref.size < 300 || ref.has(k)) {
        m.set(k, step);
        ref.set(k, step);
      }
      if (step % 97 === 0) for (const u of universe) if (m.get(u) !== (ref.get(u) ?? -1)) mismatches.push(`step ${step} key ${u}`);
    }
    expect(mismatches).toEqual([]);
    expect(m.size).toBe(ref.size);
  });
});
