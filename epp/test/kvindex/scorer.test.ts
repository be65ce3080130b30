import { DEFAULT_TIER_WEIGHTS, PrefixScorer } from '../../src/kvindex/scorer.js';
import type { BlockKey, PodEntry } from '../../src/kvindex/types.js';

const gpu = (pod: string): PodEntry => ({ pod, tier: 'gpu' });
const cpu = (pod: string): PodEntry => ({ pod, tier: 'cpu' });

function hits(entries: Record<string, PodEntry[]>): Map<BlockKey, PodEntry[]> {
  return new Map(Object.entries(entries).map(([k, v]) => [BigInt(k), v]));
}

describe('PrefixScorer', () => {
  const keys = [1n, 2n, 3n, 4n];

  it('counts consecutive leading blocks per pod and stops a pod at its first miss', () => {
    const s = new PrefixScorer().score(
      keys,
      hits({ '1': [gpu('a'), gpu('b')], '2': [gpu('a')], '3': [gpu('a'), gpu('b')], '4': [gpu('a')] }),
    );
    expect(s).toEqual([
      { pod: 'a', consecutiveBlocks: 4, raw: 4, score: 1 },
      { pod: 'b', consecutiveBlocks: 1, raw: 1, score: 0.25 },
    ]);
  });

  it('gives nothing to a pod that lacks block 0 even if it holds later blocks', () => {
    const s = new PrefixScorer().score(keys, hits({ '1': [gpu('a')], '2': [gpu('a'), gpu('c')], '3': [gpu('c')] }));
    expect(s.map((p) => p.pod)).toEqual(['a']);
    expect(s[0].consecutiveBlocks).toBe(2);
  });

  it('weights blocks by device tier and takes the best tier of a pod per block', () => {
    const s = new PrefixScorer().score([1n, 2n], hits({ '1': [cpu('a'), gpu('a'), cpu('b')], '2': [cpu('a'), cpu('b')] }));
    const a = s.find((p) => p.pod === 'a');
    const b = s.find((p) => p.pod === 'b');
    expect(a?.raw).toBeCloseTo(1.8);
    expect(a?.score).toBeCloseTo(0.9);
    expect(b?.raw).toBeCloseTo(1.6);
    expect(a?.consecutiveBlocks).toBe(2);
  });

  it('defaults tier weights to gpu 1.0 / cpu 0.8 and unknown tiers to 1.0', () => {
    expect(DEFAULT_TIER_WEIGHTS).toEqual({ gpu: 1.0, cpu: 0.8 });
    const sc = new PrefixScorer();
    expect(sc.weightOf('gpu')).toBe(1);
    expect(sc.weightOf('GPU')).toBe(1);
    expect(sc.weightOf('cpu')).toBe(0.8);
    expect(sc.weightOf('disk')).toBe(1);
    expect(new PrefixScorer({ defaultTierWeight: 0.5 }).weightOf('disk')).toBe(0.5);
    // tier names come from KV events: Object.prototype's names are unknown tiers, not functions
    expect(['constructor', 'toString', '__proto__'].map((t) => sc.weightOf(t))).toEqual([1, 1, 1]);
  });

  it('returns no scores for an empty request or no hits', () => {
    expect(new PrefixScorer().score([], hits({}))).toEqual([]);
    expect(new PrefixScorer().score(keys, hits({ '2': [gpu('a')] }))).toEqual([]);
  });

  it('keeps scores within [0, 1] with tier weights above 1', () => {
    const s = new PrefixScorer({ tierWeights: { gpu: 2 } }).score([1n], hits({ '1': [gpu('a')] }));
    expect(s[0].score).toBe(1);
  });

  it('rejects negative tier weights naming the tier', () => {
    expect(() => new PrefixScorer({ tierWeights: { cpu: -1 } })).toThrow(/tierWeights\.cpu is -1/);
  });

  it('orders ties by pod id for deterministic output', () => {
    const s = new PrefixScorer().score([1n], hits({ '1': [gpu('z'), gpu('m')] }));
    expect(s.map((p) => p.pod)).toEqual(['m', 'z']);
  });
});
