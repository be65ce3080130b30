import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildReport, writeReport, type BuiltReport } from '../../../lab/sim/report/build.js';
import { renderSvg } from '../../../lab/sim/report/charts.js';
import { buildWorkload, planJobs, runJobs, type JobResult, type Sizes } from '../../../lab/sim/report/suite.js';
import { DEFAULT_WEIGHTS } from '../../../lab/sim/report/targets.js';

const TINY: Sizes = { w1Sessions: 24, w1PerSession: 3, w2StageScale: 0.05, w2OutputTokens: 245, w3SessionsPerStage: 10, traceLimit: 10 };

async function tinyRun(): Promise<JobResult[]> {
  const jobs = planJobs({
    workloads: ['w1'],
    policies: ['random', 'kvroute'],
    seeds: [1, 2],
    sensitivity: false,
    weightGrid: [DEFAULT_WEIGHTS, { ...DEFAULT_WEIGHTS, prefix: 8 }],
    weightWorkloads: ['w1'],
  });
  return runJobs(jobs, { sizes: TINY });
}

function build(results: JobResult[]): BuiltReport {
  return buildReport({
    results,
    validation: [],
    generated: 'test',
    command: 'test',
    quick: true,
    notes: [],
    seeds: [1, 2],
    workloads: [{ name: 'w1', description: 'tiny W1' }],
    policies: ['random', 'kvroute'],
  });
}

describe('report on a tiny real simulation', () => {
  let results: JobResult[];
  let report: BuiltReport;
  beforeAll(async () => {
    results = await tinyRun();
    report = build(results);
  });

  test('runs every job through the simulator, with the requested weights', () => {
    expect(results.map((r) => `${r.policy}:${r.seed}:${r.job.section}`)).toEqual([
      'random:1:main',
      'random:2:main',
      'kvroute:1:main',
      'kvroute:2:main',
      'kvroute:1:weights',
      'kvroute:1:weights',
    ]);
    for (const r of results) {
      expect(r.summary.requests).toBe(24 * 3);
      expect(r.summary.tokenHitRate).toBeGreaterThan(0);
      expect(r.summary.tokenHitRate).toBeLessThanOrEqual(r.summary.oracleTokenHitRate + 1e-9);
    }
    // the weight sweep runs the llmd-suite preset (weights mean nothing to the predicted-TTFT default)
    expect(results[4]?.job.weights).toBeDefined();
    expect(report.data.weightSweep.map((c) => c.variant)).toEqual(['prefix 3 / queue 2 / kv 2 / active 1', 'prefix 8 / queue 2 / kv 2 / active 1']);
  });

  test('deterministic given the seeds', async () => {
    const again = build(await tinyRun());
    expect(again.markdown).toBe(report.markdown);
  });

  test('hit-rate SVG has a bar per policy, the H* rule and the labels', async () => {
    const svg = await renderSvg(report.charts.get('w1-hit-rate.svg') as NonNullable<ReturnType<BuiltReport['charts']['get']>>);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('mark-rect');
    expect(svg).toContain('mark-rule');
    expect((svg.match(/<path aria-label="policy: /g) ?? []).length).toBe(2);
    for (const label of ['>random</text>', '>kvroute</text>', '>token hit rate</text>', 'w1: token hit rate by policy']) expect(svg).toContain(label);
  });

  test('TTFT-vs-load SVG has a line per policy over the offered loads', async () => {
    const spec = report.charts.get('w1-ttft-p90-vs-load.svg');
    expect(spec).toBeDefined();
    const svg = await renderSvg(spec as NonNullable<typeof spec>);
    const count = (re: RegExp): number => (svg.match(re) ?? []).length;
    expect(count(/aria-roledescription="line mark"/g)).toBe(2);
    const points = report.data.cells.reduce((n, c) => n + c.stages.filter((s) => s.ttftP90Ms.mean > 0).length, 0);
    expect(points).toBe(2 * 6); // W1's six stages, both policies
    expect(count(/aria-roledescription="point"/g)).toBe(points);
    expect(count(/aria-roledescription="rule mark"/g)).toBe(1); // the SLO
    for (const label of ['TTFT p90 (s)', 'offered load (req/s)', '>kvroute</text>']) expect(svg).toContain(label);
  });

  test('writeReport writes README.md and the three W1 charts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvroute-report-'));
    try {
      const files = await writeReport(dir, report);
      expect([...(await readdir(dir))].sort()).toEqual([...files].sort());
      expect(files.sort()).toEqual(['README.md', 'w1-hit-rate.svg', 'w1-pod-share.svg', 'w1-ttft-p90-vs-load.svg']);
      const share = await readFile(join(dir, 'w1-pod-share.svg'), 'utf8');
      expect(share).toContain('>pod 2</text>');
      const md = await readFile(join(dir, 'README.md'), 'utf8');
      expect(md).toContain('![w1 per-pod request share](w1-pod-share.svg)');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the mooncake workload needs a trace path', async () => {
    await expect(buildWorkload('mooncake', 1, TINY)).rejects.toThrow(/--trace/);
  });
});
