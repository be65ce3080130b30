/**
 * The EPP's view of the fleet: endpoints (from static config or Kubernetes discovery), the load
 * metrics scraped from each pod's vLLM `/metrics`, and the EPP's own in-flight request counts.
 *
 * Metrics carry their scrape time; a reader asks for a snapshot "as of now" and gets `undefined`
 * for metrics older than the staleness limit: unknown load is reported as unknown, never as zero.
 */
import type { Role } from '../contract/names.js';

export interface Endpoint {
  /** `ip:port` the gateway routes to; also the pod id in KV-event topics. */
  readonly address: string;
  /** Pod name. */
  readonly name: string;
  /** `llm-d.ai/role` of the pod. */
  readonly role: Role;
  /** URL of the pod's Prometheus metrics. */
  readonly metricsUrl: string;
}

/** Load signals of one pod, as scraped. */
export interface PodMetrics {
  /** `vllm:num_requests_waiting`. */
  readonly waiting: number;
  /** `vllm:num_requests_running`. */
  readonly running: number;
  /** `vllm:kv_cache_usage_perc` (or `vllm:gpu_cache_usage_perc`), 0–1; undefined if absent. */
  readonly kvCacheUsage: number | undefined;
  /** `block_size` label of `vllm:cache_config_info`, if exported. */
  readonly blockSize: number | undefined;
  /** `num_gpu_blocks` label of `vllm:cache_config_info`, if exported. @default undefined */
  readonly numGpuBlocks?: number;
  /** `Date.now()`-style ms when scraped. */
  readonly scrapedAt: number;
}

/** One endpoint with everything the scheduler reads about it. */
export interface EndpointState {
  readonly endpoint: Endpoint;
  /** Fresh metrics, or undefined when never scraped or stale. */
  readonly metrics: PodMetrics | undefined;
  /** Requests the EPP sent there that have not finished yet. */
  readonly inFlight: number;
}

export type EndpointListener = (event: 'added' | 'removed', endpoint: Endpoint) => void;

export interface EndpointStoreOptions {
  /**
   * Metrics older than this are unknown.
   * @default 500
   */
  readonly metricsStalenessMs?: number;
  /**
   * Clock in ms.
   * @default Date.now
   */
  readonly now?: () => number;
}

export class EndpointStore {
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly metrics = new Map<string, PodMetrics>();
  private readonly inFlight = new Map<string, number>();
  private readonly listeners: EndpointListener[] = [];
  private readonly stalenessMs: number;
  private readonly now: () => number;

  constructor(opts: EndpointStoreOptions = {}) {
    this.stalenessMs = opts.metricsStalenessMs ?? 500;
    this.now = opts.now ?? Date.now;
  }

  /** Subscribe to endpoint additions and removals (e.g. to clear a removed pod's index entries). */
  onChange(listener: EndpointListener): void {
    this.listeners.push(listener);
  }

  /** Adds or updates an endpoint. */
  upsert(endpoint: Endpoint): void {
    const prev = this.endpoints.get(endpoint.address);
    this.endpoints.set(endpoint.address, endpoint);
    if (!prev) for (const l of this.listeners) l('added', endpoint);
  }

  /** Removes an endpoint with its metrics; listeners are told. */
  remove(address: string): void {
    const ep = this.endpoints.get(address);
    if (!ep) return;
    this.endpoints.delete(address);
    this.metrics.delete(address);
    this.inFlight.delete(address);
    for (const l of this.listeners) l('removed', ep);
  }

  /** Replaces the whole set (static discovery, or a full resync). */
  replaceAll(endpoints: readonly Endpoint[]): void {
    const keep = new Set(endpoints.map((e) => e.address));
    for (const a of [...this.endpoints.keys()]) if (!keep.has(a)) this.remove(a);
    for (const e of endpoints) this.upsert(e);
  }

  get(address: string): Endpoint | undefined {
    return this.endpoints.get(address);
  }

  list(): Endpoint[] {
    return [...this.endpoints.values()];
  }

  get size(): number {
    return this.endpoints.size;
  }

  /** Records a scrape result. Ignored for endpoints that are gone. */
  setMetrics(address: string, m: PodMetrics): void {
    if (this.endpoints.has(address)) this.metrics.set(address, m);
  }

  /** Metrics if fresh, else undefined. */
  freshMetrics(address: string, at = this.now()): PodMetrics | undefined {
    const m = this.metrics.get(address);
    if (!m || at - m.scrapedAt > this.stalenessMs) return undefined;
    return m;
  }

  /** Counts one more in-flight request to `address`; returns a release function (idempotent). */
  acquire(address: string): () => void {
    this.inFlight.set(address, (this.inFlight.get(address) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = this.inFlight.get(address);
      if (n !== undefined) this.inFlight.set(address, Math.max(0, n - 1));
    };
  }

  inFlightOf(address: string): number {
    return this.inFlight.get(address) ?? 0;
  }

  /** Snapshot of every endpoint for one scheduling cycle. */
  snapshot(at = this.now()): EndpointState[] {
    return this.list().map((endpoint) => ({
      endpoint,
      metrics: this.freshMetrics(endpoint.address, at),
      inFlight: this.inFlightOf(endpoint.address),
    }));
  }

  /** Endpoints with fresh metrics (readiness, inference_pool_ready_pods). */
  countFresh(at = this.now()): number {
    let n = 0;
    for (const a of this.endpoints.keys()) if (this.freshMetrics(a, at)) n++;
    return n;
  }
}
