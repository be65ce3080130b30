/**
 * Grafana dashboard as a ConfigMap for the Grafana sidecar (label `grafana_dashboard: "1"`): prefix-cache
 * hit rate per pod, TTFT, queue depth, KV-cache usage, the EPP's routing metrics, and the EPP's
 * predicted versus vLLM's actual cached tokens per pod. Queries use only the names in metric-names.ts.
 */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { EppMetrics, VllmMetrics } from './metric-names.js';

/** Props of {@link GrafanaDashboard}. */
export interface GrafanaDashboardProps {
  readonly name: string;
  /** Namespace whose pods the panels show. */
  readonly namespace: string;
  /** Served model name (vLLM `model_name` label). */
  readonly model: string;
  /**
   * Dashboard uid.
   * @default the ConfigMap name
   */
  readonly uid?: string;
  /**
   * Range of rate() windows.
   * @default '5m'
   */
  readonly rateWindow?: string;
  /**
   * Object labels (the sidecar label is always added).
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** A Prometheus query panel. */
interface Panel {
  title: string;
  unit: string;
  targets: { expr: string; legendFormat: string }[];
}

/** The label the Grafana sidecar watches. */
export const GrafanaDashboardLabel = { grafana_dashboard: '1' } as const;

/** Panels of the dashboard (exported for tests). */
export function dashboardPanels(namespace: string, model: string, w = '5m'): Panel[] {
  const sel = `namespace="${namespace}",model_name="${model}"`;
  const nsSel = `namespace="${namespace}"`;
  return [
    {
      title: 'Prefix-cache hit rate per pod',
      unit: 'percentunit',
      targets: [
        {
          expr: `sum by (pod) (rate(${VllmMetrics.prefixCacheHits}{${sel}}[${w}])) / sum by (pod) (rate(${VllmMetrics.prefixCacheQueries}{${sel}}[${w}]))`,
          legendFormat: '{{pod}}',
        },
      ],
    },
    {
      title: 'Time to first token',
      unit: 's',
      targets: [0.5, 0.9, 0.99].map((q) => ({
        expr: `histogram_quantile(${q}, sum by (le) (rate(${VllmMetrics.timeToFirstToken}_bucket{${sel}}[${w}])))`,
        legendFormat: `p${Math.round(q * 100)}`,
      })),
    },
    {
      title: 'Queue depth per pod',
      unit: 'short',
      targets: [
        { expr: `sum by (pod) (${VllmMetrics.requestsWaiting}{${sel}})`, legendFormat: 'waiting {{pod}}' },
        { expr: `sum by (pod) (${VllmMetrics.requestsRunning}{${sel}})`, legendFormat: 'running {{pod}}' },
      ],
    },
    {
      title: 'KV-cache usage per pod',
      unit: 'percentunit',
      targets: [{ expr: `max by (pod) (${VllmMetrics.kvCacheUsage}{${sel}})`, legendFormat: '{{pod}}' }],
    },
    {
      title: 'EPP requests and errors',
      unit: 'reqps',
      targets: [
        { expr: `sum(rate(${EppMetrics.requests}{${nsSel}}[${w}]))`, legendFormat: 'requests' },
        { expr: `sum by (error_code) (rate(${EppMetrics.requestErrors}{${nsSel}}[${w}]))`, legendFormat: 'errors {{error_code}}' },
      ],
    },
    {
      title: 'EPP request latency',
      unit: 's',
      targets: [{ expr: `histogram_quantile(0.99, sum by (le) (rate(${EppMetrics.requestDuration}_bucket{${nsSel}}[${w}])))`, legendFormat: 'p99' }],
    },
    {
      title: 'Ready pods in the pool',
      unit: 'short',
      targets: [{ expr: `max(${EppMetrics.poolReadyPods}{${nsSel}})`, legendFormat: 'ready' }],
    },
    {
      title: 'KV events (received, dropped, sequence gaps)',
      unit: 'ops',
      targets: [
        { expr: `sum(rate(${EppMetrics.kvEventsReceived}{${nsSel}}[${w}]))`, legendFormat: 'received' },
        { expr: `sum(rate(${EppMetrics.kvEventsDropped}{${nsSel}}[${w}]))`, legendFormat: 'dropped' },
        { expr: `sum(rate(${EppMetrics.kvEventsSeqGaps}{${nsSel}}[${w}]))`, legendFormat: 'seq gaps' },
      ],
    },
    {
      title: 'ext_proc streams by outcome',
      unit: 'ops',
      targets: [{ expr: `sum by (outcome) (rate(${EppMetrics.extprocStreams}{${nsSel}}[${w}]))`, legendFormat: '{{outcome}}' }],
    },
    {
      title: 'Tokenization latency',
      unit: 's',
      targets: [{ expr: `histogram_quantile(0.99, sum by (le) (rate(${EppMetrics.tokenizationDuration}_bucket{${nsSel}}[${w}])))`, legendFormat: 'p99' }],
    },
    {
      title: 'Cached prompt tokens per pod: predicted by the EPP vs reported by vLLM',
      unit: 'short',
      targets: [
        { expr: `sum by (pod) (rate(${EppMetrics.cachePredictedTokens}{${nsSel}}[${w}]))`, legendFormat: 'predicted {{pod}}' },
        { expr: `sum by (pod) (rate(${EppMetrics.cacheActualTokens}{${nsSel}}[${w}]))`, legendFormat: 'actual {{pod}}' },
      ],
    },
    {
      title: 'Cache hit ratio per pod: predicted vs actual (share of prompt tokens)',
      unit: 'percentunit',
      targets: [
        {
          expr: `sum by (pod) (rate(${EppMetrics.cachePredictedTokens}{${nsSel}}[${w}])) / sum by (pod) (rate(${EppMetrics.cachePromptTokens}{${nsSel}}[${w}]))`,
          legendFormat: 'predicted {{pod}}',
        },
        {
          expr: `sum by (pod) (rate(${EppMetrics.cacheActualTokens}{${nsSel}}[${w}])) / sum by (pod) (rate(${EppMetrics.cachePromptTokens}{${nsSel}}[${w}]))`,
          legendFormat: 'actual {{pod}}',
        },
      ],
    },
    {
      title: 'Prediction error (actual − predicted) ÷ prompt tokens',
      unit: 'percentunit',
      targets: [0.1, 0.5, 0.9].map((q) => ({
        expr: `histogram_quantile(${q}, sum by (le) (rate(${EppMetrics.cachePredictionErrorRatio}_bucket{${nsSel}}[${w}])))`,
        legendFormat: `p${Math.round(q * 100)}`,
      })),
    },
    {
      title: 'Prediction mismatches per pod by kind',
      unit: 'reqps',
      targets: [{ expr: `sum by (pod, kind) (rate(${EppMetrics.cachePredictionMismatch}{${nsSel}}[${w}]))`, legendFormat: '{{kind}} {{pod}}' }],
    },
    {
      title: 'Active diagnoses (cause, pod)',
      unit: 'short',
      targets: [{ expr: `max by (pod, cause) (${EppMetrics.diagnosisActive}{${nsSel}})`, legendFormat: '{{cause}} {{pod}}' }],
    },
    {
      title: 'Shed requests by objective',
      unit: 'reqps',
      targets: [{ expr: `sum by (objective) (rate(${EppMetrics.admissionShed}{${nsSel}}[${w}]))`, legendFormat: '{{objective}}' }],
    },
  ];
}

/** Every query of the dashboard, in panel order (for tests that evaluate them against a real Prometheus). */
export function dashboardExpressions(namespace: string, model: string, w = '5m'): string[] {
  return dashboardPanels(namespace, model, w).flatMap((p) => p.targets.map((t) => t.expr));
}

/** The dashboard JSON model. */
export function dashboardJson(title: string, uid: string, panels: Panel[]): Record<string, unknown> {
  return {
    title,
    uid,
    schemaVersion: 39,
    editable: true,
    time: { from: 'now-1h', to: 'now' },
    refresh: '30s',
    tags: ['kvroute', 'vllm', 'llm-d'],
    templating: { list: [{ name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Prometheus' }] },
    panels: panels.map((p, i) => ({
      id: i + 1,
      type: 'timeseries',
      title: p.title,
      datasource: { type: 'prometheus', uid: '${datasource}' },
      gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
      fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
      targets: p.targets.map((t, j) => ({ refId: String.fromCharCode(65 + j), expr: t.expr, legendFormat: t.legendFormat })),
    })),
  };
}

/** ConfigMap holding `<name>.json`. */
export class GrafanaDashboard extends Construct {
  readonly configMap: k8s.KubeConfigMap;
  constructor(scope: Construct, id: string, props: GrafanaDashboardProps) {
    super(scope, id);
    const uid = props.uid ?? props.name;
    const json = dashboardJson(`kvroute: ${props.model}`, uid, dashboardPanels(props.namespace, props.model, props.rateWindow ?? '5m'));
    this.configMap = new k8s.KubeConfigMap(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}), ...GrafanaDashboardLabel } },
      data: { [`${props.name}.json`]: JSON.stringify(json, null, 2) },
    });
  }
}
