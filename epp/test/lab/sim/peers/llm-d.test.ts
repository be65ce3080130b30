import type { KvEventBatch } from '../../../../src/kvevents/types.js';
import {
  ApproxPrefixIndex,
  GIE_DEFAULT_WEIGHTS,
  GieDefaultPolicy,
  LLMD_ESTIMATE_DEFAULTS,
  LLMD_PRECISE_WEIGHTS,
  LlmdEstimatePolicy,
  LlmdPrecisePolicy,
  affinityFilter,
  llmdQueueScores,
  normalisePrecise,
} from '../../../../lab/sim/peers/llm-d.js';
import { createPolicy } from '../../../../lab/sim/policy-factory.js';
import type { SimPod } from '../../../../lab/sim/pod.js';
import { PROFILE_A } from '../../../../lab/sim/profiles.js';
import { blocks, ctx, fleet, req, serve, simPods } from './helpers.js';

describe('llmd-precise / llmd-precise-2025', () => {
  it('defaults: guide weights prefix 2 / kv-util 1 / queue 1; current form int(sum)/total, 2025 form min-max', () => {
    const cur = createPolicy('llmd-precise', ctx()) as LlmdPrecisePolicy;
    const old = createPolicy('llmd-precise-2025', ctx()) as LlmdPrecisePolicy;
    expect(cur.weights).toEqual({ prefix: 2, kvCacheUtilization: 1, queue: 1 });
    expect(LLMD_PRECISE_WEIGHTS).toEqual(cur.weights);
    expect(cur.normalisation).toBe('blocks');
    expect(old.normalisation).toBe('min-max');
    expect(old.weights).toEqual(cur.weights);
  });

  it('normalisation: floor(sum)/total vs min-max over the pods that hit', () => {
    // raw tier-weighted sums of 4 pods on a 10-block prompt
    const raw = [0, 2.4, 6, 10];
    expect(normalisePrecise(raw, 10, 'blocks')).toEqual([0, 0.2, 0.6, 1]);
    const mm = normalisePrecise(raw, 10, 'min-max');
    expect(mm[0]).toBe(0);
    expect(mm[1]).toBe(0); // the smallest hit scores 0
    expect(mm[2]).toBeCloseTo((6 - 2.4) / (10 - 2.4), 12);
    expect(mm[3]).toBe(1);
    // one pod holding one block of 100: 0.01 today, 1 (vs 0) under min-max
    expect(normalisePrecise([1, 0, 0, 0], 100, 'blocks')).toEqual([0.01, 0, 0, 0]);
    expect(normalisePrecise([1, 0, 0, 0], 100, 'min-max')).toEqual([1, 0, 0, 0]);
    // all hitting pods equal → 1
    expect(normalisePrecise([3, 3, 0, 3], 10, 'min-max')).toEqual([1, 1, 0, 1]);
  });

  it('is fed by the pods’ KV events; the 2025 form turns a 1-block hit into a full score and outweighs load', async () => {
    const pods = simPods();
    const cur = new LlmdPrecisePolicy(ctx(pods), { normalisation: 'blocks' });
    const old = new LlmdPrecisePolicy(ctx(pods), { normalisation: 'min-max' });
    const events: KvEventBatch[] = [];
    serve(pods[2] as SimPod, req(blocks(1, 2)), events); // pod 2 holds the 2-block "system prompt"
    expect(await cur.prefixScores(Array.from({ length: 32 }, () => 0))).toEqual([0, 0, 0, 0]);
    for (const b of events) {
      await cur.onKvEvents(2, b);
      await old.onKvEvents(2, b);
    }
    // a 40-block prompt sharing the first 2 blocks; pod 2 has a longer queue and a fuller cache
    const r = req(blocks(1, 2).concat(blocks(900, 38)));
    const loads = [{}, {}, { waiting: 6, kvUsage: 0.4 }, { waiting: 6 }];
    // current: prefix 2·(2/40) = 0.1 cannot beat queue 1 + kv 0.4 → not pod 2
    expect(await cur.pick(r, fleet(loads))).not.toBe(2);
    // 2025: prefix 2·1 = 2 on pod 2 vs ≤ 2 (queue 1 + kv 1) elsewhere, + 0.6 kv on pod 2 → pod 2
    expect(await old.pick(r, fleet(loads))).toBe(2);
  });

  it('queue scorer: (max − q)/(max − min), 1 when all equal', () => {
    expect(llmdQueueScores(fleet([{ waiting: 0 }, { waiting: 5 }, { waiting: 10 }, { waiting: 10 }]))).toEqual([1, 0.5, 0, 0]);
    expect(llmdQueueScores(fleet([{ waiting: 3 }, { waiting: 3 }, { waiting: 3 }, { waiting: 3 }]))).toEqual([1, 1, 1, 1]);
  });
});

