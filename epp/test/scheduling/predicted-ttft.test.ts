import type { Endpoint, EndpointState, PodMetrics } from '../../src/datalayer/endpoint-store.js';
import { Indexer, requestKeyProcessor } from '../../src/kvindex/indexer.js';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { parseEppConfig, type EppConfig } from '../../src/contract/config.js';
import { buildScheduler } from '../../src/scheduling/build.js';
import { seededRandom } from '../../src/scheduling/picker.js';
import { PredictedTtftScorer, type PredictedTtftOptions } from '../../src/scheduling/predicted-ttft.js';
import { CycleState } from '../../src/scheduling/types.js';
import { SchedulingDirector } from '../../src/scheduling/director.js';
import { EndpointStore } from '../../src/datalayer/endpoint-store.js';
import type { InferenceRequest } from '../../src/extproc/director.js';
import { silentLogger } from '../../src/util/logger.js';

const MODEL = 'meta-llama/Llama-3.2-1B';
const ep = (address: string): Endpoint => ({ address, name: `pod-${address}`, role: 'both', metricsUrl: `http://${address}/metrics` });
const m = (over: Partial<PodMetrics> = {}): PodMetrics => ({ waiting: 0, running: 0, kvCacheUsage: 0, blockSize: 16, scrapedAt: 0, ...over });
const st = (address: string, metrics?: PodMetrics): EndpointState => ({ endpoint: ep(address), metrics, inFlight: 0 });
const tokens = (n: number, offset = 0): number[] => Array.from({ length: n }, (_, i) => 1000 + offset + i);

describe('scheduling.predictedTtft config', () => {
  it('defaults: preset predicted-ttft and every option pinned', () => {
    const c = parseEppConfig({ model: MODEL });
    expect(c.scheduling.preset).toBe('predicted-ttft');
    expect(c.scheduling.predictedTtft).toEqual({
      prefillTokensPerSecond: 40_000,
      chunkTokens: 8192,
      stepOverheadTokens: 300,
      decodeSequenceTokens: 1,
      contextTokenFactor: 0.0025,
      missPenalty: 1,
      minCachedFraction: 0.3,
      speculative: true,
      speculativeGraceMs: 2000,
      memoryPressure: true,
      queueDrain: true,
    });
  });

  it('rejects bad values naming the field and the value', () => {
    expect(() => parseEppConfig({ model: MODEL, scheduling: { predictedTtft: { chunkTokens: 0 } } })).toThrow(/scheduling\.predictedTtft\.chunkTokens/);
    expect(() => parseEppConfig({ model: MODEL, scheduling: { predictedTtft: { prefillTokensPerSecond: -5 } } })).toThrow(/prefillTokensPerSecond/);
    expect(() => parseEppConfig({ model: MODEL, scheduling: { predictedTtft: { speculativeGraceMS: 5 } } })).toThrow(/speculativeGraceMS/);
    expect(() => parseEppConfig({ model: MODEL, scheduling: { predictedTtft: { minCachedFraction: 1.5 } } })).toThrow(/minCachedFraction/);
    expect(() => parseEppConfig({ model: MODEL, scheduling: { preset: 'fastest' } })).toThrow(/scheduling\.preset.*fastest|fastest[\s\S]*scheduling\.preset/);
  });
});

