/**
 * Every Prometheus metric name the EPP exports, and the vLLM metric names the EPP scrapes and the
 * dashboard and alerts query, in one place. The cdk8s monitoring constructs (dashboard, alert rules)
 * build their queries from these objects, so a renamed metric changes both sides together.
 *
 * Each EPP metric is described by its name, type, label names and help text (what a prom-client
 * registration needs). Histograms are listed by base name; queries use `<name>_bucket`,
 * `<name>_sum` and `<name>_count`. No runtime dependencies: the cdk8s app imports this module too.
 */
import type { ApiErrorCode } from './errors.js';

/** Prometheus metric types used here. */
export type MetricType = 'counter' | 'gauge' | 'histogram';

/** One metric: what a registration and a query need to agree on. */
export interface MetricSpec {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  /** Label names the EPP sets (targets labels such as `namespace` are added by Prometheus). */
  readonly labels: readonly string[];
}

/** Ext_proc request metrics (Gateway API Inference Extension names plus `kvroute_extproc_*`). */
export const RequestMetrics = {
  requests: { name: 'inference_objective_request_total', type: 'counter', help: 'Requests routed by the EPP.', labels: ['model_name', 'target_model_name'] },
  requestErrors: {
    name: 'inference_objective_request_error_total',
    type: 'counter',
    help: 'Requests answered with an error (ImmediateResponse) by the EPP.',
    labels: ['model_name', 'target_model_name', 'error_code'],
  },
  requestDuration: {
    name: 'inference_objective_request_duration_seconds',
    type: 'histogram',
    help: 'Time from request headers to the end of the response, as seen by the EPP.',
    labels: ['model_name', 'target_model_name'],
  },
  requestSizes: { name: 'inference_objective_request_sizes', type: 'histogram', help: 'Request body size in bytes.', labels: ['model_name', 'target_model_name'] },
  inputTokens: { name: 'inference_objective_input_tokens', type: 'histogram', help: 'Prompt tokens reported in usage.', labels: ['model_name', 'target_model_name'] },
  outputTokens: { name: 'inference_objective_output_tokens', type: 'histogram', help: 'Completion tokens reported in usage.', labels: ['model_name', 'target_model_name'] },
  runningRequests: { name: 'inference_objective_running_requests', type: 'gauge', help: 'Requests routed and not finished yet.', labels: ['model_name'] },
  extprocStreams: { name: 'kvroute_extproc_streams_total', type: 'counter', help: 'ext_proc streams by how they ended.', labels: ['outcome'] },
  extprocDecisionDuration: {
    name: 'kvroute_extproc_decision_duration_seconds',
    type: 'histogram',
    help: 'From the complete request body to the routing decision (parse + director pick + reply), in seconds.',
    labels: [],
  },
  extprocObservabilityModeStreams: {
    name: 'kvroute_extproc_observability_mode_streams_total',
    type: 'counter',
    help: "ext_proc streams the gateway opened in observability_mode (Envoy ignores the EPP's replies there, so these requests were not routed by the EPP).",
    labels: [],
  },
} as const satisfies Record<string, MetricSpec>;

/** `error_code` label values of {@link RequestMetrics.requestErrors} the alerts select (codes of errors.ts). */
export const RequestErrorCodes = {
  /** A sheddable request dropped with 429 because the pool was saturated. */
  shed: 'shed',
} as const satisfies Record<string, ApiErrorCode>;

