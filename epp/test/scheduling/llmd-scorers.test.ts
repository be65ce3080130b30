/**
 * The llm-d scorers and pickers kvroute implements for EndpointPickerConfig, checked against
 * their formulas (values computed by hand) and inside the scheduler.
 */
import type { Endpoint, EndpointState, PodMetrics } from '../../src/datalayer/endpoint-store.js';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { Indexer, requestKeyProcessor } from '../../src/kvindex/indexer.js';
import { LoadAwareScorer } from '../../src/scheduling/load-aware-scorer.js';
import { NoHitLruScorer } from '../../src/scheduling/no-hit-lru-scorer.js';
import { MaxScorePicker, seededRandom } from '../../src/scheduling/picker.js';
import { PrefixCacheScorer } from '../../src/scheduling/prefix-cache-scorer.js';
import { RandomPicker } from '../../src/scheduling/random-picker.js';
import { Scheduler } from '../../src/scheduling/scheduler.js';
import { ActiveRequestScorer, PrecisePrefixScorer, UNKNOWN_LOAD_SCORE } from '../../src/scheduling/scorers.js';
import { CycleState, type ScoredEndpoint } from '../../src/scheduling/types.js';
import { WeightedRandomPicker } from '../../src/scheduling/weighted-random-picker.js';

const MODEL = 'm';
const ep = (address: string): Endpoint => ({ address, name: address, role: 'both', metricsUrl: `http://${address}/metrics` });
const m = (waiting: number, blockSize?: number): PodMetrics => ({ waiting, running: 0, kvCacheUsage: 0, blockSize, scrapedAt: 0 });
const st = (address: string, metrics?: PodMetrics, inFlight = 0): EndpointState => ({ endpoint: ep(address), metrics, inFlight });
const obj = (map: Map<string, number>): Record<string, number> => Object.fromEntries(map);

describe('load-aware-scorer', () => {
  it('0.5 for an empty queue, 0.5·(1 − q/T) below the threshold, 0 at or past it, unknown metrics neutral', () => {
    const s = new LoadAwareScorer(); // T = 128
    const r = s.score({ model: MODEL }, [st('a', m(0)), st('b', m(32)), st('c', m(128)), st('d', m(500)), st('e')]);
    expect(obj(r)).toEqual({ a: 0.5, b: 0.375, c: 0, d: 0, e: UNKNOWN_LOAD_SCORE });
    expect(obj(new LoadAwareScorer(10).score({ model: MODEL }, [st('a', m(5))]))).toEqual({ a: 0.25 });
    expect(() => new LoadAwareScorer(0)).toThrow('load-aware-scorer threshold must be a positive integer; got 0');
  });
});

describe('active-request-scorer maxBusyScore', () => {
  it('idle pods score 1, busy ones (max − n)/max scaled by maxBusyScore', () => {
    const r = new ActiveRequestScorer(0, 0.5).score({ model: MODEL }, [st('a', undefined, 0), st('b', undefined, 2), st('c', undefined, 4)]);
    expect(obj(r)).toEqual({ a: 1, b: 0.25, c: 0 });
  });
});

