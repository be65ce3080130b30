/**
 * The alerting rules of a kvroute deployment, as plain data: one entry per alert with its PromQL
 * expression, `for` duration, severity, summary, description and runbook link. The PrometheusRule
 * construct (prometheus-rule.ts) emits them; tests run every one through `promtool`. Queries use only
 * the names in metric-names.ts (taken from the EPP's contract).
 *
 * Label conventions the expressions rely on:
 * - Prometheus adds `namespace` (and `pod`, `instance`, `job`) to every scraped series; vLLM adds
 *   `model_name`.
 * - The EPP's per-pod metrics carry their own `pod` label (the model-server pod it routed to); its
 *   ServiceMonitor keeps that label (`honorLabels`) instead of renaming it `exported_pod`, and the
 *   EPP replica stays in `instance`.
 */
import { EppMetrics, PlatformMetrics, VllmMetrics } from './metric-names.js';
import { RequestErrorCodes } from '@kvroute/epp/contract';

/** Alert severities (the `severity` label Alertmanager routes on). */
export type AlertSeverity = 'critical' | 'warning';

/** One alerting rule. */
export interface AlertRule {
  /** Alert name; also the README heading of its runbook entry. */
  readonly alert: string;
  readonly expr: string;
  /** How long the condition must hold before the alert fires (Prometheus duration). */
  readonly for: string;
  readonly severity: AlertSeverity;
  /** One line, may use `{{ $labels.x }}`. */
  readonly summary: string;
  /** What it means and what to look at first, may use `{{ $labels.x }}` and `{{ $value }}`. */
  readonly description: string;
  /** Link to the runbook entry (README section "Alerts"). */
  readonly runbookUrl: string;
}

/** Thresholds of the alerts. */
export interface AlertThresholds {
  /**
   * Prefix-cache hit-rate collapse: fires when the pool's hit rate over 15 minutes falls below this
   * fraction of its value `hitRateBaselineOffset` earlier.
   * @default 0.5
   */
  readonly hitRateCollapseFactor?: number;
  /**
   * How far back the hit-rate baseline is taken (Prometheus duration).
   * @default '1h'
   */
  readonly hitRateBaselineOffset?: string;
  /**
   * Predicted/actual mismatch: fires when |actual − predicted| cached tokens on a pod exceed this
   * fraction of its prompt tokens (over 15 minutes).
   * @default 0.25
   */
  readonly predictionErrorRatio?: number;
  /**
   * KV-event gaps: fires when more sequence gaps than this are seen in 15 minutes.
   * @default 5
   */
  readonly kvEventGapsPer15m?: number;
  /**
   * Stale pods: fires when pods are marked stale (unrepaired gap) more often than this in 30 minutes.
   * @default 2
   */
  readonly podStaleMarksPer30m?: number;
  /**
   * Shed rate: fires when more than this fraction of requests is shed (over 5 minutes).
   * @default 0.05
   */
  readonly shedRatio?: number;
}

/** The defaults of {@link AlertThresholds}. */
export const DefaultAlertThresholds: Required<AlertThresholds> = {
  hitRateCollapseFactor: 0.5,
  hitRateBaselineOffset: '1h',
  predictionErrorRatio: 0.25,
  kvEventGapsPer15m: 5,
  podStaleMarksPer30m: 2,
  shedRatio: 0.05,
};

/** Where the runbook entries live by default: the README's "Alerts" section. */
export const DefaultRunbookBaseUrl = 'https://github.com/kvroute/kvroute/blob/main/README.md';

/** Options of {@link alertRules}. */
export interface AlertRulesOptions {
  /** Namespace of the EPP and the model servers (the `namespace` label of their series). */
  readonly namespace: string;
  /** Served model name (vLLM `model_name` label). */
  readonly model: string;
  /** `job` label of the EPP's scrape target (a ServiceMonitor names the job after the Service). */
  readonly eppJob: string;
  /** Name of the EPP Deployment (kube-state-metrics `deployment` label). */
  readonly eppDeployment: string;
  /**
   * Page holding the runbook entries; each alert links to `<base>#<alert name in lower case>`.
   * @default DefaultRunbookBaseUrl (the README on GitHub)
   */
  readonly runbookBaseUrl?: string;
  /**
   * Alert thresholds; each omitted field takes its default.
   * @default DefaultAlertThresholds
   */
  readonly thresholds?: AlertThresholds;
}

