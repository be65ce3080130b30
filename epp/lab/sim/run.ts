/** One benchmark run: a workload, a policy and a seed → a RunSummary. */
import { simulate, defaultPodId, type SimResult } from './engine.js';
import { createPolicy, type PolicyName } from './policy-factory.js';
import { KvroutePolicy, PrecisePolicy, type PreciseOptions } from './precise.js';
import { BlockKeyer } from './request.js';
import { Rng } from './rng.js';
import type { SimPod } from './pod.js';
import { summarize, type RunSummary } from './summary.js';
import type { Workload } from './workloads.js';

export interface RunOptions {
  readonly workload: Workload;
  readonly policy: PolicyName;
  readonly seed: number;
  /** @default 50 */
  readonly eventLagMs?: number;
  /** @default 50 */
  readonly metricsIntervalMs?: number;
  /** TTFT p90 SLO of the knee. @default 2000 */
  readonly kneeSloMs?: number;
  readonly precise?: PreciseOptions;
  /** @default none */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface RunOutput {
  readonly summary: RunSummary;
  readonly result: SimResult;
}

export async function runBenchmark(opts: RunOptions): Promise<RunOutput> {
  const w = opts.workload;
  const eventLagMs = opts.eventLagMs ?? 50;
  const metricsIntervalMs = opts.metricsIntervalMs ?? 50;
  const keyer = new BlockKeyer();
  const podIds = Array.from({ length: w.pods }, (_, i) => defaultPodId(i));
  // placeholder pods array filled by simulate(); the oracle reads it lazily
  const pods: SimPod[] = [];
  const policy = createPolicy(
    opts.policy,
    { podIds, model: w.profile.model, blockSize: w.profile.blockSize, rng: Rng.derive(opts.seed, `policy:${opts.policy}`), keyer, pods },
    opts.precise,
  );
  const t0 = performance.now();
  const result = await simulate(w.requests, policy, {
    profile: w.profile,
    pods: w.pods,
    eventLagMs,
    metricsIntervalMs,
    keyer,
    podIds,
    onProgress: opts.onProgress,
    onPods: (ps) => pods.push(...ps),
  });
  const wallSeconds = (performance.now() - t0) / 1000;
  const summary = summarize(result, {
    workload: w.name,
    policy: opts.policy,
    seed: opts.seed,
    stages: w.stages,
    eventLagMs,
    metricsIntervalMs,
    kneeSloMs: opts.kneeSloMs,
    keyer,
    wallSeconds,
  });
  const epp = policy instanceof PrecisePolicy || policy instanceof KvroutePolicy ? policy.epp : undefined;
  if (epp) return { summary: { ...summary, sim: { ...summary.sim, kvEventDrops: { ...epp.drops } } }, result };
  return { summary, result };
}
