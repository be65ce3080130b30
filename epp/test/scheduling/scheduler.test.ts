import { EndpointStore, type Endpoint, type EndpointState, type PodMetrics } from '../../src/datalayer/endpoint-store.js';
import { Indexer, requestKeyProcessor } from '../../src/kvindex/indexer.js';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { parseEppConfig } from '../../src/contract/config.js';
import { buildScheduler } from '../../src/scheduling/build.js';
import { MaxScorePicker, seededRandom } from '../../src/scheduling/picker.js';
import { runProfile } from '../../src/scheduling/scheduler.js';
import {
  ActiveRequestScorer,
  KvCacheUtilizationScorer,
  QueueScorer,
  SessionAffinityScorer,
  UNKNOWN_LOAD_SCORE,
} from '../../src/scheduling/scorers.js';
import { CycleState, type ScoredEndpoint } from '../../src/scheduling/types.js';
import { ApiError } from '../../src/contract/errors.js';

const MODEL = 'meta-llama/Llama-3.2-1B';
const ep = (address: string, role: Endpoint['role'] = 'both'): Endpoint => ({ address, name: `pod-${address}`, role, metricsUrl: `http://${address}/metrics` });
const m = (waiting: number, running = 0, kvCacheUsage?: number): PodMetrics => ({ waiting, running, kvCacheUsage, blockSize: 16, scrapedAt: 0 });
const st = (address: string, metrics?: PodMetrics, inFlight = 0, role: Endpoint['role'] = 'both'): EndpointState => ({ endpoint: ep(address, role), metrics, inFlight });
const tokens = (n: number, offset = 0): number[] => Array.from({ length: n }, (_, i) => 1000 + offset + i);

describe('load scorers', () => {
  it('queue scorer: min-max lower-is-better, all equal → 1, unknown → neutral', () => {
    const s = new QueueScorer().score({ model: MODEL }, [st('a', m(0)), st('b', m(10)), st('c', m(5)), st('d')]);
    expect(Object.fromEntries(s)).toEqual({ a: 1, b: 0, c: 0.5, d: UNKNOWN_LOAD_SCORE });
    const eq = new QueueScorer().score({ model: MODEL }, [st('a', m(3)), st('b', m(3))]);
    expect([...eq.values()]).toEqual([1, 1]);
  });

  it('kv-cache utilization scorer: 1 − usage, clamped; unknown → neutral', () => {
    const s = new KvCacheUtilizationScorer().score({ model: MODEL }, [st('a', m(0, 0, 0.25)), st('b', m(0, 0, 1.5)), st('c', m(0, 0)), st('d')]);
    expect(Object.fromEntries(s)).toEqual({ a: 0.75, b: 0, c: UNKNOWN_LOAD_SCORE, d: UNKNOWN_LOAD_SCORE });
  });

  it('active-request scorer: idle → 1, else (max − n)/max', () => {
    const s = new ActiveRequestScorer().score({ model: MODEL }, [st('a', undefined, 0), st('b', undefined, 4), st('c', undefined, 1)]);
    expect(Object.fromEntries(s)).toEqual({ a: 1, b: 0, c: 0.75 });
  });

  it('session affinity scorer: 1 for the session’s last pod, bounded memory', () => {
    const sc = new SessionAffinityScorer(2);
    sc.record('s1', 'a');
    sc.record('s2', 'b');
    expect(Object.fromEntries(sc.score({ model: MODEL, sessionId: 's1' }, [st('a'), st('b')]))).toEqual({ a: 1, b: 0 });
    sc.record('s3', 'b');
    expect(Object.fromEntries(sc.score({ model: MODEL, sessionId: 's1' }, [st('a'), st('b')]))).toEqual({ a: 0, b: 0 });
  });
});

