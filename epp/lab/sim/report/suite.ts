/**
 * The report's run plan: which workloads (at which size), policies, seeds, sensitivity and weight
 * settings, and the loop that runs them in-process through `runBenchmark` (src/sim/run.ts).
 */
import type { KvrouteOptions } from '../precise.js';
import { PROFILE_B } from '../profiles.js';
import { runBenchmark } from '../run.js';
import type { PolicyName } from '../policy-factory.js';
import { readWorkloadFile } from '../workload-file.js';
import { W2_STAGES, generateW1, generateW2, generateW3, type Workload } from '../workloads.js';
import type { ReportRun } from './aggregate.js';
import { weightsLabel, type Weights } from './targets.js';

/** Workload sizes of a report run. 1 = the method's size. */
export interface Sizes {
  /** W1 sessions (method: 398). */
  readonly w1Sessions: number;
  /** W1 requests per session (method: 12). */
  readonly w1PerSession: number;
  /** Factor on every W2 stage's duration (method: 1). */
  readonly w2StageScale: number;
  /** W2 output tokens per request (method: 1000; 245 = llm-d's effective mean). */
  readonly w2OutputTokens: number;
  /** W3 sessions per stage (method: 480). */
  readonly w3SessionsPerStage: number;
  /** Mooncake trace: first N requests (0 = all). */
  readonly traceLimit: number;
}

export const DEFAULT_SIZES: Sizes = { w1Sessions: 398, w1PerSession: 12, w2StageScale: 1, w2OutputTokens: 245, w3SessionsPerStage: 480, traceLimit: 3000 };
export const QUICK_SIZES: Sizes = { w1Sessions: 398, w1PerSession: 3, w2StageScale: 0.15, w2OutputTokens: 245, w3SessionsPerStage: 60, traceLimit: 600 };

export const REPORT_WORKLOADS = ['w1', 'w2', 'w3', 'mooncake', 'mooncake-synthetic'] as const;
export type ReportWorkload = (typeof REPORT_WORKLOADS)[number];

/** Builds a report workload; `mooncake` needs `tracePath`, `mooncake-synthetic` needs `syntheticTracePath`. */
export async function buildWorkload(name: ReportWorkload, seed: number, sizes: Sizes, tracePath?: string, syntheticTracePath?: string): Promise<Workload> {
  switch (name) {
    case 'w1':
      return { ...generateW1(seed, { sessions: sizes.w1Sessions, perSession: sizes.w1PerSession }), name: 'w1' };
    case 'w2':
      return {
        ...generateW2(seed, {
          outputTokens: sizes.w2OutputTokens,
          stages: W2_STAGES.map(([q, s]) => [q, Math.max(1, s * sizes.w2StageScale)] as const),
        }),
        name: 'w2',
      };
    case 'w3':
      return { ...generateW3(seed, { sessionsPerStage: sizes.w3SessionsPerStage }), name: 'w3' };
    case 'mooncake': {
      if (tracePath === undefined) throw new Error('workload "mooncake" needs --trace <path to mooncake-conversation.jsonl>');
      const requests = await readWorkloadFile(tracePath, { hashBlockSize: 512, ...(sizes.traceLimit > 0 ? { limit: sizes.traceLimit } : {}) });
      return {
        name: 'mooncake',
        description: `Mooncake conversation trace (${requests.length} requests${sizes.traceLimit > 0 ? `, first ${sizes.traceLimit}` : ''}), 8 pods profile B`,
        profile: PROFILE_B,
        pods: 8,
        stages: [{ index: 0, rate: 0, unit: 'trace', startMs: 0, endMs: 0, warmup: false }],
        requests,
      };
    }
    case 'mooncake-synthetic': {
      if (syntheticTracePath === undefined) throw new Error('workload "mooncake-synthetic" needs --trace-synthetic <path to mooncake-synthetic.jsonl>');
      const requests = await readWorkloadFile(syntheticTracePath, { hashBlockSize: 512, ...(sizes.traceLimit > 0 ? { limit: sizes.traceLimit } : {}) });
      return {
        name: 'mooncake-synthetic',
        description: `Mooncake synthetic trace (${requests.length} requests${sizes.traceLimit > 0 ? `, first ${sizes.traceLimit}` : ''}), 8 pods profile B`,
        profile: PROFILE_B,
        pods: 8,
        stages: [{ index: 0, rate: 0, unit: 'trace', startMs: 0, endMs: 0, warmup: false }],
        requests,
      };
    }
  }
}

