/** The documented @default of every optional option of the simulator. */
import { createTokenProcessor } from '../../../src/kvindex/keys/token-processor.js';
import type { KvEventBatch } from '../../../src/kvevents/types.js';
import { defaultPodId, simulate } from '../../../lab/sim/engine.js';
import { SimPod } from '../../../lab/sim/pod.js';
import { ApproxPrefixPolicy, ChwblPolicy } from '../../../lab/sim/policies.js';
import type { FleetView, PolicyContext, RoutingPolicy } from '../../../lab/sim/policy.js';
import { PrecisePolicy } from '../../../lab/sim/precise.js';
import { PROFILE_A } from '../../../lab/sim/profiles.js';
import { BlockKeyer, promptTokens, type SimRequest } from '../../../lab/sim/request.js';
import { Rng } from '../../../lab/sim/rng.js';
import { runBenchmark } from '../../../lab/sim/run.js';
import { renderVllmMetrics } from '../../../lab/sim/vllm-metrics.js';
import { parseWorkloadText } from '../../../lab/sim/workload-file.js';
import { generateW0 } from '../../../lab/sim/workloads.js';

const podIds = [0, 1, 2].map(defaultPodId);
const ctx = (): PolicyContext => ({ podIds, model: PROFILE_A.model, blockSize: 16, rng: new Rng(1), keyer: new BlockKeyer(), pods: [] });
const fleet: FleetView = { nowMs: 0, pods: podIds.map((id, index) => ({ index, id, waiting: 0, running: 0, kvUsage: 0, inFlight: 0, metricsAgeMs: 0 })) };
let n = 0;
const req = (ids: number[], inputLength = ids.length * 16): SimRequest => ({
  id: n++,
  sessionId: `s${n}`,
  arrivalMs: 0,
  inputLength,
  outputLength: 2,
  stage: 0,
  warmup: false,
  content: { kind: 'ids', ids, idBlockSize: 16, coveredTokens: inputLength },
});

