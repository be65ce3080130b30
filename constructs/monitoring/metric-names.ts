/**
 * Every metric name the monitoring constructs reference, in one list, so a test can check each one
 * against what vLLM and the EPP really export. Histogram series are listed by base name; the
 * dashboard uses `<name>_bucket`.
 */

/** vLLM (V1 engine) metrics. */
export const VllmMetrics = {
  prefixCacheHits: 'vllm:prefix_cache_hits_total',
  prefixCacheQueries: 'vllm:prefix_cache_queries_total',
  timeToFirstToken: 'vllm:time_to_first_token_seconds',
  requestsWaiting: 'vllm:num_requests_waiting',
  requestsRunning: 'vllm:num_requests_running',
  kvCacheUsage: 'vllm:kv_cache_usage_perc',
} as const;

/** Metrics of the kvroute EPP (GAIE-compatible names plus our own `kvroute_*`). */
export const EppMetrics = {
  requests: 'inference_objective_request_total',
  requestErrors: 'inference_objective_request_error_total',
  requestDuration: 'inference_objective_request_duration_seconds',
  poolReadyPods: 'inference_pool_ready_pods',
  extprocStreams: 'kvroute_extproc_streams_total',
  kvEventsReceived: 'kvroute_kv_events_received_total',
  kvEventsDropped: 'kvroute_kv_events_dropped_total',
  kvEventsSeqGaps: 'kvroute_kv_events_seq_gaps_total',
  tokenizationDuration: 'kvroute_tokenization_duration_seconds',
} as const;

/** Names of histogram metrics (queried as `<name>_bucket`). */
export const HistogramMetrics: readonly string[] = [VllmMetrics.timeToFirstToken, EppMetrics.requestDuration, EppMetrics.tokenizationDuration];

/** Every EPP metric name the dashboard references. */
export const EppMetricNames: readonly string[] = Object.values(EppMetrics);
/** Every vLLM metric name the dashboard references. */
export const VllmMetricNames: readonly string[] = Object.values(VllmMetrics);