describe('PredictedTtftScorer over the real index', () => {
  let config: EppConfig;
  let index: MemoryIndex;
  let indexer: Indexer;
  let now: number;
  beforeEach(() => {
    config = parseEppConfig({ model: MODEL, blockSize: 16 });
    index = new MemoryIndex({ memoryBudgetBytes: 8 * 1024 * 1024 });
    indexer = new Indexer({ index, blockSize: 16, hashSeed: config.hashSeed, engineAlgo: 'sha256_cbor' });
    now = 1_000_000;
  });
  afterEach(() => index.close());

  const scorer = (over: Partial<PredictedTtftOptions> = {}): PredictedTtftScorer =>
    new PredictedTtftScorer(indexer, 16, { ...config.scheduling.predictedTtft, ...over }, () => now);

  async function cache(pod: string, toks: number[]): Promise<void> {
    const keys = requestKeyProcessor({ blockSize: 16, hashSeed: config.hashSeed }, MODEL).blockKeys(toks);
    await index.add([], keys, [{ pod, tier: 'gpu' }]);
  }

  async function run(s: PredictedTtftScorer, toks: number[], cands: EndpointState[]): Promise<{ best: string; state: CycleState; scores: Map<string, number> }> {
    const state = new CycleState();
    const scores = await s.score({ model: MODEL, tokens: toks }, cands, state);
    let best = '';
    let top = -1;
    for (const [a, v] of scores) if (v > top) [best, top] = [a, v];
    return { best, state, scores };
  }

  it('predicts TTFT from uncached tokens and explains every term', async () => {
    const s = scorer();
    const prompt = tokens(1600);
    await cache('a', prompt.slice(0, 1280));
    const { best, state, scores } = await run(s, prompt, [st('a', m()), st('b', m())]);
    expect(best).toBe('a');
    const a = state.ttft?.get('a');
    const b = state.ttft?.get('b');
    expect(a).toMatchObject({ cachedTokens: 1280, uncachedTokens: 320, queuedPrefillTokens: 0, steps: 1, speculativeTokens: 0 });
    expect(b).toMatchObject({ cachedTokens: 0, uncachedTokens: 1600 });
    // cost = work + one step's overhead (300) + the miss penalty (1 × uncached), in prefill-token
    // equivalents; 40,000 tokens/s → ms
    expect(a?.costTokens).toBeCloseTo(320 + 300 + 320, 6);
    // the predicted TTFT leaves out the miss penalty: it ranks pods, it does not delay this request
    expect(a?.predictedTtftMs).toBeCloseTo(((320 + 300) / 40_000) * 1000, 6);
    expect(b?.predictedTtftMs).toBeCloseTo(((1600 + 300) / 40_000) * 1000, 6);
    expect(scores.get('a')).toBe(1);
    expect(scores.get('b')).toBeCloseTo(940 / 3500, 6);
  });

  it('minCachedFraction: a prompt whose best cached share is below it is placed by load; at or above it the cache decides', async () => {
    const system = tokens(320); // a shared system prompt held by a
    await cache('a', system);
    const cands = [st('a', m()), st('b', m())];
    // a is busier: 500 prefill tokens queued there (the clock stands still: nothing drains)
    const busy = async (over: Partial<PredictedTtftOptions>): Promise<PredictedTtftScorer> => {
      const s = scorer({ speculative: false, ...over });
      const q = tokens(500, 50_000);
      s.reserve({ model: MODEL, tokens: q }, 'a', (await run(s, q, [st('a', m())])).state);
      return s;
    };
    const newSession = [...system, ...tokens(1280, 20_000)];
    // threshold off: a = 500 queued + 1,280 + 300 + 1,280 (miss penalty) = 3,360 < b = 1,600 + 300 + 1,600 = 3,500
    expect((await run(await busy({ minCachedFraction: 0 }), newSession, cands)).best).toBe('a');
    // default 0.3: 320 of 1,600 tokens (20 %) is below it, the cache is ignored: a = 500 + 1,600 + 300 + 1,600 = 4,000 > b
    const s = await busy({});
    const fresh = await run(s, newSession, cands);
    expect(fresh.best).toBe('b');
    expect(fresh.state.ttft?.get('a')).toMatchObject({ placedByLoad: true, cachedTokens: 0, uncachedTokens: 1600, costTokens: 4000 });
    // a later turn: 1,280 of 1,600 (80 %) cached on a, the cache decides: a = 500 + 320 + 300 + 320 = 1,440
    const turn = tokens(1600, 90_000);
    await cache('a', turn.slice(0, 1280));
    const later = await run(s, turn, cands);
    expect(later.best).toBe('a');
    expect(later.state.ttft?.get('a')).toMatchObject({ placedByLoad: false, cachedTokens: 1280, costTokens: 1440 });
  });

  it('counts its own queued prefill: a hot prefix spreads to a second pod, then returns when the queue drains', async () => {
    const s = scorer({ speculative: false });
    const prefix = tokens(4000);
    await cache('a', prefix);
    const cands = [st('a', m()), st('b', m())];
    const sibling = (i: number): number[] => [...prefix, ...tokens(200, 10_000 + i * 200)];
    const booked = [];
    const picks: string[] = [];
    for (let i = 0; i < 60; i++) {
      const r = await run(s, sibling(i), cands);
      picks.push(r.best);
      booked.push(s.reserve({ model: MODEL, tokens: sibling(i) }, r.best, r.state));
    }
    // a holds the prefix: siblings queue there (≈ 200 tokens each) until the queue costs more than
    // the prefix b would have to compute (twice: the miss penalty); then b is warmed
    expect(picks[0]).toBe('a');
    expect(picks.indexOf('b')).toBe(40); // 40 × 200 queued + 700 = 8,700 = b's 4,200 + 300 + 4,200
    expect(picks.filter((p) => p === 'a').length).toBeGreaterThan(40);
    expect(s.podLoad('a').queuedRequests).toBe(picks.filter((p) => p === 'a').length);
    // first chunks arrive: the queue drains and the holder wins again
    for (const r of booked) r.started();
    expect(s.podLoad('a').queuedTokens).toBe(0);
    const after = await run(s, sibling(99), cands);
    expect(after.best).toBe('a');
    for (const r of booked) r.finished();
    expect(s.podLoad('a')).toEqual({ queuedTokens: 0, queuedRequests: 0, decoding: 0, decodeContext: 0 });
  });

  it('queueDrain: queued prefill drains at prefillTokensPerSecond from the booking; off by default', async () => {
    const prompt = tokens(4000);
    for (const [drain, at50, at150] of [
      [true, 2000, 0],
      [false, 4000, 4000],
    ] as const) {
      const s = scorer({ queueDrain: drain, speculative: false });
      const r = await run(s, prompt, [st('a')]);
      const booking = s.reserve({ model: MODEL, tokens: prompt }, 'a', r.state);
      const other = tokens(16, 90_000);
      now += 50; // 40,000 tokens/s × 50 ms = 2,000 tokens computed
      expect((await run(s, other, [st('a')])).state.ttft?.get('a')?.queuedPrefillTokens).toBeCloseTo(at50, 6);
      now += 100;
      expect((await run(s, other, [st('a')])).state.ttft?.get('a')?.queuedPrefillTokens).toBeCloseTo(at150, 6);
      booking.started();
      expect((await run(s, other, [st('a')])).state.ttft?.get('a')?.queuedPrefillTokens).toBe(0);
      booking.finished();
    }
  });

  it('decode pressure: with equal caches the pod decoding fewer requests wins', async () => {
    const s = scorer();
    const prompt = tokens(512);
    const cands = [st('a', m({ running: 40 })), st('b', m({ running: 2 }))];
    const { best, state } = await run(s, prompt, cands);
    expect(best).toBe('b');
    expect(state.ttft?.get('a')?.decodingRequests).toBe(40);
    // stale metrics (undefined) fall back to the EPP's own decoding count (none here): a tie
    const tie = await run(s, prompt, [st('a'), st('b')]);
    expect(tie.scores.get('a')).toBe(tie.scores.get('b'));
  });

  it('speculative entries: siblings find a just-routed prefix before any KV event, until the grace after the first chunk', async () => {
    const s = scorer();
    const prompt = tokens(800);
    const cands = [st('a'), st('b'), st('c')];
    const first = await run(s, prompt, cands);
    const pod = first.best;
    const booking = s.reserve({ model: MODEL, tokens: prompt }, pod, first.state);
    const sib = await run(s, [...prompt.slice(0, 640), ...tokens(160, 50_000)], cands);
    expect(sib.state.ttft?.get(pod)).toMatchObject({ cachedTokens: 640, speculativeTokens: 640 });
    booking.started();
    now += 1999;
    expect((await run(s, prompt, cands)).state.ttft?.get(pod)?.speculativeTokens).toBe(784); // ⌊(800−1)/16⌋ blocks
    now += 2;
    expect((await run(s, prompt, cands)).state.ttft?.get(pod)?.speculativeTokens).toBe(0);
    booking.finished();
    s.sweep();
    expect(s.speculativeKeys).toBe(0);
  });

  it('speculative entries of a request that ends without a first chunk are dropped at once; off when disabled', async () => {
    const s = scorer();
    const prompt = tokens(320);
    const r = await run(s, prompt, [st('a')]);
    const booking = s.reserve({ model: MODEL, tokens: prompt }, 'a', r.state);
    booking.finished();
    booking.finished(); // idempotent
    expect((await run(s, prompt, [st('a')])).state.ttft?.get('a')?.cachedTokens).toBe(0);
    expect(s.podLoad('a').queuedRequests).toBe(0);
    const off = scorer({ speculative: false });
    const r2 = await run(off, prompt, [st('a')]);
    off.reserve({ model: MODEL, tokens: prompt }, 'a', r2.state);
    expect(off.speculativeKeys).toBe(0);
    expect((await run(off, prompt, [st('a')])).state.ttft?.get('a')?.cachedTokens).toBe(0);
  });

  it('memory pressure: a pod short of KV blocks loses an otherwise equal placement; off when disabled', async () => {
    const prompt = tokens(512);
    const cands = [st('a', m({ kvCacheUsage: 0.9, numGpuBlocks: 1000 })), st('b', m({ kvCacheUsage: 0.1, numGpuBlocks: 1000 }))];
    const on = await run(scorer(), prompt, cands);
    expect(on.best).toBe('b');
    expect(on.state.ttft?.get('a')?.kvOccupancy).toBeCloseTo(0.9 + 512 / 16_000, 6);
    const off = await run(scorer({ memoryPressure: false }), prompt, cands);
    expect(off.scores.get('a')).toBe(off.scores.get('b'));
    // capacity is remembered when metrics go stale: the EPP's own footprint counts then
    const s = scorer();
    await run(s, prompt, cands);
    const r = await run(s, prompt, [st('a'), st('b')]);
    expect(r.state.ttft?.get('a')?.kvOccupancy).toBeCloseTo(512 / 16_000, 6);
  });

  it('stale metrics never herd: distinct prompts with no metrics spread over the pods by the EPP’s own queue', async () => {
    const s = scorer();
    const cands = [st('a'), st('b'), st('c'), st('d')];
    const count = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const p = tokens(1000, i * 5000);
      const r = await run(s, p, cands);
      s.reserve({ model: MODEL, tokens: p }, r.best, r.state);
      count.set(r.best, (count.get(r.best) ?? 0) + 1);
    }
    expect([...count.values()].sort()).toEqual([10, 10, 10, 10]);
  });
});