/** Scheduling and admission metrics. */
export const SchedulerMetrics = {
  e2eDuration: {
    name: 'inference_extension_scheduler_e2e_duration_seconds',
    type: 'histogram',
    help: 'End-to-end scheduling latency: tokenization, index lookup, scoring and picking.',
    labels: [],
  },
  attempts: { name: 'inference_extension_scheduler_attempts_total', type: 'counter', help: 'Scheduling attempts by status (success, failure).', labels: ['status'] },
  admissionShed: {
    name: 'kvroute_admission_shed_total',
    type: 'counter',
    help: 'Sheddable requests (objective priority < 0) dropped with 429 because the pool was saturated.',
    labels: ['objective'],
  },
  tokenizeFailures: {
    name: 'kvroute_tokenize_failures_total',
    type: 'counter',
    help: 'Requests scheduled without prefix scores because their prompt could not be tokenized.',
    labels: ['reason'],
  },
  promptBlocks: { name: 'kvroute_request_prompt_blocks', type: 'histogram', help: 'Full KV blocks in scheduled prompts.', labels: [] },
  cachedPrefixRatio: {
    name: 'kvroute_request_cached_prefix_ratio',
    type: 'histogram',
    help: 'Share of the prompt blocks the picked pod already holds, per scheduled request.',
    labels: [],
  },
  endpointInFlight: {
    name: 'kvroute_endpoint_in_flight_requests',
    type: 'gauge',
    help: 'Requests the EPP sent to each endpoint that have not finished.',
    labels: ['endpoint'],
  },
} as const satisfies Record<string, MetricSpec>;

/** InferencePool gauges (one series per pool, label `name`). */
export const PoolMetrics = {
  readyPods: { name: 'inference_pool_ready_pods', type: 'gauge', help: 'Pods of the pool with fresh metrics.', labels: ['name'] },
  averageQueueSize: { name: 'inference_pool_average_queue_size', type: 'gauge', help: 'Average waiting-queue size over pods with fresh metrics.', labels: ['name'] },
  averageKvCacheUtilization: {
    name: 'inference_pool_average_kv_cache_utilization',
    type: 'gauge',
    help: 'Average KV-cache utilization over pods with fresh metrics.',
    labels: ['name'],
  },
} as const satisfies Record<string, MetricSpec>;

/** Build information of the EPP process. */
export const InfoMetrics = {
  info: { name: 'inference_extension_info', type: 'gauge', help: 'EPP build information.', labels: ['commit', 'build_ref'] },
} as const satisfies Record<string, MetricSpec>;

/** Reloads of the EPP's config file. */
export const ConfigReloadMetrics = {
  reloads: {
    name: 'kvroute_config_reloads_total',
    type: 'counter',
    help: 'Config file reloads by result: applied, unchanged, invalid (old config kept), restart_required (changed fields that only a restart applies).',
    labels: ['result'],
  },
  lastReloadSuccess: {
    name: 'kvroute_config_last_reload_success_timestamp_seconds',
    type: 'gauge',
    help: 'When the config file was last loaded successfully (start or reload).',
    labels: [],
  },
} as const satisfies Record<string, MetricSpec>;

/** Scrapes of the model servers' /metrics by the EPP's data layer. */
export const ScrapeMetrics = {
  errors: {
    name: 'kvroute_metrics_scrape_errors_total',
    type: 'counter',
    help: 'Failed scrapes of model-server /metrics, by reason (timeout, http, network, parse).',
    labels: ['reason'],
  },
  duration: { name: 'kvroute_metrics_scrape_duration_seconds', type: 'histogram', help: 'Duration of successful model-server /metrics scrapes.', labels: [] },
} as const satisfies Record<string, MetricSpec>;

