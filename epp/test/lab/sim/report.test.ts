import { displayCommand } from '../../../lab/sim/report/build.js';
import { aggregateRuns, findCell, ratio, stat, type Cell, type ReportRun } from '../../../lab/sim/report/aggregate.js';
import { CELL_HEAD, fmtMs, fmtNum, fmtPct, renderMarkdown, type ReportData } from '../../../lab/sim/report/markdown.js';
import { Progress, bar } from '../../../lab/sim/report/progress.js';
import { EVENT_LAGS_MS, METRICS_STALENESS_MS, planJobs } from '../../../lab/sim/report/suite.js';
import { DEFAULT_WEIGHTS, bestWeights, compareDefaultWeights, evaluateTargets, weightsLabel } from '../../../lab/sim/report/targets.js';
import type { RunSummary, StageSummary } from '../../../lab/sim/summary.js';

interface Fake {
  workload?: string;
  policy?: string;
  variant?: string;
  seed?: number;
  hit?: number;
  hStar?: number;
  load?: number;
  p90?: number;
  mean?: number;
  tput?: number;
  knee?: number | null;
  shares?: number[];
  stages?: { rate: number; p90: number; mean?: number; warmup?: boolean }[];
}

function stage(index: number, rate: number, p90: number, mean: number, warmup: boolean): StageSummary {
  return {
    index,
    rate,
    unit: 'req/s',
    warmup,
    requests: 10,
    rejected: 0,
    tokenHitRate: 0.5,
    ttftMs: { p50: p90 / 2, p90, p99: p90 * 2, mean },
    outputTokensPerSec: 100,
    loadMaxOverMean: 1,
    uncachedMaxOverMean: 1,
    preemptions: 0,
  };
}

function run(f: Fake): ReportRun {
  const hit = f.hit ?? 0.5;
  const hStar = f.hStar ?? 0.8;
  const p90 = f.p90 ?? 100;
  const summary: RunSummary = {
    workload: f.workload ?? 'w1',
    policy: f.policy ?? 'kvroute',
    seed: f.seed ?? 1,
    requests: 100,
    measuredRequests: 90,
    rejected: 0,
    tokenHitRate: hit,
    oracleTokenHitRate: hStar,
    hitRateOverOracle: hit / hStar,
    loadMaxOverMean: f.load ?? 1,
    uncachedMaxOverMean: 1,
    podRequestShare: f.shares ?? [0.5, 0.5],
    podUncachedShare: [0.5, 0.5],
    ttftMs: { p50: p90 / 2, p90, p99: p90 * 2, mean: f.mean ?? p90 / 2 },
    outputTokensPerSec: f.tput ?? 1000,
    kneeLoad: f.knee === undefined ? 100 : f.knee,
    kneeUnit: 'req/s',
    kneeSloMs: 2000,
    stages: (f.stages ?? []).map((s, i) => stage(i, s.rate, s.p90, s.mean ?? s.p90 / 2, s.warmup ?? false)),
    sim: { pods: 2, profile: 'A', blockSize: 16, eventLagMs: 50, metricsIntervalMs: 50, simulatedSeconds: 10, kvEventBatches: 5, preemptions: 0, wallSeconds: 1 },
  };
  return { workload: summary.workload, policy: summary.policy, variant: f.variant ?? '', seed: summary.seed, summary };
}

const cell = (f: Fake): Cell => aggregateRuns([run(f)])[0] as Cell;

