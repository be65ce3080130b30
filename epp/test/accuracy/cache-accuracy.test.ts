/**
 * Predicted versus actual cache hits against the real in-memory index and a real prom-client
 * registry: the metrics, the full-hit cap, and self-healing (a block missed twice on a pod is
 * dropped from the index for that pod only).
 */
import { Registry } from 'prom-client';
import { CacheAccuracy } from '../../src/accuracy/cache-accuracy.js';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { InstrumentedIndex } from '../../src/kvindex/backends/instrumented-index.js';
import { CachePredictionMetrics, IndexMetrics, PredictionMismatchKinds } from '../../src/contract/metrics.js';
import { silentLogger } from '../../src/util/logger.js';

const BS = 16;
const KEYS = [11n, 12n, 13n, 14n];

async function value(r: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = await r.getSingleMetric(name)?.get();
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l) && !('le' in x.labels && !('le' in labels)));
  return v?.value ?? 0;
}

async function setup(): Promise<{ acc: CacheAccuracy; index: InstrumentedIndex; registry: Registry }> {
  const registry = new Registry();
  const index = new InstrumentedIndex(new MemoryIndex(), { registry: new Registry() });
  await index.add([], KEYS, [{ pod: 'a:1', tier: 'gpu' }]);
  await index.add([], KEYS, [{ pod: 'b:1', tier: 'gpu' }]);
  const acc = new CacheAccuracy({ blockSize: BS, index, registry, logger: silentLogger() });
  return { acc, index, registry };
}

