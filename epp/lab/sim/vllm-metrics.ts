/**
 * vLLM-format metrics of a simulated pod, rendered as Prometheus text exposition with vLLM's
 * exact metric names and labels (`model_name`, `engine`), as a vLLM V1 server serves them on
 * `/metrics`. `vllm:cache_config_info` carries the cache config as labels with value 1.
 */
import type { PodProfile } from './profiles.js';

export interface VllmMetricValues {
  /** `vllm:prefix_cache_queries_total`: prompt tokens queried against the prefix cache. */
  readonly prefixCacheQueries: number;
  /** `vllm:prefix_cache_hits_total`: prompt tokens served from the prefix cache. */
  readonly prefixCacheHits: number;
  /** `vllm:num_requests_waiting`. */
  readonly numRequestsWaiting: number;
  /** `vllm:num_requests_running`. */
  readonly numRequestsRunning: number;
  /** `vllm:kv_cache_usage_perc`: fraction (0..1) of KV blocks in use. */
  readonly kvCacheUsagePerc: number;
}

/** vLLM metric names (the strings scrapers depend on). */
export const VllmMetricNames = {
  prefixCacheQueries: 'vllm:prefix_cache_queries_total',
  prefixCacheHits: 'vllm:prefix_cache_hits_total',
  numRequestsWaiting: 'vllm:num_requests_waiting',
  numRequestsRunning: 'vllm:num_requests_running',
  kvCacheUsagePerc: 'vllm:kv_cache_usage_perc',
  cacheConfigInfo: 'vllm:cache_config_info',
  timeToFirstToken: 'vllm:time_to_first_token_seconds',
} as const;

/** Upper bounds (seconds) of vLLM's `vllm:time_to_first_token_seconds` buckets (before `+Inf`). */
export const TTFT_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];

/** A cumulative histogram of TTFTs (seconds) in vLLM's buckets. */
export class TtftHistogram {
  /** Observations ≤ each bound of TTFT_BUCKETS (not yet cumulative). */
  private readonly perBucket = new Array<number>(TTFT_BUCKETS.length).fill(0);
  count = 0;
  sum = 0;

  observe(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) throw new Error(`TtftHistogram.observe: seconds must be a finite non-negative number (got ${String(seconds)})`);
    this.count++;
    this.sum += seconds;
    const i = TTFT_BUCKETS.findIndex((b) => seconds <= b);
    if (i >= 0) this.perBucket[i] = (this.perBucket[i] ?? 0) + 1;
  }

  /** `[le, cumulative count]` per bucket, `+Inf` last. */
  buckets(): [string, number][] {
    let acc = 0;
    const out: [string, number][] = TTFT_BUCKETS.map((b, i) => {
      acc += this.perBucket[i] ?? 0;
      return [String(b), acc];
    });
    out.push(['+Inf', this.count]);
    return out;
  }
}

export interface RenderVllmMetricsOptions {
  /** `model_name` label (vLLM `--served-model-name`). */
  readonly modelName: string;
  /** Cache config for `vllm:cache_config_info`. */
  readonly profile: Pick<PodProfile, 'blockSize' | 'numBlocks' | 'gpuMemoryUtilization'>;
  /** `engine` label. @default '0' */
  readonly engine?: string;
  /** `prefix_caching_hash_algo` label of `vllm:cache_config_info`. @default 'sha256_cbor' */
  readonly hashAlgo?: string;
  /** TTFTs for `vllm:time_to_first_token_seconds`. @default undefined (the histogram is not rendered) */
  readonly ttft?: TtftHistogram;
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return Number.isInteger(v) ? `${v}.0` : String(v);
}

/** Prometheus text (version 0.0.4) of the values, in vLLM's names. */
export function renderVllmMetrics(values: VllmMetricValues, opts: RenderVllmMetricsOptions): string {
  const labels = `{engine="${esc(opts.engine ?? '0')}",model_name="${esc(opts.modelName)}"}`;
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, value: number): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${num(value)}`);
  };
  metric(VllmMetricNames.numRequestsRunning, 'gauge', 'Number of requests in model execution batches.', values.numRequestsRunning);
  metric(VllmMetricNames.numRequestsWaiting, 'gauge', 'Number of requests waiting to be processed.', values.numRequestsWaiting);
  metric(VllmMetricNames.kvCacheUsagePerc, 'gauge', 'KV-cache usage. 1 means 100 percent usage.', values.kvCacheUsagePerc);
  metric(
    VllmMetricNames.prefixCacheQueries,
    'counter',
    'Prefix cache queries, in terms of number of queried tokens.',
    values.prefixCacheQueries,
  );
  metric(VllmMetricNames.prefixCacheHits, 'counter', 'Prefix cache hits, in terms of number of cached tokens.', values.prefixCacheHits);
  if (opts.ttft !== undefined) {
    const name = VllmMetricNames.timeToFirstToken;
    const inner = labels.slice(1, -1);
    lines.push(`# HELP ${name} Histogram of time to first token in seconds.`, `# TYPE ${name} histogram`);
    for (const [le, n] of opts.ttft.buckets()) lines.push(`${name}_bucket{${inner},le="${le === '+Inf' ? '+Inf' : num(Number(le))}"} ${num(n)}`);
    lines.push(`${name}_sum${labels} ${num(opts.ttft.sum)}`, `${name}_count${labels} ${num(opts.ttft.count)}`);
  }
  const p = opts.profile;
  const info =
    `{block_size="${p.blockSize}",cache_dtype="auto",enable_prefix_caching="True",` +
    `gpu_memory_utilization="${p.gpuMemoryUtilization}",num_gpu_blocks="${p.numBlocks}",` +
    `prefix_caching_hash_algo="${esc(opts.hashAlgo ?? 'sha256_cbor')}"}`;
  lines.push(
    `# HELP ${VllmMetricNames.cacheConfigInfo} Information of the LLMEngine CacheConfig`,
    `# TYPE ${VllmMetricNames.cacheConfigInfo} gauge`,
    `${VllmMetricNames.cacheConfigInfo}${info} 1.0`,
  );
  return lines.join('\n') + '\n';
}
