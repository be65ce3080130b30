import { Testing } from 'cdk8s';
import { GrafanaDashboard } from '../../constructs/monitoring/grafana-dashboard.js';
import { EppServiceMonitor, ModelServerPodMonitor } from '../../constructs/monitoring/monitors.js';
import { alertRules, DefaultAlertThresholds, DefaultRunbookBaseUrl } from '../../constructs/monitoring/alert-rules.js';
import { KvroutePrometheusRule, type PrometheusRuleSpec } from '../../constructs/monitoring/prometheus-rule.js';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { objectsOfKind, synthObjects } from '../support/synth.js';
import { AllowIngress, PodPeer } from '../../constructs/security/network-policies.js';
import { EppRbac } from '../../constructs/epp/epp-rbac.js';
import type { K8sObject } from '../support/synth.js';

const synthOne = (build: (c: ReturnType<typeof Testing.chart>) => void): K8sObject[] => {
  const chart = Testing.chart();
  build(chart);
  return Testing.synth(chart) as K8sObject[];
};

describe('monitoring construct defaults', () => {
  it('PodMonitor and ServiceMonitor scrape /metrics every 15s, no labels', () => {
    const [pm] = synthOne((c) => new ModelServerPodMonitor(c, 'p', { name: 'p', selector: { a: 'b' }, port: 'http' }));
    expect((pm.spec as { podMetricsEndpoints: unknown[] }).podMetricsEndpoints).toEqual([{ port: 'http', path: '/metrics', interval: '15s' }]);
    expect(pm.metadata.labels ?? {}).toEqual({});
    const [sm] = synthOne((c) => new EppServiceMonitor(c, 's', { name: 's', selector: { a: 'b' }, port: 'http-metrics' }));
    expect((sm.spec as { endpoints: unknown[] }).endpoints).toEqual([{ port: 'http-metrics', path: '/metrics', interval: '15s', honorLabels: true }]);
  });

  it('GrafanaDashboard: uid = name, 5m windows, sidecar label always set', () => {
    const [cm] = synthOne((c) => new GrafanaDashboard(c, 'd', { name: 'dash', namespace: 'ns', model: 'm', labels: { grafana_dashboard: '0', x: 'y' } }));
    expect(cm.metadata.labels).toEqual({ x: 'y', grafana_dashboard: '1' });
    const json = JSON.parse((cm.data as Record<string, string>)['dash.json']) as { uid: string; panels: { targets: { expr: string }[] }[] };
    expect(json.uid).toBe('dash');
    expect(json.panels[0].targets[0].expr).toContain('[5m]');
  });
});

