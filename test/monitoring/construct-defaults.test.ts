import { Testing } from 'cdk8s';
import { GrafanaDashboard } from '../../constructs/monitoring/grafana-dashboard.js';
import { EppServiceMonitor, ModelServerPodMonitor } from '../../constructs/monitoring/monitors.js';
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
    expect((sm.spec as { endpoints: unknown[] }).endpoints).toEqual([{ port: 'http-metrics', path: '/metrics', interval: '15s' }]);
  });

  it('GrafanaDashboard: uid = name, 5m windows, sidecar label always set', () => {
    const [cm] = synthOne((c) => new GrafanaDashboard(c, 'd', { name: 'dash', namespace: 'ns', model: 'm', labels: { grafana_dashboard: '0', x: 'y' } }));
    expect(cm.metadata.labels).toEqual({ x: 'y', grafana_dashboard: '1' });
    const json = JSON.parse((cm.data as Record<string, string>)['dash.json']) as { uid: string; panels: { targets: { expr: string }[] }[] };
    expect(json.uid).toBe('dash');
    expect(json.panels[0].targets[0].expr).toContain('[5m]');
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