/** The KV-block index: operations (any backend), the in-memory backend and the Redis backend. */
export const IndexMetrics = {
  operations: { name: 'kvroute_index_operations_total', type: 'counter', help: 'Index operations by type.', labels: ['op'] },
  operationErrors: { name: 'kvroute_index_operation_errors_total', type: 'counter', help: 'Index operations that threw, by type.', labels: ['op'] },
  operationDuration: { name: 'kvroute_index_operation_duration_seconds', type: 'histogram', help: 'Index operation latency by type.', labels: ['op'] },
  lookupKeys: { name: 'kvroute_index_lookup_keys_total', type: 'counter', help: 'Request keys asked for in lookups.', labels: [] },
  lookupHits: { name: 'kvroute_index_lookup_hits_total', type: 'counter', help: 'Request keys found in lookups (the held prefix).', labels: [] },
  lookupPrefixBlocks: { name: 'kvroute_index_lookup_prefix_blocks', type: 'histogram', help: 'Held prefix length (blocks) per lookup.', labels: [] },
  addedEntries: { name: 'kvroute_index_added_entries_total', type: 'counter', help: '(request key, pod entry) pairs written by add.', labels: [] },
  evictedEntries: { name: 'kvroute_index_evicted_entries_total', type: 'counter', help: 'Pod entries named by evict.', labels: [] },
  memoryKeys: { name: 'kvroute_index_memory_keys', type: 'gauge', help: 'Request keys held by the in-memory index.', labels: [] },
  memoryEntries: { name: 'kvroute_index_memory_entries', type: 'gauge', help: '(request key, pod, tier) entries held by the in-memory index.', labels: [] },
  memoryEngineEdges: { name: 'kvroute_index_memory_engine_edges', type: 'gauge', help: 'Engine key to request key mappings held by the in-memory index.', labels: [] },
  memoryBytes: { name: 'kvroute_index_memory_bytes', type: 'gauge', help: 'Bytes allocated by the in-memory index.', labels: [] },
  memoryBudgetBytes: { name: 'kvroute_index_memory_budget_bytes', type: 'gauge', help: 'Memory budget of the in-memory index.', labels: [] },
  memoryLruEvictions: {
    name: 'kvroute_index_memory_lru_evictions_total',
    type: 'counter',
    help: 'Request keys evicted (least recently used first) to stay within the memory budget.',
    labels: [],
  },
  memoryDroppedEntries: {
    name: 'kvroute_index_memory_dropped_entries_total',
    type: 'counter',
    help: 'Entries not stored because one add exceeded the whole memory budget.',
    labels: [],
  },
  redisUp: { name: 'kvroute_index_redis_up', type: 'gauge', help: '1 while the Redis connection of the index is ready, else 0.', labels: [] },
  redisErrors: {
    name: 'kvroute_index_redis_errors_total',
    type: 'counter',
    help: 'Redis commands of the index that failed (timeout, connection, server error).',
    labels: ['op'],
  },
  redisDroppedWrites: { name: 'kvroute_index_redis_dropped_writes_total', type: 'counter', help: 'Index writes dropped because Redis failed.', labels: ['op'] },
  redisDegradedLookups: {
    name: 'kvroute_index_redis_degraded_lookups_total',
    type: 'counter',
    help: 'Lookups answered with no hits because Redis failed.',
    labels: [],
  },
  snapshotLoads: {
    name: 'kvroute_index_snapshot_loads_total',
    type: 'counter',
    help: 'Index snapshot loads at start by result: ok, absent, corrupt, foreign (refused).',
    labels: ['result'],
  },
  snapshotSaves: { name: 'kvroute_index_snapshot_saves_total', type: 'counter', help: 'Index snapshot writes by result (ok, error).', labels: ['result'] },
  snapshotDroppedEntries: {
    name: 'kvroute_index_snapshot_dropped_entries_total',
    type: 'counter',
    help: 'Snapshot entries dropped at load because their pod is no longer an endpoint.',
    labels: [],
  },
  snapshotKeys: { name: 'kvroute_index_snapshot_keys', type: 'gauge', help: 'Request keys in the last snapshot written or loaded.', labels: [] },
  selfHealDroppedBlocks: {
    name: 'kvroute_index_self_heal_dropped_blocks_total',
    type: 'counter',
    help: 'Blocks dropped from the index for a pod by self-healing (entries found not to match what the pod holds).',
    labels: ['pod'],
  },
} as const satisfies Record<string, MetricSpec>;