describe('stat and ratio', () => {
  test('mean, sample sd, min, max', () => {
    const s = stat([2, 4, 4, 4, 5, 5, 7, 9]);
    expect(s.n).toBe(8);
    expect(s.mean).toBe(5);
    // Σ(x−5)² = 32, /7
    expect(s.sd).toBeCloseTo(Math.sqrt(32 / 7), 12);
    expect(s.min).toBe(2);
    expect(s.max).toBe(9);
  });
  test('one value has sd 0; non-finite values are ignored; none → NaN', () => {
    expect(stat([0.3])).toEqual({ n: 1, mean: 0.3, sd: 0, min: 0.3, max: 0.3 });
    expect(stat([1, NaN, 3, Infinity]).mean).toBe(2);
    const e = stat([NaN]);
    expect(e.n).toBe(0);
    expect(Number.isNaN(e.mean)).toBe(true);
  });
  test('ratio guards zero and NaN', () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(Number.isNaN(ratio(1, 0))).toBe(true);
    expect(Number.isNaN(ratio(NaN, 2))).toBe(true);
  });
});

describe('aggregateRuns', () => {
  const runs = [
    run({ policy: 'kvroute', seed: 1, hit: 0.8, hStar: 0.8, load: 1.0, tput: 900, shares: [0.6, 0.4], stages: [{ rate: 5, p90: 1, warmup: true }, { rate: 20, p90: 300 }, { rate: 10, p90: 100 }] }),
    run({ policy: 'kvroute', seed: 2, hit: 0.7, hStar: 0.8, load: 1.2, tput: 1100, shares: [0.4, 0.6], knee: null, stages: [{ rate: 10, p90: 200 }, { rate: 20, p90: 500 }] }),
    run({ policy: 'random', seed: 1, hit: 0.2 }),
    run({ policy: 'kvroute', variant: 'event lag 0 ms', seed: 1, hit: 0.9 }),
  ];
  const cells = aggregateRuns(runs);

  test('groups by workload, policy and variant in first-seen order', () => {
    expect(cells.map((c) => [c.policy, c.variant, c.seeds])).toEqual([
      ['kvroute', '', [1, 2]],
      ['random', '', [1]],
      ['kvroute', 'event lag 0 ms', [1]],
    ]);
  });

  test('means and spreads over seeds, ratios per run then averaged', () => {
    const k = findCell(cells, 'w1', 'kvroute') as Cell;
    expect(k.tokenHitRate.mean).toBeCloseTo(0.75, 12);
    expect(k.tokenHitRate.sd).toBeCloseTo(Math.sqrt(0.005), 12);
    expect(k.hitRateOverOracle.mean).toBeCloseTo((1 + 0.875) / 2, 12);
    expect(k.loadMaxOverMean.mean).toBeCloseTo(1.1, 12);
    expect(k.outputTokensPerSec.mean).toBe(1000);
    expect(k.podRequestShare).toEqual([0.5, 0.5]);
  });

  test('knee only over seeds that have one; stages sorted, warm-up dropped', () => {
    const k = findCell(cells, 'w1', 'kvroute') as Cell;
    expect(k.kneeLoad.n).toBe(1);
    expect(k.kneeLoad.mean).toBe(100);
    expect(k.stages.map((s) => s.rate)).toEqual([10, 20]);
    expect(k.stages[0]?.ttftP90Ms.mean).toBe(150);
    expect(k.stages[1]?.ttftP90Ms.mean).toBe(400);
    expect(findCell(cells, 'w1', 'kvroute', 'event lag 0 ms')?.tokenHitRate.mean).toBe(0.9);
    expect(findCell(cells, 'w2', 'kvroute')).toBeUndefined();
  });
});

