/**
 * The alert rules of the synthesized PrometheusRule, checked and unit-tested by the real `promtool`
 * (Debian package `prometheus`; the jest global set-up installs it as root). The rules file is
 * written from the synthesized object, never from a copy; each alert gets its own promtool test
 * file built from alert-cases.ts, with the annotations it must render.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ensureCommand } from '../../epp/testkit/system-packages.js';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import type { PrometheusRuleRuleSpec, PrometheusRuleSpec } from '../../constructs/monitoring/prometheus-rule.js';
import { findObject, synthObjects } from '../support/synth.js';
import { ALERT_CASES, type AlertCase, EPP_JOB, MODEL, NAMESPACE, type RenderedValue } from './alert-cases.js';

const config = parseDeploymentConfig({});
const ruleObject = findObject(synthObjects(config), 'PrometheusRule', 'kvroute-alerts');
const spec = ruleObject.spec as PrometheusRuleSpec;
const rules: PrometheusRuleRuleSpec[] = spec.groups.flatMap((g) => g.rules);
const ruleByName = new Map(rules.map((r) => [r.alert, r]));

/** `{{ … }}` of the annotations rendered the way Prometheus does for the expected labels and value. */
function render(template: string, labels: Record<string, string>, value: RenderedValue | undefined, where: string): string {
  const need = (v: string | undefined, what: string): string => {
    if (v === undefined) throw new Error(`${where}: the annotation uses ${what} but the case gives no such rendered value`);
    return v;
  };
  const out = template
    .replace(/\{\{ \$labels\.([a-z_]+) \}\}/g, (_m, k: string) => need(labels[k], `$labels.${k}`))
    .replace(/\{\{ \$value \| humanizePercentage \}\}/g, () => need(value?.percent, '$value | humanizePercentage'))
    .replace(/\{\{ \$value \| humanize \}\}/g, () => need(value?.humanize, '$value | humanize'))
    .replace(/\{\{ \$value \}\}/g, () => need(value?.plain, '$value'));
  if (out.includes('{{')) throw new Error(`${where}: unhandled template in ${JSON.stringify(template)}`);
  return out;
}

/** promtool's test-file form of the cases of one alert. */
function promtoolTests(alert: string, cases: readonly AlertCase[]): unknown {
  const rule = ruleByName.get(alert);
  if (rule === undefined) throw new Error(`no rule named ${alert}`);
  return {
    rule_files: ['rules.yaml'],
    evaluation_interval: '1m',
    tests: cases.map((c) => ({
      name: c.name,
      interval: '1m',
      input_series: c.series.map((x) => ({ series: x.series, values: x.values })),
      alert_rule_test: [
        {
          eval_time: c.evalTime,
          alertname: alert,
          exp_alerts: c.fires.map((f) => ({
            exp_labels: { ...f.labels, ...rule.labels },
            exp_annotations: Object.fromEntries(Object.entries(rule.annotations).map(([k, v]) => [k, render(v, { ...f.labels, ...rule.labels }, f.value, `${alert} / ${c.name} / ${k}`)])),
          })),
        },
      ],
    })),
  };
}

function run(promtool: string, args: string[], cwd: string): { status: number | null; output: string } {
  const r = spawnSync(promtool, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

describe('alert rules under promtool', () => {
  let promtool: string;
  let dir: string;

  beforeAll(() => {
    promtool = ensureCommand('promtool', 'prometheus');
    dir = mkdtempSync(join(tmpdir(), 'kvroute-alerts-'));
    // A Prometheus rules file holds exactly the PrometheusRule's spec.
    writeFileSync(join(dir, 'rules.yaml'), stringify({ groups: spec.groups }));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the cases are for the default deployment the rules were synthesized for', () => {
    expect(config.namespace).toBe(NAMESPACE);
    expect(config.model.name).toBe(MODEL);
    expect(`${config.name}-epp`).toBe(EPP_JOB);
  });

  it('promtool check rules accepts the synthesized rules', () => {
    const r = run(promtool, ['check', 'rules', 'rules.yaml'], dir);
    expect(r.output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(r.status).toBe(0);
  });

  it('every alert has a case where it fires and a case where it does not', () => {
    const alerts = rules.map((r) => r.alert).sort();
    expect([...new Set(ALERT_CASES.filter((c) => c.fires.length > 0).map((c) => c.alert))].sort()).toEqual(alerts);
    expect([...new Set(ALERT_CASES.filter((c) => c.fires.length === 0).map((c) => c.alert))].sort()).toEqual(alerts);
  });

  it.each(rules.map((r) => r.alert))('promtool test rules: %s', (alert) => {
    const file = `${alert}.test.yaml`;
    writeFileSync(join(dir, file), stringify(promtoolTests(alert, ALERT_CASES.filter((c) => c.alert === alert))));
    const r = run(promtool, ['test', 'rules', file], dir);
    if (r.status !== 0) throw new Error(`promtool test rules ${file} failed (exit ${r.status}):\n${r.output}`);
    expect(r.output).toContain('SUCCESS');
  });

  it('promtool fails a case whose expectation is wrong (the harness can fail)', () => {
    // The "steady hit rate" case expecting the alert to fire.
    const healthy = ALERT_CASES.find((c) => c.alert === 'KvroutePrefixCacheHitRateCollapse' && c.fires.length === 0);
    if (healthy === undefined) throw new Error('no healthy hit-rate case');
    const wrong: AlertCase = { ...healthy, fires: [{ labels: { namespace: NAMESPACE }, value: { percent: '80%' } }] };
    writeFileSync(join(dir, 'wrong.test.yaml'), stringify(promtoolTests(wrong.alert, [wrong])));
    const r = run(promtool, ['test', 'rules', 'wrong.test.yaml'], dir);
    expect(r.status).toBe(1);
    expect(r.output).toContain('FAILED');
  });
});