describe('CacheAccuracy', () => {
  it('counts predicted, actual and prompt tokens per pod and the two mismatch kinds', async () => {
    const { acc, registry } = await setup();
    // predicted 4 blocks of a 100-token prompt = 64, vLLM reports 64: agreement
    const ok = await acc.observe({ pod: 'a:1', promptTokens: 100, heldKeys: KEYS }, { promptTokens: 100, cachedTokens: 64 }, 200);
    expect(ok).toMatchObject({ predictedTokens: 64, actualTokens: 64, missedKeys: 0 });
    // predicted nothing, got 32
    await acc.observe({ pod: 'a:1', promptTokens: 100, heldKeys: [] }, { promptTokens: 100, cachedTokens: 32 }, 200);
    // predicted 2 blocks, got nothing
    await acc.observe({ pod: 'b:1', promptTokens: 40, heldKeys: KEYS.slice(0, 2) }, { promptTokens: 40, cachedTokens: 0 }, 200);
    const c = CachePredictionMetrics;
    expect(await value(registry, c.predictedTokens.name, { pod: 'a:1' })).toBe(64);
    expect(await value(registry, c.actualTokens.name, { pod: 'a:1' })).toBe(96);
    expect(await value(registry, c.promptTokens.name, { pod: 'a:1' })).toBe(200);
    expect(await value(registry, c.predictedTokens.name, { pod: 'b:1' })).toBe(32);
    expect(await value(registry, c.predictionMismatch.name, { pod: 'a:1', kind: PredictionMismatchKinds.predictedMissActualHit })).toBe(1);
    expect(await value(registry, c.predictionMismatch.name, { pod: 'a:1', kind: PredictionMismatchKinds.predictedHitActualMiss })).toBe(0);
    expect(await value(registry, c.predictionMismatch.name, { pod: 'b:1', kind: PredictionMismatchKinds.predictedHitActualMiss })).toBe(1);
    // the error histogram: a:1 had 0 and +0.32, b:1 had -0.8
    const h = await registry.getSingleMetric(c.predictionErrorRatio.name)?.get();
    const count = (pod: string): number => h?.values.find((v) => (v as { metricName?: string }).metricName?.endsWith('_count') && v.labels.pod === pod)?.value ?? 0;
    const sum = (pod: string): number => h?.values.find((v) => (v as { metricName?: string }).metricName?.endsWith('_sum') && v.labels.pod === pod)?.value ?? NaN;
    expect(count('a:1')).toBe(2);
    expect(sum('a:1')).toBeCloseTo(0.32, 6);
    expect(sum('b:1')).toBeCloseTo(-0.8, 6);
  });

  it('caps the prediction where vLLM must recompute the last prompt token', async () => {
    const { acc } = await setup();
    // 64-token prompt, 4 blocks held: vLLM can report at most 48 cached tokens
    const r = await acc.observe({ pod: 'a:1', promptTokens: 64, heldKeys: KEYS }, { promptTokens: 64, cachedTokens: 48 }, 200);
    expect(r).toMatchObject({ predictedTokens: 48, actualTokens: 48, missedKeys: 0 });
  });

  it('ignores responses without cached_tokens and failed responses', async () => {
    const { acc, registry } = await setup();
    expect(await acc.observe({ pod: 'a:1', promptTokens: 100, heldKeys: KEYS }, { promptTokens: 100 }, 200)).toBeUndefined();
    expect(await acc.observe({ pod: 'a:1', promptTokens: 100, heldKeys: KEYS }, undefined, 200)).toBeUndefined();
    expect(await acc.observe({ pod: 'a:1', promptTokens: 100, heldKeys: KEYS }, { promptTokens: 100, cachedTokens: 0 }, 500)).toBeUndefined();
    expect(await value(registry, CachePredictionMetrics.promptTokens.name, { pod: 'a:1' })).toBe(0);
  });

  it('drops blocks a pod missed twice from the index, for that pod only, and counts them', async () => {
    const { acc, index, registry } = await setup();
    const p = { pod: 'a:1', promptTokens: 100, heldKeys: KEYS };
    // first miss of blocks 2 and 3: remembered, nothing dropped
    expect(await acc.observe(p, { promptTokens: 100, cachedTokens: 32 }, 200)).toMatchObject({ missedKeys: 2, droppedKeys: 0 });
    expect((await index.lookup(KEYS, new Set(['a:1']))).size).toBe(4);
    // second miss: dropped
    expect(await acc.observe(p, { promptTokens: 100, cachedTokens: 32 }, 200)).toMatchObject({ missedKeys: 2, droppedKeys: 2 });
    expect((await index.lookup(KEYS, new Set(['a:1']))).size).toBe(2);
    expect((await index.lookup(KEYS, new Set(['b:1']))).size).toBe(4);
    expect(await value(registry, IndexMetrics.selfHealDroppedBlocks.name, { pod: 'a:1' })).toBe(2);
  });

  it('forgets a miss when the pod later holds the block (a transient miss is not dropped)', async () => {
    const { acc, index } = await setup();
    const p = { pod: 'a:1', promptTokens: 100, heldKeys: KEYS };
    await acc.observe(p, { promptTokens: 100, cachedTokens: 48 }, 200); // block 3 missed once
    await acc.observe(p, { promptTokens: 100, cachedTokens: 64 }, 200); // then held
    expect(await acc.observe(p, { promptTokens: 100, cachedTokens: 48 }, 200)).toMatchObject({ missedKeys: 1, droppedKeys: 0 });
    expect((await index.lookup(KEYS, new Set(['a:1']))).size).toBe(4);
  });

  it('rejects a block size that is not a positive integer, naming it', () => {
    expect(() => new CacheAccuracy({ blockSize: 0, logger: silentLogger() })).toThrow(/blockSize: 0 must be a positive integer/);
  });
});

describe('MemoryIndex.forget', () => {
  it('removes every reference and tier of the pod for the keys, and frees keys left without holders', async () => {
    const idx = new MemoryIndex();
    await idx.add([], [1n, 2n], [{ pod: 'a', tier: 'gpu' }]);
    await idx.add([], [1n, 2n], [{ pod: 'a', tier: 'gpu' }]); // reference count 2
    await idx.add([], [1n], [{ pod: 'a', tier: 'cpu' }]);
    await idx.add([], [2n], [{ pod: 'b', tier: 'gpu' }]);
    expect(await idx.forget([1n, 2n, 99n], 'a')).toBe(2);
    expect(idx.stats.keys).toBe(1); // key 1 had only a's entries
    const hits = await idx.lookup([2n]);
    expect(hits.get(2n)).toEqual([{ pod: 'b', tier: 'gpu' }]);
    expect(await idx.forget([2n], 'nobody')).toBe(0);
  });
});
