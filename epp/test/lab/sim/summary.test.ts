import type { RequestRecord, SimResult } from '../../../lab/sim/engine.js';
import { SimPod } from '../../../lab/sim/pod.js';
import { PROFILE_A } from '../../../lab/sim/profiles.js';
import type { SimRequest } from '../../../lab/sim/request.js';
import { maxOverMean, percentile, percentiles, summarize } from '../../../lab/sim/summary.js';
import type { StageInfo } from '../../../lab/sim/workloads.js';

function rec(id: number, stage: number, pod: number, ttftMs: number, queried: number, hits: number, warmup = false): RequestRecord {
  const req: SimRequest = {
    id,
    sessionId: `s${id}`,
    arrivalMs: id * 10,
    inputLength: queried,
    outputLength: 2,
    stage,
    warmup,
    content: { kind: 'ids', ids: [id + 1, id + 1000], idBlockSize: 16, coveredTokens: queried },
  };
  return { req, pod, arrivalMs: id * 10, firstTokenMs: id * 10 + ttftMs, finishedMs: id * 10 + ttftMs + 5, ttftMs, queriedTokens: queried, hitTokens: hits, uncachedTokens: queried - hits, preemptions: 0 };
}

describe('summary math', () => {
  it('nearest-rank percentiles and max/mean', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 90)).toBe(90);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentiles([3, 1, 2])).toEqual({ p50: 2, p90: 3, p99: 3, mean: 2 });
    expect(Number.isNaN(percentile([], 50))).toBe(true);
    expect(maxOverMean([5, 5, 5])).toBe(1);
    expect(maxOverMean([9, 0, 0])).toBe(3);
    expect(maxOverMean([0, 0])).toBe(1);
  });

  it('hit rate in tokens, warm-up excluded, per-stage knee at the SLO', () => {
    const pods = [new SimPod({ id: 'a:1', profile: PROFILE_A }), new SimPod({ id: 'b:1', profile: PROFILE_A })];
    const stages: StageInfo[] = [
      { index: 0, rate: 5, unit: 'req/s', startMs: 0, endMs: 100, warmup: true },
      { index: 1, rate: 10, unit: 'req/s', startMs: 100, endMs: 200, warmup: false },
      { index: 2, rate: 20, unit: 'req/s', startMs: 200, endMs: 300, warmup: false },
      { index: 3, rate: 40, unit: 'req/s', startMs: 300, endMs: 400, warmup: false },
    ];
    const records = [
      rec(0, 0, 0, 9000, 100, 0, true), // warm-up: slow and cold, excluded
      rec(11, 1, 0, 100, 100, 50),
      rec(12, 1, 1, 200, 100, 50),
      rec(21, 2, 0, 3000, 100, 100 - 4),
      rec(22, 2, 0, 100, 300, 0),
      rec(31, 3, 1, 150, 100, 0),
    ];
    const result: SimResult = { records, pods, output: [{ atMs: 150, tokens: 30 }, { atMs: 250, tokens: 10 }], endMs: 400, kvBatches: 0 };
    const s = summarize(result, { workload: 't', policy: 'p', seed: 1, stages, eventLagMs: 0, metricsIntervalMs: 0, kneeSloMs: 2000 });
    expect(s.requests).toBe(6);
    expect(s.measuredRequests).toBe(5);
    expect(s.tokenHitRate).toBeCloseTo((50 + 50 + 96) / 700, 12);
    expect(s.stages[1]?.tokenHitRate).toBeCloseTo(0.5, 12);
    expect(s.stages[1]?.outputTokensPerSec).toBeCloseTo(30 / 0.1, 9);
    // stage 2's p90 (3000 ms) breaks the SLO: the knee is the stage below it, even though stage 3 is fast
    expect(s.kneeLoad).toBe(10);
    expect(s.podRequestShare).toEqual([3 / 5, 2 / 5]);
    expect(s.loadMaxOverMean).toBeCloseTo(1.2, 12);
    expect(s.podUncachedShare[0]).toBeCloseTo((50 + 4 + 300) / (50 + 50 + 4 + 300 + 100), 12);
    expect(s.ttftMs.p50).toBe(150);
    expect(s.stages[0]?.warmup).toBe(true);
  });
});
