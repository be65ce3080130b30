/**
 * The routing-policy interface of the simulator. A policy is asked once per request arrival and
 * answers with a pod index; it sees the fleet the way a router does: load metrics as last scraped
 * (possibly stale), its own in-flight counts (always current), and — if it subscribes — the pods'
 * KV events after the configured lag. Only the oracle is given the pods' true state.
 */
import type { KvEventBatch } from '../../src/kvevents/types.js';
import type { SimPod } from './pod.js';
import type { BlockKeyer, SimRequest } from './request.js';
import type { Rng } from './rng.js';

/** One pod as the router sees it. */
export interface PodView {
  readonly index: number;
  /** Endpoint id `ip:port`. */
  readonly id: string;
  /** `vllm:num_requests_waiting` at the last scrape. */
  readonly waiting: number;
  /** `vllm:num_requests_running` at the last scrape. */
  readonly running: number;
  /** `vllm:kv_cache_usage_perc` (0..1) at the last scrape. */
  readonly kvUsage: number;
  /** Requests the router sent to the pod that have not completed (router-side, never stale). */
  readonly inFlight: number;
  /** Simulated ms since the scrape the metrics come from. */
  readonly metricsAgeMs: number;
}

export interface FleetView {
  readonly nowMs: number;
  readonly pods: readonly PodView[];
}

export interface RoutingPolicy {
  readonly name: string;
  /** Pod index for `req`. */
  pick(req: SimRequest, fleet: FleetView): number | Promise<number>;
  /** KV events of pod `podIndex`, delivered `eventLagMs` after the pod emitted them. */
  onKvEvents?(podIndex: number, batch: KvEventBatch): void | Promise<void>;
  /** The request's first output token streamed from `podIndex` (its prefill is done). */
  onFirstToken?(req: SimRequest, podIndex: number): void;
  /**
   * The request's first output token left `podIndex` (the router sees the first response chunk);
   * not called for rejected requests.
   */
  onFirstToken?(req: SimRequest, podIndex: number): void;
  /** The request completed (or was rejected) on `podIndex`. */
  onComplete?(req: SimRequest, podIndex: number): void;
}

/** What a policy factory gets. */
export interface PolicyContext {
  /** Endpoint ids of the pods, by index. */
  readonly podIds: readonly string[];
  /** Served model name (KV-event topic model). */
  readonly model: string;
  /** Engine block size. */
  readonly blockSize: number;
  /** Seeded stream for tie-breaks and random choices. */
  readonly rng: Rng;
  /** Shared block keyer (router-side hashing of prompts for the approximate policies). */
  readonly keyer: BlockKeyer;
  /** Ground truth; only the oracle may use it. */
  readonly pods: readonly SimPod[];
}

/** Index of the max of `score`, ties broken uniformly with `rng`. */
export function argmaxRandomTie(n: number, score: (i: number) => number, rng: Rng): number {
  let best = -Infinity;
  let count = 0;
  let pick = 0;
  for (let i = 0; i < n; i++) {
    const s = score(i);
    if (s > best + 1e-12) {
      best = s;
      count = 1;
      pick = i;
    } else if (Math.abs(s - best) <= 1e-12) {
      count++;
      if (rng.int(count) === 0) pick = i;
    }
  }
  return pick;
}