describe('MaxScorePicker', () => {
  const scored = (total: number, a: string): ScoredEndpoint => ({ state: st(a), total, parts: {} });
  it('picks the highest total', () => {
    expect(new MaxScorePicker().pick([scored(1, 'a'), scored(3, 'b'), scored(2, 'c')]).map((s) => s.state.endpoint.address)).toEqual(['b']);
  });
  it('breaks ties at random, reproducibly with a seed, reaching every tied endpoint', () => {
    const tied = ['a', 'b', 'c', 'd'].map((a) => scored(1, a));
    const p1 = new MaxScorePicker(1, seededRandom(7));
    const p2 = new MaxScorePicker(1, seededRandom(7));
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const x = p1.pick(tied)[0].state.endpoint.address;
      expect(p2.pick(tied)[0].state.endpoint.address).toBe(x);
      seen.add(x);
    }
    expect(seen.size).toBe(4);
  });
  it('returns several endpoints in score order when asked', () => {
    expect(new MaxScorePicker(2).pick([scored(1, 'a'), scored(3, 'b'), scored(2, 'c')]).map((s) => s.state.endpoint.address)).toEqual(['b', 'c']);
  });
});

describe('scheduler over the real index (llmd-suite preset)', () => {
  const config = parseEppConfig({ model: MODEL, blockSize: 16, scheduling: { preset: 'llmd-suite' } });
  let index: MemoryIndex;
  let indexer: Indexer;
  beforeEach(() => {
    index = new MemoryIndex({ memoryBudgetBytes: 8 * 1024 * 1024 });
    indexer = new Indexer({ index, blockSize: 16, hashSeed: config.hashSeed, engineAlgo: 'sha256_cbor' });
  });
  afterEach(() => index.close());

  async function cache(pod: string, toks: number[]): Promise<void> {
    const keys = requestKeyProcessor({ blockSize: 16, hashSeed: config.hashSeed }, MODEL).blockKeys(toks);
    await index.add([], keys, [{ pod, tier: 'gpu' }]);
  }

  it('routes to the pod holding the longest prefix when load is equal', async () => {
    const { scheduler } = buildScheduler({ config, indexer, random: seededRandom(1) });
    const prompt = tokens(160);
    await cache('10.0.0.2:8000', prompt.slice(0, 128));
    await cache('10.0.0.3:8000', prompt.slice(0, 32));
    const cands = [st('10.0.0.1:8000', m(1)), st('10.0.0.2:8000', m(1)), st('10.0.0.3:8000', m(1))];
    const r = await scheduler.schedule({ model: MODEL, tokens: prompt }, cands);
    expect(r.primary.picked[0].state.endpoint.address).toBe('10.0.0.2:8000');
    expect(r.primary.picked[0].parts['precise-prefix-cache-scorer']).toBeCloseTo(0.8);
    expect(r.cachedTokens).toBe(128);
    expect(r.totalBlocks).toBe(10);
  });

  it('moves away from a cached pod whose queue is much deeper (load beats a small prefix)', async () => {
    const { scheduler } = buildScheduler({ config, indexer, random: seededRandom(1) });
    const prompt = tokens(160);
    await cache('10.0.0.2:8000', prompt.slice(0, 32)); // 2 of 10 blocks → prefix 0.2 × 3 = 0.6
    const cands = [st('10.0.0.1:8000', m(0, 0, 0.1)), st('10.0.0.2:8000', m(20, 0, 0.9), 5)];
    const r = await scheduler.schedule({ model: MODEL, tokens: prompt }, cands);
    expect(r.primary.picked[0].state.endpoint.address).toBe('10.0.0.1:8000');
  });

  it('never routes decode traffic to prefill-only pods and fails with no_endpoint when none is left', async () => {
    const { scheduler } = buildScheduler({ config, indexer });
    const r = await scheduler.schedule({ model: MODEL }, [st('p', m(0), 0, 'prefill'), st('d', m(9), 0, 'decode')]);
    expect(r.primary.picked[0].state.endpoint.address).toBe('d');
    await expect(scheduler.schedule({ model: MODEL }, [st('p', m(0), 0, 'prefill')])).rejects.toThrow(ApiError);
    await expect(scheduler.schedule({ model: MODEL }, [])).rejects.toMatchObject({ code: 'no_endpoint', status: 503 });
  });

  it('P/D: runs the prefill profile only when the uncached part reaches the threshold', async () => {
    const pdConfig = parseEppConfig({ model: MODEL, scheduling: { pd: { enabled: true, nonCachedTokensThreshold: 64 } } });
    const { scheduler } = buildScheduler({ config: pdConfig, indexer, random: seededRandom(3) });
    const cands = [st('d1', m(0), 0, 'decode'), st('p1', m(0), 0, 'prefill')];
    const prompt = tokens(160);
    const cold = await scheduler.schedule({ model: MODEL, tokens: prompt }, cands);
    expect(cold.primary.picked[0].state.endpoint.address).toBe('d1');
    expect(cold.prefill?.picked[0].state.endpoint.address).toBe('p1');
    await cache('d1', prompt.slice(0, 112)); // 48 tokens uncached < 64
    const warm = await scheduler.schedule({ model: MODEL, tokens: prompt }, cands);
    expect(warm.cachedTokens).toBe(112);
    expect(warm.prefill).toBeUndefined();
    const short = await scheduler.schedule({ model: MODEL, tokens: tokens(40, 9000) }, cands);
    expect(short.prefill).toBeUndefined();
  });

  it('runProfile clamps scorer output into [0, 1] and weights it', async () => {
    const crazy = { name: 'crazy', score: () => new Map([['a', 7], ['b', -3], ['c', NaN]]) };
    const r = await runProfile(
      { name: 'p', filters: [], scorers: [{ scorer: crazy, weight: 2 }], picker: new MaxScorePicker() },
      { model: MODEL },
      [st('a'), st('b'), st('c')],
      new CycleState(),
    );
    expect(Object.fromEntries(r.scored.map((s) => [s.state.endpoint.address, s.total]))).toEqual({ a: 2, b: 0, c: 0 });
  });
});

