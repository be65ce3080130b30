/**
 * Per-run and per-stage metrics of a simulation (docs/benchmarks/method.md, "Metrics"):
 * token hit rate (vLLM's definition: Σ hit tokens / Σ queried prompt tokens, as
 * Δvllm:prefix_cache_hits_total / Δvllm:prefix_cache_queries_total), the same ÷ H* (one infinite
 * cache, bounds.ts), per-pod request and uncached-token shares as max/mean, TTFT p50/p90/p99,
 * output tokens/s and the knee load (highest stage rate up to which every stage keeps TTFT p90
 * within the SLO). Warm-up requests are excluded from hit rates, shares and latencies.
 */
import { infiniteCacheHitRate } from './bounds.js';
import type { RequestRecord, SimResult } from './engine.js';
import type { BlockKeyer } from './request.js';
import type { StageInfo } from './workloads.js';

export interface Percentiles {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly mean: number;
}

export interface StageSummary {
  readonly index: number;
  readonly rate: number;
  readonly unit: StageInfo['unit'];
  readonly warmup: boolean;
  readonly requests: number;
  readonly rejected: number;
  readonly tokenHitRate: number;
  readonly ttftMs: Percentiles;
  /** Output tokens produced inside the stage window per second of it. */
  readonly outputTokensPerSec: number;
  /** Busiest pod's request share ÷ the mean share. */
  readonly loadMaxOverMean: number;
  /** Busiest pod's share of uncached prompt tokens ÷ the mean share. */
  readonly uncachedMaxOverMean: number;
  readonly preemptions: number;
}

export interface RunSummary {
  readonly workload: string;
  readonly policy: string;
  readonly seed: number;
  /** Requests in the workload (all, including warm-up). */
  readonly requests: number;
  /** Measured (non-warm-up) requests. */
  readonly measuredRequests: number;
  readonly rejected: number;
  readonly tokenHitRate: number;
  /** H*: token hit rate of one infinite cache over the same request sequence. */
  readonly oracleTokenHitRate: number;
  /** tokenHitRate ÷ oracleTokenHitRate. */
  readonly hitRateOverOracle: number;
  readonly loadMaxOverMean: number;
  readonly uncachedMaxOverMean: number;
  /** Per-pod request share (sums to 1). */
  readonly podRequestShare: readonly number[];
  /** Per-pod share of uncached prompt tokens. */
  readonly podUncachedShare: readonly number[];
  readonly ttftMs: Percentiles;
  readonly outputTokensPerSec: number;
  /** Highest stage rate with TTFT p90 ≤ `kneeSloMs` at it and every lower stage; null without rated stages. */
  readonly kneeLoad: number | null;
  readonly kneeUnit: string | null;
  readonly kneeSloMs: number;
  readonly stages: readonly StageSummary[];
  readonly sim: {
    readonly pods: number;
    readonly profile: string;
    readonly blockSize: number;
    readonly eventLagMs: number;
    readonly metricsIntervalMs: number;
    readonly simulatedSeconds: number;
    readonly kvEventBatches: number;
    readonly preemptions: number;
    readonly wallSeconds?: number;
    /** KV events the EPP's applier dropped, by reason (precise/kvroute only). */
    readonly kvEventDrops?: Readonly<Record<string, number>>;
  };
}

/** Nearest-rank percentile of sorted values (NaN when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k] as number;
}

export function percentiles(values: readonly number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.length === 0 ? NaN : s.reduce((a, b) => a + b, 0) / s.length;
  return { p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), mean };
}

/** N·max(x)/Σx (1 = perfectly even; N = everything on one pod); 1 for an all-zero vector. */
export function maxOverMean(xs: readonly number[]): number {
  const total = xs.reduce((a, b) => a + b, 0);
  if (total === 0) return 1;
  return (xs.length * Math.max(...xs)) / total;
}

function shares(xs: readonly number[]): number[] {
  const total = xs.reduce((a, b) => a + b, 0);
  return xs.map((x) => (total === 0 ? 0 : x / total));
}

interface Agg {
  requests: number;
  rejected: number;
  queried: number;
  hits: number;
  ttft: number[];
  perPodReq: number[];
  perPodUncached: number[];
  preemptions: number;
  firstArrival: number;
  lastFinish: number;
}

function aggregate(records: readonly RequestRecord[], pods: number): Agg {
  const a: Agg = {
    requests: 0,
    rejected: 0,
    queried: 0,
    hits: 0,
    ttft: [],
    perPodReq: new Array<number>(pods).fill(0),
    perPodUncached: new Array<number>(pods).fill(0),
    preemptions: 0,
    firstArrival: Infinity,
    lastFinish: -Infinity,
  };
  for (const r of records) {
    a.requests++;
    a.firstArrival = Math.min(a.firstArrival, r.arrivalMs);
    if (r.rejected !== undefined) {
      a.rejected++;
      continue;
    }
    a.queried += r.queriedTokens;
    a.hits += r.hitTokens;
    a.ttft.push(r.ttftMs as number);
    a.perPodReq[r.pod] = (a.perPodReq[r.pod] as number) + 1;
    a.perPodUncached[r.pod] = (a.perPodUncached[r.pod] as number) + r.uncachedTokens;
    a.preemptions += r.preemptions;
    a.lastFinish = Math.max(a.lastFinish, r.finishedMs as number);
  }
  return a;
}