describe('buildScheduler presets', () => {
  let index: MemoryIndex;
  let indexer: Indexer;
  beforeEach(() => {
    index = new MemoryIndex({ memoryBudgetBytes: 8 * 1024 * 1024 });
    indexer = new Indexer({ index, blockSize: 16, hashSeed: '42', engineAlgo: 'sha256_cbor' });
  });
  afterEach(() => index.close());

  it('default: the predicted-TTFT scorer alone, with a reservation that the director releases', async () => {
    const config = parseEppConfig({ model: MODEL });
    const { scheduler } = buildScheduler({ config, indexer, random: seededRandom(1), now: () => 5000 });
    const r = await scheduler.schedule({ model: MODEL, tokens: tokens(64) }, [st('a', m()), st('b', m())]);
    expect(Object.keys(r.primary.picked[0].parts)).toEqual(['predicted-ttft-scorer']);
    expect(r.ttft?.size).toBe(2);
    expect(r.reservation).toBeDefined();
    const dry = await scheduler.schedule({ model: MODEL, tokens: tokens(64) }, [st('a', m()), st('b', m())], { dryRun: true });
    expect(dry.reservation).toBeUndefined();
    // the booked request makes its pod's predicted TTFT longer, the dry run booked nothing
    const picked = r.primary.picked[0].state.endpoint.address;
    expect(dry.ttft?.get(picked)?.queuedPrefillTokens).toBe(64);
    r.reservation?.finished();
  });

  it('llmd-suite: the previous default (prefix 3, queue 2, kv 2, in-flight 1)', async () => {
    const config = parseEppConfig({ model: MODEL, scheduling: { preset: 'llmd-suite' } });
    const { scheduler } = buildScheduler({ config, indexer, random: seededRandom(1) });
    const r = await scheduler.schedule({ model: MODEL, tokens: tokens(64) }, [st('a', m()), st('b', m())]);
    expect(Object.keys(r.primary.picked[0].parts).sort()).toEqual(['active-request-scorer', 'kv-cache-utilization-scorer', 'precise-prefix-cache-scorer', 'queue-scorer']);
    expect(r.primary.picked[0].total).toBe(3 * 0 + 2 * 1 + 2 * 1 + 1 * 1);
    expect(r.reservation).toBeUndefined();
  });

  it('plugin type predicted-ttft-scorer is accepted in llm-d style plugin lists', async () => {
    const config = parseEppConfig({
      model: MODEL,
      scheduling: {
        plugins: [{ type: 'predicted-ttft-scorer' }, { type: 'max-score-picker' }],
        profiles: [{ name: 'default', plugins: [{ pluginRef: 'predicted-ttft-scorer' }, { pluginRef: 'max-score-picker' }] }],
      },
    });
    const { scheduler } = buildScheduler({ config, indexer });
    const r = await scheduler.schedule({ model: MODEL, tokens: tokens(64) }, [st('a', m())]);
    expect(r.primary.picked[0].parts['predicted-ttft-scorer']).toBe(1);
    expect(r.reservation).toBeDefined();
  });
});

