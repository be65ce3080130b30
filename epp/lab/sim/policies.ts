/**
 * Baseline routing policies (docs/benchmarks/method.md, "Baselines and peers"), all behind `RoutingPolicy`:
 *
 * - `random` (B1): uniform, seeded.
 * - `round-robin` (B2): cyclic, like a K8s Service.
 * - `least-loaded` (B3): fewest waiting requests at the last scrape, ties → fewest running → random.
 * - `session` (B4): consistent hash of `x-session-id` on a ring (100 virtual nodes per pod).
 * - `chwbl` (B4b): consistent hashing with bounded loads (KubeAI PrefixHash) on the first 256
 *   prompt tokens: walk the ring from the key and take the first pod whose in-flight count + 1 is
 *   ≤ ⌈(total + 1)·(1 + ε)/N⌉, ε = 0.25.
 * - `approx-prefix` (B5a, GIE/llm-d "estimated" prefix scorer): a router-side LRU per pod of
 *   chained 16-token block hashes written on every routing decision (capacity 31,250 per pod,
 *   match ≤ 256 blocks), score = matched/total blocks, plus queue and kv-utilization scorers,
 *   weights 1/1/1, max-score picker with random ties.
 * - `oracle` (B8): true cache and queue state, zero lag: argmin of predicted TTFT
 *   β_p·(prefill work queued on the pod + the request's uncached tokens there) plus the decode
 *   interference of its running batch.
 *
 * `precise` and `kvroute` (B6/B7) use the EPP's index and live in precise.ts.
 */
import type { BlockKey } from '../../src/kvindex/types.js';
import { argmaxRandomTie, type FleetView, type PolicyContext, type RoutingPolicy } from './policy.js';
import type { SimRequest } from './request.js';
import { hashString32, mix32 } from './rng.js';

export class RandomPolicy implements RoutingPolicy {
  readonly name = 'random';
  constructor(private readonly ctx: PolicyContext) {}
  pick(_req: SimRequest, fleet: FleetView): number {
    return this.ctx.rng.int(fleet.pods.length);
  }
}

export class RoundRobinPolicy implements RoutingPolicy {
  readonly name = 'round-robin';
  private next = 0;
  pick(_req: SimRequest, fleet: FleetView): number {
    const i = this.next % fleet.pods.length;
    this.next = i + 1;
    return i;
  }
}

export class LeastLoadedPolicy implements RoutingPolicy {
  readonly name = 'least-loaded';
  constructor(private readonly ctx: PolicyContext) {}
  pick(_req: SimRequest, fleet: FleetView): number {
    const pods = fleet.pods;
    // score = −(waiting · BIG + running): max picks min waiting, then min running
    return argmaxRandomTie(pods.length, (i) => -((pods[i]?.waiting ?? 0) * 1e6 + (pods[i]?.running ?? 0)), this.ctx.rng);
  }
}

/** A consistent-hash ring over pod ids. */
export class HashRing {
  private readonly points: Uint32Array;
  private readonly owners: Int32Array;

  constructor(podIds: readonly string[], readonly vnodes = 100) {
    const pts: { h: number; pod: number }[] = [];
    podIds.forEach((id, pod) => {
      const base = hashString32(id);
      for (let v = 0; v < vnodes; v++) pts.push({ h: mix32(base, v), pod });
    });
    pts.sort((a, b) => a.h - b.h || a.pod - b.pod);
    this.points = Uint32Array.from(pts.map((p) => p.h));
    this.owners = Int32Array.from(pts.map((p) => p.pod));
  }