describe('evaluateTargets', () => {
  const byTarget = (cells: Cell[]) => new Map(evaluateTargets(cells).map((t) => [`${t.workload} ${t.target}`, t]));

  test('PASS and FAIL at the thresholds of the targets', () => {
    const cells = [
      cell({ workload: 'w1', hit: 0.95 * 0.8, hStar: 0.8, load: 1.1 }),
      cell({ workload: 'w2', hit: 0.95, tput: 2000, stages: [{ rate: 10, p90: 300 }, { rate: 60, p90: 600 }, { rate: 70, p90: 5000 }] }),
      cell({ workload: 'w2', policy: 'random', tput: 1000 }),
      cell({ workload: 'w3', hit: 0.7, hStar: 0.8, stages: [{ rate: 2, p90: 10, mean: 10 }, { rate: 16, p90: 100, mean: 100 }] }),
      cell({ workload: 'w3', policy: 'random', stages: [{ rate: 16, p90: 900, mean: 900 }] }),
    ];
    const t = byTarget(cells);
    expect(t.get('w1 token hit ≥ 95 % of H*')?.pass).toBe(true);
    expect(t.get('w1 load max/mean ≤ 1.10')?.pass).toBe(true);
    expect(t.get('w2 token hit ≥ 0.90')?.pass).toBe(true);
    // the 70 QPS stage is beyond the target's range
    expect(t.get('w2 TTFT p90 ≤ 0.6 s at every stage to 60 QPS')?.value).toBe(600);
    expect(t.get('w2 TTFT p90 ≤ 0.6 s at every stage to 60 QPS')?.pass).toBe(true);
    expect(t.get('w2 output tok/s ≥ 1.9× random')?.value).toBe(2);
    expect(t.get('w3 token hit ≥ 95 % of H*')?.pass).toBe(false);
    const gain = t.get('w3 TTFT mean at the top stage ≥ 10× lower than random');
    expect(gain?.value).toBe(9);
    expect(gain?.pass).toBe(false);
    expect(gain?.measured).toContain('16 req/s');
  });

  test('just over a limit fails; missing inputs are n/a, never PASS', () => {
    const t = byTarget([cell({ workload: 'w1', hit: 0.8, hStar: 0.8, load: 1.1001 })]);
    expect(t.get('w1 load max/mean ≤ 1.10')?.pass).toBe(false);
    expect(t.get('w2 token hit ≥ 0.90')?.pass).toBeUndefined();
    expect(t.get('w2 output tok/s ≥ 1.9× random')?.pass).toBeUndefined();
    expect(t.get('w3 TTFT mean at the top stage ≥ 10× lower than random')?.pass).toBeUndefined();
  });
});

describe('compareDefaultWeights and bestWeights', () => {
  test('beats needs no-worse on every axis and better on one', () => {
    const cells = [
      cell({ policy: 'kvroute', hit: 0.8, p90: 100, tput: 1000 }),
      cell({ policy: 'precise', hit: 0.85, p90: 1000, tput: 1000 }), // better hit than kvroute by 5 pp
      cell({ policy: 'least-loaded', hit: 0.5, p90: 104, tput: 1000 }),
    ];
    const r = compareDefaultWeights(cells, ['w1', 'w2']);
    expect(r).toHaveLength(2);
    const precise = r.find((x) => x.baseline === 'precise');
    expect(precise?.hitDelta).toBeCloseTo(-0.05, 12);
    expect(precise?.ttftP90Gain).toBe(10);
    expect(precise?.beats).toBe(false);
    const ll = r.find((x) => x.baseline === 'least-loaded');
    expect(ll?.beats).toBe(true);
    expect(ll?.throughputRatio).toBe(1);
  });
  test('equal results do not "beat"; a missing side is undefined', () => {
    const same = [cell({ policy: 'kvroute' }), cell({ policy: 'precise' })];
    const r = compareDefaultWeights(same, ['w1'], { baselines: ['precise', 'least-loaded'] });
    expect(r[0]?.beats).toBe(false);
    expect(r[1]?.beats).toBeUndefined();
  });
  test('best weights: highest ÷ H* within the load and TTFT limits', () => {
    const ref = cell({ variant: weightsLabel(DEFAULT_WEIGHTS), hit: 0.5, hStar: 1, p90: 100, load: 1.02 });
    const hot = cell({ variant: 'a', hit: 0.9, hStar: 1, p90: 100, load: 1.5 });
    const slow = cell({ variant: 'b', hit: 0.8, hStar: 1, p90: 200, load: 1.0 });
    const good = cell({ variant: 'c', hit: 0.7, hStar: 1, p90: 105, load: 1.05 });
    expect(bestWeights([ref, hot, slow, good], ref)?.variant).toBe('c');
    expect(bestWeights([hot], ref)).toBeUndefined();
    expect(weightsLabel(DEFAULT_WEIGHTS)).toBe('prefix 3 / queue 2 / kv 2 / active 1');
  });
});