describe('gie-default', () => {
  it('defaults: prefix 3 / queue 2 / kv-util 2, 256 blocks, LRU sized by num_gpu_blocks', () => {
    const pods = simPods();
    const p = createPolicy('gie-default', ctx(pods)) as GieDefaultPolicy;
    expect(p.weights).toEqual({ prefix: 3, queue: 2, kvCacheUtilization: 2 });
    expect(GIE_DEFAULT_WEIGHTS).toEqual(p.weights);
    expect(p.maxPrefixBlocks).toBe(256);
    expect(p.prefixIndex.capacityPerPod).toBe(PROFILE_A.numBlocks);
    expect(new GieDefaultPolicy(ctx([])).prefixIndex.capacityPerPod).toBe(31_250); // no cache config → GIE's fallback
    // hashes at most 256 blocks of the prompt
    expect(p.keysOf(req(blocks(1, 300)))).toHaveLength(256);
  });

  it('approximate matching stops at the first block no pod holds and does not check per-pod contiguity', () => {
    const idx = new ApproxPrefixIndex(3, 100);
    const k = (i: number): bigint => BigInt(i);
    idx.add(0, [k(1), k(2)]); // pod 0: blocks 1, 2
    idx.add(1, [k(1), k(3), k(5)]); // pod 1: blocks 1, 3, 5 (misses 2)
    // prompt 1,2,3,4,5: walk stops at 4 (nobody); pod 1 is credited for 1 and 3 although it lacks 2
    expect(idx.match([k(1), k(2), k(3), k(4), k(5)])).toEqual({ perPod: [2, 2, 0], walked: 3 });
    // LRU eviction drops the pod from the hash's holders
    const small = new ApproxPrefixIndex(2, 2);
    small.add(0, [k(1), k(2)]);
    small.add(0, [k(3)]);
    expect(small.match([k(1)]).perPod).toEqual([0, 0]);
    expect(small.size(0)).toBe(2);
  });

  it('learns from its own routing: a repeated prompt returns to the same pod while queues are equal', () => {
    const p = new GieDefaultPolicy(ctx(simPods()));
    const first = p.pick(req(blocks(1, 20)), fleet());
    for (let i = 0; i < 10; i++) expect(p.pick(req(blocks(1, 20).concat([5000 + i])), fleet())).toBe(first);
    // holder busiest (queue score 0) but cache empty: 3·1 + 0 + 2·1 = 5 > 0 + 2 + 2 = 4 → stays
    expect(p.pick(req(blocks(1, 20)), fleet(podIds4(first, { waiting: 9 })))).toBe(first);
    // holder busiest and 90 % full: 3 + 0 + 2·0.1 = 3.2 < 4 → leaves
    expect(p.pick(req(blocks(1, 20)), fleet(podIds4(first, { waiting: 9, kvUsage: 0.9 })))).not.toBe(first);
  });
});

/** Loads with `load` on pod `i` only. */
function podIds4(i: number, load: object): object[] {
  return [0, 1, 2, 3].map((j) => (j === i ? load : {}));
}

describe('llmd-estimate', () => {
  it('defaults: block ≥ 64 tokens, 40,960 tokens matched, affinity 0.80, 18 s gate at 15,928 tok/s, token cap 4,194,304', () => {
    const p = createPolicy('llmd-estimate', ctx(simPods())) as LlmdEstimatePolicy;
    expect(p.blockTokens).toBe(64);
    expect(p.maxBlocks).toBe(640);
    expect(p.o).toEqual({ minBlockTokens: 64, maxPrefixTokensToMatch: 40_960, affinityThreshold: 0.8, maxTtftPenaltyMs: 18_000, prefillTokensPerSec: 15_928, tokenLoadCap: 4_194_304 });
    expect(LLMD_ESTIMATE_DEFAULTS).toEqual(p.o);
    expect(new LlmdEstimatePolicy(ctx(), { blockTokens: 16 }).blockTokens).toBe(64); // clamped
    expect(p.prefixIndex.capacityPerPod).toBe(PROFILE_A.numBlocks);
  });

  it('affinity filter: ≥ 0.80 is sticky; the load gate opens when sticky pods wait > 18 s more', () => {
    const th = 0.8;
    // nobody sticky → everyone
    expect(affinityFilter([0.5, 0.79, 0, 0], [0, 0, 0, 0], th, 18_000, 15_928)).toEqual([0, 1, 2, 3]);
    // pod 1 sticky (exactly 0.80), its wait 15,928·18 tokens = 18 s more: gate still closed → only pod 1
    expect(affinityFilter([0.5, 0.8, 0, 0], [0, 15_928 * 18, 0, 0], th, 18_000, 15_928)).toEqual([1]);
    // one more token over 18 s → everyone
    expect(affinityFilter([0.5, 0.8, 0, 0], [0, 15_928 * 18 + 16, 0, 0], th, 18_000, 15_928)).toEqual([0, 1, 2, 3]);
    // gate compares best sticky with best non-sticky
    expect(affinityFilter([0.9, 0.9, 0, 0], [300_000, 0, 300_000, 300_000], th, 18_000, 15_928)).toEqual([0, 1]);
  });

  it('token-load scorer and in-flight tokens: charged at routing, released at the first token', () => {
    const p = new LlmdEstimatePolicy(ctx(simPods()));
    const r1 = req(blocks(1, 64)); // 1,024 tokens = 16 router blocks of 64
    const a = p.pick(r1, fleet());
    expect(p.inflightTokens[a]).toBe(1024);
    // the same prompt: pod a is sticky (16/16 ≥ 0.8) and charged only the unhashed remainder (0)
    const r2 = req(blocks(1, 64));
    expect(p.pick(r2, fleet())).toBe(a);
    expect(p.inflightTokens[a]).toBe(1024);
    // a cold prompt avoids pod a (token load 1 − 2048/cap < 1 − 1024/cap elsewhere)
    const r3 = req(blocks(7000, 64));
    const b = p.pick(r3, fleet());
    expect(b).not.toBe(a);
    p.onFirstToken(r1);
    p.onComplete(r1); // no double release
    expect(p.inflightTokens[a]).toBe(0);
    expect(p.inflightTokens[b]).toBe(1024);
  });
});
