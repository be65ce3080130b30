/**
 * Scorers. Each returns a score in [0, 1] per candidate. Load scorers follow llm-d's formulas;
 * a candidate whose scraped metrics are unknown (never scraped, or stale) gets UNKNOWN_LOAD_SCORE
 * from the metric-based scorers: it neither attracts nor repels traffic on a signal the EPP does
 * not have, and the in-flight scorer (the EPP's own counts, always known) keeps balancing it.
 */
import type { EndpointState } from '../datalayer/endpoint-store.js';
import type { Indexer } from '../kvindex/indexer.js';
import type { CycleState, Scorer, SchedulingRequest } from './types.js';

/** Score a metric-based scorer gives a candidate whose metrics are unknown. */
export const UNKNOWN_LOAD_SCORE = 0.5;

/** Min-max "lower is better" over candidates with a known value; all equal → 1. */
function minMaxLowerIsBetter(candidates: readonly EndpointState[], value: (c: EndpointState) => number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  let min = Infinity;
  let max = -Infinity;
  for (const c of candidates) {
    const v = value(c);
    if (v === undefined) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  for (const c of candidates) {
    const v = value(c);
    if (v === undefined) out.set(c.endpoint.address, UNKNOWN_LOAD_SCORE);
    else out.set(c.endpoint.address, max === min ? 1 : (max - v) / (max - min));
  }
  return out;
}

/** Precise prefix-cache scorer: longest run of the prompt's blocks held per pod (KV-event index). */
export class PrecisePrefixScorer implements Scorer {
  readonly name = 'precise-prefix-cache-scorer';
  constructor(private readonly indexer: Indexer) {}

  async score(req: SchedulingRequest, candidates: readonly EndpointState[], state: CycleState): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (!req.tokens) return out;
    const pods = new Set(candidates.map((c) => c.endpoint.address));
    const r = await this.indexer.scoreTokens(req.tokens, req.model, pods);
    state.totalBlocks = r.requestKeys.length;
    state.requestKeys = r.requestKeys;
    state.prefix = new Map(r.pods.map((p) => [p.pod, p]));
    for (const p of r.pods) out.set(p.pod, p.score);
    return out;
  }
}

/** Waiting-queue depth (`vllm:num_requests_waiting`), min-max across candidates. */
export class QueueScorer implements Scorer {
  readonly name = 'queue-scorer';
  score(_req: SchedulingRequest, candidates: readonly EndpointState[]): Map<string, number> {
    return minMaxLowerIsBetter(candidates, (c) => c.metrics?.waiting);
  }
}

/** 1 − KV-cache utilization (`vllm:kv_cache_usage_perc`). */
export class KvCacheUtilizationScorer implements Scorer {
  readonly name = 'kv-cache-utilization-scorer';
  score(_req: SchedulingRequest, candidates: readonly EndpointState[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const c of candidates) {
      const u = c.metrics?.kvCacheUsage;
      out.set(c.endpoint.address, u === undefined ? UNKNOWN_LOAD_SCORE : Math.min(1, Math.max(0, 1 - u)));
    }
    return out;
  }
}

/**
 * The EPP's own in-flight requests per pod (llm-d active-request-scorer): idle (≤ idleThreshold) → 1,
 * else (max − count) / max over candidates. Reacts at once, unlike scraped metrics.
 */
export class ActiveRequestScorer implements Scorer {
  readonly name = 'active-request-scorer';
  /**
   * @param idleThreshold in-flight requests a pod may have and still count as idle. @default 0
   * @param maxBusyScore scale of a busy pod's score (llm-d's `maxBusyScore`). @default 1
   */
  constructor(
    private readonly idleThreshold = 0,
    private readonly maxBusyScore = 1,
  ) {}
  score(_req: SchedulingRequest, candidates: readonly EndpointState[]): Map<string, number> {
    const out = new Map<string, number>();
    let max = 0;
    for (const c of candidates) max = Math.max(max, c.inFlight);
    for (const c of candidates) {
      const n = c.inFlight;
      out.set(c.endpoint.address, n <= this.idleThreshold || max === 0 ? 1 : ((max - n) / max) * this.maxBusyScore);
    }
    return out;
  }
}

/**
 * Session affinity: 1 for the pod that served the session's previous request, else 0. Sessions are
 * remembered in a bounded LRU map.
 */
export class SessionAffinityScorer implements Scorer {
  readonly name = 'session-affinity-scorer';
  private readonly sessions = new Map<string, string>();
  constructor(private readonly capacity = 100_000) {}

  score(req: SchedulingRequest, candidates: readonly EndpointState[]): Map<string, number> {
    const out = new Map<string, number>();
    const pod = req.sessionId === undefined ? undefined : this.sessions.get(req.sessionId);
    for (const c of candidates) out.set(c.endpoint.address, c.endpoint.address === pod ? 1 : 0);
    return out;
  }

  /** Remembers where a session went (called after the pick). */
  record(sessionId: string, pod: string): void {
    this.sessions.delete(sessionId);
    this.sessions.set(sessionId, pod);
    if (this.sessions.size > this.capacity) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
  }
}