/** The runbook anchor of an alert: GitHub's anchor for a heading that is just the alert name. */
export function runbookAnchor(alert: string): string {
  return alert.toLowerCase();
}

const DURATION = /^([0-9]+(ms|s|m|h|d|w|y))+$/;

function checkOptions(o: AlertRulesOptions, t: Required<AlertThresholds>): void {
  const fraction = (field: keyof AlertThresholds, v: number, max: number) => {
    if (!Number.isFinite(v) || v <= 0 || v > max) throw new Error(`alert thresholds: ${field} must be a number in (0, ${max}] (got ${String(v)}); e.g. ${String(DefaultAlertThresholds[field])}`);
  };
  fraction('hitRateCollapseFactor', t.hitRateCollapseFactor, 1);
  fraction('predictionErrorRatio', t.predictionErrorRatio, 1);
  fraction('shedRatio', t.shedRatio, 1);
  for (const f of ['kvEventGapsPer15m', 'podStaleMarksPer30m'] as const) {
    if (!Number.isInteger(t[f]) || t[f] < 0) throw new Error(`alert thresholds: ${f} must be a non-negative integer (got ${String(t[f])}); e.g. ${String(DefaultAlertThresholds[f])}`);
  }
  if (!DURATION.test(t.hitRateBaselineOffset)) {
    throw new Error(`alert thresholds: hitRateBaselineOffset must be a Prometheus duration such as '1h' or '1d' (got ${JSON.stringify(t.hitRateBaselineOffset)})`);
  }
  for (const f of ['namespace', 'model', 'eppJob', 'eppDeployment'] as const) {
    // The values go inside "..." in PromQL label matchers.
    if (o[f] === '' || /["\\\n]/.test(o[f])) throw new Error(`alert rules: ${f} must be a non-empty string without quotes, backslashes or newlines (got ${JSON.stringify(o[f])})`);
  }
  if (o.runbookBaseUrl !== undefined && !/^https?:\/\/\S+$/.test(o.runbookBaseUrl)) {
    throw new Error(`alert rules: runbookBaseUrl must be an http(s) URL without spaces (got ${JSON.stringify(o.runbookBaseUrl)}); e.g. '${DefaultRunbookBaseUrl}'`);
  }
}

/** The alerting rules of one deployment, in a stable order. */
export function alertRules(o: AlertRulesOptions): AlertRule[] {
  const t: Required<AlertThresholds> = { ...DefaultAlertThresholds, ...(o.thresholds ?? {}) };
  checkOptions(o, t);
  const base = o.runbookBaseUrl ?? DefaultRunbookBaseUrl;
  const ns = `namespace="${o.namespace}"`;
  const vllm = `${ns},model_name="${o.model}"`;
  const E = EppMetrics;
  const V = VllmMetrics;
  const rule = (r: Omit<AlertRule, 'runbookUrl'>): AlertRule => ({ ...r, runbookUrl: `${base}#${runbookAnchor(r.alert)}` });
  const hitRate = (offset: string) =>
    `sum by (namespace) (rate(${V.prefixCacheHits}{${vllm}}[15m]${offset})) / sum by (namespace) (rate(${V.prefixCacheQueries}{${vllm}}[15m]${offset}))`;
  const perPodRate = (metric: string) => `sum by (namespace, pod) (rate(${metric}{${ns}}[15m]))`;

  return [
    rule({
      alert: 'KvroutePrefixCacheHitRateCollapse',
      expr: `(${hitRate('')}) < ${t.hitRateCollapseFactor} * (${hitRate(` offset ${t.hitRateBaselineOffset}`)})`,
      for: '15m',
      severity: 'warning',
      summary: 'Prefix-cache hit rate of {{ $labels.namespace }} collapsed',
      description:
        `The vLLM prefix-cache hit rate of model ${o.model} over the last 15m is {{ $value | humanizePercentage }}, ` +
        `below ${t.hitRateCollapseFactor} times its value ${t.hitRateBaselineOffset} earlier. Requests no longer reach the pods that hold their prefixes: ` +
        `check the EPP's KV-event, hash-mismatch and prediction alerts and kvroute_diagnosis_active.`,
    }),
    rule({
      alert: 'KvroutePredictionMismatch',
      // One-sided: the EPP predicting more than the pod has (a phantom cache) misroutes traffic. The
      // other direction is routine (requests routed beside a sibling whose KV events have not arrived
      // yet hit a cache the index does not know of yet); a pod whose events never arrive is caught by
      // the diagnosis (events-missing) and KvrouteKvEventsMissing.
      expr: `(${perPodRate(E.cachePredictedTokens)} - ${perPodRate(E.cacheActualTokens)}) / ${perPodRate(E.cachePromptTokens)} > ${t.predictionErrorRatio}`,
      for: '15m',
      severity: 'warning',
      summary: 'EPP cache predictions for pod {{ $labels.pod }} are wrong',
      description:
        `On pod {{ $labels.pod }} the EPP predicted {{ $value | humanizePercentage }} of the prompt tokens more cached tokens than vLLM reports ` +
        `(threshold ${t.predictionErrorRatio}). The EPP's index holds blocks the pod does not have: see ${E.cachePredictionMismatch} by kind and ${E.diagnosisActive} by cause.`,
    }),
    rule({
      alert: 'KvrouteKvEventGaps',
      expr: `sum by (namespace) (increase(${E.kvEventsSeqGaps}{${ns}}[15m])) > ${t.kvEventGapsPer15m}`,
      for: '10m',
      severity: 'warning',
      summary: 'The EPP keeps missing KV events in {{ $labels.namespace }}',
      description:
        `The EPP saw {{ $value | humanize }} KV-event sequence gaps in the last 15m (threshold ${t.kvEventGapsPer15m}): ZeroMQ messages from the vLLM pods are lost ` +
        `(slow subscriber, network drops, pod restarts). Gaps that replay cannot repair leave the index wrong until the pod is rebuilt.`,
    }),
    rule({
      alert: 'KvrouteKvEventsPodStale',
      expr: `sum by (namespace) (increase(${E.kvEventsPodStale}{${ns}}[30m])) > ${t.podStaleMarksPer30m}`,
      for: '5m',
      severity: 'warning',
      summary: 'The EPP keeps marking pods stale in {{ $labels.namespace }}',
      description:
        `The EPP marked pods stale {{ $value | humanize }} times in the last 30m (threshold ${t.podStaleMarksPer30m}) after KV-event gaps it could not replay. ` +
        `A stale pod's index entries are dropped, so it gets no prefix-cache routing until its events are rebuilt.`,
    }),
    rule({
      alert: 'KvrouteKvEventsMissing',
      expr: `sum by (namespace) (rate(${E.kvEventsReceived}{${ns}}[10m])) == 0 and on (namespace) sum by (namespace) (rate(${E.requests}{${ns}}[10m])) > 0`,
      for: '15m',
      severity: 'warning',
      summary: 'The EPP receives no KV events in {{ $labels.namespace }}',
      description:
        'The EPP routes requests but has received no KV events for 10m: the vLLM pods do not publish to it (--kv-events-config, ZeroMQ endpoint, NetworkPolicy), ' +
        'so its index is empty and routing ignores the prefix cache.',
    }),
    rule({
      alert: 'KvrouteHashMismatch',
      expr: `sum by (namespace) (rate(${E.kvEventsHashMismatch}{${ns}}[10m])) > 0`,
      for: '10m',
      severity: 'warning',
      summary: 'EPP and vLLM compute different block hashes in {{ $labels.namespace }}',
      description:
        'Block hashes in the KV events do not match what the EPP computes for the same tokens: PYTHONHASHSEED, --prefix-caching-hash-algo or the block size of ' +
        'the vLLM pods differs from the EPP config, and prefix-cache routing is blind.',
    }),
    rule({
      alert: 'KvrouteEppNotReady',
      expr:
        `(max by (namespace) (${PlatformMetrics.deploymentAvailableReplicas}{${ns},deployment="${o.eppDeployment}"}) < 1)` +
        ` or (sum by (namespace) (${PlatformMetrics.up}{${ns},job="${o.eppJob}"}) < 1)` +
        ` or absent(${PlatformMetrics.up}{${ns},job="${o.eppJob}"})`,
      for: '5m',
      severity: 'critical',
      summary: 'No EPP replica of {{ $labels.namespace }} is ready',
      description:
        `The EPP Deployment ${o.eppDeployment} has no available replica, or Prometheus cannot scrape any EPP target (job ${o.eppJob}). ` +
        'Without the EPP the gateway cannot route inference requests (or falls back to routing without the prefix cache).',
    }),
    rule({
      alert: 'KvrouteNoReadyEndpoints',
      expr: `max by (namespace) (${E.poolReadyPods}{${ns}}) < 1`,
      for: '2m',
      severity: 'critical',
      summary: 'The InferencePool of {{ $labels.namespace }} has no ready model server',
      description:
        'The EPP sees no model-server pod with fresh metrics, so it cannot pick an endpoint and requests fail. Check the vLLM pods (starting, crashing, ' +
        'not ready) and that the EPP can reach their metrics port.',
    }),
    rule({
      alert: 'KvrouteShedRate',
      expr:
        `sum by (namespace) (rate(${E.requestErrors}{${ns},error_code="${RequestErrorCodes.shed}"}[5m]))` +
        ` / sum by (namespace) (rate(${E.requests}{${ns}}[5m]) or rate(${E.requestErrors}{${ns}}[5m])) > ${t.shedRatio}`,
      for: '10m',
      severity: 'warning',
      summary: 'The EPP sheds {{ $value | humanizePercentage }} of requests in {{ $labels.namespace }}',
      description:
        `More than ${t.shedRatio * 100}% of requests are refused with 429 because the pool is saturated (queue or KV cache over the admission thresholds) ` +
        `and their objective is sheddable; ${E.admissionShed} has them by objective. Add capacity or raise the thresholds.`,
    }),
    rule({
      alert: 'KvrouteStalePodMetrics',
      expr: `count by (namespace, instance) (${E.endpointInFlight}{${ns}}) - on (namespace, instance) max by (namespace, instance) (${E.poolReadyPods}{${ns}}) > 0`,
      for: '5m',
      severity: 'warning',
      summary: 'EPP {{ $labels.instance }} has stale metrics for {{ $value }} pods',
      description:
        `EPP {{ $labels.instance }} knows {{ $value }} more pods than it has fresh metrics for: its scrapes of their /metrics fail or are too slow ` +
        `(${E.metricsScrapeErrors} by reason), and it schedules those pods without load information.`,
    }),
    rule({
      alert: 'KvrouteDiagnosisActive',
      expr: `max by (namespace, pod, cause) (${E.diagnosisActive}{${ns}}) > 0`,
      for: '10m',
      severity: 'warning',
      summary: 'EPP diagnoses {{ $labels.cause }} on pod {{ $labels.pod }}',
      description:
        'The EPP found why its cache predictions for pod {{ $labels.pod }} are wrong: {{ $labels.cause }} (tokenization: tokenizer or chat template differs; ' +
        'hash-seed: PYTHONHASHSEED or hash algorithm differs; events-missing: the pod publishes no KV events; block-size: --block-size differs).',
    }),
  ];
}

/** Every PromQL expression of the rules, by alert name (for tests that evaluate them). */
export function alertExpressions(rules: readonly AlertRule[]): Record<string, string> {
  return Object.fromEntries(rules.map((r) => [r.alert, r.expr]));
}
