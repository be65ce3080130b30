/**
 * Every metric name the monitoring constructs (dashboard and alert rules) reference, taken from the
 * contract (`@kvroute/epp/contract`, epp/src/contract/metrics.ts), so a test can check each query
 * against what vLLM and the EPP really export. Histogram series are listed by base name; queries use
 * `<name>_bucket`.
 */
import { CachePredictionMetrics, DiagnosisMetrics, KvEventMetrics, PoolMetrics, RequestMetrics, ScrapeMetrics, SchedulerMetrics, TokenizationMetrics, VllmMetrics } from '@kvroute/epp/contract';

export { VllmMetrics };

/** Metrics of the kvroute EPP that the dashboard and the alerts query (GAIE-compatible names plus our own `kvroute_*`). */
export const EppMetrics = {
  requests: RequestMetrics.requests.name,
  requestErrors: RequestMetrics.requestErrors.name,
  requestDuration: RequestMetrics.requestDuration.name,
  poolReadyPods: PoolMetrics.readyPods.name,
  endpointInFlight: SchedulerMetrics.endpointInFlight.name,
  admissionShed: SchedulerMetrics.admissionShed.name,
  extprocStreams: RequestMetrics.extprocStreams.name,
  kvEventsReceived: KvEventMetrics.received.name,
  kvEventsDropped: KvEventMetrics.dropped.name,
  kvEventsSeqGaps: KvEventMetrics.seqGaps.name,
  kvEventsPodStale: KvEventMetrics.podStale.name,
  kvEventsHashMismatch: KvEventMetrics.hashMismatch.name,
  tokenizationDuration: TokenizationMetrics.duration.name,
  metricsScrapeErrors: ScrapeMetrics.errors.name,
  cachePredictedTokens: CachePredictionMetrics.predictedTokens.name,
  cacheActualTokens: CachePredictionMetrics.actualTokens.name,
  cachePromptTokens: CachePredictionMetrics.promptTokens.name,
  cachePredictionErrorRatio: CachePredictionMetrics.predictionErrorRatio.name,
  cachePredictionMismatch: CachePredictionMetrics.predictionMismatch.name,
  diagnosisActive: DiagnosisMetrics.active.name,
} as const;

/**
 * Metrics of Prometheus itself and of kube-state-metrics (when installed, as kube-prometheus-stack
 * does): `up` of the EPP scrape target, and the EPP Deployment's available replicas.
 */
export const PlatformMetrics = {
  up: 'up',
  deploymentAvailableReplicas: 'kube_deployment_status_replicas_available',
} as const;

/** Names of histogram metrics (queried as `<name>_bucket`). */
export const HistogramMetrics: readonly string[] = [VllmMetrics.timeToFirstToken, EppMetrics.requestDuration, EppMetrics.tokenizationDuration, EppMetrics.cachePredictionErrorRatio];

/** Every EPP metric name the dashboard and alerts reference. */
export const EppMetricNames: readonly string[] = Object.values(EppMetrics);
/** Every vLLM metric name the dashboard and alerts reference may use. */
export const VllmMetricNames: readonly string[] = Object.values(VllmMetrics);
/** Prometheus and kube-state-metrics names the alerts use. */
export const PlatformMetricNames: readonly string[] = Object.values(PlatformMetrics);
