import type { KvEventBatch } from '../../../src/kvevents/types.js';
import { defaultPodId } from '../../../lab/sim/engine.js';
import { SimPod } from '../../../lab/sim/pod.js';
import { ApproxPrefixPolicy, ChwblPolicy, HashRing, LeastLoadedPolicy, OraclePolicy, RandomPolicy, RoundRobinPolicy, SessionPolicy } from '../../../lab/sim/policies.js';
import { POLICY_NAMES, createPolicy, parsePolicyName } from '../../../lab/sim/policy-factory.js';
import type { FleetView, PodView, PolicyContext } from '../../../lab/sim/policy.js';
import { KvroutePolicy, PrecisePolicy } from '../../../lab/sim/precise.js';
import { PROFILE_A } from '../../../lab/sim/profiles.js';
import { BlockKeyer, type SimRequest } from '../../../lab/sim/request.js';
import { Rng } from '../../../lab/sim/rng.js';

const N = 4;
const podIds = Array.from({ length: N }, (_, i) => defaultPodId(i));

function ctx(pods: SimPod[] = [], seed = 1): PolicyContext {
  return { podIds, model: PROFILE_A.model, blockSize: 16, rng: new Rng(seed), keyer: new BlockKeyer(), pods };
}

function fleet(load: Partial<PodView>[] = []): FleetView {
  return {
    nowMs: 0,
    pods: podIds.map((id, index) => ({ index, id, waiting: 0, running: 0, kvUsage: 0, inFlight: 0, metricsAgeMs: 0, ...load[index] })),
  };
}

let nextId = 0;
function req(prefixIds: number[], sessionId = 's', inputLength = prefixIds.length * 16): SimRequest {
  return { id: nextId++, sessionId, arrivalMs: 0, inputLength, outputLength: 1, stage: 0, warmup: false, content: { kind: 'ids', ids: prefixIds, idBlockSize: 16, coveredTokens: inputLength } };
}
const blocks = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

/** Run `r` to completion on `pod`, collecting its KV events. */
function serve(pod: SimPod, r: SimRequest, events: KvEventBatch[]): void {
  pod.enqueue(r, 0);
  let now = 0;
  for (let ms = pod.beginStep(); ms !== undefined; ms = pod.beginStep()) {
    now += ms;
    const res = pod.endStep(now);
    if (res.events) events.push(res.events);
  }
}

