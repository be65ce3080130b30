/**
 * llm-d's `no-hit-lru-scorer`: spreads "cold" requests (no candidate holds any of the prompt's
 * prefix, by the prefix scorers of the same profile) over the pods that served cold requests least
 * recently, so new prefixes do not pile up on one pod.
 *
 * - Warm request: every candidate scores 0.5.
 * - Cold request, N candidates: pods never used for a cold request score 1 − i/(N−1) in candidate
 *   order (i = 0, 1, ...); the others score max(0, 1 − (neverUsed + lruPos)/(N−1)) with lruPos 0
 *   for the least recently used. One candidate scores 1.
 * - The primary pick of a cold request becomes the most recently used (LRU of `lruSize` pods).
 *
 * It reads the prefix scorers' results from the cycle state, so it runs after them.
 */
import type { EndpointState } from '../datalayer/endpoint-store.js';
import { NOTHING_BOOKED } from './prefix-cache-scorer.js';
import type { CycleState, Reservation, Scorer, SchedulingRequest } from './types.js';

export class NoHitLruScorer implements Scorer {
  readonly name = 'no-hit-lru-scorer';
  readonly readsCycleState = true;
  /** Pods in use order: first = least recently used. */
  private readonly lru = new Map<string, true>();
  private readonly cold = new WeakSet<CycleState>();

  /** @param lruSize pods remembered. @default 1024 */
  constructor(private readonly lruSize = 1024) {}

  /** Whether no candidate holds any prefix of the request, per the cycle state. */
  static isCold(state: CycleState): boolean {
    for (const p of state.prefix?.values() ?? []) if (p.consecutiveBlocks > 0) return false;
    for (const n of state.approximatePrefix?.values() ?? []) if (n > 0) return false;
    return true;
  }

  score(_req: SchedulingRequest, candidates: readonly EndpointState[], state: CycleState): Map<string, number> {
    const out = new Map<string, number>();
    if (!NoHitLruScorer.isCold(state)) {
      for (const c of candidates) out.set(c.endpoint.address, 0.5);
      return out;
    }
    this.cold.add(state);
    const n = candidates.length;
    if (n === 1) {
      out.set(candidates[0].endpoint.address, 1);
      return out;
    }
    const wanted = new Set(candidates.map((c) => c.endpoint.address));
    let neverUsed = 0;
    for (const c of candidates) {
      const a = c.endpoint.address;
      if (!this.lru.has(a)) out.set(a, 1 - neverUsed++ / (n - 1));
    }
    let pos = 0;
    for (const a of this.lru.keys()) {
      if (!wanted.has(a)) continue;
      out.set(a, Math.max(0, 1 - (neverUsed + pos++) / (n - 1)));
    }
    return out;
  }

  /** A cold request's primary pick becomes the most recently used pod. */
  reserve(_req: SchedulingRequest, pod: string, state: CycleState): Reservation {
    if (this.cold.has(state)) {
      this.lru.delete(pod);
      this.lru.set(pod, true);
      if (this.lru.size > this.lruSize) this.lru.delete(this.lru.keys().next().value as string);
    }
    return NOTHING_BOOKED;
  }
}