describe('prefix-cache-scorer (approximate)', () => {
  const blocks = (...chars: string[]): string => chars.map((c) => c.repeat(64)).join(''); // 16 tokens × 4 chars
  it('scores matched/total blocks, learns the pick, and stops at the first block no pod holds', () => {
    const s = new PrefixCacheScorer({ autoTune: false });
    const pods = [st('a'), st('b')];
    const state = new CycleState();
    expect(obj(s.score({ model: MODEL, prompt: blocks('w', 'x', 'y', 'z') }, pods, state))).toEqual({ a: 0, b: 0 });
    s.reserve({ model: MODEL }, 'a', state);
    expect(obj(s.score({ model: MODEL, prompt: blocks('w', 'x', 'y', 'z') }, pods, new CycleState()))).toEqual({ a: 1, b: 0 });
    expect(obj(s.score({ model: MODEL, prompt: blocks('w', 'x', 'q', 'z') }, pods, new CycleState()))).toEqual({ a: 0.5, b: 0 });
    // b learns only the first block: a block both hold counts for both, then the walk goes on with a
    const st2 = new CycleState();
    s.score({ model: MODEL, prompt: blocks('w') }, pods, st2);
    s.reserve({ model: MODEL }, 'b', st2);
    const both = new CycleState();
    expect(obj(s.score({ model: MODEL, prompt: blocks('w', 'x', 'y', 'z') }, pods, both))).toEqual({ a: 1, b: 0.25 });
    expect(obj(both.approximatePrefix!)).toEqual({ a: 4, b: 1 });
    // another model shares nothing
    expect(obj(s.score({ model: 'other', prompt: blocks('w', 'x', 'y', 'z') }, pods, new CycleState()))).toEqual({ a: 0, b: 0 });
    // a trailing partial block is hashed too (llm-d v0.8)
    expect(s.hashes(MODEL, 'x'.repeat(65), 64)).toHaveLength(2);
  });

  it('keeps lruCapacityPerServer hashes per pod, caps the prompt at maxPrefixBlocksToMatch, auto-tunes the block size', () => {
    const s = new PrefixCacheScorer({ lruCapacityPerServer: 3, maxPrefixBlocksToMatch: 2, autoTune: true });
    const state = new CycleState();
    const pods = [st('a', m(0, 8))]; // pods report 8-token blocks → 32 characters
    expect(s.blockChars(pods)).toBe(32);
    s.score({ model: MODEL, prompt: 'p'.repeat(32 * 5) }, pods, state);
    s.reserve({ model: MODEL }, 'a', state);
    expect(s.size('a')).toBe(2); // only the first 2 blocks are considered
    const s2 = new PrefixCacheScorer({ lruCapacityPerServer: 3, autoTune: false });
    for (const c of ['a', 'b', 'c', 'd']) s2.add('pod', s2.hashes(MODEL, c.repeat(64), 64));
    expect(s2.size('pod')).toBe(3);
    expect(obj(s2.score({ model: MODEL, prompt: 'a'.repeat(64) }, [st('pod')], new CycleState()))).toEqual({ pod: 0 }); // evicted
    expect(obj(s2.score({ model: MODEL, prompt: 'd'.repeat(64) }, [st('pod')], new CycleState()))).toEqual({ pod: 1 });
  });

  it('forgets pods not among the candidates for the inactivity period', () => {
    let now = 0;
    const s = new PrefixCacheScorer({ autoTune: false, inactivePodMs: 1000, now: () => now });
    s.add('gone', s.hashes(MODEL, 'g'.repeat(64), 64));
    s.score({ model: MODEL, prompt: 'g'.repeat(64) }, [st('gone')], new CycleState());
    now = 1500;
    expect(obj(s.score({ model: MODEL, prompt: 'g'.repeat(64) }, [st('other')], new CycleState()))).toEqual({ other: 0 });
    expect(s.size('gone')).toBe(0);
  });
});

