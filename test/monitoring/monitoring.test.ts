import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EppPortNames } from '@kvroute/epp/contract';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { dashboardPanels } from '../../constructs/monitoring/grafana-dashboard.js';
import { EppMetricNames, HistogramMetrics, VllmMetricNames } from '../../constructs/monitoring/metric-names.js';
import { findObject, type K8sObject, objectsOfKind, synthObjects } from '../support/synth.js';

const objects = synthObjects(parseDeploymentConfig({}));
const podLabels = (d: K8sObject) => (d.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
const containerPortNames = (d: K8sObject) =>
  (d.spec as { template: { spec: { containers: { ports?: { name: string }[] }[] } } }).template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));

describe('PodMonitors for vLLM', () => {
  it.each([
    ['kvroute-decode', 'vllm-http'],
    ['kvroute-prefill', 'http'],
  ])('%s selects its pods and scrapes the vLLM port %s, which exists on the vLLM container', (name, port) => {
    const pm = findObject(objects, 'PodMonitor', name);
    const spec = pm.spec as { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string; path: string; interval: string }[] };
    const dep = findObject(objects, 'Deployment', name);
    expect(podLabels(dep)).toMatchObject(spec.selector.matchLabels);
    expect(spec.podMetricsEndpoints).toEqual([{ port, path: '/metrics', interval: '15s' }]);
    expect(containerPortNames(dep)).toContain(port);
    expect(pm.metadata.labels).toMatchObject({ release: 'prometheus' });
  });
});

describe('ServiceMonitor for the EPP', () => {
  it('selects the EPP Service by its labels and scrapes its metrics port by name', () => {
    const sm = findObject(objects, 'ServiceMonitor', 'kvroute-epp');
    const spec = sm.spec as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] };
    const svc = findObject(objects, 'Service', 'kvroute-epp');
    expect(svc.metadata.labels).toMatchObject(spec.selector.matchLabels);
    expect(spec.endpoints[0].port).toBe(EppPortNames.http);
    expect((svc.spec as { ports: { name: string }[] }).ports.map((p) => p.name)).toContain(spec.endpoints[0].port);
  });

  it('monitoring.enabled=false drops the monitors', () => {
    const o = synthObjects(parseDeploymentConfig({ monitoring: { enabled: false } }));
    expect(objectsOfKind(o, 'PodMonitor')).toHaveLength(0);
    expect(objectsOfKind(o, 'ServiceMonitor')).toHaveLength(0);
  });
});

describe('Grafana dashboard', () => {
  const cm = findObject(objects, 'ConfigMap', 'kvroute-dashboard');
  const json = JSON.parse((cm.data as Record<string, string>)['kvroute-dashboard.json']) as { uid: string; panels: { title: string; targets: { expr: string }[] }[] };
  const exprs = json.panels.flatMap((p) => p.targets.map((t) => t.expr));

  it('is labelled for the Grafana sidecar', () => {
    expect(cm.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(json.uid).toBe('kvroute-dashboard');
  });

  it('prefix-cache hit rate = rate(hits)/rate(queries) per pod', () => {
    const hit = json.panels.find((p) => p.title.startsWith('Prefix-cache hit rate'));
    expect(hit?.targets[0].expr).toBe(
      'sum by (pod) (rate(vllm:prefix_cache_hits_total{namespace="llm-d",model_name="meta-llama/Llama-3.2-1B"}[5m])) / sum by (pod) (rate(vllm:prefix_cache_queries_total{namespace="llm-d",model_name="meta-llama/Llama-3.2-1B"}[5m]))',
    );
  });

  it('TTFT, queue depth, KV-cache usage and EPP panels are present', () => {
    expect(exprs.some((e) => e.includes('histogram_quantile(0.9, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket'))).toBe(true);
    expect(exprs.some((e) => e.includes('vllm:num_requests_waiting'))).toBe(true);
    expect(exprs.some((e) => e.includes('vllm:kv_cache_usage_perc'))).toBe(true);
    expect(exprs.some((e) => e.includes('inference_objective_request_total'))).toBe(true);
    expect(exprs.some((e) => e.includes('kvroute_kv_events_received_total'))).toBe(true);
  });

  it('every metric name in the queries is in the exported lists (no invented names)', () => {
    const known = new Set([...VllmMetricNames, ...EppMetricNames, ...HistogramMetrics.map((h) => `${h}_bucket`)]);
    const used = new Set(exprs.flatMap((e) => e.match(/\b(vllm:[a-z_:]+|inference_[a-z_]+|kvroute_[a-z_]+)/g) ?? []));
    expect(used.size).toBeGreaterThan(8);
    for (const m of used) expect(known).toContain(m);
    // Seed mistakes stay out: V0 names and invented EPP metrics.
    expect(exprs.join('\n')).not.toMatch(/gpu_prefix_cache|epp_requests_total|epp_cache_hits_total/);
  });

  it('rate window is configurable', () => {
    expect(dashboardPanels('ns', 'm', '1m')[0].targets[0].expr).toContain('[1m]');
  });
});

describe('EPP metric names exist in the EPP source', () => {
  /** Every `.ts` file under epp/src, concatenated. */
  function eppSource(): string {
    const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../epp/src');
    const out: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else if (e.name.endsWith('.ts')) out.push(readFileSync(join(d, e.name), 'utf8'));
      }
    };
    walk(root);
    return out.join('\n');
  }

  const src = eppSource();
  it.each(EppMetricNames)('%s is registered by the EPP', (name) => {
    // A metric definition names it as a string literal: name: 'x' or x: 'x' in a names table.
    expect(src).toMatch(new RegExp(`['"\`]${name}['"\`]`));
  });
});
