/**
 * llm-d EndpointPickerConfig → kvroute: configs equivalent to each sample llm-d documents load
 * into the scheduler they describe, and its decision matches one computed by hand from the
 * scorer formulas; bad configs get errors naming the field.
 */
import { parse as parseYaml } from 'yaml';
import { parseEppConfig } from '../../src/contract/config.js';
import { knownEndpointPickerPluginTypes, mapEndpointPickerConfig } from '../../src/contract/endpoint-picker-config.js';
import type { Endpoint, EndpointState, PodMetrics } from '../../src/datalayer/endpoint-store.js';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { Indexer, requestKeyProcessor } from '../../src/kvindex/indexer.js';
import { buildScheduler } from '../../src/scheduling/build.js';
import { seededRandom } from '../../src/scheduling/picker.js';
import type { Scheduler } from '../../src/scheduling/scheduler.js';

const MODEL = 'Qwen/Qwen3-0.6B';
const ep = (address: string, role: Endpoint['role']): Endpoint => ({ address, name: `pod-${address}`, role, metricsUrl: `http://${address}/metrics` });
const m = (waiting: number, kvCacheUsage = 0): PodMetrics => ({ waiting, running: 0, kvCacheUsage, blockSize: 16, scrapedAt: 0 });
const st = (address: string, metrics: PodMetrics, role: Endpoint['role'] = 'both'): EndpointState => ({ endpoint: ep(address, role), metrics, inFlight: 0 });
const tokens = (n: number, offset = 0): number[] => Array.from({ length: n }, (_, i) => 3000 + offset + i);

let index: MemoryIndex;
beforeEach(() => {
  index = new MemoryIndex({ memoryBudgetBytes: 8 * 1024 * 1024 });
});
afterEach(() => index.close());

/** The scheduler an EndpointPickerConfig (YAML) describes, as the EPP builds it. */
function load(yaml: string): { scheduler: Scheduler; config: ReturnType<typeof parseEppConfig>; notes: readonly string[] } {
  const mapped = mapEndpointPickerConfig(parseYaml(yaml));
  const config = parseEppConfig({ model: MODEL, ...mapped.overlay });
  const indexer = new Indexer({ index, blockSize: config.blockSize, hashSeed: config.hashSeed, engineAlgo: 'sha256_cbor' });
  return { scheduler: buildScheduler({ config, indexer, random: seededRandom(7) }).scheduler, config, notes: mapped.notes };
}

const pickOf = (r: { primary: { picked: readonly { state: EndpointState }[] } }): string => r.primary.picked[0]!.state.endpoint.address;
const totals = (r: { primary: { scored: readonly { state: EndpointState; total: number }[] } }): Record<string, number> =>
  Object.fromEntries(r.primary.scored.map((s) => [s.state.endpoint.address, Number(s.total.toFixed(6))]));