/** KV events received from the vLLM pods over ZeroMQ. */
export const KvEventMetrics = {
  received: { name: 'kvroute_kv_events_received_total', type: 'counter', help: 'KV-event messages received (valid frames).', labels: [] },
  dropped: { name: 'kvroute_kv_events_dropped_total', type: 'counter', help: 'KV-event frames, batches or events dropped, by reason.', labels: ['reason'] },
  applied: { name: 'kvroute_kv_events_applied_total', type: 'counter', help: 'KV events applied to the index, by type.', labels: ['type'] },
  seqGaps: {
    name: 'kvroute_kv_events_seq_gaps_total',
    type: 'counter',
    help: 'Per-pod sequence gaps, by outcome (replayed, partially_replayed, unrepaired).',
    labels: ['outcome'],
  },
  missingBatches: { name: 'kvroute_kv_events_missing_batches_total', type: 'counter', help: 'Batches missing in sequence gaps.', labels: [] },
  podStale: { name: 'kvroute_kv_events_pod_stale_total', type: 'counter', help: 'Times a pod was marked stale after an unrepaired gap.', labels: [] },
  publisherRestarts: { name: 'kvroute_kv_events_publisher_restarts_total', type: 'counter', help: 'Publisher restarts (sequence went backwards).', labels: [] },
  replayRequests: { name: 'kvroute_kv_events_replay_requests_total', type: 'counter', help: 'Replay requests, by result.', labels: ['result'] },
  replayedBatches: { name: 'kvroute_kv_events_replayed_batches_total', type: 'counter', help: 'Batches recovered through replay.', labels: [] },
  hashChecks: { name: 'kvroute_kv_events_hash_checks_total', type: 'counter', help: 'Engine hashes recomputed and compared.', labels: [] },
  hashMismatch: {
    name: 'kvroute_kv_events_hash_mismatch_total',
    type: 'counter',
    help: 'Engine hashes the EPP could not reproduce (PYTHONHASHSEED or --prefix-caching-hash-algo mismatch).',
    labels: [],
  },
} as const satisfies Record<string, MetricSpec>;

/** `outcome` label values of {@link KvEventMetrics.seqGaps}. */
export const SeqGapOutcomes = {
  replayed: 'replayed',
  partiallyReplayed: 'partially_replayed',
  unrepaired: 'unrepaired',
} as const;

/** Tokenization of prompts. */
export const TokenizationMetrics = {
  requests: {
    name: 'kvroute_tokenization_requests_total',
    type: 'counter',
    help: 'Prompts tokenized, by kind (completion, chat, token_ids) and result (ok or an error code).',
    labels: ['kind', 'result'],
  },
  tokens: {
    name: 'kvroute_tokenization_tokens_total',
    type: 'counter',
    help: 'Tokens returned by tokenization, by source: computed, or reused from the prefix store.',
    labels: ['source'],
  },
  duration: { name: 'kvroute_tokenization_duration_seconds', type: 'histogram', help: 'Tokenization wall time including the worker queue.', labels: ['kind'] },
} as const satisfies Record<string, MetricSpec>;

/**
 * Predicted versus actual prefix-cache hits, per picked pod. "Predicted" is the number of prompt
 * tokens the EPP expected the picked pod to have cached (its index's prefix match); "actual" is what
 * vLLM reported in the response's `usage.prompt_tokens_details.cached_tokens`. Only requests whose
 * response carried a usage report are counted, in all of these. The `pod` label names the picked
 * model-server pod.
 */
export const CachePredictionMetrics = {
  predictedTokens: {
    name: 'kvroute_cache_predicted_tokens_total',
    type: 'counter',
    help: 'Cached prompt tokens the EPP predicted on the picked pod.',
    labels: ['pod'],
  },
  actualTokens: {
    name: 'kvroute_cache_actual_tokens_total',
    type: 'counter',
    help: 'Cached prompt tokens vLLM reported (usage.prompt_tokens_details.cached_tokens).',
    labels: ['pod'],
  },
  promptTokens: {
    name: 'kvroute_cache_prompt_tokens_total',
    type: 'counter',
    help: 'Prompt tokens of the requests with a usage report.',
    labels: ['pod'],
  },
  predictionErrorRatio: {
    name: 'kvroute_cache_prediction_error_ratio',
    type: 'histogram',
    help: '(actual - predicted) cached tokens divided by the prompt tokens, per request: negative when the EPP over-predicted.',
    labels: ['pod'],
  },
  predictionMismatch: {
    name: 'kvroute_cache_prediction_mismatch_total',
    type: 'counter',
    help: 'Requests where the EPP predicted a cache hit and vLLM reported none, or the reverse, by kind.',
    labels: ['pod', 'kind'],
  },
} as const satisfies Record<string, MetricSpec>;

