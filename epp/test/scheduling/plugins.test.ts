/**
 * llm-d style `scheduling.plugins` + `scheduling.profiles`: validation errors (field, value, fix)
 * from the shared config schema, and schedulers built from plugin lists that behave like the
 * weights they spell out, with P/D from two profiles and a decider.
 */
import { parseEppConfig, EppConfigSchema, type EppConfigInput } from '../../src/contract/config.js';
import { PLUGIN_TYPES } from '../../src/contract/scheduling-plugins.js';
import type { Endpoint, EndpointState, PodMetrics } from '../../src/datalayer/endpoint-store.js';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { Indexer, requestKeyProcessor } from '../../src/kvindex/indexer.js';
import { buildScheduler } from '../../src/scheduling/build.js';
import { seededRandom } from '../../src/scheduling/picker.js';

const MODEL = 'meta-llama/Llama-3.2-1B';
const ep = (address: string, role: Endpoint['role'] = 'both'): Endpoint => ({ address, name: `pod-${address}`, role, metricsUrl: `http://${address}/metrics` });
const m = (waiting: number, kvCacheUsage?: number): PodMetrics => ({ waiting, running: 0, kvCacheUsage, blockSize: 16, scrapedAt: 0 });
const st = (address: string, metrics?: PodMetrics, inFlight = 0, role: Endpoint['role'] = 'both'): EndpointState => ({ endpoint: ep(address, role), metrics, inFlight });
const tokens = (n: number, offset = 0): number[] => Array.from({ length: n }, (_, i) => 1000 + offset + i);

/** The llm-d precise-prefix example profile (docs/facts/gateway-protocol.md, "EndpointPickerConfig") with our weights. */
const LLMD_STYLE: EppConfigInput['scheduling'] = {
  plugins: [{ type: 'decode-filter' }, { type: 'precise-prefix-cache-scorer' }, { type: 'kv-cache-utilization-scorer' }, { type: 'queue-scorer' }, { type: 'max-score-picker' }],
  profiles: [
    {
      name: 'default',
      plugins: [
        { pluginRef: 'decode-filter' },
        { pluginRef: 'precise-prefix-cache-scorer', weight: 3 },
        { pluginRef: 'kv-cache-utilization-scorer', weight: 2 },
        { pluginRef: 'queue-scorer', weight: 2 },
        { pluginRef: 'max-score-picker' },
      ],
    },
  ],
};

