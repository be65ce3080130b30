import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { PrefixHits } from '../../src/kvindex/prefix-hits.js';
import { PrefixScorer } from '../../src/kvindex/scorer.js';
import type { PodEntry } from '../../src/kvindex/types.js';

const gpu = (pod: string): PodEntry => ({ pod, tier: 'gpu' });
const cpu = (pod: string): PodEntry => ({ pod, tier: 'cpu' });

function indexWith(): MemoryIndex {
  const idx = new MemoryIndex({ memoryBudgetBytes: 1 << 20 });
  idx.addSync([], [1n, 2n, 3n], [gpu('a')]);
  idx.addSync([], [1n, 2n], [cpu('b')]);
  idx.addSync([], [1n], [gpu('c')]);
  return idx;
}

describe('PrefixHits (MemoryIndex lookup answer)', () => {
  it('behaves as the Map of the held prefix: get, has, size, iteration', () => {
    const hits = indexWith().lookupSync([1n, 2n, 3n, 4n]);
    expect(hits).toBeInstanceOf(PrefixHits);
    expect(hits.size).toBe(3);
    expect(hits.has(4n)).toBe(false);
    expect(hits.get(3n)).toEqual([gpu('a')]);
    expect([...hits.keys()]).toEqual([1n, 2n, 3n]);
    expect(new Map(hits)).toEqual(new Map([[1n, hits.get(1n)], [2n, hits.get(2n)], [3n, hits.get(3n)]]));
  });

  it('counts a repeated request key once in size before and after materializing', () => {
    const idx = indexWith();
    const hits = idx.lookupSync([1n, 2n, 1n, 9n]);
    expect(hits.size).toBe(2);
    expect(new Map(hits).size).toBe(2);
    expect(hits.size).toBe(2);
  });

  it('stays a mutable Map: set and delete change get and size', () => {
    const hits = indexWith().lookupSync([1n, 2n]);
    hits.set(7n, [gpu('z')]);
    expect(hits.size).toBe(3);
    expect(hits.delete(1n)).toBe(true);
    expect(hits.size).toBe(2);
    expect(hits.get(7n)).toEqual([gpu('z')]);
    hits.clear();
    expect(hits.size).toBe(0);
  });

  it('is scored the same from its compact form as from a plain Map copy', () => {
    const idx = indexWith();
    const keys = [1n, 2n, 3n, 4n];
    const scorer = new PrefixScorer();
    const compact = idx.lookupSync(keys) as PrefixHits;
    expect(compact.answers(keys)).toBe(true);
    const fromCompact = scorer.score(keys, compact);
    const fromPlain = scorer.score(keys, new Map(idx.lookupSync(keys)));
    expect(fromCompact).toEqual(fromPlain);
    expect(fromCompact.map((s) => [s.pod, s.consecutiveBlocks])).toEqual([['a', 3], ['b', 2], ['c', 1]]);
  });

  it('is not read compactly for other keys or after it was modified', () => {
    const idx = indexWith();
    const hits = idx.lookupSync([1n, 2n]) as PrefixHits;
    expect(hits.answers([1n, 3n])).toBe(false);
    expect(hits.answers([1n])).toBe(false);
    hits.set(5n, [gpu('q')]);
    expect(hits.answers([1n, 2n])).toBe(false);
    // the scorer then uses the Map view (with the added entry ignored: 5n is not a requested key)
    expect(new PrefixScorer().score([1n, 2n], hits).map((s) => s.pod)).toEqual(['a', 'b', 'c']);
  });
});
