/**
 * The benchmark report as markdown (docs/benchmarks/README.md). Pure function of its input: the
 * only time-dependent text is the `generated` line, taken from `ReportData.generated`.
 */
import type { Cell, Stat } from './aggregate.js';
import type { ValidationCheck } from './validate.js';
import type { BeatResult, TargetResult } from './targets.js';

export interface ChartRef {
  readonly title: string;
  /** Path relative to the report. */
  readonly file: string;
}

export interface ReportData {
  /** The one time-dependent line, e.g. an ISO timestamp. */
  readonly generated: string;
  readonly command: string;
  readonly quick: boolean;
  /** Free-form notes on sizes (scaled workloads etc.), one bullet each. */
  readonly notes: readonly string[];
  readonly seeds: readonly number[];
  readonly workloads: readonly { readonly name: string; readonly description: string }[];
  readonly policies: readonly { readonly name: string; readonly description: string }[];
  readonly cells: readonly Cell[];
  readonly targets: readonly TargetResult[];
  readonly beats: readonly BeatResult[];
  readonly validation: readonly ValidationCheck[];
  /** kvroute/precise under event-lag and metrics-staleness variants. */
  readonly sensitivity: readonly Cell[];
  /** kvroute weight sweep cells (variant = weights label), per workload. */
  readonly weightSweep: readonly Cell[];
  /** Best weight cell per workload (see bestWeights). */
  readonly bestWeights: readonly Cell[];
  readonly charts: readonly ChartRef[];
  /** Lines of the "kvroute vs peers" section (report/peers.ts). @default none */
  readonly peerSection?: readonly string[];
  /** Targets of the kvroute default against the best peer (targets.ts evaluatePeerTargets). @default none */
  readonly peerTargets?: readonly TargetResult[];
}

const isNum = (x: number): boolean => Number.isFinite(x);

/** `84.1 ± 0.3 %` (spread = sample sd; no ± for one seed). */
export function fmtPct(s: Stat): string {
  if (!isNum(s.mean)) return 'n/a';
  return s.n > 1 ? `${(100 * s.mean).toFixed(1)} ± ${(100 * s.sd).toFixed(1)} %` : `${(100 * s.mean).toFixed(1)} %`;
}

export function fmtNum(s: Stat, digits = 3): string {
  if (!isNum(s.mean)) return 'n/a';
  return s.n > 1 ? `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)}` : s.mean.toFixed(digits);
}

function msOne(x: number): string {
  if (x >= 10_000) return `${(x / 1000).toFixed(0)} s`;
  if (x >= 1000) return `${(x / 1000).toFixed(2)} s`;
  return `${x.toFixed(x < 10 ? 1 : 0)} ms`;
}

/** `57 ± 3 ms`, `3.60 ± 0.20 s`. */
export function fmtMs(s: Stat): string {
  if (!isNum(s.mean)) return 'n/a';
  return s.n > 1 ? `${msOne(s.mean)} ± ${msOne(s.sd)}` : msOne(s.mean);
}

function fmtKnee(c: Cell): string {
  if (c.kneeLoad.n === 0) return '—';
  const u = c.kneeUnit ?? '';
  return `${fmtNum(c.kneeLoad, 0)} ${u}`.trim();
}

const verdict = (p: boolean | undefined): string => (p === undefined ? 'n/a' : p ? '**PASS**' : '**FAIL**');