function issues(scheduling: unknown): string[] {
  const r = EppConfigSchema.safeParse({ model: MODEL, scheduling });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('scheduling.plugins / profiles: validation', () => {
  it('accepts the llm-d style example, and leaves both unset by default', () => {
    expect(issues(LLMD_STYLE)).toEqual([]);
    const cfg = parseEppConfig({ model: MODEL });
    expect(cfg.scheduling.plugins).toBeUndefined();
    expect(cfg.scheduling.profiles).toBeUndefined();
  });

  it.each([
    [
      'an unknown type',
      { plugins: [{ type: 'magic-scorer' }], profiles: [{ name: 'd', plugins: [{ pluginRef: 'magic-scorer' }] }] },
      `scheduling.plugins.0.type: plugin type "magic-scorer" is not known; use one of ${Object.keys(PLUGIN_TYPES).join(', ')}`,
    ],
    [
      "a name of Object.prototype's as the type",
      { plugins: [{ type: 'constructor' }], profiles: [{ name: 'd', plugins: [{ pluginRef: 'constructor' }] }] },
      `scheduling.plugins.0.type: plugin type "constructor" is not known; use one of ${Object.keys(PLUGIN_TYPES).join(', ')}`,
    ],
    [
      "a name of Object.prototype's as a parameter",
      { plugins: [{ type: 'queue-scorer', parameters: { toString: 3 } }], profiles: [{ name: 'd', plugins: [{ pluginRef: 'queue-scorer' }] }] },
      'scheduling.plugins.0.parameters.toString: is not a parameter of queue-scorer; it takes no parameters',
    ],
    [
      'a duplicate name',
      { plugins: [{ type: 'queue-scorer' }, { type: 'queue-scorer' }], profiles: [{ name: 'd', plugins: [{ pluginRef: 'queue-scorer' }] }] },
      'scheduling.plugins.1.name: plugin name "queue-scorer" is used more than once; give each plugin a distinct name',
    ],
    [
      'a reference to nothing',
      { plugins: [{ type: 'queue-scorer' }], profiles: [{ name: 'd', plugins: [{ pluginRef: 'kv-scorer', weight: 1 }] }] },
      'scheduling.profiles.0.plugins.0.pluginRef: "kv-scorer" names no plugin in scheduling.plugins; declare it there (its name defaults to its type)',
    ],
    [
      'a weight on a filter',
      { plugins: [{ type: 'decode-filter' }], profiles: [{ name: 'd', plugins: [{ pluginRef: 'decode-filter', weight: 2 }] }] },
      'scheduling.profiles.0.plugins.0.weight: only scorers take a weight; "decode-filter" is a filter',
    ],
    [
      'an unknown parameter',
      { plugins: [{ type: 'queue-scorer', parameters: { depth: 3 } }], profiles: [{ name: 'd', plugins: [{ pluginRef: 'queue-scorer' }] }] },
      'scheduling.plugins.0.parameters.depth: is not a parameter of queue-scorer; it takes no parameters',
    ],
    [
      'a bad parameter value',
      { plugins: [{ type: 'max-score-picker', parameters: { maxNumOfEndpoints: 0 } }], profiles: [{ name: 'd', plugins: [{ pluginRef: 'max-score-picker' }] }] },
      'scheduling.plugins.0.parameters.maxNumOfEndpoints: 0 is not a positive integer',
    ],
    [
      'two profiles not named decode and prefill',
      { plugins: [{ type: 'queue-scorer' }], profiles: [{ name: 'a', plugins: [{ pluginRef: 'queue-scorer' }] }, { name: 'b', plugins: [{ pluginRef: 'queue-scorer' }] }] },
      'scheduling.profiles: two profiles must be named "decode" and "prefill" (P/D disaggregation), got ["a","b"]',
    ],
    [
      'a decider referenced from a profile',
      { plugins: [{ type: 'prefix-based-pd-decider' }], profiles: [{ name: 'd', plugins: [{ pluginRef: 'prefix-based-pd-decider' }] }] },
      'scheduling.profiles.0.plugins.0.pluginRef: "prefix-based-pd-decider" is a decider; declare it under scheduling.plugins only, not in a profile',
    ],
    [
      'plugins without profiles',
      { plugins: [{ type: 'queue-scorer' }] },
      'scheduling.profiles: is missing: scheduling.plugins and scheduling.profiles go together (declare the plugins, then reference them from profiles); remove both to use scheduling.weights',
    ],
  ])('rejects %s with the field, the value and the fix', (_name, scheduling, message) => {
    expect(issues(scheduling)).toContain(message);
  });
});

describe('schedulers built from plugins', () => {
  const base = parseEppConfig({ model: MODEL, blockSize: 16 });
  let index: MemoryIndex;
  let indexer: Indexer;
  beforeEach(() => {
    index = new MemoryIndex({ memoryBudgetBytes: 8 * 1024 * 1024 });
    indexer = new Indexer({ index, blockSize: 16, hashSeed: base.hashSeed, engineAlgo: 'sha256_cbor' });
  });
  afterEach(() => index.close());
  const cache = async (pod: string, toks: number[]): Promise<void> => {
    await index.add([], requestKeyProcessor({ blockSize: 16, hashSeed: base.hashSeed }, MODEL).blockKeys(toks), [{ pod, tier: 'gpu' }]);
  };
  const config = (scheduling: EppConfigInput['scheduling']) => parseEppConfig({ model: MODEL, blockSize: 16, scheduling });

  it('the llm-d style profile scores exactly like the same weights', async () => {
    const prompt = tokens(160);
    await cache('a:1', prompt.slice(0, 96));
    await cache('b:1', prompt.slice(0, 32));
    const cands = [st('a:1', m(6, 0.7)), st('b:1', m(1, 0.2)), st('c:1', m(0, 0.1)), st('p:1', m(0, 0), 0, 'prefill')];
    const fromPlugins = buildScheduler({ config: config(LLMD_STYLE), indexer, random: seededRandom(1) }).scheduler;
    const fromWeights = buildScheduler({
      config: config({ preset: 'llmd-suite', weights: { prefix: 3, kvCacheUtilization: 2, queue: 2, activeRequests: 0 } }),
      indexer,
      random: seededRandom(1),
    }).scheduler;
    const a = await fromPlugins.schedule({ model: MODEL, tokens: prompt }, cands);
    const b = await fromWeights.schedule({ model: MODEL, tokens: prompt }, cands);
    const view = (r: typeof a) => r.primary.scored.map((s) => [s.state.endpoint.address, s.total.toFixed(6), s.parts]);
    expect(view(a)).toEqual(view(b));
    expect(a.primary.scored.map((s) => s.state.endpoint.address)).not.toContain('p:1'); // decode-filter
    expect(a.primary.picked[0]?.state.endpoint.address).toBe(b.primary.picked[0]?.state.endpoint.address);
  });

  it('a scorer weight defaults to 1, a picker is added when none is listed, and a named plugin is shared', async () => {
    const s = buildScheduler({
      config: config({ plugins: [{ type: 'queue-scorer', name: 'q' }], profiles: [{ name: 'only', plugins: [{ pluginRef: 'q' }] }] }),
      indexer,
      random: seededRandom(2),
    }).scheduler;
    const r = await s.schedule({ model: MODEL }, [st('a:1', m(5)), st('b:1', m(0))]);
    expect(r.primary.profile).toBe('only');
    expect(r.primary.picked.map((x) => x.state.endpoint.address)).toEqual(['b:1']);
    expect(r.primary.scored.map((x) => x.total)).toEqual([1, 0]);
  });

  it('max-score-picker maxNumOfEndpoints returns failover endpoints in score order', async () => {
    const s = buildScheduler({
      config: config({
        plugins: [{ type: 'queue-scorer' }, { type: 'max-score-picker', parameters: { maxNumOfEndpoints: 2 } }],
        profiles: [{ name: 'd', plugins: [{ pluginRef: 'queue-scorer', weight: 2 }, { pluginRef: 'max-score-picker' }] }],
      }),
      indexer,
    }).scheduler;
    const r = await s.schedule({ model: MODEL }, [st('a:1', m(5)), st('b:1', m(0)), st('c:1', m(10))]);
    expect(r.primary.picked.map((x) => x.state.endpoint.address)).toEqual(['b:1', 'a:1']);
  });

  it('decode + prefill profiles turn P/D on, with the decider’s nonCachedTokens as the threshold', async () => {
    const pd = config({
      plugins: [
        { type: 'decode-filter' },
        { type: 'prefill-filter' },
        { type: 'precise-prefix-cache-scorer' },
        { type: 'queue-scorer' },
        { type: 'max-score-picker' },
        { type: 'prefix-based-pd-decider', parameters: { nonCachedTokens: 64 } },
        { type: 'pd-profile-handler' },
      ],
      profiles: [
        { name: 'prefill', plugins: [{ pluginRef: 'prefill-filter' }, { pluginRef: 'queue-scorer', weight: 1 }, { pluginRef: 'max-score-picker' }] },
        { name: 'decode', plugins: [{ pluginRef: 'decode-filter' }, { pluginRef: 'precise-prefix-cache-scorer', weight: 2 }, { pluginRef: 'queue-scorer', weight: 1 }] },
      ],
    });
    const { scheduler } = buildScheduler({ config: pd, indexer, random: seededRandom(3) });
    const cands = [st('d1:1', m(0), 0, 'decode'), st('p1:1', m(0), 0, 'prefill')];
    const prompt = tokens(160);
    const cold = await scheduler.schedule({ model: MODEL, tokens: prompt }, cands);
    expect(cold.primary.picked[0]?.state.endpoint.address).toBe('d1:1');
    expect(cold.prefill?.picked[0]?.state.endpoint.address).toBe('p1:1');
    await cache('d1:1', prompt.slice(0, 112)); // 48 uncached tokens < 64
    const warm = await scheduler.schedule({ model: MODEL, tokens: prompt }, cands);
    expect(warm.prefill).toBeUndefined();
  });

  it('session-affinity-scorer from plugins is handed to the director', () => {
    const built = buildScheduler({
      config: config({ plugins: [{ type: 'session-affinity-scorer', parameters: { capacity: 10 } }], profiles: [{ name: 'd', plugins: [{ pluginRef: 'session-affinity-scorer' }] }] }),
      indexer,
    });
    expect(built.sessions?.name).toBe('session-affinity-scorer');
    expect(buildScheduler({ config: config(LLMD_STYLE), indexer }).sessions).toBeUndefined();
  });
});
