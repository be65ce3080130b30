/**
 * PASS/FAIL evaluation of kvroute's default policy against docs/benchmarks/method.md, "Targets" (as restated in
 * issue 5), and the "default weights must beat prefix-only and load-only" comparison.
 * Every check reads seed means; a check whose inputs were not run is `undefined` (n/a), never PASS.
 */
import { findCell, ratio, type Cell } from './aggregate.js';

export interface TargetResult {
  readonly workload: string;
  readonly target: string;
  /** Human-readable measured value. */
  readonly measured: string;
  readonly value: number;
  readonly pass: boolean | undefined;
}

const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : 'n/a');
const fx = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const msS = (x: number): string => (Number.isFinite(x) ? `${Math.round(x)} ms` : 'n/a');

function check(workload: string, target: string, value: number, measured: string, ok: (v: number) => boolean): TargetResult {
  return { workload, target, value, measured, pass: Number.isFinite(value) ? ok(value) : undefined };
}

/** Mean TTFT of the highest measured stage. */
function topStage(c: Cell): Cell['stages'][number] | undefined {
  return c.stages[c.stages.length - 1];
}

/**
 * The targets for `policy` (default `kvroute`) on the workloads `w1`, `w2`, `w3` (by cell
 * workload name). W2's TTFT target covers stages up to 60 QPS.
 */
export function evaluateTargets(cells: readonly Cell[], policy = 'kvroute'): TargetResult[] {
  const out: TargetResult[] = [];
  const nan = NaN;
  const w1 = findCell(cells, 'w1', policy);
  out.push(check('w1', 'token hit ≥ 95 % of H*', w1?.hitRateOverOracle.mean ?? nan, `${fx(w1?.hitRateOverOracle.mean ?? nan)} of H*`, (v) => v >= 0.95));
  out.push(check('w1', 'load max/mean ≤ 1.10', w1?.loadMaxOverMean.mean ?? nan, fx(w1?.loadMaxOverMean.mean ?? nan, 2), (v) => v <= 1.1));

  const w2 = findCell(cells, 'w2', policy);
  out.push(check('w2', 'token hit ≥ 0.90', w2?.tokenHitRate.mean ?? nan, pct(w2?.tokenHitRate.mean ?? nan), (v) => v >= 0.9));
  const upTo60 = w2?.stages.filter((s) => s.rate <= 60) ?? [];
  const worstP90 = upTo60.length === 0 ? nan : Math.max(...upTo60.map((s) => s.ttftP90Ms.mean));
  const top = upTo60.length === 0 ? nan : Math.max(...upTo60.map((s) => s.rate));
  out.push(check('w2', 'TTFT p90 ≤ 0.6 s at every stage to 60 QPS', worstP90, `worst stage ${msS(worstP90)} (stages to ${Number.isFinite(top) ? top : 'n/a'} QPS)`, (v) => v <= 600));
  const w2r = findCell(cells, 'w2', 'random');
  const tput = ratio(w2?.outputTokensPerSec.mean ?? nan, w2r?.outputTokensPerSec.mean ?? nan);
  out.push(check('w2', 'output tok/s ≥ 1.9× random', tput, `${fx(tput, 2)}× random`, (v) => v >= 1.9));

  const w3 = findCell(cells, 'w3', policy);
  out.push(check('w3', 'token hit ≥ 95 % of H*', w3?.hitRateOverOracle.mean ?? nan, `${fx(w3?.hitRateOverOracle.mean ?? nan)} of H*`, (v) => v >= 0.95));
  const w3r = findCell(cells, 'w3', 'random');
  const kTop = w3 ? topStage(w3) : undefined;
  const rTop = w3r ? topStage(w3r) : undefined;
  const gain = kTop && rTop && kTop.rate === rTop.rate ? ratio(rTop.ttftMeanMs.mean, kTop.ttftMeanMs.mean) : nan;
  out.push(
    check(
      'w3',
      'TTFT mean at the top stage ≥ 10× lower than random',
      gain,
      kTop && rTop ? `${fx(gain, 1)}× (random ${msS(rTop.ttftMeanMs.mean)} vs ${msS(kTop.ttftMeanMs.mean)} at ${kTop.rate} ${kTop.unit})` : 'n/a',
      (v) => v >= 10,
    ),
  );
  return out;
}

