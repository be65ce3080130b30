/**
 * Pool saturation for admission, as GIE's `utilization-detector` computes it: per endpoint
 * `max(waiting / queueDepthThreshold, kvCacheUsage / kvCacheUtilThreshold)`, an endpoint without
 * fresh metrics counts as saturated (1.0, never as idle), and the pool is the unweighted mean over
 * the request's candidates. At ≥ 1.0 the pool is saturated and sheddable requests are dropped.
 */
import type { EndpointState } from '../datalayer/endpoint-store.js';

export interface UtilizationThresholds {
  /** Waiting requests at which an endpoint counts as saturated (GIE default 5). */
  readonly queueDepthThreshold: number;
  /** KV-cache usage (0–1) at which an endpoint counts as saturated (GIE default 0.8). */
  readonly kvCacheUtilThreshold: number;
}

/** One endpoint's saturation; 1.0 when its metrics are missing, stale or not numbers (NaN, ±Inf). */
export function endpointSaturation(s: EndpointState, t: UtilizationThresholds): number {
  const m = s.metrics;
  if (m === undefined) return 1;
  const queue = m.waiting / t.queueDepthThreshold;
  const v = m.kvCacheUsage === undefined ? queue : Math.max(queue, m.kvCacheUsage / t.kvCacheUtilThreshold);
  // a pod exporting NaN is as unknown as a silent one; NaN must not make the whole pool "saturated"
  return Number.isFinite(v) && v >= 0 ? v : 1;
}

/** Mean saturation of `candidates` (1.0 for none: nothing can take the request). */
export function poolSaturation(candidates: readonly EndpointState[], t: UtilizationThresholds): number {
  if (candidates.length === 0) return 1;
  let sum = 0;
  for (const c of candidates) sum += endpointSaturation(c, t);
  return sum / candidates.length;
}