describe('baseline policies', () => {
  it('random spreads uniformly and is seeded', () => {
    const counts = new Array<number>(N).fill(0);
    const p = new RandomPolicy(ctx([], 9));
    const picks: number[] = [];
    for (let i = 0; i < 4000; i++) {
      const k = p.pick(req([1]), fleet());
      picks.push(k);
      counts[k] = (counts[k] as number) + 1;
    }
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
    const q = new RandomPolicy(ctx([], 9));
    expect(picks.slice(0, 50)).toEqual(Array.from({ length: 50 }, () => q.pick(req([1]), fleet())));
  });

  it('round-robin cycles', () => {
    const p = new RoundRobinPolicy();
    expect(Array.from({ length: 9 }, () => p.pick(req([1]), fleet()))).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0]);
  });

  it('least-loaded takes the fewest waiting, then the fewest running', () => {
    const p = new LeastLoadedPolicy(ctx());
    expect(p.pick(req([1]), fleet([{ waiting: 3 }, { waiting: 1, running: 9 }, { waiting: 1, running: 2 }, { waiting: 5 }]))).toBe(2);
  });

  it('session: one pod per session, sessions spread over pods', () => {
    const p = new SessionPolicy(ctx());
    const owner = p.pick(req([1], 'alice'), fleet());
    for (let i = 0; i < 20; i++) expect(p.pick(req([i], 'alice'), fleet([{ waiting: 100 }]))).toBe(owner);
    const used = new Set(Array.from({ length: 200 }, (_, i) => p.pick(req([1], `user-${i}`), fleet())));
    expect(used.size).toBe(N);
  });

  it('hash ring walk visits every pod once', () => {
    const ring = new HashRing(podIds, 50);
    expect([...ring.walk(12345)].sort()).toEqual([0, 1, 2, 3]);
  });

  it('chwbl: same prefix → same pod until it exceeds the load bound, then the next on the ring', () => {
    const p = new ChwblPolicy(ctx());
    const r = req(blocks(1, 20));
    const home = p.pick(r, fleet());
    expect(p.pick(req(blocks(1, 20), 'other-session'), fleet())).toBe(home); // keyed on the prompt, not the session
    // bound = ⌈(total+1)·1.25/N⌉: with 8 in flight on home, ⌈9·1.25/4⌉ = 3 < 9 → skip home
    const loads: Partial<PodView>[] = podIds.map((_, i) => ({ inFlight: i === home ? 8 : 0 }));
    const moved = p.pick(r, fleet(loads));
    expect(moved).not.toBe(home);
    const ring = new HashRing(podIds);
    expect(moved).toBe([...ring.walk(p.keyOf(r))][1]);
  });

  it('approx-prefix: follows its own routing history, weighing queue and kv usage', () => {
    const p = new ApproxPrefixPolicy(ctx());
    const first = p.pick(req(blocks(1, 30)), fleet());
    // same prefix, equal load: prefix score 30/30·... on `first` only
    expect(p.pick(req(blocks(1, 30)), fleet())).toBe(first);
    expect(p.matched(first, new BlockKeyer().prefixKeys(req(blocks(1, 30)), 16, 256))).toBe(30);
    // a long queue on `first` (queue score 0 vs 1) outweighs a partial prefix match (10/30)
    const partial = req(blocks(1, 10).concat(blocks(500, 20)));
    const loads: Partial<PodView>[] = podIds.map((_, i) => (i === first ? { waiting: 10, kvUsage: 0.5 } : {}));
    expect(p.pick(partial, fleet(loads))).not.toBe(first);
  });

  it('oracle: picks the pod that really holds the prefix, unless its queue costs more', () => {
    const pods = podIds.map((id) => new SimPod({ id, profile: PROFILE_A }));
    const events: KvEventBatch[] = [];
    const warm = req(blocks(1, 100), 'x', 1600);
    serve(pods[2] as SimPod, warm, events);
    const p = new OraclePolicy(ctx(pods));
    const again = req(blocks(1, 100).concat([7777]), 'y', 1616);
    expect(p.pick(again, fleet())).toBe(2);
    expect(p.predictMs(again, 2)).toBeLessThan(p.predictMs(again, 0));
    // pile 3 uncached 1,600-token prompts on pod 2: the miss elsewhere is now cheaper
    for (let i = 0; i < 3; i++) (pods[2] as SimPod).enqueue(req(blocks(10_000 * (i + 1), 100), `q${i}`, 1600), 0);
    expect(p.pick(again, fleet())).not.toBe(2);
  });
});