/** kvroute's default weights against one baseline on one workload. */
export interface BeatResult {
  readonly workload: string;
  readonly baseline: string;
  /** kvroute hit − baseline hit (fraction of prompt tokens). */
  readonly hitDelta: number;
  /** baseline TTFT p90 ÷ kvroute TTFT p90 (> 1: kvroute faster). */
  readonly ttftP90Gain: number;
  /** kvroute output tok/s ÷ baseline's. */
  readonly throughputRatio: number;
  readonly loadMaxOverMean: { readonly kvroute: number; readonly baseline: number };
  /**
   * kvroute "beats" the baseline when it is no worse on hit rate (within `hitTolerance`), on TTFT
   * p90 (within `ttftTolerance`, relative) and on throughput (within 1 %), and strictly better on
   * hit rate or TTFT p90. undefined when a side is missing.
   */
  readonly beats: boolean | undefined;
}

export interface BeatOptions {
  /** @default 0.01 (1 pp) */
  readonly hitTolerance?: number;
  /** @default 0.05 (5 %) */
  readonly ttftTolerance?: number;
  /** @default 'kvroute' */
  readonly policy?: string;
  /** @default ['precise', 'least-loaded'] */
  readonly baselines?: readonly string[];
}

export function compareDefaultWeights(cells: readonly Cell[], workloads: readonly string[], opts: BeatOptions = {}): BeatResult[] {
  const hitTol = opts.hitTolerance ?? 0.01;
  const ttftTol = opts.ttftTolerance ?? 0.05;
  const policy = opts.policy ?? 'kvroute';
  const out: BeatResult[] = [];
  for (const w of workloads) {
    const k = findCell(cells, w, policy);
    for (const b of opts.baselines ?? ['precise', 'least-loaded']) {
      const c = findCell(cells, w, b);
      if (!k && !c) continue;
      const hitDelta = (k?.tokenHitRate.mean ?? NaN) - (c?.tokenHitRate.mean ?? NaN);
      const ttftP90Gain = ratio(c?.ttftP90Ms.mean ?? NaN, k?.ttftP90Ms.mean ?? NaN);
      const throughputRatio = ratio(k?.outputTokensPerSec.mean ?? NaN, c?.outputTokensPerSec.mean ?? NaN);
      let beats: boolean | undefined;
      if (k && c && Number.isFinite(hitDelta) && Number.isFinite(ttftP90Gain)) {
        const noWorse = hitDelta >= -hitTol && ttftP90Gain >= 1 - ttftTol && !(throughputRatio < 0.99);
        const better = hitDelta > hitTol || ttftP90Gain > 1 + ttftTol;
        beats = noWorse && better;
      }
      out.push({
        workload: w,
        baseline: b,
        hitDelta,
        ttftP90Gain,
        throughputRatio,
        loadMaxOverMean: { kvroute: k?.loadMaxOverMean.mean ?? NaN, baseline: c?.loadMaxOverMean.mean ?? NaN },
        beats,
      });
    }
  }
  return out;
}

/** One kvroute weight setting of the sweep. */
export interface Weights {
  readonly prefix: number;
  readonly queue: number;
  readonly kvCacheUtilization: number;
  readonly activeRequests: number;
}

export const DEFAULT_WEIGHTS: Weights = { prefix: 3, queue: 2, kvCacheUtilization: 2, activeRequests: 1 };

export const weightsLabel = (w: Weights): string => `prefix ${w.prefix} / queue ${w.queue} / kv ${w.kvCacheUtilization} / active ${w.activeRequests}`;

/**
 * The best cell of a weight sweep on one workload: the highest hit ÷ H* among the cells whose load
 * max/mean is ≤ `maxLoad` and whose TTFT p90 is ≤ `ttftSlack` × the reference (default-weights)
 * cell's; ties → lower TTFT p90. undefined when no cell qualifies.
 */
export function bestWeights(cells: readonly Cell[], reference: Cell | undefined, maxLoad = 1.1, ttftSlack = 1.1): Cell | undefined {
  const limit = reference ? reference.ttftP90Ms.mean * ttftSlack : Infinity;
  const ok = cells.filter((c) => c.loadMaxOverMean.mean <= maxLoad && c.ttftP90Ms.mean <= limit);
  ok.sort((a, b) => b.hitRateOverOracle.mean - a.hitRateOverOracle.mean || a.ttftP90Ms.mean - b.ttftP90Ms.mean);
  return ok[0];
}