describe('llm-d samples load into the scheduler they describe', () => {
  it('no config: queue 2, kv-cache utilization 2, approximate prefix-cache 3, max-score picker', async () => {
    const { scheduler, notes } = load('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n');
    expect(notes.join('\n')).toMatch(/llm-d's default scheduling/);
    const prompt = 'You are a support agent for a bicycle shop. '.repeat(8); // 352 chars = 6 blocks of 64
    // cold: queue [0,4,2] → [1,0,0.5]; kv 1−u → [0.5,0.9,0.8]; prefix 0
    const first = await scheduler.schedule({ model: MODEL, prompt }, [st('a:1', m(0, 0.5)), st('b:1', m(4, 0.1)), st('c:1', m(2, 0.2))]);
    expect(totals(first)).toEqual({ 'a:1': 2 * 1 + 2 * 0.5, 'b:1': 2 * 0 + 2 * 0.9, 'c:1': 2 * 0.5 + 2 * 0.8 });
    expect(pickOf(first)).toBe('a:1');
    // a has now been sent the prompt: prefix 1 for a; queue [2,0,2] → [0,1,0]; kv 0.5 each
    const second = await scheduler.schedule({ model: MODEL, prompt }, [st('a:1', m(2, 0.5)), st('b:1', m(0, 0.5)), st('c:1', m(2, 0.5))]);
    expect(totals(second)).toEqual({ 'a:1': 0 + 1 + 3 * 1, 'b:1': 2 + 1 + 0, 'c:1': 0 + 1 + 0 });
    expect(pickOf(second)).toBe('a:1');
  });

  it('epp-config.yaml: decode-filter, prefix-cache-scorer 2, max-score-picker, single-profile-handler', async () => {
    const { scheduler } = load(`
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: decode-filter
- type: prefix-cache-scorer
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decode-filter
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: max-score-picker
`);
    const prompt = 'Translate the following paragraph into French, keeping the tone. '.repeat(4);
    await scheduler.schedule({ model: MODEL, prompt }, [st('d1:1', m(9), 'decode')]); // d1 learns the prompt
    const pods = [st('d1:1', m(9), 'decode'), st('p1:1', m(0), 'prefill'), st('d2:1', m(0), 'both')];
    const r = await scheduler.schedule({ model: MODEL, prompt }, pods);
    expect(totals(r)).toEqual({ 'd1:1': 2, 'd2:1': 0 }); // the prefill pod is filtered out
    expect(pickOf(r)).toBe('d1:1');
  });

  it('precise prefix cache: token-producer, data layer wiring, precise scorer 2 (block 64), kv 1, queue 1', async () => {
    const { scheduler, config, notes } = load(`
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: token-producer
  parameters:
    modelName: ${MODEL}
    vllm:
      http: http://localhost:8000
- type: endpoint-notification-source
- type: metrics-data-source
- type: core-metrics-extractor
- type: single-profile-handler
- type: decode-filter
- type: precise-prefix-cache-scorer
  parameters:
    tokenProcessorConfig:
      blockSize: 64
    indexerConfig:
      kvBlockIndexConfig:
        enableMetrics: true
- type: kv-cache-utilization-scorer
- type: queue-scorer
- type: max-score-picker
dataLayer:
  sources:
  - pluginRef: metrics-data-source
    extractors:
    - pluginRef: core-metrics-extractor
  - pluginRef: endpoint-notification-source
    extractors:
    - pluginRef: precise-prefix-cache-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decode-filter
  - pluginRef: precise-prefix-cache-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 1
  - pluginRef: queue-scorer
    weight: 1
  - pluginRef: max-score-picker
`);
    expect(config.blockSize).toBe(64);
    expect(config.model).toBe(MODEL);
    expect(config.tokenizer.hfRepo).toBe(MODEL);
    expect(config.scheduling.profiles).toEqual([
      {
        name: 'default',
        plugins: [
          { pluginRef: 'decode-filter' },
          { pluginRef: 'precise-prefix-cache-scorer', weight: 2 },
          { pluginRef: 'kv-cache-utilization-scorer', weight: 1 },
          { pluginRef: 'queue-scorer', weight: 1 },
          { pluginRef: 'max-score-picker' },
        ],
      },
    ]);
    for (const wiring of ['token-producer', 'endpoint-notification-source', 'metrics-data-source', 'core-metrics-extractor']) {
      expect(notes.some((n) => n.includes(`(${wiring}) is accepted and only reported`))).toBe(true);
    }
    const prompt = tokens(256); // 4 blocks of 64
    const keys = requestKeyProcessor({ blockSize: 64, hashSeed: config.hashSeed }, MODEL).blockKeys(prompt);
    await index.add([], keys, [{ pod: 'a:1', tier: 'gpu' }]);
    // a holds 4/4 blocks: 2·1 + (1−0.9) + queue min-max 0 = 2.1; b: 0 + 1 + 1 = 2
    const pods = [st('a:1', m(5, 0.9), 'decode'), st('b:1', m(0, 0), 'decode')];
    const r = await scheduler.schedule({ model: MODEL, tokens: prompt }, pods);
    expect(totals(r)).toEqual({ 'a:1': 2.1, 'b:1': 2 });
    expect(pickOf(r)).toBe('a:1');
    // a prompt of which a holds 2/4 blocks: 2·0.5 + 0.1 = 1.1 < 2
    const half = [...prompt.slice(0, 128), ...tokens(128, 9000)];
    const r2 = await scheduler.schedule({ model: MODEL, tokens: half }, pods);
    expect(totals(r2)).toEqual({ 'a:1': 1.1, 'b:1': 2 });
    expect(pickOf(r2)).toBe('b:1');
  });

  it('estimate prefix cache: decode-filter, prefix-cache-scorer 1, load-aware-scorer 1', async () => {
    const { scheduler } = load(`
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: single-profile-handler
- type: decode-filter
- type: prefix-cache-scorer
- type: load-aware-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decode-filter
  - pluginRef: prefix-cache-scorer
    weight: 1
  - pluginRef: load-aware-scorer
    weight: 1
  - pluginRef: max-score-picker
`);
    const prompt = 'x'.repeat(64) + 'y'.repeat(64) + 'z'.repeat(64) + 'w'.repeat(64); // 4 blocks of 16·4 chars
    await scheduler.schedule({ model: MODEL, prompt }, [st('a:1', m(0), 'decode')]);
    // same prompt: a prefix 1 + 0.5·(1 − 64/128) = 1.25; b 0 + 0.5 (empty queue)
    const r = await scheduler.schedule({ model: MODEL, prompt }, [st('a:1', m(64), 'decode'), st('b:1', m(0), 'decode')]);
    expect(totals(r)).toEqual({ 'a:1': 1.25, 'b:1': 0.5 });
    expect(pickOf(r)).toBe('a:1');
    // a shares 1 of 4 blocks and waits on 100: 0.25 + 0.5·(1 − 100/128) = 0.359375 < 0.5
    const other = 'x'.repeat(64) + 'q'.repeat(192);
    const r2 = await scheduler.schedule({ model: MODEL, prompt: other }, [st('a:1', m(100), 'decode'), st('b:1', m(0), 'decode')]);
    expect(totals(r2)).toEqual({ 'a:1': 0.359375, 'b:1': 0.5 });
    expect(pickOf(r2)).toBe('b:1');
  });

  it('P/D: prefill and decode profiles, prefix-based-pd-decider through disagg-profile-handler', async () => {
    const { scheduler, config } = load(`
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
  parameters:
    maxPrefixBlocksToMatch: 256
    lruCapacityPerServer: 31250
- type: queue-scorer
- type: prefill-filter
- type: decode-filter
- type: max-score-picker
- type: prefix-based-pd-decider
  parameters:
    nonCachedTokens: 16
- type: disagg-profile-handler
  parameters:
    deciders:
      prefill: prefix-based-pd-decider
schedulingProfiles:
- name: prefill
  plugins:
  - pluginRef: prefill-filter
  - pluginRef: max-score-picker
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: queue-scorer
    weight: 1
- name: decode
  plugins:
  - pluginRef: decode-filter
  - pluginRef: max-score-picker
  - pluginRef: prefix-cache-scorer
    weight: 2
  - pluginRef: queue-scorer
    weight: 1
`);
    expect(config.scheduling.plugins?.find((p) => p.type === 'prefix-based-pd-decider')?.parameters).toEqual({ nonCachedTokens: 16 });
    const pods = [st('d1:1', m(3), 'decode'), st('d2:1', m(1), 'decode'), st('p1:1', m(4), 'prefill'), st('p2:1', m(0), 'prefill')];
    // decode: queue min-max over d1,d2 → d2 (1); prefill: over p1,p2 → p2 (1); 100 uncached tokens ≥ 16
    const long = await scheduler.schedule({ model: MODEL, tokens: tokens(100), prompt: 'a long prompt' }, pods);
    expect(pickOf(long)).toBe('d2:1');
    expect(long.prefill?.picked[0]?.state.endpoint.address).toBe('p2:1');
    const short = await scheduler.schedule({ model: MODEL, tokens: tokens(8), prompt: 'short' }, pods);
    expect(pickOf(short)).toBe('d2:1');
    expect(short.prefill).toBeUndefined();
  });

  it('without schedulingProfiles, one default profile runs every declared plugin with weight 1', () => {
    const mapped = mapEndpointPickerConfig(parseYaml('apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\n- type: metrics-data-source\n- type: load-aware-scorer\n  parameters: { threshold: 64 }\n'));
    expect(mapped.overlay.scheduling.profiles).toEqual([{ name: 'default', plugins: [{ pluginRef: 'queue-scorer' }, { pluginRef: 'load-aware-scorer' }] }]);
    expect(mapped.overlay.scheduling.plugins).toEqual([{ type: 'queue-scorer' }, { type: 'load-aware-scorer', parameters: { threshold: 64 } }]);
  });

  it('maps the precise scorer\'s events, index and tier settings; pd-profile-handler profile names become decode/prefill', () => {
    const mapped = mapEndpointPickerConfig(
      parseYaml(`
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    tokenProcessorConfig: { blockSize: 32, hashSeed: 12345 }
    kvEventsConfig: { zmqEndpoint: "tcp://*:5557", topicFilter: "kv@", concurrency: 4 }
    indexerConfig:
      kvBlockIndexConfig: { redisConfig: { address: "redis.kv:6379" } }
      kvScorerConfig: { backendConfigs: [{ name: gpu, weight: 1.0 }, { name: cpu, weight: 0.5 }] }
- type: pd-profile-handler
  parameters: { threshold: 100, decodeProfile: dec, prefillProfile: pre }
- type: decode-filter
- type: prefill-filter
schedulingProfiles:
- { name: dec, plugins: [{ pluginRef: decode-filter }, { pluginRef: precise-prefix-cache-scorer }] }
- { name: pre, plugins: [{ pluginRef: prefill-filter }] }
`),
    );
    const o = mapped.overlay;
    expect(o).toMatchObject({ blockSize: 32, hashSeed: '12345', events: { zmqBind: 'tcp://*:5557', mode: 'bind', topicFilter: 'kv@', concurrency: 4 }, index: { backend: 'redis', url: 'redis://redis.kv:6379' } });
    expect(o.scheduling.tierWeights).toEqual({ gpu: 1, cpu: 0.5 });
    expect(o.scheduling.profiles.map((p) => p.name)).toEqual(['decode', 'prefill']);
    const config = parseEppConfig({ model: MODEL, ...o });
    expect(config.scheduling.plugins?.find((p) => p.type === 'prefix-based-pd-decider')?.parameters).toEqual({ nonCachedTokens: 100 });
  });
});

describe('the rest of an EndpointPickerConfig', () => {
  it('featureGates, parser and flowControl are reported; saturationDetector sets the admission thresholds', () => {
    const mapped = mapEndpointPickerConfig(
      parseYaml(`
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates: [dataLayer, flowControl]
plugins:
- type: openai-parser
- type: queue-scorer
parser:
  pluginRef: openai-parser
saturationDetector:
  queueDepthThreshold: 8
  kvCacheUtilThreshold: 0.9
  metricsStalenessThreshold: 200ms
flowControl: {}
`),
    );
    expect(mapped.overlay.admission).toEqual({ queueDepthThreshold: 8, kvCacheUtilThreshold: 0.9 });
    expect(mapped.overlay.scheduling.profiles).toEqual([{ name: 'default', plugins: [{ pluginRef: 'queue-scorer' }] }]);
    expect(mapped.notes).toEqual(
      expect.arrayContaining([
        'featureGates: "dataLayer" is accepted and ignored (kvroute has no llm-d feature gates)',
        'parser is accepted: kvroute parses OpenAI request bodies itself',
        'flowControl is accepted and ignored: kvroute admits or sheds each request at once (admission)',
        'saturationDetector.metricsStalenessThreshold is accepted and ignored: kvroute ages metrics by --metrics-staleness-threshold',
        'plugin openai-parser (openai-parser) is accepted and only reported: kvroute parses OpenAI completions and chat bodies itself',
      ]),
    );
    expect(parseEppConfig({ model: MODEL, ...mapped.overlay }).admission).toMatchObject({ queueDepthThreshold: 8, kvCacheUtilThreshold: 0.9 });
  });
});

describe('bad EndpointPickerConfigs are errors naming the field', () => {
  const issuesOf = (yaml: string): string[] => {
    try {
      mapEndpointPickerConfig(parseYaml(yaml));
    } catch (e) {
      return (e as { issues: string[] }).issues;
    }
    return [];
  };
  const head = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';

  it.each([
    ['an unknown plugin type', `${head}plugins:\n- type: magic-scorer\n`, `plugins.0.type: plugin type "magic-scorer" is not known; use one of ${knownEndpointPickerPluginTypes().join(', ')}`],
    ['a reference to no plugin', `${head}plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: d\n  plugins:\n  - pluginRef: kv-scorer\n`, 'schedulingProfiles.0.plugins.0.pluginRef: "kv-scorer" names no plugin in plugins; declare it there (its name defaults to its type)'],
    ['a wrong apiVersion', 'apiVersion: v1\nkind: EndpointPickerConfig\n', 'apiVersion: "v1" is not one of llm-d.ai/v1alpha1, inference.networking.x-k8s.io/v1alpha1'],
    ['an unknown top-level field', `${head}plugin: []\n`, 'plugin: is not a field of EndpointPickerConfig; known: apiVersion, kind, plugins, schedulingProfiles, dataLayer, featureGates, parser, saturationDetector, flowControl'],
    ['a block size given as a string', `${head}plugins:\n- type: precise-prefix-cache-scorer\n  parameters:\n    tokenProcessorConfig: { blockSize: "64" }\n`, 'plugins.0.parameters.tokenProcessorConfig.blockSize: "64" is not a positive integer'],
    ['a zero load-aware threshold', `${head}plugins:\n- type: load-aware-scorer\n  parameters: { threshold: 0 }\n`, 'plugins.0.parameters.threshold: 0 is not a positive integer'],
    ['a negative weight', `${head}plugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: d\n  plugins:\n  - { pluginRef: queue-scorer, weight: -1 }\n`, 'schedulingProfiles.0.plugins.0.weight: -1 is not a number ≥ 0'],
    ['a data source naming nothing', `${head}plugins:\n- type: queue-scorer\ndataLayer:\n  sources:\n  - pluginRef: metrics-data-source\n`, 'dataLayer.sources.0.pluginRef: "metrics-data-source" names no plugin in plugins; declare it there (its name defaults to its type)'],
    ['a decider reference to nothing', `${head}plugins:\n- type: disagg-profile-handler\n  parameters: { deciders: { prefill: pd } }\n`, 'plugins.0.parameters.deciders.prefill: "pd" names no P/D decider in plugins; declare { type: prefix-based-pd-decider, name: pd }'],
    ['three profiles', `${head}plugins:\n- type: queue-scorer\nschedulingProfiles:\n- { name: a, plugins: [] }\n- { name: b, plugins: [] }\n- { name: c, plugins: [] }\n`, 'schedulingProfiles: has 3 profiles; kvroute runs one profile, or two for P/D (decode and prefill)'],
    ['a duplicate plugin name', `${head}plugins:\n- type: queue-scorer\n- type: queue-scorer\n`, 'plugins.1.name: plugin name "queue-scorer" is used more than once; give each plugin a distinct name'],
  ])('%s', (_name, yaml, message) => {
    expect(issuesOf(yaml)).toContain(message);
  });

  it('lists every problem at once, and a parameter kvroute lacks is a note, not an error', () => {
    expect(issuesOf(`${head}plugins:\n- type: magic\n- type: load-aware-scorer\n  parameters: { threshold: -3 }\n`)).toHaveLength(2);
    const mapped = mapEndpointPickerConfig(parseYaml(`${head}plugins:\n- type: active-request-scorer\n  parameters: { requestTimeout: 2m, idleThreshold: 1 }\n`));
    expect(mapped.overlay.scheduling.plugins).toEqual([{ type: 'active-request-scorer', parameters: { idleThreshold: 1 } }]);
    expect(mapped.notes).toContain('plugins.0.parameters.requestTimeout is accepted and ignored: kvroute counts a request until its response ends');
  });
});