describe('planJobs', () => {
  test('main grid, then both sweeps on w1 with the first seed, then weights', () => {
    const jobs = planJobs({
      workloads: ['w1', 'w3'],
      policies: ['random', 'kvroute'],
      seeds: [4, 5],
      weightGrid: [DEFAULT_WEIGHTS, { ...DEFAULT_WEIGHTS, prefix: 8 }],
      weightWorkloads: ['w3'],
    });
    const main = jobs.filter((j) => j.section === 'main');
    expect(main).toHaveLength(8);
    expect(main[0]).toMatchObject({ workload: 'w1', policy: 'random', seed: 4 });
    const sens = jobs.filter((j) => j.section === 'sensitivity');
    expect(sens).toHaveLength(2 * (EVENT_LAGS_MS.length + METRICS_STALENESS_MS.length));
    expect(sens.every((j) => j.workload === 'w1' && j.seed === 4)).toBe(true);
    expect(sens.filter((j) => j.eventLagMs !== undefined).map((j) => j.eventLagMs)).toEqual([0, 50, 500, 0, 50, 500]);
    expect(sens.filter((j) => j.policy === 'kvroute' && j.metricsIntervalMs !== undefined).map((j) => j.metricsIntervalMs)).toEqual([0, 10, 50, 100]);
    const w = jobs.filter((j) => j.section === 'weights');
    expect(w.map((j) => j.weights?.prefix)).toEqual([3, 8]);
    expect(jobs.indexOf(w[0] as (typeof jobs)[number])).toBe(jobs.length - 2);
  });
  test('sensitivity can be turned off and defaults to no weight sweep', () => {
    expect(planJobs({ workloads: ['w2'], policies: ['random'], seeds: [1], sensitivity: false })).toHaveLength(1);
  });
});

describe('markdown', () => {
  const main = aggregateRuns([
    run({ workload: 'w1', policy: 'random', seed: 1, hit: 0.5 }),
    run({ workload: 'w1', policy: 'random', seed: 2, hit: 0.6 }),
    run({ workload: 'w1', policy: 'kvroute', seed: 1, hit: 0.8 }),
    run({ workload: 'w1', policy: 'kvroute', seed: 2, hit: 0.8 }),
  ]);
  const data: ReportData = {
    generated: '2026-01-01T00:00:00.000Z',
    command: 'npm run bench:report -- --quick',
    quick: true,
    notes: ['scaled sizes'],
    seeds: [1, 2],
    workloads: [{ name: 'w1', description: 'W1 test' }, { name: 'w2', description: 'W2 test (not run)' }],
    policies: [{ name: 'random', description: 'uniform' }, { name: 'kvroute', description: 'EPP' }],
    cells: main,
    targets: evaluateTargets(main),
    beats: compareDefaultWeights(main, ['w1']),
    validation: [
      { name: 'W0 ceiling', measured: '92.1 %', expected: '92.1 %', pass: true },
      { name: 'Mooncake', measured: 'not run', expected: '36.6 %', pass: undefined },
    ],
    sensitivity: aggregateRuns([run({ variant: 'event lag 500 ms' })]),
    weightSweep: [],
    bestWeights: [],
    charts: [{ title: 'w1 hit', file: 'w1-hit-rate.svg' }],
  };
  const md = renderMarkdown(data);
  const lines = md.split('\n');

  test('sections, one table per workload that ran, one row per policy', () => {
    for (const h of ['# kvroute routing benchmark', '## Method', '## Workloads', '## Policies', '### w1', '## Targets', '## Simulator validation', '## Sensitivity']) {
      expect(lines).toContain(lines.find((l) => l.startsWith(h)));
    }
    expect(lines.filter((l) => l.startsWith('### w2'))).toHaveLength(0);
    const head = `| ${CELL_HEAD.join(' | ')} |`;
    const i = lines.indexOf(head);
    expect(i).toBeGreaterThan(0);
    expect(lines[i + 2]?.startsWith('| random | 55.0 ± 7.1 % |')).toBe(true);
    expect(lines[i + 3]?.startsWith('| kvroute | 80.0 ± 0.0 % |')).toBe(true);
    expect(md).toContain('![w1 hit](w1-hit-rate.svg)');
    expect(md).toContain('| Mooncake | not run | 36.6 % | SKIP |');
    expect(md).toContain('**PASS**');
    expect(md).toContain('quick run');
    expect(md).toContain('| kvroute | event lag 500 ms |');
  });

  test('deterministic; the only timestamp is the generated line', () => {
    expect(renderMarkdown(data)).toBe(md);
    const stamped = lines.filter((l) => /\d{4}-\d{2}-\d{2}T/.test(l));
    expect(stamped).toEqual(['generated: 2026-01-01T00:00:00.000Z']);
  });

  test('number formats', () => {
    expect(fmtPct(stat([0.5]))).toBe('50.0 %');
    expect(fmtNum(stat([1, 2]), 2)).toBe('1.50 ± 0.71');
    expect(fmtMs(stat([57]))).toBe('57 ms');
    expect(fmtMs(stat([3600]))).toBe('3.60 s');
    expect(fmtMs(stat([499_000]))).toBe('499 s');
    expect(fmtPct(stat([]))).toBe('n/a');
  });
});

