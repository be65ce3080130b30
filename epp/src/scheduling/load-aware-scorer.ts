/**
 * llm-d's `load-aware-scorer`: prefers pods with short waiting queues, on a fixed scale rather
 * than relative to the other candidates. A pod with an empty queue scores 0.5; otherwise
 * 0.5 · (1 − min(waiting, threshold) / threshold), so a queue of `threshold` or more scores 0.
 * The score never exceeds 0.5: an idle pod is merely "not loaded", which leaves half of the
 * weight for other scorers (in llm-d's sample it is paired with the prefix-cache scorer).
 */
import type { EndpointState } from '../datalayer/endpoint-store.js';
import { UNKNOWN_LOAD_SCORE } from './scorers.js';
import type { Scorer, SchedulingRequest } from './types.js';

/** llm-d's default `threshold`: a queue this deep scores 0. */
export const LOAD_AWARE_DEFAULT_THRESHOLD = 128;

export class LoadAwareScorer implements Scorer {
  readonly name = 'load-aware-scorer';

  /** @param threshold waiting requests at which a pod scores 0. @default 128 */
  constructor(private readonly threshold = LOAD_AWARE_DEFAULT_THRESHOLD) {
    if (!Number.isInteger(threshold) || threshold < 1) throw new RangeError(`load-aware-scorer threshold must be a positive integer; got ${threshold}`);
  }

  score(_req: SchedulingRequest, candidates: readonly EndpointState[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const c of candidates) {
      const q = c.metrics?.waiting;
      if (q === undefined || !Number.isFinite(q)) out.set(c.endpoint.address, UNKNOWN_LOAD_SCORE);
      else if (q <= 0) out.set(c.endpoint.address, 0.5);
      else out.set(c.endpoint.address, 0.5 * (1 - Math.min(q, this.threshold) / this.threshold));
    }
    return out;
  }
}