/** One simulation of the plan. */
export interface Job {
  readonly workload: ReportWorkload;
  readonly policy: PolicyName;
  readonly seed: number;
  /** '' for the default settings; else a label such as `lag 500 ms` or a weights label. */
  readonly variant: string;
  readonly section: 'main' | 'sensitivity' | 'weights';
  /** @default 50 */
  readonly eventLagMs?: number;
  /** @default 50 */
  readonly metricsIntervalMs?: number;
  /** kvroute weights; @default the EPP config defaults */
  readonly weights?: Weights;
}

export interface PlanOptions {
  readonly workloads: readonly ReportWorkload[];
  readonly policies: readonly PolicyName[];
  readonly seeds: readonly number[];
  /** Sensitivity sweeps (kvroute and precise, first seed, W1). @default true */
  readonly sensitivity?: boolean;
  /** Weight settings swept with kvroute on these workloads (first seed). @default none */
  readonly weightGrid?: readonly Weights[];
  readonly weightWorkloads?: readonly ReportWorkload[];
}

export const EVENT_LAGS_MS = [0, 50, 500] as const;
export const METRICS_STALENESS_MS = [0, 10, 50, 100] as const;

/** The jobs of a report, main table first, in a deterministic order. */
export function planJobs(o: PlanOptions): Job[] {
  const jobs: Job[] = [];
  for (const workload of o.workloads) for (const policy of o.policies) for (const seed of o.seeds) jobs.push({ workload, policy, seed, variant: '', section: 'main' });
  const seed = o.seeds[0] ?? 1;
  if (o.sensitivity ?? true) {
    const sw: ReportWorkload = o.workloads.includes('w1') ? 'w1' : (o.workloads[0] ?? 'w1');
    for (const policy of ['kvroute', 'precise'] as const) {
      for (const lag of EVENT_LAGS_MS) jobs.push({ workload: sw, policy, seed, variant: `event lag ${lag} ms`, section: 'sensitivity', eventLagMs: lag });
      for (const m of METRICS_STALENESS_MS) {
        jobs.push({ workload: sw, policy, seed, variant: `metrics ${m === 0 ? 'live' : `every ${m} ms`}`, section: 'sensitivity', metricsIntervalMs: m });
      }
    }
  }
  for (const workload of o.weightWorkloads ?? []) {
    for (const weights of o.weightGrid ?? []) jobs.push({ workload, policy: 'kvroute', seed, variant: weightsLabel(weights), section: 'weights', weights });
  }
  return jobs;
}

export interface JobResult extends ReportRun {
  readonly job: Job;
}

export interface SuiteOptions {
  readonly sizes: Sizes;
  readonly tracePath?: string;
  /** Mooncake synthetic trace (workload `mooncake-synthetic`). @default none */
  readonly syntheticTracePath?: string;
  /** Called before each job and during it (requests done / total). @default none */
  readonly onProgress?: (jobIndex: number, job: Job, done: number, total: number) => void;
}

/** Runs the jobs in order, in-process, caching generated workloads per (workload, seed). */
export async function runJobs(jobs: readonly Job[], opts: SuiteOptions): Promise<JobResult[]> {
  const cache = new Map<string, Workload>();
  const out: JobResult[] = [];
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i] as Job;
    const key = `${job.workload}:${job.seed}`;
    let w = cache.get(key);
    if (!w) {
      w = await buildWorkload(job.workload, job.seed, opts.sizes, opts.tracePath, opts.syntheticTracePath);
      cache.clear(); // one workload in memory at a time (jobs are grouped by workload)
      cache.set(key, w);
    }
    opts.onProgress?.(i, job, 0, w.requests.length);
    const precise: KvrouteOptions | undefined = job.weights ? { config: { scheduling: { preset: 'llmd-suite', weights: { ...job.weights } } } } : undefined;
    const { summary } = await runBenchmark({
      workload: w,
      policy: job.policy,
      seed: job.seed,
      ...(job.eventLagMs !== undefined ? { eventLagMs: job.eventLagMs } : {}),
      ...(job.metricsIntervalMs !== undefined ? { metricsIntervalMs: job.metricsIntervalMs } : {}),
      ...(precise ? { precise } : {}),
      onProgress: (done, total) => opts.onProgress?.(i, job, done, total),
    });
    out.push({ workload: job.workload, policy: job.policy, variant: job.variant, seed: job.seed, summary, job });
  }
  return out;
}