describe('simulator defaults', () => {
  it('simulate: event lag 50 ms, metrics every 50 ms, pods 10.0.0.<i+1>:8000', async () => {
    const lags: number[] = [];
    const ages: number[] = [];
    const ids: string[] = [];
    let view: FleetView | undefined;
    const probe: RoutingPolicy = {
      name: 'probe',
      pick: (_r, f) => {
        view = f;
        ages.push(f.pods[0]?.metricsAgeMs ?? -1);
        ids.push(...f.pods.map((p) => p.id));
        return 0;
      },
      onKvEvents: (_p: number, b: KvEventBatch) => {
        lags.push((view as FleetView).nowMs - b.ts * 1000);
      },
    };
    await simulate([req([1, 2, 3]), { ...req([1, 2, 3]), arrivalMs: 175 }], probe, { profile: PROFILE_A, pods: 2 });
    expect(lags.length).toBeGreaterThan(0);
    for (const l of lags) expect(l).toBeCloseTo(50, 9);
    expect(ages).toEqual([0, 25]); // scrapes at 0, 50, 100, 150 → age at t=175 is 25
    expect(ids.slice(0, 2)).toEqual(['10.0.0.1:8000', '10.0.0.2:8000']);
    expect(defaultPodId(255)).toBe('10.0.1.0:8000');
  });

  it('runBenchmark: lag 50, metrics 50, knee SLO 2000 ms', async () => {
    const { summary } = await runBenchmark({ workload: generateW0(1), policy: 'round-robin', seed: 1 });
    expect(summary.sim.eventLagMs).toBe(50);
    expect(summary.sim.metricsIntervalMs).toBe(50);
    expect(summary.kneeSloMs).toBe(2000);
  });

  it('SimPod: medium gpu, keys from a default keyer', () => {
    const events: KvEventBatch[] = [];
    const pod = new SimPod({ id: 'x:1', profile: PROFILE_A, onKvEvents: (b) => events.push(b) });
    pod.enqueue(req([1, 2]), 0);
    for (let ms = pod.beginStep(), t = 0; ms !== undefined; ms = pod.beginStep()) pod.endStep((t += ms));
    const stored = events.flatMap((b) => b.events).find((e) => e.type === 'BlockStored');
    expect(stored).toMatchObject({ medium: 'gpu', blockHashes: new BlockKeyer().keys(req([1, 2]), 16) });
  });

  it('chwbl: ε = 0.25 and the first 256 prompt tokens', () => {
    const p = new ChwblPolicy(ctx());
    const base = Array.from({ length: 16 }, (_, i) => i + 1);
    expect(p.keyOf(req(base.concat([100, 101])))).toBe(p.keyOf(req(base.concat([200]))));
    // (chained ids: a prefix that differs inside the first 256 tokens has a different 16th id)
    expect(p.keyOf(req([...base.slice(0, 15), 999]))).not.toBe(p.keyOf(req(base)));
    const home = p.pick(req(base), fleet);
    // 5 in flight: bound ⌈6·1.25/3⌉ = 3 (ε = 0 would give 2). Home with 2 stays (2 + 1 ≤ 3) …
    const inFlight = (homeLoad: number, other: number): FleetView => ({
      ...fleet,
      pods: fleet.pods.map((x) => ({ ...x, inFlight: x.index === home ? homeLoad : other })),
    });
    expect(p.pick(req(base), { ...inFlight(2, 1), pods: inFlight(2, 1).pods.map((x) => (x.index === (home + 1) % 3 ? { ...x, inFlight: 2 } : x)) })).toBe(home);
    // … home with 3 of 5 (3 + 1 > 3) goes to the next pod on the ring
    expect(p.pick(req(base), inFlight(3, 1))).not.toBe(home);
  });

  it('approx-prefix: 16-token blocks, ≤ 256 matched, 31,250 entries per pod', () => {
    const p = new ApproxPrefixPolicy(ctx());
    const long = req(Array.from({ length: 300 }, (_, i) => i + 1));
    const pod = p.pick(long, fleet);
    expect(p.matched(pod, new BlockKeyer().prefixKeys(long, 16, 1000))).toBe(256);
    // 123 prompts × 256 blocks = 31,488 > 31,250: the first prompt's oldest blocks are gone
    const first = req(Array.from({ length: 256 }, (_, i) => 5_000_000 + i));
    const target = p.pick(first, fleet);
    const busy: FleetView = { ...fleet, pods: fleet.pods.map((x) => ({ ...x, kvUsage: x.index === target ? 0 : 1 })) };
    for (let k = 0; k < 123; k++) p.pick(req(Array.from({ length: 256 }, (_, i) => 6_000_000 + k * 1000 + i)), busy);
    expect(p.matched(target, new BlockKeyer().prefixKeys(first, 16, 256))).toBe(0);
  });

  it('precise: hashSeed "42" key space (the EPP default)', () => {
    const p = new PrecisePolicy(ctx());
    const r = req([1, 2, 3, 4]);
    const tp = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: '42', model: PROFILE_A.model });
    expect(p.epp.indexer.requestKeys(promptTokens(r), PROFILE_A.model)).toEqual(tp.blockKeys(promptTokens(r)));
  });

  it('vLLM metrics: engine "0", hash algo sha256_cbor', () => {
    const text = renderVllmMetrics(
      { prefixCacheQueries: 0, prefixCacheHits: 0, numRequestsWaiting: 0, numRequestsRunning: 0, kvCacheUsagePerc: 0 },
      { modelName: 'm', profile: PROFILE_A },
    );
    expect(text).toContain('vllm:num_requests_waiting{engine="0",model_name="m"} 0.0');
    expect(text).toContain('prefix_caching_hash_algo="sha256_cbor"');
  });

  it('workload files: source "workload", speed 1, all lines', () => {
    const lines = ['{"timestamp": 100, "input_length": 10, "output_length": 1, "hash_ids": [1]}', '{"timestamp": 200, "input_length": 10, "output_length": 1, "hash_ids": [2]}'];
    expect(parseWorkloadText(lines.join('\n')).map((r) => r.arrivalMs)).toEqual([100, 200]);
    expect(() => parseWorkloadText('{}')).toThrow(/^workload has /);
  });
});