describe('SchedulingDirector with the predicted-TTFT default', () => {
  it('books each pick, releases its queued prefill at the first chunk and the rest at the end; explain() books nothing', async () => {
    const index = new MemoryIndex({ memoryBudgetBytes: 8 * 1024 * 1024 });
    const indexer = new Indexer({ index, blockSize: 16, hashSeed: '42', engineAlgo: 'sha256_cbor' });
    const store = new EndpointStore();
    store.upsert(ep('a'));
    const director = new SchedulingDirector({
      scheduler: buildScheduler({ config: parseEppConfig({ model: MODEL, blockSize: 16 }), indexer, now: () => 0 }).scheduler,
      store,
      logger: silentLogger(),
      model: MODEL,
    });
    const ids = tokens(100);
    const req: InferenceRequest = {
      requestId: 'r1', path: '/v1/completions', method: 'POST', apiKind: 'completions', model: MODEL, targetModel: MODEL, headers: {},
      body: { model: MODEL, prompt: ids }, tokenIds: ids, sessionId: undefined, stream: true, subsetCandidates: undefined, bodyBytes: 400, receivedAt: 0,
    };
    const queued = async (): Promise<number | undefined> => (await director.explain(MODEL, tokens(16, 70_000)))?.ttft?.get('a')?.queuedPrefillTokens;
    expect(await queued()).toBe(0);
    expect((await director.pick(req)).endpoints).toEqual(['a']);
    expect(await queued()).toBe(100);
    expect(await queued()).toBe(100); // explain is a dry run
    director.onFirstChunk(req);
    expect(await queued()).toBe(0);
    expect((await director.explain(MODEL, tokens(16, 70_000)))?.ttft?.get('a')?.decodingRequests).toBe(1);
    director.onDone(req);
    expect((await director.explain(MODEL, tokens(16, 70_000)))?.ttft?.get('a')?.decodingRequests).toBe(0);
    // a request that ends before its first chunk releases its queued prefill too
    // (the same prompt again: r1's speculative entries, 2 s after its first chunk, leave 4 tokens)
    const r2: InferenceRequest = { ...req, requestId: 'r2' };
    await director.pick(r2);
    expect(await queued()).toBe(4);
    director.onDone(r2);
    expect(await queued()).toBe(0);
    index.close();
  });
});