/** The peer routers' policy names (lab/sim/peers/), in report order. */
export const PEERS = ['llmd-precise', 'llmd-precise-2025', 'llmd-estimate', 'gie-default', 'dynamo', 'sglang', 'aibrix'] as const;

/** Run metrics the peer targets read (one run = one workload × policy × seed). */
interface PeerRun {
  readonly workload: string;
  readonly policy: string;
  readonly variant: string;
  readonly seed: number;
  readonly summary: {
    readonly tokenHitRate: number;
    readonly loadMaxOverMean: number;
    readonly ttftMs: { readonly p90: number };
    readonly outputTokensPerSec: number;
    readonly stages: readonly { readonly rate: number; readonly warmup: boolean; readonly ttftMs: { readonly p90: number } }[];
  };
}

/** TTFT p90 of the highest-rate measured stage; NaN when the run has no rated stage (traces). */
export function topStageP90(s: PeerRun['summary']): number {
  const rated = s.stages.filter((st) => !st.warmup && st.rate > 0);
  if (rated.length === 0) return NaN;
  return rated.reduce((a, b) => (b.rate > a.rate ? b : a)).ttftMs.p90;
}

/** One peer target on one workload: every seed's verdict and the worst seed shown. */
export interface PeerTargetResult extends TargetResult {
  /** Seeds evaluated (those where kvroute and at least one peer ran). */
  readonly seeds: readonly number[];
  /** Seeds that failed. */
  readonly failedSeeds: readonly number[];
}

export interface PeerTargetOptions {
  /** @default 'kvroute' */
  readonly policy?: string;
  /** @default PEERS */
  readonly peers?: readonly string[];
  /** @default 'oracle' */
  readonly oracle?: string;
  /** Workload name of the Mooncake conversation trace (TTFT p90 ≤ the oracle's). @default 'mooncake' */
  readonly conversationWorkload?: string;
}

/**
 * Issue-10 targets of the kvroute default against the best peer, on every workload and seed:
 * - TTFT p90 of the whole run and of the top load stage ≤ 0.9 × the best (lowest) peer's, or,
 *   where that peer is already within 5 % of the oracle, ≤ 1.05 × the oracle's;
 * - token hit ≥ the best peer's − 1 pp; output tok/s ≥ the best peer's − 1 %;
 * - load max/mean ≤ 1.15;
 * - on the Mooncake conversation trace, TTFT p90 ≤ the oracle's.
 * "Best peer" is taken per metric and per seed. A target passes when it passes on every seed;
 * the measured column shows the worst seed. Targets whose inputs were not run are n/a.
 */