/** Buckets of {@link CachePredictionMetrics.predictionErrorRatio}: from -1 (predicted all, got none) to 1. */
export const PredictionErrorBuckets: readonly number[] = [-1, -0.75, -0.5, -0.25, -0.1, -0.01, 0, 0.01, 0.1, 0.25, 0.5, 0.75, 1];

/** `kind` label values of {@link CachePredictionMetrics.predictionMismatch}. */
export const PredictionMismatchKinds = {
  predictedHitActualMiss: 'predicted_hit_actual_miss',
  predictedMissActualHit: 'predicted_miss_actual_hit',
} as const;
export type PredictionMismatchKind = (typeof PredictionMismatchKinds)[keyof typeof PredictionMismatchKinds];

/** The EPP's self-diagnosis of why predictions go wrong. */
export const DiagnosisMetrics = {
  active: {
    name: 'kvroute_diagnosis_active',
    type: 'gauge',
    help: '1 while the EPP diagnoses this cause of wrong cache predictions for the pod, else 0.',
    labels: ['cause', 'pod'],
  },
} as const satisfies Record<string, MetricSpec>;

/** `cause` label values of {@link DiagnosisMetrics.active}. */
export const DiagnosisCauses = {
  /** The EPP's tokens differ from vLLM's (tokenizer or chat template mismatch). */
  tokenization: 'tokenization',
  /** Block hashes differ (PYTHONHASHSEED or hash algorithm mismatch). */
  hashSeed: 'hash-seed',
  /** The pod serves cache hits but publishes no KV events. */
  eventsMissing: 'events-missing',
  /** The pod's block size differs from the EPP's. */
  blockSize: 'block-size',
} as const;
export type DiagnosisCause = (typeof DiagnosisCauses)[keyof typeof DiagnosisCauses];

/** Every metric the EPP exports (beyond prom-client's default process metrics), by group. */
export const EppMetricGroups = {
  request: RequestMetrics,
  scheduler: SchedulerMetrics,
  pool: PoolMetrics,
  info: InfoMetrics,
  configReload: ConfigReloadMetrics,
  scrape: ScrapeMetrics,
  index: IndexMetrics,
  kvEvents: KvEventMetrics,
  tokenization: TokenizationMetrics,
  cachePrediction: CachePredictionMetrics,
  diagnosis: DiagnosisMetrics,
} as const;

/** Every EPP metric, flattened. */
export const AllEppMetrics: readonly MetricSpec[] = Object.values(EppMetricGroups).flatMap((g) => Object.values(g as Record<string, MetricSpec>));

/**
 * vLLM (V1 engine) metric names: the ones the EPP scrapes for scheduling and the ones the dashboard
 * and alerts query (vLLM adds the `model_name` label; Prometheus adds `namespace` and `pod`).
 */
export const VllmMetrics = {
  requestsWaiting: 'vllm:num_requests_waiting',
  requestsRunning: 'vllm:num_requests_running',
  kvCacheUsage: 'vllm:kv_cache_usage_perc',
  /** Name of the KV-cache usage gauge in older vLLM releases (the EPP reads it when the new one is absent). */
  gpuCacheUsageLegacy: 'vllm:gpu_cache_usage_perc',
  /** Info gauge whose `block_size` label the EPP checks against its own block size. */
  cacheConfigInfo: 'vllm:cache_config_info',
  prefixCacheHits: 'vllm:prefix_cache_hits_total',
  prefixCacheQueries: 'vllm:prefix_cache_queries_total',
  /** Histogram. */
  timeToFirstToken: 'vllm:time_to_first_token_seconds',
} as const;