describe('no-hit-lru-scorer', () => {
  it('warm requests: 0.5 everywhere; cold: never-used pods first, then least recently used', () => {
    const s = new NoHitLruScorer();
    const pods = [st('a'), st('b'), st('c')];
    const warm = new CycleState();
    warm.approximatePrefix = new Map([['b', 2]]);
    expect(obj(s.score({ model: MODEL }, pods, warm))).toEqual({ a: 0.5, b: 0.5, c: 0.5 });
    const cold1 = new CycleState();
    expect(obj(s.score({ model: MODEL }, pods, cold1))).toEqual({ a: 1, b: 0.5, c: 0 }); // 1 − i/(N−1)
    s.reserve({ model: MODEL }, 'a', cold1);
    const cold2 = new CycleState();
    // never used: b (i=0) 1, c (i=1) 0.5; a is the only used one: 1 − (2 + 0)/2 = 0
    expect(obj(s.score({ model: MODEL }, pods, cold2))).toEqual({ b: 1, c: 0.5, a: 0 });
    s.reserve({ model: MODEL }, 'c', cold2);
    // never used: b 1; LRU order a (pos 0), c (pos 1): 1 − (1 + 0)/2 = 0.5, 1 − (1 + 1)/2 = 0
    expect(obj(s.score({ model: MODEL }, pods, new CycleState()))).toEqual({ b: 1, a: 0.5, c: 0 });
    // a warm request's pick does not touch the LRU
    s.reserve({ model: MODEL }, 'b', warm);
    expect(obj(s.score({ model: MODEL }, pods, new CycleState()))).toEqual({ b: 1, a: 0.5, c: 0 });
  });

  it('runs after the precise prefix scorer in a profile and sees its hits', async () => {
    const index = new MemoryIndex({ memoryBudgetBytes: 4 * 1024 * 1024 });
    try {
      const indexer = new Indexer({ index, blockSize: 16, hashSeed: '42', engineAlgo: 'sha256_cbor' });
      const toks = Array.from({ length: 32 }, (_, i) => 100 + i);
      await index.add([], requestKeyProcessor({ blockSize: 16, hashSeed: '42' }, MODEL).blockKeys(toks), [{ pod: 'b', tier: 'gpu' }]);
      const lru = new NoHitLruScorer();
      const scheduler = new Scheduler({
        blockSize: 16,
        // listed first, still runs after the prefix scorer
        decode: { name: 'd', filters: [], scorers: [{ scorer: lru, weight: 1 }, { scorer: new PrecisePrefixScorer(indexer), weight: 1 }], picker: new MaxScorePicker(1, seededRandom(1)) },
      });
      const warm = await scheduler.schedule({ model: MODEL, tokens: toks }, [st('a'), st('b')]);
      expect(warm.primary.scored.map((s) => [s.state.endpoint.address, s.parts['no-hit-lru-scorer']])).toEqual([
        ['b', 0.5],
        ['a', 0.5],
      ]);
      const cold = await scheduler.schedule({ model: MODEL, tokens: toks.map((t) => t + 5000) }, [st('a'), st('b')]);
      expect(cold.primary.picked[0]?.state.endpoint.address).toBe('a'); // a: 1 (first never-used), b: 0
    } finally {
      await index.close();
    }
  });
});

describe('random and weighted-random pickers', () => {
  const scored = (totals: Record<string, number>): ScoredEndpoint[] => Object.entries(totals).map(([a, total]) => ({ state: st(a), total, parts: {} }));
  it('random-picker picks uniformly whatever the scores', () => {
    const p = new RandomPicker(1, seededRandom(3));
    const counts: Record<string, number> = { a: 0, b: 0 };
    for (let i = 0; i < 4000; i++) counts[p.pick(scored({ a: 10, b: 0 }))[0]!.state.endpoint.address]++;
    expect(counts.a! / 4000).toBeGreaterThan(0.46);
    expect(counts.a! / 4000).toBeLessThan(0.54);
  });

  it('weighted-random-picker picks in proportion to the score, never a 0 unless all are 0', () => {
    const p = new WeightedRandomPicker(1, seededRandom(4));
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 6000; i++) counts[p.pick(scored({ a: 3, b: 1, c: 0 }))[0]!.state.endpoint.address]++;
    expect(counts.c).toBe(0);
    expect(counts.a! / 6000).toBeGreaterThan(0.72); // expected 0.75
    expect(counts.a! / 6000).toBeLessThan(0.78);
    const zero = new Set<string>();
    for (let i = 0; i < 200; i++) zero.add(p.pick(scored({ a: 0, b: 0 }))[0]!.state.endpoint.address);
    expect([...zero].sort()).toEqual(['a', 'b']);
    expect(new WeightedRandomPicker(2, seededRandom(5)).pick(scored({ a: 1, b: 1, c: 0 })).map((s) => s.state.endpoint.address).sort()).toEqual(['a', 'b']);
  });
});