function table(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

export function cellRow(c: Cell, label = c.policy): string[] {
  return [
    label,
    fmtPct(c.tokenHitRate),
    fmtNum(c.hitRateOverOracle),
    fmtNum(c.loadMaxOverMean, 2),
    fmtMs(c.ttftP50Ms),
    fmtMs(c.ttftP90Ms),
    fmtMs(c.ttftP99Ms),
    fmtNum(c.outputTokensPerSec, 0),
    fmtKnee(c),
  ];
}

export const CELL_HEAD = ['policy', 'token hit', '÷ H*', 'load max/mean', 'TTFT p50', 'TTFT p90', 'TTFT p99', 'output tok/s', 'knee (p90 ≤ 2 s)'] as const;

export function renderMarkdown(d: ReportData): string {
  const L: string[] = [];
  L.push('# kvroute routing benchmark');
  L.push('');
  L.push(`generated: ${d.generated}`);
  L.push('');
  L.push(`Command: \`${d.command}\`${d.quick ? ' — **quick run: small workloads, one seed, a subset of policies; numbers are indicative only.**' : ''}`);
  L.push('');
  L.push('## Method');
  L.push('');
  L.push(
    'Every policy × workload × seed runs in-process on the fleet simulator (`epp/lab/sim/`, see `epp/lab/bench/README.md`): step-level vLLM V1 pods, KV events to the router after the event lag (default 50 ms), pod metrics scraped every 50 ms. `kvroute` is the EPP\'s own scheduler (`epp/src/scheduling/build.ts`) with the config defaults, fed by the EPP\'s index and event applier. Metrics follow docs/benchmarks/method.md, "Metrics": token hit rate is vLLM\'s (Σ hit ÷ Σ queried prompt tokens, warm-up excluded); ÷ H* divides by one infinite cache over the same sequence; load max/mean is the busiest pod\'s request share ÷ the mean; TTFT includes the profile\'s router overhead; the knee is the highest offered load up to which every stage keeps TTFT p90 ≤ 2 s.',
  );
  L.push('');
  L.push(`Seeds: ${d.seeds.join(', ')}. Cells show the mean over seeds ± the sample standard deviation (no ± with one seed).`);
  for (const n of d.notes) L.push(`- ${n}`);
  L.push('');
  L.push('## Workloads');
  L.push('');
  L.push(...table(['workload', 'description (seed ' + String(d.seeds[0] ?? '') + ')'], d.workloads.map((w) => [w.name, w.description])));
  L.push('');
  L.push('## Policies');
  L.push('');
  L.push(...table(['policy', 'what'], d.policies.map((p) => [p.name, p.description])));
  L.push('');
  L.push('## Results');
  for (const w of d.workloads) {
    const cells = d.cells.filter((c) => c.workload === w.name);
    if (cells.length === 0) continue;
    L.push('');
    L.push(`### ${w.name}`);
    L.push('');
    L.push(`H* (one infinite cache) = ${fmtPct(cells[0]?.oracleTokenHitRate ?? { n: 0, mean: NaN, sd: NaN, min: NaN, max: NaN })}.`);
    L.push('');
    L.push(...table(CELL_HEAD, cells.map((c) => cellRow(c))));
    const charts = d.charts.filter((ch) => ch.file.includes(`${w.name}-`));
    if (charts.length > 0) {
      L.push('');
      for (const ch of charts) L.push(`![${ch.title}](${ch.file})`);
    }
  }
  L.push('');
  L.push('## Targets (docs/benchmarks/method.md, "Targets", kvroute default weights)');
  L.push('');
  L.push(...table(['workload', 'target', 'measured', 'result'], d.targets.map((t) => [t.workload, t.target, t.measured, verdict(t.pass)])));
  if (d.peerSection && d.peerSection.length > 0) {
    L.push('');
    L.push(...d.peerSection);
  }
  if (d.peerTargets && d.peerTargets.length > 0) {
    L.push('');
    L.push('## Targets vs peers (issue 10, kvroute default, every workload and seed)');
    L.push('');
    L.push('Best peer = per metric and per seed, the best of the peer policies that ran. A target passes only when it passes on every seed; the measured column shows the worst (or a failing) seed.');
    L.push('');
    L.push(...table(['workload', 'target', 'measured', 'result'], d.peerTargets.map((t) => [t.workload, t.target, t.measured, verdict(t.pass)])));
  }
  L.push('');
  L.push('## Default weights vs prefix only (`precise`) and load only (`least-loaded`)');
  L.push('');
  L.push(
    '"beats" = kvroute is no worse on token hit (−1 pp tolerance), on TTFT p90 (5 % tolerance) and on output tok/s (1 %), and better on hit (> 1 pp) or TTFT p90 (> 5 %).',
  );
  L.push('');
  L.push(
    ...table(
      ['workload', 'baseline', 'hit Δ (kvroute − baseline)', 'TTFT p90 baseline ÷ kvroute', 'output tok/s kvroute ÷ baseline', 'load max/mean kvroute / baseline', 'kvroute beats it'],
      d.beats.map((b) => [
        b.workload,
        b.baseline,
        isNum(b.hitDelta) ? `${b.hitDelta >= 0 ? '+' : ''}${(100 * b.hitDelta).toFixed(1)} pp` : 'n/a',
        isNum(b.ttftP90Gain) ? `${b.ttftP90Gain.toFixed(2)}×` : 'n/a',
        isNum(b.throughputRatio) ? `${b.throughputRatio.toFixed(3)}×` : 'n/a',
        `${isNum(b.loadMaxOverMean.kvroute) ? b.loadMaxOverMean.kvroute.toFixed(2) : 'n/a'} / ${isNum(b.loadMaxOverMean.baseline) ? b.loadMaxOverMean.baseline.toFixed(2) : 'n/a'}`,
        b.beats === undefined ? 'n/a' : b.beats ? 'yes' : '**no**',
      ]),
    ),
  );
  if (d.weightSweep.length > 0) {
    L.push('');
    L.push('### kvroute weight sweep (first seed; the defaults are not changed by this report)');
    for (const w of [...new Set(d.weightSweep.map((c) => c.workload))]) {
      L.push('');
      L.push(`${w}:`);
      L.push('');
      L.push(...table(['weights', ...CELL_HEAD.slice(1)], d.weightSweep.filter((c) => c.workload === w).map((c) => cellRow(c, c.variant))));
      const best = d.bestWeights.find((c) => c.workload === w);
      L.push('');
      L.push(best ? `Best (highest ÷ H* with load max/mean ≤ 1.10 and TTFT p90 ≤ 1.1× the defaults'): **${best.variant}**.` : 'No setting met load max/mean ≤ 1.10 and TTFT p90 ≤ 1.1× the defaults\'.');
    }
  }
  L.push('');
  L.push('## Simulator validation (`npm run bench -- --validate`)');
  L.push('');
  L.push(...table(['check', 'measured', 'expected', 'result'], d.validation.map((c) => [c.name, c.measured, c.expected, c.pass === undefined ? 'SKIP' : c.pass ? 'PASS' : '**FAIL**'])));
  if (d.sensitivity.length > 0) {
    L.push('');
    L.push(`## Sensitivity (${d.sensitivity[0]?.workload ?? ''}, seed ${d.sensitivity[0]?.seeds[0] ?? ''})`);
    L.push('');
    L.push('Event lag: KV events reach the router this long after the step (metrics every 50 ms). Metrics staleness: the router scrapes pod metrics at this interval (event lag 50 ms; live = 0).');
    L.push('');
    L.push(...table(['policy', 'setting', ...CELL_HEAD.slice(1)], d.sensitivity.map((c) => [c.policy, ...cellRow(c, c.variant)])));
  }
  L.push('');
  return L.join('\n');
}