describe('alert rule defaults', () => {
  const opts = { namespace: 'ns', model: 'm', eppJob: 'j', eppDeployment: 'd' };
  const byName = (rules: ReturnType<typeof alertRules>) => new Map(rules.map((r) => [r.alert, r]));

  it('the chart emits PrometheusRule <name>-alerts by default (monitoring.enabled) and not when disabled', () => {
    const on = objectsOfKind(synthObjects(parseDeploymentConfig({})), 'PrometheusRule');
    expect(on.map((o) => o.metadata.name)).toEqual(['kvroute-alerts']);
    expect(objectsOfKind(synthObjects(parseDeploymentConfig({ name: 'other' })), 'PrometheusRule').map((o) => o.metadata.name)).toEqual(['other-alerts']);
    expect(objectsOfKind(synthObjects(parseDeploymentConfig({ monitoring: { enabled: false } })), 'PrometheusRule')).toEqual([]);
  });

  it('KvroutePrometheusRule: no labels, one group named after the object, runbooks in the README on GitHub', () => {
    const [pr] = synthOne((c) => new KvroutePrometheusRule(c, 'r', { name: 'r', ...opts }));
    expect(pr.metadata.labels ?? {}).toEqual({});
    const spec = pr.spec as PrometheusRuleSpec;
    expect(spec.groups.map((g) => g.name)).toEqual(['r']);
    expect(DefaultRunbookBaseUrl).toBe('https://github.com/kvroute/kvroute/blob/main/README.md');
    for (const r of spec.groups[0].rules) expect(r.annotations.runbook_url).toBe(`${DefaultRunbookBaseUrl}#${r.alert.toLowerCase()}`);
    const other = alertRules({ ...opts, runbookBaseUrl: 'https://wiki.example.com/kvroute' });
    expect(other[0].runbookUrl).toBe(`https://wiki.example.com/kvroute#${other[0].alert.toLowerCase()}`);
  });

  it('threshold defaults: collapse below 0.5 of 1h ago, 25% prediction error, 5 gaps/15m, 2 stale marks/30m, 5% shed', () => {
    expect(DefaultAlertThresholds).toEqual({ hitRateCollapseFactor: 0.5, hitRateBaselineOffset: '1h', predictionErrorRatio: 0.25, kvEventGapsPer15m: 5, podStaleMarksPer30m: 2, shedRatio: 0.05 });
    const d = byName(alertRules(opts));
    expect(d.get('KvroutePrefixCacheHitRateCollapse')?.expr).toMatch(/< 0\.5 \* \(.*\[15m\] offset 1h\)\)\)$/);
    expect(d.get('KvroutePredictionMismatch')?.expr).toMatch(/> 0\.25$/);
    expect(d.get('KvrouteKvEventGaps')?.expr).toMatch(/\[15m\]\)\) > 5$/);
    expect(d.get('KvrouteKvEventsPodStale')?.expr).toMatch(/\[30m\]\)\) > 2$/);
    expect(d.get('KvrouteShedRate')?.expr).toMatch(/> 0\.05$/);
    // Each threshold is used: changing one changes its rule only.
    const t = byName(alertRules({ ...opts, thresholds: { hitRateCollapseFactor: 0.3, hitRateBaselineOffset: '1d', predictionErrorRatio: 0.1, kvEventGapsPer15m: 9, podStaleMarksPer30m: 0, shedRatio: 0.2 } }));
    expect(t.get('KvroutePrefixCacheHitRateCollapse')?.expr).toMatch(/< 0\.3 \* \(.*offset 1d\)\)\)$/);
    expect(t.get('KvroutePredictionMismatch')?.expr).toMatch(/> 0\.1$/);
    expect(t.get('KvrouteKvEventGaps')?.expr).toMatch(/> 9$/);
    expect(t.get('KvrouteKvEventsPodStale')?.expr).toMatch(/> 0$/);
    expect(t.get('KvrouteShedRate')?.expr).toMatch(/> 0\.2$/);
    expect(t.get('KvrouteHashMismatch')?.expr).toBe(d.get('KvrouteHashMismatch')?.expr);
  });

  it.each([
    [{ thresholds: { shedRatio: 0 } }, /shedRatio must be a number in \(0, 1\] \(got 0\); e\.g\. 0\.05/],
    [{ thresholds: { hitRateCollapseFactor: 1.5 } }, /hitRateCollapseFactor must be a number in \(0, 1\] \(got 1\.5\)/],
    [{ thresholds: { predictionErrorRatio: Number.NaN } }, /predictionErrorRatio must be a number/],
    [{ thresholds: { kvEventGapsPer15m: 2.5 } }, /kvEventGapsPer15m must be a non-negative integer \(got 2\.5\); e\.g\. 5/],
    [{ thresholds: { hitRateBaselineOffset: 'an hour' } }, /hitRateBaselineOffset must be a Prometheus duration such as '1h' or '1d' \(got "an hour"\)/],
    [{ namespace: 'a"b' }, /namespace must be a non-empty string without quotes/],
    [{ eppJob: '' }, /eppJob must be a non-empty string/],
    [{ runbookBaseUrl: 'README.md' }, /runbookBaseUrl must be an http\(s\) URL without spaces \(got "README\.md"\)/],
  ])('rejects %j naming the field, the value and the fix', (bad, message) => {
    expect(() => alertRules({ ...opts, ...bad })).toThrow(message);
  });
});

describe('security and RBAC construct defaults', () => {
  it('AllowIngress: no labels; needs ports', () => {
    const [np] = synthOne((c) => new AllowIngress(c, 'a', { name: 'a', target: { t: '1' }, from: PodPeer.pods({ f: '1' }), ports: ['grpc'] }));
    expect(np.metadata.labels ?? {}).toEqual({});
    expect((np.spec as { ingress: { ports: unknown[] }[] }).ingress[0].ports).toEqual([{ protocol: 'TCP', port: 'grpc' }]);
    expect(() => synthOne((c) => new AllowIngress(c, 'b', { name: 'b', target: { t: '1' }, from: PodPeer.namespace('x'), ports: [] }))).toThrow(/no ports/);
  });

  it('EppRbac: no extra labels, SA token mounted (the EPP talks to the API server)', () => {
    const objs = synthOne((c) => new EppRbac(c, 'r', { name: 'r' }));
    expect(objs.map((o) => o.kind)).toEqual(['ServiceAccount', 'Role', 'RoleBinding']);
    for (const o of objs) expect(o.metadata.labels ?? {}).toEqual({});
    expect(objs[0].automountServiceAccountToken).toBe(true);
  });
});