describe('progress', () => {
  const sink = (isTTY: boolean) => {
    const out: string[] = [];
    return { out, sink: { isTTY, write: (s: string) => void out.push(s) } };
  };
  test('bar clamps', () => {
    expect(bar(0.5, 10)).toBe('[#####-----] 50 %');
    expect(bar(2, 4)).toBe('[####] 100 %');
    expect(bar(NaN, 4)).toBe('[----] 0 %');
  });
  test('not a TTY: one plain line per job', () => {
    const { out, sink: s } = sink(false);
    const p = new Progress(s, 2, { now: () => 0 });
    p.update(0, 'w1 random seed 1', 0, 10);
    p.update(0, 'w1 random seed 1', 5, 10);
    p.update(1, 'w1 kvroute seed 1', 0, 10);
    p.end();
    expect(out).toEqual(['[1/2] w1 random seed 1 (10 requests; 0 s elapsed)\n', '[2/2] w1 kvroute seed 1 (10 requests; 0 s elapsed)\n']);
    expect(out.join('')).not.toContain('\r');
  });
  test('TTY: redraws one line, throttled, overall fraction', () => {
    const { out, sink: s } = sink(true);
    let t = 0;
    const p = new Progress(s, 2, { now: () => t, width: 10 });
    p.update(0, 'a', 0, 10);
    t = 10;
    p.update(0, 'a', 5, 10); // throttled (< 100 ms)
    t = 200;
    p.update(1, 'b', 5, 10);
    p.end();
    expect(out).toHaveLength(3);
    expect(out[0]?.startsWith('\r')).toBe(true);
    expect(out[1]).toContain('[########--] 75 % job 2/2 b 5/10 req');
    expect(out[2]).toBe('\n');
  });
});

describe('displayCommand', () => {
  test('drops --out and hides the trace path', () => {
    expect(displayCommand(['--quick', '--out', '/tmp/x', '--trace', '/work/t.jsonl', '--seeds', '1'])).toBe('npm run bench:report -- --quick --trace <mooncake-conversation.jsonl> --seeds 1');
    expect(displayCommand(['--out=/tmp/x', '--trace=/a'])).toBe('npm run bench:report -- --trace <mooncake-conversation.jsonl>');
    expect(displayCommand([])).toBe('npm run bench:report --');
  });
});
