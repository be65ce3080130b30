/**
 * The dashboard's queries under the real `promtool`: every query parses (as a recording rule), and
 * the predicted-vs-actual panels compute the right per-pod values from known input series.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ensureCommand } from '../../epp/testkit/system-packages.js';
import { dashboardExpressions, dashboardPanels } from '../../constructs/monitoring/grafana-dashboard.js';
import { EppMetrics } from '../../constructs/monitoring/metric-names.js';
import { PredictionErrorBuckets, PredictionMismatchKinds } from '@kvroute/epp/contract';

const NS = 'llm-d';
const MODEL = 'meta-llama/Llama-3.2-1B';
const panels = dashboardPanels(NS, MODEL);
/** The query of the target with `legend` in the panel whose title starts with `title`. */
function query(title: string, legend: string): string {
  const p = panels.find((x) => x.title.startsWith(title));
  const t = p?.targets.find((x) => x.legendFormat === legend);
  if (t === undefined) throw new Error(`no target "${legend}" in a panel titled "${title}…"`);
  return t.expr;
}

const epp = (metric: string, labels: Record<string, string>): string =>
  `${metric}{${Object.entries({ namespace: NS, job: 'kvroute-epp', instance: '10.0.0.9:9090', ...labels })
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`;

// Per minute: pod A gets 600 prompt tokens, the EPP predicted 480 cached, vLLM reported 120;
// pod B: 600, 300 predicted, 300 actual. Pod A's 60 requests a minute were all predicted hits that
// missed, each with error (actual − predicted) ÷ prompt = −0.6.
const series = [
  { series: epp(EppMetrics.cachePromptTokens, { pod: 'a' }), values: '0+600x20' },
  { series: epp(EppMetrics.cachePredictedTokens, { pod: 'a' }), values: '0+480x20' },
  { series: epp(EppMetrics.cacheActualTokens, { pod: 'a' }), values: '0+120x20' },
  { series: epp(EppMetrics.cachePromptTokens, { pod: 'b' }), values: '0+600x20' },
  { series: epp(EppMetrics.cachePredictedTokens, { pod: 'b' }), values: '0+300x20' },
  { series: epp(EppMetrics.cacheActualTokens, { pod: 'b' }), values: '0+300x20' },
  { series: epp(EppMetrics.cachePredictionMismatch, { pod: 'a', kind: PredictionMismatchKinds.predictedHitActualMiss }), values: '0+60x20' },
  ...[...PredictionErrorBuckets.map(String), '+Inf'].map((le) => ({
    series: epp(`${EppMetrics.cachePredictionErrorRatio}_bucket`, { pod: 'a', le }),
    values: Number(le) < -0.6 ? '0x20' : '0+60x20',
  })),
];

const sample = (labels: string, value: number) => ({ labels, value });
const checks = [
  { expr: query('Cached prompt tokens per pod', 'predicted {{pod}}'), exp: [sample('{pod="a"}', 8), sample('{pod="b"}', 5)] },
  { expr: query('Cached prompt tokens per pod', 'actual {{pod}}'), exp: [sample('{pod="a"}', 2), sample('{pod="b"}', 5)] },
  { expr: query('Cache hit ratio per pod', 'predicted {{pod}}'), exp: [sample('{pod="a"}', 0.8), sample('{pod="b"}', 0.5)] },
  { expr: query('Cache hit ratio per pod', 'actual {{pod}}'), exp: [sample('{pod="a"}', 0.2), sample('{pod="b"}', 0.5)] },
  { expr: query('Prediction mismatches per pod', '{{kind}} {{pod}}'), exp: [sample(`{kind="${PredictionMismatchKinds.predictedHitActualMiss}", pod="a"}`, 1)] },
  // Every observation is in the bucket (−0.75, −0.5]: the median interpolates to its middle.
  { expr: query('Prediction error', 'p50'), exp: [sample('{}', -0.625)] },
];

function run(promtool: string, args: string[], cwd: string): { status: number | null; output: string } {
  const r = spawnSync(promtool, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

describe('dashboard queries under promtool', () => {
  let promtool: string;
  let dir: string;
  beforeAll(() => {
    promtool = ensureCommand('promtool', 'prometheus');
    dir = mkdtempSync(join(tmpdir(), 'kvroute-dashboard-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every query of the dashboard is valid PromQL (promtool check rules on them as recording rules)', () => {
    const exprs = dashboardExpressions(NS, MODEL);
    const rules = exprs.map((expr, i) => ({ record: `kvroute:dashboard_query:${i}`, expr }));
    writeFileSync(join(dir, 'queries.yaml'), stringify({ groups: [{ name: 'dashboard', rules }] }));
    const r = run(promtool, ['check', 'rules', 'queries.yaml'], dir);
    expect(r.output).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(r.status).toBe(0);
  });

  it('predicted vs actual panels: per-pod rates, ratios, mismatches and the error median from known series', () => {
    writeFileSync(join(dir, 'empty-rules.yaml'), stringify({ groups: [] }));
    const test = {
      rule_files: ['empty-rules.yaml'],
      evaluation_interval: '1m',
      tests: [{ interval: '1m', input_series: series, promql_expr_test: checks.map((c) => ({ expr: c.expr, eval_time: '10m', exp_samples: c.exp })) }],
    };
    writeFileSync(join(dir, 'panels.test.yaml'), stringify(test));
    const r = run(promtool, ['test', 'rules', 'panels.test.yaml'], dir);
    if (r.status !== 0) throw new Error(`promtool test rules failed (exit ${r.status}):\n${r.output}`);
    expect(r.output).toContain('SUCCESS');
  });
});