export function evaluatePeerTargets(runs: readonly PeerRun[], opts: PeerTargetOptions = {}): PeerTargetResult[] {
  const policy = opts.policy ?? 'kvroute';
  const peers = opts.peers ?? PEERS;
  const oracle = opts.oracle ?? 'oracle';
  const conv = opts.conversationWorkload ?? 'mooncake';
  const main = runs.filter((r) => r.variant === '');
  const out: PeerTargetResult[] = [];
  for (const w of [...new Set(main.map((r) => r.workload))]) {
    const of = (p: string, seed: number) => main.find((r) => r.workload === w && r.policy === p && r.seed === seed)?.summary;
    const seeds = [...new Set(main.filter((r) => r.workload === w && r.policy === policy).map((r) => r.seed))].sort((a, b) => a - b);
    interface Eval {
      readonly seed: number;
      readonly value: number;
      readonly pass: boolean;
      readonly text: string;
    }
    const rows: { target: string; evals: Eval[]; worst: (a: Eval, b: Eval) => Eval }[] = [];
    const add = (target: string, worst: (a: Eval, b: Eval) => Eval): Eval[] => {
      const evals: Eval[] = [];
      rows.push({ target, evals, worst });
      return evals;
    };
    const maxBy = (a: Eval, b: Eval): Eval => (b.value > a.value ? b : a);
    const minBy = (a: Eval, b: Eval): Eval => (b.value < a.value ? b : a);
    const ttftWhole = add('TTFT p90 (run) ≤ 0.9 × best peer (or ≤ 1.05 × oracle where the best peer is within 5 % of it)', maxBy);
    const ttftTop = add('TTFT p90 (top stage) ≤ 0.9 × best peer (or ≤ 1.05 × oracle where the best peer is within 5 % of it)', maxBy);
    const hit = add('token hit ≥ best peer − 1 pp', minBy);
    const tput = add('output tok/s ≥ best peer − 1 %', minBy);
    const load = add('load max/mean ≤ 1.15', maxBy);
    const vsOracle = w === conv ? add('TTFT p90 ≤ oracle', maxBy) : undefined;
    for (const seed of seeds) {
      const k = of(policy, seed);
      if (!k) continue;
      const ps = peers.flatMap((p) => {
        const s = of(p, seed);
        return s ? [{ name: p, s }] : [];
      });
      const o = of(oracle, seed);
      const ttftTarget = (get: (s: PeerRun['summary']) => number, evals: Eval[]): void => {
        const cands = ps.filter((p) => Number.isFinite(get(p.s)));
        const mine = get(k);
        if (cands.length === 0 || !Number.isFinite(mine)) return;
        const best = cands.reduce((a, b) => (get(b.s) < get(a.s) ? b : a));
        const bv = get(best.s);
        const ov = o ? get(o) : NaN;
        const nearOracle = Number.isFinite(ov) && bv <= 1.05 * ov;
        const limit = nearOracle ? 1.05 * ov : 0.9 * bv;
        const rel = mine / (nearOracle ? ov : bv);
        evals.push({
          seed,
          value: mine / limit,
          pass: mine <= limit,
          text: nearOracle
            ? `seed ${seed}: ${msS(mine)} = ${fx(rel, 2)}× oracle ${msS(ov)} (best peer ${best.name} ${msS(bv)} is within 5 % of the oracle)`
            : `seed ${seed}: ${msS(mine)} = ${fx(rel, 2)}× best peer ${best.name} ${msS(bv)}`,
        });
      };
      ttftTarget((s) => s.ttftMs.p90, ttftWhole);
      ttftTarget(topStageP90, ttftTop);
      if (ps.length > 0) {
        const bh = ps.reduce((a, b) => (b.s.tokenHitRate > a.s.tokenHitRate ? b : a));
        const d = k.tokenHitRate - bh.s.tokenHitRate;
        hit.push({ seed, value: d, pass: d >= -0.01, text: `seed ${seed}: ${pct(k.tokenHitRate)} vs ${bh.name} ${pct(bh.s.tokenHitRate)} (${d >= 0 ? '+' : ''}${(100 * d).toFixed(1)} pp)` });
        const bt = ps.reduce((a, b) => (b.s.outputTokensPerSec > a.s.outputTokensPerSec ? b : a));
        const r = ratio(k.outputTokensPerSec, bt.s.outputTokensPerSec);
        tput.push({ seed, value: r, pass: r >= 0.99, text: `seed ${seed}: ${fx(k.outputTokensPerSec, 0)} = ${fx(r, 3)}× ${bt.name} ${fx(bt.s.outputTokensPerSec, 0)}` });
      }
      load.push({ seed, value: k.loadMaxOverMean, pass: k.loadMaxOverMean <= 1.15, text: `seed ${seed}: ${fx(k.loadMaxOverMean, 2)}` });
      if (vsOracle && o) {
        vsOracle.push({ seed, value: ratio(k.ttftMs.p90, o.ttftMs.p90), pass: k.ttftMs.p90 <= o.ttftMs.p90, text: `seed ${seed}: ${msS(k.ttftMs.p90)} vs oracle ${msS(o.ttftMs.p90)}` });
      }
    }
    for (const r of rows) {
      if (r.evals.length === 0) {
        out.push({ workload: w, target: r.target, measured: 'n/a (not run)', value: NaN, pass: undefined, seeds: [], failedSeeds: [] });
        continue;
      }
      const failed = r.evals.filter((e) => !e.pass);
      // show the worst failing seed if any failed, else the worst seed
      const shown = (failed.length > 0 ? failed : r.evals).reduce(r.worst);
      out.push({
        workload: w,
        target: r.target,
        measured: `${shown.text}${r.evals.length > 1 ? ` (worst of ${r.evals.length} seeds${failed.length > 0 ? `; failed seeds ${failed.map((e) => e.seed).join(', ')}` : ''})` : ''}`,
        value: shown.value,
        pass: failed.length === 0,
        seeds: r.evals.map((e) => e.seed),
        failedSeeds: failed.map((e) => e.seed),
      });
    }
  }
  return out;
}