describe('EndpointStore', () => {
  it('reports metrics older than the staleness limit as unknown, not zero', () => {
    let now = 1000;
    const store = new EndpointStore({ metricsStalenessMs: 100, now: () => now });
    store.upsert(ep('a'));
    store.setMetrics('a', { ...m(4), scrapedAt: 950 });
    expect(store.snapshot()[0].metrics?.waiting).toBe(4);
    now = 1051;
    expect(store.snapshot()[0].metrics).toBeUndefined();
    expect(store.countFresh()).toBe(0);
  });

  it('defaults staleness to 500 ms', () => {
    let now = 0;
    const store = new EndpointStore({ now: () => now });
    store.upsert(ep('a'));
    store.setMetrics('a', m(1));
    now = 500;
    expect(store.freshMetrics('a')).toBeDefined();
    now = 501;
    expect(store.freshMetrics('a')).toBeUndefined();
  });

  it('counts in-flight requests with idempotent release', () => {
    const store = new EndpointStore();
    store.upsert(ep('a'));
    const r1 = store.acquire('a');
    store.acquire('a');
    expect(store.inFlightOf('a')).toBe(2);
    r1();
    r1();
    expect(store.inFlightOf('a')).toBe(1);
  });

  it('tells listeners about removed endpoints and drops their state', () => {
    const store = new EndpointStore();
    const events: string[] = [];
    store.onChange((e, endpoint) => events.push(`${e}:${endpoint.address}`));
    store.replaceAll([ep('a'), ep('b')]);
    store.setMetrics('a', { ...m(1), scrapedAt: Date.now() });
    store.replaceAll([ep('b')]);
    expect(events).toEqual(['added:a', 'added:b', 'removed:a']);
    store.upsert(ep('a'));
    expect(store.freshMetrics('a')).toBeUndefined();
  });
});
