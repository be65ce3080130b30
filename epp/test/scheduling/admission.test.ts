/**
 * Admission (GIE's legacy admission with the utilization detector): sheddable requests (objective
 * priority < 0) get 429 while the candidates' mean saturation is ≥ 1; everything else is admitted.
 */
import { Registry } from 'prom-client';
import { ApiError } from '../../src/contract/errors.js';
import { EppConfigSchema, parseEppConfig } from '../../src/contract/config.js';
import { Headers } from '../../src/contract/names.js';
import { EndpointStore, type Endpoint, type EndpointState, type PodMetrics } from '../../src/datalayer/endpoint-store.js';
import type { InferenceRequest } from '../../src/extproc/director.js';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { Indexer } from '../../src/kvindex/indexer.js';
import { buildScheduler } from '../../src/scheduling/build.js';
import { SchedulingDirector, type AdmissionOptions } from '../../src/scheduling/director.js';
import { seededRandom } from '../../src/scheduling/picker.js';
import { endpointSaturation, poolSaturation } from '../../src/scheduling/saturation.js';
import { silentLogger } from '../../src/util/logger.js';

const MODEL = 'm';
const T = { queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8 };

const metrics = (waiting: number, kvCacheUsage: number | undefined): PodMetrics => ({ waiting, running: 0, kvCacheUsage, blockSize: 16, scrapedAt: Date.now() });
const state = (m: PodMetrics | undefined): EndpointState => ({ endpoint: { address: '10.0.0.1:8000', name: 'p', role: 'both', metricsUrl: '' } as Endpoint, metrics: m, inFlight: 0 });

describe('utilization detector', () => {
  it('an endpoint is max(waiting / queueDepthThreshold, kv / kvCacheUtilThreshold)', () => {
    expect(endpointSaturation(state(metrics(5, 0.4)), T)).toBe(1);
    expect(endpointSaturation(state(metrics(1, 0.4)), T)).toBeCloseTo(0.5);
    expect(endpointSaturation(state(metrics(0, 0.88)), T)).toBeCloseTo(1.1);
    // no KV-cache metric: the queue alone
    expect(endpointSaturation(state(metrics(2, undefined)), T)).toBeCloseTo(0.4);
  });

  it('an endpoint without fresh metrics, or with metrics that are not numbers, counts as saturated, never as idle', () => {
    expect(endpointSaturation(state(undefined), T)).toBe(1);
    expect(endpointSaturation(state(metrics(Number.NaN, 0.1)), T)).toBe(1);
    expect(endpointSaturation(state(metrics(0, Number.NaN)), T)).toBe(1);
    expect(endpointSaturation(state(metrics(Number.POSITIVE_INFINITY, 0)), T)).toBe(1);
    // one pod exporting NaN does not saturate a pool of idle pods
    expect(poolSaturation([state(metrics(Number.NaN, Number.NaN)), state(metrics(0, 0)), state(metrics(0, 0))], T)).toBeCloseTo(1 / 3);
  });

  it('the pool is the unweighted mean over the candidates; none is saturated', () => {
    expect(poolSaturation([state(metrics(10, 0)), state(metrics(0, 0))], T)).toBeCloseTo(1);
    expect(poolSaturation([state(metrics(9, 0)), state(metrics(0, 0))], T)).toBeCloseTo(0.9);
    expect(poolSaturation([], T)).toBe(1);
  });
});

describe('config: admission', () => {
  it('@default no objectives, queueDepthThreshold 5, kvCacheUtilThreshold 0.8', () => {
    expect(parseEppConfig({ model: MODEL }).admission).toEqual({ objectives: {}, queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, watchObjectives: true });
  });

  it('bad values are refused naming the field', () => {
    const r = EppConfigSchema.safeParse({ model: MODEL, admission: { kvCacheUtilThreshold: 1.5, objectives: { batch: -0.5 }, shed: true } });
    expect(r.success).toBe(false);
    const paths = r.success ? [] : r.error.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['admission.kvCacheUtilThreshold', 'admission.objectives.batch', 'admission']));
  });
});