  /** Index of the first ring point at or after `h` (wrapping). */
  private start(h: number): number {
    let lo = 0;
    let hi = this.points.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.points[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    return lo % this.points.length;
  }

  /** Owner of `h`. */
  owner(h: number): number {
    return this.owners[this.start(h >>> 0)] as number;
  }

  /** Distinct pods in ring order starting at `h`. */
  *walk(h: number): Generator<number> {
    const seen = new Set<number>();
    const n = this.points.length;
    const s = this.start(h >>> 0);
    for (let k = 0; k < n; k++) {
      const pod = this.owners[(s + k) % n] as number;
      if (!seen.has(pod)) {
        seen.add(pod);
        yield pod;
      }
    }
  }
}

export class SessionPolicy implements RoutingPolicy {
  readonly name = 'session';
  private readonly ring: HashRing;
  constructor(ctx: PolicyContext) {
    this.ring = new HashRing(ctx.podIds);
  }
  pick(req: SimRequest, _fleet?: FleetView): number {
    return this.ring.owner(hashString32(req.sessionId));
  }
}

export interface ChwblOptions {
  /** Load bound ε. @default 0.25 */
  readonly epsilon?: number;
  /** Prompt tokens hashed. @default 256 */
  readonly prefixTokens?: number;
}

export class ChwblPolicy implements RoutingPolicy {
  readonly name = 'chwbl';
  private readonly ring: HashRing;
  private readonly epsilon: number;
  private readonly prefixTokens: number;
  constructor(
    private readonly ctx: PolicyContext,
    opts: ChwblOptions = {},
  ) {
    this.ring = new HashRing(ctx.podIds);
    this.epsilon = opts.epsilon ?? 0.25;
    this.prefixTokens = opts.prefixTokens ?? 256;
  }
  /** 32-bit hash of the first `prefixTokens` tokens (session id when the prompt is shorter than 16). */
  keyOf(req: SimRequest): number {
    const keys = this.ctx.keyer.prefixKeys(req, 16, Math.floor(Math.min(this.prefixTokens, req.inputLength) / 16));
    const k = keys[keys.length - 1];
    if (k === undefined) return hashString32(req.sessionId);
    return mix32(Number(k >> 32n), Number(k & 0xffffffffn));
  }
  pick(req: SimRequest, fleet: FleetView): number {
    const n = fleet.pods.length;
    let total = 0;
    for (const p of fleet.pods) total += p.inFlight;
    const bound = Math.ceil(((total + 1) * (1 + this.epsilon)) / n);
    let first = -1;
    for (const pod of this.ring.walk(this.keyOf(req))) {
      if (first < 0) first = pod;
      if ((fleet.pods[pod]?.inFlight ?? 0) + 1 <= bound) return pod;
    }
    return first;
  }
}

export interface ApproxPrefixOptions {
  /** Tokens per router-side hash block. @default 16 */
  readonly hashBlockTokens?: number;
  /** @default 256 */
  readonly maxPrefixBlocksToMatch?: number;
  /** Router-side LRU entries per pod. @default 31250 */
  readonly lruCapacityPerServer?: number;
  /** @default { prefix: 1, queue: 1, kvCacheUtilization: 1 } */
  readonly weights?: { readonly prefix: number; readonly queue: number; readonly kvCacheUtilization: number };
}

/** Min–max queue score: (max − q)/(max − min), 1 for every pod when all queues are equal. */
export function queueScores(fleet: FleetView): number[] {
  let min = Infinity;
  let max = -Infinity;
  for (const p of fleet.pods) {
    min = Math.min(min, p.waiting);
    max = Math.max(max, p.waiting);
  }
  return fleet.pods.map((p) => (max === min ? 1 : (max - p.waiting) / (max - min)));
}

export class ApproxPrefixPolicy implements RoutingPolicy {
  readonly name = 'approx-prefix';
  private readonly lrus: Map<BlockKey, true>[];
  private readonly bt: number;
  private readonly maxBlocks: number;
  private readonly cap: number;
  private readonly w: { readonly prefix: number; readonly queue: number; readonly kvCacheUtilization: number };
  constructor(
    private readonly ctx: PolicyContext,
    opts: ApproxPrefixOptions = {},
  ) {
    this.lrus = ctx.podIds.map(() => new Map<BlockKey, true>());
    this.bt = opts.hashBlockTokens ?? 16;
    this.maxBlocks = opts.maxPrefixBlocksToMatch ?? 256;
    this.cap = opts.lruCapacityPerServer ?? 31_250;
    this.w = opts.weights ?? { prefix: 1, queue: 1, kvCacheUtilization: 1 };
  }
  /** Consecutive leading blocks of `keys` the router believes pod `i` holds. */
  matched(i: number, keys: readonly BlockKey[]): number {
    const lru = this.lrus[i] as Map<BlockKey, true>;
    let m = 0;
    while (m < keys.length && lru.has(keys[m] as BlockKey)) m++;
    return m;
  }
  pick(req: SimRequest, fleet: FleetView): number {
    const keys = this.ctx.keyer.prefixKeys(req, this.bt, this.maxBlocks);
    const qs = queueScores(fleet);
    const pick = argmaxRandomTie(
      fleet.pods.length,
      (i) =>
        this.w.prefix * (keys.length === 0 ? 0 : this.matched(i, keys) / keys.length) +
        this.w.queue * (qs[i] as number) +
        this.w.kvCacheUtilization * (1 - (fleet.pods[i]?.kvUsage ?? 0)),
      this.ctx.rng,
    );
    const lru = this.lrus[pick] as Map<BlockKey, true>;
    for (const k of keys) {
      lru.delete(k);
      lru.set(k, true);
    }
    while (lru.size > this.cap) {
      const oldest = lru.keys().next();
      if (oldest.done) break;
      lru.delete(oldest.value);
    }
    return pick;
  }
}

export class OraclePolicy implements RoutingPolicy {
  readonly name = 'oracle';
  constructor(private readonly ctx: PolicyContext) {}
  /** Predicted TTFT (ms, without fixed overheads) of `req` on pod `i`, from true state. */
  predictMs(req: SimRequest, i: number): number {
    const pod = this.ctx.pods[i];
    if (!pod) throw new RangeError(`oracle: no pod ${i}`);
    const p = pod.profile;
    const work = pod.pendingPrefillTokens() + req.inputLength - pod.prefixHitTokens(req);
    const steps = Math.ceil(work / p.maxBatchedTokens);
    const running = pod.metrics().numRequestsRunning;
    return p.betaPrefillMs * work + steps * (p.alphaMs + p.betaDecodeMs * running);
  }
  pick(req: SimRequest, fleet: FleetView): number {
    return argmaxRandomTie(fleet.pods.length, (i) => -this.predictMs(req, i), this.ctx.rng);
  }
}