function outputIn(result: SimResult, fromMs: number, toMs: number): number {
  let n = 0;
  for (const s of result.output) if (s.atMs >= fromMs && s.atMs < toMs) n += s.tokens;
  return n;
}

export interface SummarizeOptions {
  readonly workload: string;
  readonly policy: string;
  readonly seed: number;
  readonly stages: readonly StageInfo[];
  readonly eventLagMs: number;
  readonly metricsIntervalMs: number;
  /** TTFT p90 SLO for the knee. @default 2000 */
  readonly kneeSloMs?: number;
  readonly keyer?: BlockKeyer;
  readonly wallSeconds?: number;
}

export function summarize(result: SimResult, opts: SummarizeOptions): RunSummary {
  const nPods = result.pods.length;
  const profile = (result.pods[0] ?? { profile: undefined }).profile;
  if (!profile) throw new Error('summarize: the result has no pods');
  const bs = profile.blockSize;
  const slo = opts.kneeSloMs ?? 2000;
  const measured = result.records.filter((r) => !r.req.warmup);
  const all = aggregate(measured, nPods);

  // H* over the served sequence as it arrived (closed-loop arrivals included), warm-up filling the cache
  const inOrder = result.records
    .filter((r) => r.rejected === undefined)
    .sort((a, b) => a.arrivalMs - b.arrivalMs || a.req.id - b.req.id).map((r) => r.req);
  const hStar = infiniteCacheHitRate(inOrder, bs, (r) => !r.warmup, opts.keyer);

  const stageSummaries: StageSummary[] = opts.stages.map((st) => {
    const recs = result.records.filter((r) => r.req.stage === st.index);
    const a = aggregate(recs, nPods);
    let from = st.startMs;
    let to = st.endMs;
    if (!(to > from)) {
      from = a.firstArrival;
      to = a.lastFinish;
    }
    const secs = (to - from) / 1000;
    return {
      index: st.index,
      rate: st.rate,
      unit: st.unit,
      warmup: st.warmup,
      requests: a.requests,
      rejected: a.rejected,
      tokenHitRate: a.queried === 0 ? 0 : a.hits / a.queried,
      ttftMs: percentiles(a.ttft),
      outputTokensPerSec: secs > 0 ? outputIn(result, from, to) / secs : 0,
      loadMaxOverMean: maxOverMean(a.perPodReq),
      uncachedMaxOverMean: maxOverMean(a.perPodUncached),
      preemptions: a.preemptions,
    };
  });

  let knee: number | null = null;
  let kneeUnit: string | null = null;
  const rated = stageSummaries.filter((s) => !s.warmup && s.rate > 0 && (s.unit === 'req/s' || s.unit === 'sessions/s'));
  if (rated.length > 0) {
    knee = 0;
    kneeUnit = rated[0]?.unit ?? null;
    for (const s of [...rated].sort((x, y) => x.rate - y.rate)) {
      if (s.ttftMs.p90 <= slo) knee = s.rate;
      else break;
    }
  }

  const windowFrom = measured.length > 0 ? all.firstArrival : 0;
  const windowTo = all.lastFinish;
  const outSecs = (windowTo - windowFrom) / 1000;
  const tokenHitRate = all.queried === 0 ? 0 : all.hits / all.queried;
  return {
    workload: opts.workload,
    policy: opts.policy,
    seed: opts.seed,
    requests: result.records.length,
    measuredRequests: measured.length,
    rejected: all.rejected,
    tokenHitRate,
    oracleTokenHitRate: hStar.rate,
    hitRateOverOracle: hStar.rate === 0 ? 0 : tokenHitRate / hStar.rate,
    loadMaxOverMean: maxOverMean(all.perPodReq),
    uncachedMaxOverMean: maxOverMean(all.perPodUncached),
    podRequestShare: shares(all.perPodReq),
    podUncachedShare: shares(all.perPodUncached),
    ttftMs: percentiles(all.ttft),
    outputTokensPerSec: outSecs > 0 ? outputIn(result, windowFrom, windowTo + 1e-9) / outSecs : 0,
    kneeLoad: knee,
    kneeUnit,
    kneeSloMs: slo,
    stages: stageSummaries,
    sim: {
      pods: nPods,
      profile: profile.name,
      blockSize: bs,
      eventLagMs: opts.eventLagMs,
      metricsIntervalMs: opts.metricsIntervalMs,
      simulatedSeconds: result.endMs / 1000,
      kvEventBatches: result.kvBatches,
      preemptions: result.pods.reduce((n, p) => n + p.stats().preemptions, 0),
      ...(opts.wallSeconds !== undefined ? { wallSeconds: opts.wallSeconds } : {}),
    },
  };
}
