/**
 * Scrapes every endpoint's model-server metrics (vLLM's `/metrics` by default) on a fixed interval
 * (default 50 ms) with a timeout and stores the load signals in the EndpointStore with their scrape
 * time. A scrape that fails leaves the previous sample to age out: after the staleness limit the
 * store reports the load as unknown. The metric names, path, port and scheme are configurable
 * (llm-d's metric flags: SGLang's `sglang:num_queue_reqs`, TensorRT-LLM's labelled gauges, ...).
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../util/logger.js';
import type { EndpointStore, PodMetrics } from './endpoint-store.js';
import { parsePrometheusText, type Sample } from './prom-text.js';
import { ScrapeMetrics } from '../contract/metrics.js';

export const VllmMetricNames = {
  waiting: 'vllm:num_requests_waiting',
  running: 'vllm:num_requests_running',
  kvCacheUsage: 'vllm:kv_cache_usage_perc',
  /** Older vLLM name of the KV-cache usage gauge. */
  gpuCacheUsage: 'vllm:gpu_cache_usage_perc',
  cacheConfig: 'vllm:cache_config_info',
} as const;

/** A metric and the labels its samples must carry (llm-d's `name{label=value,...}` metric flags). */
export interface MetricSpec {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** The metrics the scraper reads on a model server (llm-d's metric flags). */
export interface ModelServerMetricNames {
  /** Waiting requests (summed over matching samples). */
  readonly queued: MetricSpec;
  /** Running requests (summed). */
  readonly running: MetricSpec;
  /** KV-cache usage 0–1 (the largest matching sample); undefined = not exported. */
  readonly kvCacheUsage?: MetricSpec;
  /** Info metric with a `block_size` (or `page_size`) label and, from vLLM, `num_gpu_blocks`; undefined = none. */
  readonly cacheInfo?: MetricSpec;
}

/**
 * Parses `name` or `name{label=value,...}` (label values optionally quoted). A value wrapped in
 * double quotes as a whole is unwrapped first (llm-d's chart renders some flags as
 * `--flag="name"`, quotes included). Returns undefined for "" (metric not exported).
 */
export function parseMetricSpec(spec: string): MetricSpec | undefined {
  let v = spec.trim();
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).trim();
  if (v === '') return undefined;
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{([^{}]*)\})?$/.exec(v);
  if (!m) throw new Error(`metric "${spec}" is not name or name{label=value,...}`);
  const labels: Record<string, string> = {};
  for (const pair of (m[2] ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    const key = eq === -1 ? '' : pair.slice(0, eq).trim();
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(key)) throw new Error(`metric "${spec}": "${pair}" is not label=value`);
    labels[key] = pair.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return { name: m[1] as string, labels };
}

/** vLLM's metric names (the default). */
export const VLLM_METRICS: ModelServerMetricNames = {
  queued: { name: VllmMetricNames.waiting, labels: {} },
  running: { name: VllmMetricNames.running, labels: {} },
  kvCacheUsage: { name: VllmMetricNames.kvCacheUsage, labels: {} },
  cacheInfo: { name: VllmMetricNames.cacheConfig, labels: {} },
};

function matches(s: Sample, spec: MetricSpec | undefined): boolean {
  if (spec === undefined || s.name !== spec.name) return false;
  for (const k in spec.labels) if (s.labels[k] !== spec.labels[k]) return false;
  return true;
}

/** Metric names to parse for `names` (vLLM's older KV gauge too when the vLLM name is used). */
export function wantedMetricNames(names: ModelServerMetricNames): Set<string> {
  const out = new Set<string>([names.queued.name, names.running.name]);
  if (names.kvCacheUsage) out.add(names.kvCacheUsage.name);
  if (names.kvCacheUsage?.name === VllmMetricNames.kvCacheUsage) out.add(VllmMetricNames.gpuCacheUsage);
  if (names.cacheInfo) out.add(names.cacheInfo.name);
  return out;
}

/** Extracts the load signals named by `names`; undefined when the queued/running gauges are missing. */
export function extractMetrics(samples: readonly Sample[], scrapedAt: number, names: ModelServerMetricNames = VLLM_METRICS): PodMetrics | undefined {
  let waiting: number | undefined;
  let running: number | undefined;
  let kv: number | undefined;
  let gpuKv: number | undefined;
  let blockSize: number | undefined;
  let numGpuBlocks: number | undefined;
  const vllmKv = names.kvCacheUsage?.name === VllmMetricNames.kvCacheUsage;
  for (const s of samples) {
    if (matches(s, names.queued)) waiting = (waiting ?? 0) + s.value;
    if (matches(s, names.running)) running = (running ?? 0) + s.value;
    if (matches(s, names.kvCacheUsage)) kv = Math.max(kv ?? 0, s.value);
    if (vllmKv && s.name === VllmMetricNames.gpuCacheUsage) gpuKv = Math.max(gpuKv ?? 0, s.value);
    if (matches(s, names.cacheInfo)) {
      const b = Number(s.labels.block_size ?? s.labels.page_size);
      if (Number.isInteger(b) && b > 0) blockSize = b;
      // vLLM writes the KV capacity as a label; the predicted-TTFT scorer's memory factor needs it.
      const n = Number(s.labels.num_gpu_blocks);
      if (Number.isInteger(n) && n > 0) numGpuBlocks = n;
    }
  }
  if (waiting === undefined || running === undefined) return undefined;
  return { waiting, running, kvCacheUsage: kv ?? gpuKv, blockSize, ...(numGpuBlocks !== undefined ? { numGpuBlocks } : {}), scrapedAt };
}

/** Extracts the load signals from a vLLM metrics page; undefined when the core gauges are missing. */
export function extractVllmMetrics(samples: readonly Sample[], scrapedAt: number): PodMetrics | undefined {
  return extractMetrics(samples, scrapedAt, VLLM_METRICS);
}

/** GET `url` as text; with `insecure`, an https server's certificate is not verified. */
async function getText(url: string, signal: AbortSignal, insecure: boolean): Promise<{ ok: boolean; status: number; text: string }> {
  if (!insecure || !url.startsWith('https:')) {
    const res = await fetch(url, { signal });
    return { ok: res.ok, status: res.status, text: await res.text() };
  }
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        resolve({ ok: status >= 200 && status < 300, status, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
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
  /**
   * Metric names to read (llm-d's metric flags).
   * @default VLLM_METRICS
   */
  readonly metricNames?: ModelServerMetricNames;
  /**
   * With https metrics URLs: skip certificate verification.
   * @default false
   */
  readonly insecureSkipVerify?: boolean;
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
  private readonly names: ModelServerMetricNames;
  private readonly wanted: Set<string>;

  constructor(private readonly opts: MetricsScraperOptions) {
    this.intervalMs = opts.intervalMs ?? 50;
    this.timeoutMs = opts.timeoutMs ?? 200;
    this.now = opts.now ?? Date.now;
    this.names = opts.metricNames ?? VLLM_METRICS;
    this.wanted = wantedMetricNames(this.names);
    if (opts.registry) {
      this.errors = new Counter({
        name: ScrapeMetrics.errors.name,
        help: 'Failed scrapes of model-server /metrics, by reason (timeout, http, network, parse).',
        labelNames: ['reason'],
        registers: [opts.registry],
      });
      this.duration = new Histogram({
        name: ScrapeMetrics.duration.name,
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
      const res = await getText(url, ctl.signal, this.opts.insecureSkipVerify ?? false);
      if (!res.ok) return this.fail('http', address, `HTTP ${res.status}`);
      const m = extractMetrics(parsePrometheusText(res.text, this.wanted), this.now(), this.names);
      if (!m) return this.fail('parse', address, `no ${this.names.queued.name}/${this.names.running.name} in the page`);
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

/** Where a model server's metrics are (`scheduling.modelServerMetrics` location fields). */
export interface MetricsLocation {
  readonly scheme: 'http' | 'https';
  readonly path: string;
  /** Unset = the endpoint's own port. */
  readonly port?: number;
}

/** Metrics URL of the endpoint at `address` (`ip:port`, IPv6 bracketed). @default location http, /metrics, the endpoint's port */
export function metricsUrlFor(address: string, loc?: MetricsLocation): string {
  if (!loc) return `http://${address}/metrics`;
  const host = address.slice(0, address.lastIndexOf(':'));
  const port = loc.port ?? address.slice(address.lastIndexOf(':') + 1);
  return `${loc.scheme}://${host}:${port}${loc.path}`;
}

/** Metric names from config strings (`scheduling.modelServerMetrics`); undefined = vLLM's. */
export function metricNamesFrom(cfg: { queued: string; running: string; kvCacheUsage: string; cacheInfo: string } | undefined): ModelServerMetricNames {
  if (!cfg) return VLLM_METRICS;
  const need = (flag: string, v: string): MetricSpec => {
    const spec = parseMetricSpec(v);
    if (!spec) throw new Error(`modelServerMetrics.${flag} is empty; the EPP needs the ${flag} requests metric`);
    return spec;
  };
  return { queued: need('queued', cfg.queued), running: need('running', cfg.running), kvCacheUsage: parseMetricSpec(cfg.kvCacheUsage), cacheInfo: parseMetricSpec(cfg.cacheInfo) };
}