describe('SchedulingDirector admission', () => {
  const PODS = ['10.0.0.1:8000', '10.0.0.2:8000'];
  let store: EndpointStore;
  let registry: Registry;

  function director(admission?: AdmissionOptions, objectivePriority?: (name: string) => number | undefined): SchedulingDirector {
    store = new EndpointStore();
    for (const [i, address] of PODS.entries()) store.upsert({ address, name: `p${i}`, role: 'both', metricsUrl: `http://${address}/metrics` });
    const indexer = new Indexer({ index: new MemoryIndex(), blockSize: 16, hashSeed: '42', engineAlgo: 'sha256_cbor' });
    const built = buildScheduler({ config: parseEppConfig({ model: MODEL, blockSize: 16 }), indexer, random: seededRandom(1) });
    registry = new Registry();
    return new SchedulingDirector({ scheduler: built.scheduler, store, logger: silentLogger(), model: MODEL, registry, ...(admission ? { admission } : {}), ...(objectivePriority ? { objectivePriority } : {}) });
  }

  const request = (objective?: string): InferenceRequest => ({
    requestId: 'r1',
    path: '/v1/completions',
    method: 'POST',
    apiKind: 'completions',
    model: MODEL,
    targetModel: MODEL,
    headers: objective === undefined ? {} : { [Headers.inferenceObjective]: objective },
    body: { model: MODEL, prompt: [1, 2, 3] },
    tokenIds: [1, 2, 3],
    sessionId: undefined,
    stream: false,
    subsetCandidates: undefined,
    bodyBytes: 40,
    receivedAt: 0,
  });

  const saturate = (waiting: number): void => {
    for (const a of PODS) store.setMetrics(a, metrics(waiting, 0.1));
  };

  const shedCount = async (): Promise<number> => (await registry.getSingleMetric('kvroute_admission_shed_total')!.get()).values.reduce((n, v) => n + v.value, 0);

  const ADMISSION: AdmissionOptions = { objectives: { batch: -1, chat: 10 }, queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8 };

  it('exports the shed counter of every configured sheddable objective at 0 from the start, and of no other', async () => {
    director(ADMISSION);
    const values = (await registry.getSingleMetric('kvroute_admission_shed_total')!.get()).values;
    expect(values.map((v) => [v.labels.objective, v.value])).toEqual([['batch', 0]]);
    director();
    expect((await registry.getSingleMetric('kvroute_admission_shed_total')!.get()).values).toEqual([]);
  });

  it('a sheddable request is dropped with 429 while the pool is saturated', async () => {
    const d = director(ADMISSION);
    saturate(6);
    const err = await d.pick(request('batch')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'shed', status: 429 });
    expect((err as Error).message).toMatch(/sheddable request dropped: objective "batch" has priority -1 and the pool's saturation is 1\.20/);
    expect(await shedCount()).toBe(1);
  });

  it('the same request is admitted when the pool is below saturation', async () => {
    const d = director(ADMISSION);
    saturate(4);
    expect((await d.pick(request('batch'))).endpoints).toHaveLength(1);
    expect(await shedCount()).toBe(0);
  });

  it('non-negative priorities, unknown objectives and requests without the header are never shed', async () => {
    const d = director(ADMISSION);
    saturate(50);
    for (const r of [request('chat'), request('no-such-objective'), request('constructor'), request('__proto__'), request()]) expect((await d.pick(r)).endpoints).toHaveLength(1);
    expect(await shedCount()).toBe(0);
  });

  it('without fresh metrics the pool counts as saturated for sheddable requests', async () => {
    const d = director(ADMISSION);
    await expect(d.pick(request('batch'))).rejects.toMatchObject({ code: 'shed' });
  });

  it("the cluster's InferenceObjective priorities come before the config's", async () => {
    const cluster = new Map([['chat', -2]]);
    const d = director(ADMISSION, (name) => cluster.get(name));
    saturate(6);
    // chat is 10 in the config but -2 in the cluster; batch is only in the config (-1)
    await expect(d.pick(request('chat'))).rejects.toMatchObject({ code: 'shed' });
    await expect(d.pick(request('batch'))).rejects.toMatchObject({ code: 'shed' });
    cluster.set('batch', 0);
    expect((await d.pick(request('batch'))).endpoints).toHaveLength(1);
  });

  it('@default: no objectives, so nothing is shed', async () => {
    const d = director();
    saturate(50);
    expect((await d.pick(request('batch'))).endpoints).toHaveLength(1);
  });
});
