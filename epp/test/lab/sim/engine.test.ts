import type { KvEventBatch } from '../../../src/kvevents/types.js';
import { EventQueue, simulate } from '../../../lab/sim/engine.js';
import type { FleetView, RoutingPolicy } from '../../../lab/sim/policy.js';
import { PROFILE_A } from '../../../lab/sim/profiles.js';
import type { SimRequest } from '../../../lab/sim/request.js';
import { runBenchmark } from '../../../lab/sim/run.js';
import { generateW0, generateW1 } from '../../../lab/sim/workloads.js';

const smallW1 = (seed: number) => generateW1(seed, { sessions: 12, perSession: 4, rates: [50, 400] });

function idsReq(id: number, arrivalMs: number | undefined, extra: Partial<SimRequest> = {}): SimRequest {
  return {
    id,
    sessionId: `s${id}`,
    ...(arrivalMs !== undefined ? { arrivalMs } : {}),
    inputLength: 64,
    outputLength: 4,
    stage: 0,
    warmup: false,
    content: { kind: 'ids', ids: [1, 2, 3, 4, 100 + id], idBlockSize: 16, coveredTokens: 64 },
    ...extra,
  };
}

describe('EventQueue', () => {
  it('pops by time, then insertion order', () => {
    const q = new EventQueue();
    q.push(5, { kind: 'scrape' });
    q.push(1, { kind: 'step', pod: 1 });
    q.push(5, { kind: 'step', pod: 2 });
    q.push(0, { kind: 'step', pod: 3 });
    const out: string[] = [];
    for (let e = q.pop(); e; e = q.pop()) out.push(`${e.t}:${e.ev.kind === 'step' ? e.ev.pod : 's'}`);
    expect(out).toEqual(['0:3', '1:1', '5:s', '5:2']);
    expect(() => q.push(NaN, { kind: 'scrape' })).toThrow(/not finite/);
  });
});

