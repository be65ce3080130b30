/**
 * Scrapes every endpoint's vLLM `/metrics` on a fixed interval (default 50 ms) with a timeout and
 * stores the load signals in the EndpointStore with their scrape time. A scrape that fails leaves
 * the previous sample to age out: after the staleness limit the store reports the load as unknown.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../util/logger.js';
import type { EndpointStore, PodMetrics } from './endpoint-store.js';
import { parsePrometheusText, type Sample } from './prom-text.js';

export const VllmMetricNames = {
  waiting: 'vllm:num_requests_waiting',
  running: 'vllm:num_requests_running',
  kvCacheUsage: 'vllm:kv_cache_usage_perc',
  /** Older vLLM name of the KV-cache usage gauge. */
  gpuCacheUsage: 'vllm:gpu_cache_usage_perc',
  cacheConfig: 'vllm:cache_config_info',
} as const;

const WANTED = new Set<string>(Object.values(VllmMetricNames));

/** Extracts the load signals from a vLLM metrics page; undefined when the core gauges are missing. */
export function extractVllmMetrics(samples: readonly Sample[], scrapedAt: number): PodMetrics | undefined {
  let waiting: number | undefined;
  let running: number | undefined;
  let kv: number | undefined;
  let gpuKv: number | undefined;
  let blockSize: number | undefined;
  for (const s of samples) {
    switch (s.name) {
      case VllmMetricNames.waiting:
        waiting = (waiting ?? 0) + s.value;
        break;
      case VllmMetricNames.running:
        running = (running ?? 0) + s.value;
        break;
      case VllmMetricNames.kvCacheUsage:
        kv = Math.max(kv ?? 0, s.value);
        break;
      case VllmMetricNames.gpuCacheUsage:
        gpuKv = Math.max(gpuKv ?? 0, s.value);
        break;
      case VllmMetricNames.cacheConfig: {
        const b = Number(s.labels.block_size);
        if (Number.isInteger(b) && b > 0) blockSize = b;
        break;
      }
    }
  }
  if (waiting === undefined || running === undefined) return undefined;
  return { waiting, running, kvCacheUsage: kv ?? gpuKv, blockSize, scrapedAt };
}

export interface MetricsScraperOptions {
  readonly store: EndpointStore;
  readonly logger: Logger;
  /**
   * Scrape interval per endpoint.
   * @default 50
   */
  readonly intervalMs?: number;
  /**
   * Timeout of one scrape.
   * @default 200
   */
  readonly timeoutMs?: number;
  /** Block size the EPP is configured with; a pod reporting another one is warned about. */
  readonly expectedBlockSize?: number;
  /**
   * Registry for kvroute_metrics_scrape_* metrics.
   * @default undefined (no metrics)
   */
  readonly registry?: Registry;
  /**
   * Clock in ms.
   * @default Date.now
   */
  readonly now?: () => number;
}

export class MetricsScraper {
  private timer: NodeJS.Timeout | undefined;
  private readonly busy = new Set<string>();
  private readonly warnedBlockSize = new Set<string>();
  private readonly controllers = new Set<AbortController>();
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly errors?: Counter<'reason'>;
  private readonly duration?: Histogram;

  constructor(private readonly opts: MetricsScraperOptions) {
    this.intervalMs = opts.intervalMs ?? 50;
    this.timeoutMs = opts.timeoutMs ?? 200;
    this.now = opts.now ?? Date.now;
    if (opts.registry) {
      this.errors = new Counter({
        name: 'kvroute_metrics_scrape_errors_total',
        help: 'Failed scrapes of model-server /metrics, by reason (timeout, http, network, parse).',
        labelNames: ['reason'],
        registers: [opts.registry],
      });
      this.duration = new Histogram({
        name: 'kvroute_metrics_scrape_duration_seconds',
        help: 'Duration of successful model-server /metrics scrapes.',
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
        registers: [opts.registry],
      });
    }
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    this.tick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const c of this.controllers) c.abort();
  }

  /** Starts a scrape of every endpoint not already being scraped. */
  tick(): void {
    for (const ep of this.opts.store.list()) {
      if (this.busy.has(ep.address)) continue;
      this.busy.add(ep.address);
      void this.scrapeOne(ep.address, ep.metricsUrl).finally(() => this.busy.delete(ep.address));
    }
  }

  /** Scrapes one endpoint now; resolves to whether it succeeded. */
  async scrapeOne(address: string, url: string): Promise<boolean> {
    const ctl = new AbortController();
    this.controllers.add(ctl);
    const timer = setTimeout(() => ctl.abort(), this.timeoutMs);
    const started = performance.now();
    try {
      const res = await fetch(url, { signal: ctl.signal });
      const text = await res.text();
      if (!res.ok) return this.fail('http', address, `HTTP ${res.status}`);
      const m = extractVllmMetrics(parsePrometheusText(text, WANTED), this.now());
      if (!m) return this.fail('parse', address, `no ${VllmMetricNames.waiting}/${VllmMetricNames.running} in the page`);
      this.opts.store.setMetrics(address, m);
      this.duration?.observe((performance.now() - started) / 1000);
      const expected = this.opts.expectedBlockSize;
      if (expected !== undefined && m.blockSize !== undefined && m.blockSize !== expected && !this.warnedBlockSize.has(address)) {
        this.warnedBlockSize.add(address);
        this.opts.logger.warn(
          { pod: address, podBlockSize: m.blockSize, eppBlockSize: expected },
          'pod reports a different KV block size than the EPP is configured with; set the EPP blockSize to vLLM --block-size',
        );
      }
      return true;
    } catch (e) {
      const reason = ctl.signal.aborted ? 'timeout' : 'network';
      return this.fail(reason, address, (e as Error).message);
    } finally {
      clearTimeout(timer);
      this.controllers.delete(ctl);
    }
  }

  private fail(reason: string, address: string, detail: string): false {
    this.errors?.inc({ reason });
    this.opts.logger.debug({ pod: address, reason, detail }, 'metrics scrape failed');
    return false;
  }
}
