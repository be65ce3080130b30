import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as Contract from '@kvroute/epp/contract';
import { EppPortNames, type MetricSpec } from '@kvroute/epp/contract';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { dashboardExpressions, dashboardPanels } from '../../constructs/monitoring/grafana-dashboard.js';
import { EppMetricNames, HistogramMetrics, PlatformMetricNames, VllmMetricNames } from '../../constructs/monitoring/metric-names.js';
import type { PrometheusRuleSpec } from '../../constructs/monitoring/prometheus-rule.js';
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

  it("keeps the EPP's own pod label (the model-server pod of its per-pod metrics): honorLabels", () => {
    const sm = findObject(objects, 'ServiceMonitor', 'kvroute-epp');
    expect((sm.spec as { endpoints: { honorLabels?: boolean }[] }).endpoints[0].honorLabels).toBe(true);
  });

  it('monitoring.enabled=false drops the monitors and the alert rules', () => {
    const o = synthObjects(parseDeploymentConfig({ monitoring: { enabled: false } }));
    expect(objectsOfKind(o, 'PodMonitor')).toHaveLength(0);
    expect(objectsOfKind(o, 'ServiceMonitor')).toHaveLength(0);
    expect(objectsOfKind(o, 'PrometheusRule')).toHaveLength(0);
  });
});

describe('PrometheusRule <name>-alerts', () => {
  const rule = findObject(objects, 'PrometheusRule', 'kvroute-alerts');
  const rules = (rule.spec as PrometheusRuleSpec).groups.flatMap((g) => g.rules);

  it('is selected by Prometheus like the monitors (same labels) and holds the alerts the issue asks for', () => {
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(rule.metadata.labels).toMatchObject({ release: 'prometheus' });
    expect(rules.map((r) => r.alert)).toEqual([
      'KvroutePrefixCacheHitRateCollapse',
      'KvroutePredictionMismatch',
      'KvrouteKvEventGaps',
      'KvrouteKvEventsPodStale',
      'KvrouteKvEventsMissing',
      'KvrouteHashMismatch',
      'KvrouteEppNotReady',
      'KvrouteNoReadyEndpoints',
      'KvrouteShedRate',
      'KvrouteStalePodMetrics',
      'KvrouteDiagnosisActive',
    ]);
  });

  it('every alert has a severity, a summary, a description and a runbook link to its README entry', () => {
    const readme = readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), '../../README.md'), 'utf8');
    expect(readme).toMatch(/^## Alerts$/m);
    for (const r of rules) {
      expect(['critical', 'warning']).toContain(r.labels.severity);
      expect(r.annotations.summary.length).toBeGreaterThan(10);
      expect(r.annotations.description.length).toBeGreaterThan(40);
      expect(r.annotations.runbook_url).toBe(`https://github.com/kvroute/kvroute/blob/main/README.md#${r.alert.toLowerCase()}`);
      // GitHub's anchor of the heading "### <alert>" is the alert name in lower case.
      expect(readme).toMatch(new RegExp(`^### ${r.alert}$`, 'm'));
      expect(r.for).toMatch(/^[0-9]+m$/);
    }
  });

  it('every alert selects the deployment namespace', () => {
    for (const r of rules) expect(r.expr).toContain('namespace="llm-d"');
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

  it('every metric name in the dashboard and alert queries is in the exported lists (no invented names)', () => {
    const rule = findObject(objects, 'PrometheusRule', 'kvroute-alerts');
    const ruleExprs = (rule.spec as PrometheusRuleSpec).groups.flatMap((g) => g.rules.map((r) => r.expr));
    const known = new Set([...VllmMetricNames, ...EppMetricNames, ...PlatformMetricNames, ...HistogramMetrics.map((h) => `${h}_bucket`)]);
    const used = new Set([...exprs, ...ruleExprs].flatMap((e) => e.match(/\b(vllm:[a-z_:]+|inference_[a-z_]+|kvroute_[a-z_]+|kube_[a-z_]+)/g) ?? []));
    expect(used.size).toBeGreaterThan(20);
    for (const m of used) expect(known).toContain(m);
    // Seed mistakes stay out: V0 names and invented EPP metrics.
    expect([...exprs, ...ruleExprs].join('\n')).not.toMatch(/gpu_prefix_cache|epp_requests_total|epp_cache_hits_total/);
  });

  it('predicted vs actual cached tokens per pod: rates of the two counters, the ratio, the error histogram and the mismatch counter', () => {
    const panel = (start: string) => {
      const p = json.panels.find((x) => x.title.startsWith(start));
      if (p === undefined) throw new Error(`no panel titled "${start}…"`);
      return p.targets.map((t) => t.expr);
    };
    expect(panel('Cached prompt tokens per pod')).toEqual([
      'sum by (pod) (rate(kvroute_cache_predicted_tokens_total{namespace="llm-d"}[5m]))',
      'sum by (pod) (rate(kvroute_cache_actual_tokens_total{namespace="llm-d"}[5m]))',
    ]);
    expect(panel('Cache hit ratio per pod')[1]).toBe(
      'sum by (pod) (rate(kvroute_cache_actual_tokens_total{namespace="llm-d"}[5m])) / sum by (pod) (rate(kvroute_cache_prompt_tokens_total{namespace="llm-d"}[5m]))',
    );
    expect(panel('Prediction error')).toContain('histogram_quantile(0.5, sum by (le) (rate(kvroute_cache_prediction_error_ratio_bucket{namespace="llm-d"}[5m])))');
    expect(panel('Prediction mismatches')).toEqual(['sum by (pod, kind) (rate(kvroute_cache_prediction_mismatch_total{namespace="llm-d"}[5m]))']);
  });

  it('dashboardExpressions lists every query of the dashboard', () => {
    expect(dashboardExpressions('llm-d', 'meta-llama/Llama-3.2-1B')).toEqual(exprs);
  });

  it('rate window is configurable', () => {
    expect(dashboardPanels('ns', 'm', '1m')[0].targets[0].expr).toContain('[1m]');
  });
});