describe('simulate', () => {
  it('is deterministic: same workload, policy and seed → identical summary', async () => {
    const a = await runBenchmark({ workload: smallW1(3), policy: 'kvroute', seed: 3 });
    const b = await runBenchmark({ workload: smallW1(3), policy: 'kvroute', seed: 3 });
    const strip = (s: typeof a.summary) => ({ ...s, sim: { ...s.sim, wallSeconds: 0 } });
    expect(strip(a.summary)).toEqual(strip(b.summary));
    expect(a.summary.sim.kvEventDrops).toEqual({}); // every simulated event applies cleanly to the EPP index
    expect(a.summary.sim.kvEventBatches).toBeGreaterThan(0);
    expect(a.result.records.map((r) => [r.req.id, r.pod, r.firstTokenMs])).toEqual(b.result.records.map((r) => [r.req.id, r.pod, r.firstTokenMs]));
    const c = await runBenchmark({ workload: smallW1(4), policy: 'random', seed: 4 });
    const d = await runBenchmark({ workload: smallW1(5), policy: 'random', seed: 5 });
    expect(c.result.records.map((r) => r.pod)).not.toEqual(d.result.records.map((r) => r.pod));
  });

  it('precise routing depends on the events it has seen: sticky at lag 0, blind when they never arrive in time', async () => {
    const w0 = generateW0(1);
    const fresh = await runBenchmark({ workload: w0, policy: 'precise', seed: 1, eventLagMs: 0 });
    expect(fresh.summary.tokenHitRate).toBeCloseTo(176 / 191, 9);
    expect(fresh.summary.loadMaxOverMean).toBe(3);
    const blind = await runBenchmark({ workload: w0, policy: 'precise', seed: 1, eventLagMs: 1e9 });
    expect(blind.summary.tokenHitRate).toBeLessThan(0.9);
    expect(blind.summary.loadMaxOverMean).toBeLessThan(3);
  });

  it('reports each request\'s first token to the policy exactly once, before its completion', async () => {
    const firsts = new Map<number, number>();
    const order: string[] = [];
    const policy: RoutingPolicy = {
      name: 'probe',
      pick: (r) => r.id % 2,
      onFirstToken: (r) => {
        firsts.set(r.id, (firsts.get(r.id) ?? 0) + 1);
        order.push(`first ${r.id}`);
      },
      onComplete: (r) => order.push(`done ${r.id}`),
    };
    const reqs = [0, 1, 2, 3, 4, 5].map((i) => idsReq(i, i * 3));
    await simulate(reqs, policy, { profile: PROFILE_A, pods: 2, metricsIntervalMs: 0 });
    expect([...firsts.entries()].sort((a, b) => a[0] - b[0])).toEqual(reqs.map((r) => [r.id, 1]));
    for (const r of reqs) expect(order.indexOf(`first ${r.id}`)).toBeLessThan(order.indexOf(`done ${r.id}`));
  });

  it('delivers KV events to the router exactly eventLagMs after the step that emitted them', async () => {
    const seen: { now: number; ts: number }[] = [];
    let clock: FleetView | undefined;
    const policy: RoutingPolicy = {
      name: 'probe',
      pick: (_r, fleet) => {
        clock = fleet;
        return 0;
      },
      onKvEvents: (_pod: number, batch: KvEventBatch) => {
        seen.push({ now: (clock as FleetView).nowMs, ts: batch.ts });
      },
    };
    await simulate([idsReq(0, 0), idsReq(1, 1000)], policy, { profile: PROFILE_A, pods: 2, eventLagMs: 250, metricsIntervalMs: 0 });
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) expect(s.now - s.ts * 1000).toBeCloseTo(250, 6);
  });

  it('the router sees metrics as of the last scrape; 0 = live', async () => {
    const ages: number[] = [];
    const waiting: number[] = [];
    const probe: RoutingPolicy = {
      name: 'probe',
      pick: (_r, fleet) => {
        ages.push(fleet.pods[0]?.metricsAgeMs ?? -1);
        waiting.push((fleet.pods[0]?.waiting ?? 0) + (fleet.pods[0]?.running ?? 0));
        return 0;
      },
    };
    // 5 simultaneous requests, scrape every 100 ms: all see the empty scrape at t=0
    const burst = [0, 1, 2, 3, 4].map((i) => idsReq(i, 30 + i * 0.001));
    await simulate(burst, probe, { profile: PROFILE_A, pods: 1, metricsIntervalMs: 100 });
    expect(waiting).toEqual([0, 0, 0, 0, 0]);
    expect(ages.every((a) => a >= 30 && a < 100)).toBe(true);
    ages.length = 0;
    waiting.length = 0;
    await simulate(
      burst.map((r) => ({ ...r })),
      probe,
      { profile: PROFILE_A, pods: 1, metricsIntervalMs: 0 },
    );
    expect(waiting).toEqual([0, 1, 2, 3, 4]);
    expect(ages.every((a) => a === 0)).toBe(true);
  });

  it('closed loop: a follow-up arrives afterPreviousMs after its predecessor completes', async () => {
    const reqs = [idsReq(0, 0, { sessionId: 'a' }), idsReq(1, undefined, { sessionId: 'a', afterPreviousMs: 300 })];
    const rr: RoutingPolicy = { name: 'zero', pick: () => 0 };
    const res = await simulate(reqs, rr, { profile: PROFILE_A, pods: 1 });
    const [r0, r1] = res.records;
    expect(r1?.arrivalMs).toBeCloseTo((r0?.finishedMs as number) + 300, 9);
    expect(r1?.hitTokens).toBe(48); // 4 shared blocks, capped at ⌊(64−1)/16⌋ = 3
    await expect(simulate([idsReq(5, undefined, { afterPreviousMs: 10 })], rr, { profile: PROFILE_A, pods: 1 })).rejects.toThrow(/no earlier request of its session/);
  });

  it('a rejected request still releases its closed-loop follow-up', async () => {
    const tooLong = idsReq(0, 0, { sessionId: 'a', inputLength: 5000, content: { kind: 'ids', ids: Array.from({ length: 313 }, (_, i) => 1 + i), idBlockSize: 16, coveredTokens: 5000 } });
    const next = idsReq(1, undefined, { sessionId: 'a', afterPreviousMs: 40 });
    const res = await simulate([tooLong, next], { name: 'zero', pick: () => 0 }, { profile: PROFILE_A, pods: 1 });
    expect(res.records.map((r) => [r.req.id, r.rejected === undefined])).toEqual([
      [0, false],
      [1, true],
    ]);
    expect(res.records[1]?.arrivalMs).toBe(40);
  });

  it('rejects bad picks and options with clear errors', async () => {
    const bad: RoutingPolicy = { name: 'bad', pick: () => 7 };
    await expect(simulate([idsReq(0, 0)], bad, { profile: PROFILE_A, pods: 2 })).rejects.toThrow(/picked pod 7.*expected 0\.\.1/);
    const ok: RoutingPolicy = { name: 'ok', pick: () => 0 };
    await expect(simulate([idsReq(0, 0)], ok, { profile: PROFILE_A, pods: 1, eventLagMs: -1 })).rejects.toThrow(/eventLagMs is -1/);
  });

  it('counts requests a pod must reject (over max_model_len) without stalling', async () => {
    const long = idsReq(1, 5, { inputLength: 5000, content: { kind: 'ids', ids: Array.from({ length: 313 }, (_, i) => 10_000 + i), idBlockSize: 16, coveredTokens: 5000 } });
    const res = await runBenchmark({
      workload: { name: 't', description: 't', profile: PROFILE_A, pods: 1, stages: [{ index: 0, rate: 0, unit: 'trace', startMs: 0, endMs: 0, warmup: false }], requests: [idsReq(0, 0), long] },
      policy: 'round-robin',
      seed: 1,
    });
    expect(res.summary.rejected).toBe(1);
    expect(res.result.records.find((r) => r.req.id === 1)?.rejected).toMatch(/max_model_len 4096/);
  });
});
