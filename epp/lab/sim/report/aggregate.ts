/**
 * Aggregation of benchmark runs over seeds (docs/benchmarks/method.md, "Metrics"): per (workload, policy,
 * variant) the mean and spread of every headline metric, and per offered-load stage the mean TTFT
 * p90 (the curve of the "TTFT p90 vs offered load" plot).
 */
import type { RunSummary } from '../summary.js';

/** Mean and spread of one metric over seeds. */
export interface Stat {
  readonly n: number;
  readonly mean: number;
  /** Sample standard deviation (n − 1); 0 for a single value. */
  readonly sd: number;
  readonly min: number;
  readonly max: number;
}

/** Mean, sample sd, min, max of the finite values (NaN fields when there are none). */
export function stat(values: readonly number[]): Stat {
  const xs = values.filter((x) => Number.isFinite(x));
  const n = xs.length;
  if (n === 0) return { n: 0, mean: NaN, sd: NaN, min: NaN, max: NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const sd = n < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  return { n, mean, sd, min: Math.min(...xs), max: Math.max(...xs) };
}

/** a ÷ b, NaN when b is 0 or either is not finite. */
export function ratio(a: number, b: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}

/** One benchmark run as the report sees it. */
export interface ReportRun {
  readonly workload: string;
  readonly policy: string;
  /** Distinguishes runs of one policy with other settings (e.g. `lag 500 ms`, weights); '' = default. */
  readonly variant: string;
  readonly seed: number;
  readonly summary: RunSummary;
}

export interface StagePoint {
  readonly rate: number;
  readonly unit: string;
  readonly ttftP50Ms: Stat;
  readonly ttftP90Ms: Stat;
  readonly ttftP99Ms: Stat;
  readonly ttftMeanMs: Stat;
  readonly tokenHitRate: Stat;
  readonly outputTokensPerSec: Stat;
  /** Busiest pod's request share in the stage ÷ the mean. */
  readonly loadMaxOverMean: Stat;
}

export interface Cell {
  readonly workload: string;
  readonly policy: string;
  readonly variant: string;
  readonly seeds: readonly number[];
  readonly tokenHitRate: Stat;
  readonly oracleTokenHitRate: Stat;
  readonly hitRateOverOracle: Stat;
  readonly loadMaxOverMean: Stat;
  readonly uncachedMaxOverMean: Stat;
  readonly ttftP50Ms: Stat;
  readonly ttftP90Ms: Stat;
  readonly ttftP99Ms: Stat;
  readonly ttftMeanMs: Stat;
  readonly outputTokensPerSec: Stat;
  /** Knee load over the seeds that have one. */
  readonly kneeLoad: Stat;
  readonly kneeUnit: string | null;
  /** Mean per-pod request share (index = pod). */
  readonly podRequestShare: readonly number[];
  /** Measured (non-warm-up) stages, ascending by rate, averaged over seeds. */
  readonly stages: readonly StagePoint[];
  readonly wallSeconds: Stat;
}

export const cellKey = (workload: string, policy: string, variant = ''): string => `${workload}\u0000${policy}\u0000${variant}`;

function meanVector(vs: readonly (readonly number[])[]): number[] {
  const len = Math.max(0, ...vs.map((v) => v.length));
  const out = new Array<number>(len).fill(0);
  for (const v of vs) v.forEach((x, i) => (out[i] = (out[i] as number) + x / vs.length));
  return out;
}

function aggregateStages(runs: readonly RunSummary[]): StagePoint[] {
  const byRate = new Map<number, { unit: string; s: RunSummary['stages'][number][] }>();
  for (const r of runs) {
    for (const st of r.stages) {
      if (st.warmup || !(st.rate > 0)) continue;
      const e = byRate.get(st.rate) ?? { unit: st.unit, s: [] };
      e.s.push(st);
      byRate.set(st.rate, e);
    }
  }
  return [...byRate.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([rate, e]) => ({
      rate,
      unit: e.unit,
      ttftP50Ms: stat(e.s.map((s) => s.ttftMs.p50)),
      ttftP90Ms: stat(e.s.map((s) => s.ttftMs.p90)),
      ttftP99Ms: stat(e.s.map((s) => s.ttftMs.p99)),
      ttftMeanMs: stat(e.s.map((s) => s.ttftMs.mean)),
      tokenHitRate: stat(e.s.map((s) => s.tokenHitRate)),
      outputTokensPerSec: stat(e.s.map((s) => s.outputTokensPerSec)),
      loadMaxOverMean: stat(e.s.map((s) => s.loadMaxOverMean)),
    }));
}

/** Groups runs by (workload, policy, variant), in first-seen order, and aggregates each group. */
export function aggregateRuns(runs: readonly ReportRun[]): Cell[] {
  const groups = new Map<string, ReportRun[]>();
  for (const r of runs) {
    const k = cellKey(r.workload, r.policy, r.variant);
    const g = groups.get(k) ?? [];
    g.push(r);
    groups.set(k, g);
  }
  return [...groups.values()].map((g) => {
    const first = g[0] as ReportRun;
    const ss = g.map((r) => r.summary);
    const pick = (f: (s: RunSummary) => number): Stat => stat(ss.map(f));
    return {
      workload: first.workload,
      policy: first.policy,
      variant: first.variant,
      seeds: g.map((r) => r.seed),
      tokenHitRate: pick((s) => s.tokenHitRate),
      oracleTokenHitRate: pick((s) => s.oracleTokenHitRate),
      hitRateOverOracle: pick((s) => s.hitRateOverOracle),
      loadMaxOverMean: pick((s) => s.loadMaxOverMean),
      uncachedMaxOverMean: pick((s) => s.uncachedMaxOverMean),
      ttftP50Ms: pick((s) => s.ttftMs.p50),
      ttftP90Ms: pick((s) => s.ttftMs.p90),
      ttftP99Ms: pick((s) => s.ttftMs.p99),
      ttftMeanMs: pick((s) => s.ttftMs.mean),
      outputTokensPerSec: pick((s) => s.outputTokensPerSec),
      kneeLoad: stat(ss.flatMap((s) => (s.kneeLoad === null ? [] : [s.kneeLoad]))),
      kneeUnit: ss.find((s) => s.kneeUnit !== null)?.kneeUnit ?? null,
      podRequestShare: meanVector(ss.map((s) => s.podRequestShare)),
      stages: aggregateStages(ss),
      wallSeconds: pick((s) => s.sim.wallSeconds ?? NaN),
    };
  });
}

/** The cell of (workload, policy, variant), if any. */
export function findCell(cells: readonly Cell[], workload: string, policy: string, variant = ''): Cell | undefined {
  return cells.find((c) => c.workload === workload && c.policy === policy && c.variant === variant);
}