describe('EPP metric names come from the contract and exist in the EPP source', () => {
  /** Every `.ts` file under epp/src except the contract itself. */
  function eppSources(): string[] {
    const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../epp/src');
    const out: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) {
          if (join(d, e.name) !== join(root, 'contract')) walk(join(d, e.name));
        } else if (e.name.endsWith('.ts')) out.push(readFileSync(join(d, e.name), 'utf8'));
      }
    };
    walk(root);
    return out;
  }

  /** `Group.key` of every metric spec exported by the contract, by metric name. */
  const contractRefs = new Map<string, string>();
  for (const [group, value] of Object.entries(Contract)) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
    for (const [key, spec] of Object.entries(value as Record<string, unknown>)) {
      const m = spec as Partial<MetricSpec>;
      if (typeof m === 'object' && m !== null && typeof m.name === 'string' && typeof m.type === 'string' && Array.isArray(m.labels)) contractRefs.set(m.name, `${group}.${key}`);
    }
  }

  const files = eppSources();
  const src = files.join('\n');
  it.each(EppMetricNames)('%s is in the contract and registered by the EPP', (name) => {
    const ref = contractRefs.get(name);
    expect(ref).toBeDefined();
    const [group, key] = (ref ?? '.').split('.');
    // A registration names it as a string literal (name: 'x'), or through the contract: a file that
    // uses the group (e.g. CachePredictionMetrics) and reads its key (….predictedTokens).
    const literal = new RegExp(`['"\`]${name}['"\`]`).test(src);
    const viaContract = files.some((f) => new RegExp(`\\b${group}\\b`).test(f) && new RegExp(`\\.${key}\\b`).test(f));
    expect(literal || viaContract).toBe(true);
  });

  it('the EPP registers metrics under contract names only, and every name its source mentions is in the contract', () => {
    // Registrations take the name from the contract (`name: RequestMetrics.requests.name`), never a literal.
    const literalRegistrations = [...src.matchAll(/name:\s*['"`]((?:kvroute|inference)_[a-z_]*)['"`]/g)].map((m) => m[1]);
    expect(literalRegistrations).toEqual([]);
    // Names still mentioned in the source (doc comments) must be contract names too.
    const mentioned = new Set([...src.matchAll(/['"`]((?:kvroute|inference)_[a-z_]*[a-z])['"`]/g)].map((m) => m[1]));
    const missing = [...mentioned].filter((n) => !contractRefs.has(n));
    expect(missing).toEqual([]);
  });
});