describe('EPP-index policies', () => {
  it('precise: scores pods from the EPP index fed by the pods’ KV events', async () => {
    const pods = podIds.map((id) => new SimPod({ id, profile: PROFILE_A }));
    const p = new PrecisePolicy(ctx(pods));
    const events: KvEventBatch[] = [];
    serve(pods[3] as SimPod, req(blocks(1, 40), 'a', 640), events);
    // before the events are applied the index knows nothing: ties → random pod
    const scoresBefore = await p.epp.prefixScores(req(blocks(1, 40), 'b', 640));
    expect(scoresBefore).toEqual([0, 0, 0, 0]);
    for (const b of events) await p.onKvEvents(3, b);
    const scores = await p.epp.prefixScores(req(blocks(1, 40), 'b', 640));
    expect(scores[3]).toBeCloseTo(1, 9);
    expect(scores.slice(0, 3)).toEqual([0, 0, 0]);
    expect(await p.pick(req(blocks(1, 40), 'b', 640), fleet([{}, {}, {}, { waiting: 50 }]))).toBe(3); // no load term
    // half the prompt cached → score 0.5
    const half = await p.epp.prefixScores(req(blocks(1, 20).concat(blocks(900, 20)), 'c', 640));
    expect(half[3]).toBeCloseTo(0.5, 9);
  });

  it('kvroute: the EPP scheduler with its defaults (predicted TTFT); first tokens and completions release what it booked', async () => {
    const pods = podIds.map((id) => new SimPod({ id, profile: PROFILE_A }));
    const p = createPolicy('kvroute', ctx(pods)) as KvroutePolicy;
    expect(p.name).toBe('kvroute');
    expect(p.config.scheduling.preset).toBe('predicted-ttft');
    const events: KvEventBatch[] = [];
    serve(pods[1] as SimPod, req(blocks(1, 40), 'a', 640), events);
    for (const b of events) await p.onKvEvents(1, b);
    // the prefix holder wins at equal load
    const first = req(blocks(1, 40), 'b', 640);
    expect(await p.pick(first, fleet())).toBe(1);
    // a distinct prompt avoids pod 1, whose queue now holds the first request's uncached tokens
    const other = req(blocks(500, 40), 'c', 640);
    expect(await p.pick(other, fleet())).not.toBe(1);
    // until its first token: then pods tie again and every pod is picked at random
    p.onFirstToken(first);
    p.onComplete(first);
    p.onComplete(other);
    const picks = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const r = req(blocks(2000 + i * 50, 40), `d${i}`, 640);
      picks.add(await p.pick(r, fleet()));
      p.onComplete(r);
    }
    expect(picks.size).toBe(N);
    // the pods' num_gpu_blocks (vllm:cache_config_info) reach the scheduler with fresh metrics only
    expect(p.candidates(fleet())[0]?.metrics?.numGpuBlocks).toBe(PROFILE_A.numBlocks);
    expect(p.candidates(fleet([{ metricsAgeMs: 501 }]))[0]?.metrics).toBeUndefined();
  });

  it('kvroute-llmd: the previous default (llmd-suite weights); prefix wins at equal load, load wins against a partial hit', async () => {
    const pods = podIds.map((id) => new SimPod({ id, profile: PROFILE_A }));
    const p = createPolicy('kvroute-llmd', ctx(pods)) as KvroutePolicy;
    expect(p.config.scheduling.preset).toBe('llmd-suite');
    expect(p.config.scheduling.weights).toMatchObject({ prefix: 3, queue: 2, kvCacheUtilization: 2, activeRequests: 1, sessionAffinity: 0 });
    const events: KvEventBatch[] = [];
    serve(pods[1] as SimPod, req(blocks(1, 40), 'a', 640), events);
    for (const b of events) await p.onKvEvents(1, b);
    expect(await p.pick(req(blocks(1, 40), 'b', 640), fleet())).toBe(1);
    // pod 1 has the longest queue and all in-flight: 3·0.25 (10 of 40 blocks) < queue 2 + in-flight 1 lost
    const partial = req(blocks(1, 10).concat(blocks(900, 30)), 'c', 640);
    const loads: Partial<PodView>[] = [{}, { waiting: 8, inFlight: 8 }, {}, {}];
    expect(await p.pick(partial, fleet(loads))).not.toBe(1);
    // full hit: 3 + 0 + 2 + 0 = 5 vs 0 + 2 + 2 + 1 = 5 elsewhere: a tie, broken at random among all
    const picks = new Set<number>();
    for (let i = 0; i < 40; i++) picks.add(await p.pick(req(blocks(1, 40), `d${i}`, 640), fleet(loads)));
    expect(picks.has(1)).toBe(true);
    expect(picks.size).toBeGreaterThan(1);
    // metrics older than metricsStalenessMs (500) are unknown to the scheduler
    const stale = p.candidates(fleet([{ metricsAgeMs: 501, waiting: 3 }, { metricsAgeMs: 500, waiting: 3 }]));
    expect(stale[0]?.metrics).toBeUndefined();
    expect(stale[1]?.metrics).toMatchObject({ waiting: 3 });
  });

  it('every bench policy name builds', () => {
    for (const n of POLICY_NAMES) expect(createPolicy(n, ctx()).name).toBe(n);
    expect(parsePolicyName('session-sticky')).toBe('session');
    expect(() => parsePolicyName('fastest')).toThrow(/unknown policy "fastest"; use one of: random, round-robin/);
  });
});
