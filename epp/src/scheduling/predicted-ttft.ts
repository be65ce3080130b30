/**
 * The default scorer: predicted time to first token (TTFT) per pod, from what the EPP knows.
 *
 * For each candidate pod p the request would wait for
 *
 *   work(p)  = queued(p) + uncached(p)                       prompt tokens to prefill before its first token
 *   steps(p) = max(1, ⌈work(p) / chunkTokens⌉)                engine steps that prefill takes (chunked prefill)
 *   step(p)  = stepOverheadTokens + decodeSequenceTokens·D(p) + contextTokenFactor·K(p)
 *   TTFT(p)  = (work(p) + steps(p)·step(p)) / M(p) / prefillTokensPerSecond
 *   cost(p)  = (work(p) + steps(p)·step(p) + missPenalty·uncached(p)) / M(p)   (prefill-token equivalents)
 *   M(p)     = 1 − p's projected KV occupancy (memory factor, below)
 *
 * - `uncached(p)`: prompt tokens not in p's cache: the prompt minus the longest cached prefix the
 *   KV-event index reports for p, or the prefix of a prompt this EPP routed to p and whose KV events
 *   may not have arrived yet (speculative entries, below), whichever is longer. As in vLLM, at
 *   least one token is always computed.
 * - `queued(p)`: the uncached tokens of the requests this EPP sent to p whose first response chunk
 *   has not arrived (their prefill is queued or running), less what p computed of them meanwhile at
 *   `prefillTokensPerSecond` (`queueDrain`). Added at the pick, released at the first chunk, so it
 *   reacts at once, between metric scrapes, and never goes stale.
 * - `D(p)`, `K(p)`: requests this EPP sent to p that are decoding (first chunk seen, not finished)
 *   and their prompt tokens: every step of our prefill also decodes them and reads their KV cache.
 *   A fresh `vllm:num_requests_running` larger than the EPP's own count (other EPP replicas) raises
 *   D; stale or missing metrics are simply not used.
 *
 * - `missPenalty·uncached(p)`: the prefill also delays the requests that arrive at p while it runs.
 * - new contexts are placed by load: when no pod holds `minCachedFraction` of the prompt, every
 *   pod is predicted with the whole prompt uncached, so a short shared prefix (a system prompt)
 *   does not pull every new session onto the pods that hold it.
 * - the whole cost is divided by 1 − p's projected KV occupancy (`memoryPressure`, see occupancy()).
 *
 * The cost is in prefill-token equivalents; `prefillTokensPerSecond` sets the drain rate and turns
 * the cost without the miss penalty into the predicted TTFT in milliseconds that logs and
 * `/v1/score` show (the penalty ranks pods; it is not a delay to this request).
 * The score is min cost ÷ cost(p) ∈ (0, 1]: the max-score picker takes the pod with the lowest
 * predicted TTFT, equal predictions tie at random.
 *
 * Hot prefixes spread by themselves: while the pod holding a prefix has a prefill queue longer than
 * the prefix, a pod without it predicts an earlier first token and is warmed; once the queues even
 * out the holder wins again.
 *
 * Speculative entries: at the pick the prompt's block keys are recorded for the chosen pod; they
 * count as cached there while the request's prefill is pending and for `speculativeGraceMs` after
 * its first chunk (the time for the pod's KV events to reach the index), so a burst of siblings
 * finds the prefix before the events arrive.
 */
import type { EndpointState } from '../datalayer/endpoint-store.js';
import type { Indexer } from '../kvindex/indexer.js';
import type { BlockKey } from '../kvindex/types.js';
import type { CycleState, Reservation, Scorer, SchedulingRequest } from './types.js';

/** Options of the predicted-TTFT scorer (config `scheduling.predictedTtft`; defaults and reasons there). */
export interface PredictedTtftOptions {
  /** Prefill throughput of one pod, tokens/s (only scales the reported milliseconds). */
  readonly prefillTokensPerSecond: number;
  /** `--max-num-batched-tokens` of the pods: prefill tokens per engine step. */
  readonly chunkTokens: number;
  /** Fixed cost of one engine step (weights read, launch), in prefill-token equivalents. */
  readonly stepOverheadTokens: number;
  /** Cost of one decoding sequence in a step, in prefill-token equivalents. */
  readonly decodeSequenceTokens: number;
  /** Cost of reading one context token's KV in a decode step, in prefill-token equivalents. */
  readonly contextTokenFactor: number;
  /** Extra cost per uncached token (0 = pure TTFT; 1 also charges the delay the work imposes on later requests). */
  readonly missPenalty: number;
  /** Below this cached fraction of the prompt on every pod, the cache is ignored (placed by load). */
  readonly minCachedFraction: number;
  /** Record routed prompts as speculative index entries. */
  readonly speculative: boolean;
  /** How long a speculative entry outlives its request's first chunk, ms. */
  readonly speculativeGraceMs: number;
  /** Inflate the cost by 1 ÷ (1 − projected KV occupancy). */
  readonly memoryPressure: boolean;
  /** Count queued prefill as draining at `prefillTokensPerSecond` since it was booked. */
  readonly queueDrain: boolean;
}

/** Occupancy at which the memory factor stops growing (1 ÷ (1 − 0.95) = 20). */
const MAX_OCCUPANCY = 0.95;

/** Per-pod terms of one prediction (logged, and shown by `/v1/score`). */
export interface TtftTerms {
  /** Predicted TTFT of this request on the pod, ms: the cost without the miss penalty. */
  readonly predictedTtftMs: number;
  /** Prompt tokens the pod is predicted to hold (index or speculative). */
  readonly cachedTokens: number;
  /** Of which only known from speculative entries (index says less). */
  readonly speculativeTokens: number;
  /** True when no pod held `minCachedFraction` of the prompt and the cache was ignored (placed by load). */
  readonly placedByLoad: boolean;
  readonly uncachedTokens: number;
  /** Prefill tokens this EPP routed there that have not started streaming. */
  readonly queuedPrefillTokens: number;
  /** Decoding requests (EPP's own, or the pod's fresh running count if larger). */
  readonly decodingRequests: number;
  /** Prompt tokens of the EPP's decoding requests there. */
  readonly decodeContextTokens: number;
  /** Engine steps the prefill takes. */
  readonly steps: number;
  /** Projected KV occupancy after placing the request (0 when unknown). */
  readonly kvOccupancy: number;
  /** The cost, prefill-token equivalents. */
  readonly costTokens: number;
}

interface PodLoad {
  queuedTokens: number;
  /** Of `queuedTokens`, what the pod has computed by `drainedAt` at the modelled rate. */
  drained: number;
  drainedAt: number;
  queuedRequests: number;
  decoding: number;
  decodeContext: number;
}

interface SpecHold {
  holds: number;
  until: number;
}

export class PredictedTtftScorer implements Scorer {
  readonly name = 'predicted-ttft-scorer';
  private readonly loads = new Map<string, PodLoad>();
  /** Each pod's KV capacity in blocks (`num_gpu_blocks`), remembered from its last fresh scrape. */
  private readonly capacity = new Map<string, number>();
  private readonly spec = new Map<BlockKey, Map<string, SpecHold>>();
  private reservationsSinceSweep = 0;

  /**
   * @param now clock in ms (speculative-entry expiry). @default Date.now
   */
  constructor(
    private readonly indexer: Indexer,
    private readonly blockSize: number,
    private readonly opts: PredictedTtftOptions,
    private readonly now: () => number = Date.now,
  ) {}

  private load(pod: string): PodLoad {
    let l = this.loads.get(pod);
    if (!l) {
      l = { queuedTokens: 0, drained: 0, drainedAt: 0, queuedRequests: 0, decoding: 0, decodeContext: 0 };
      this.loads.set(pod, l);
    }
    return l;
  }

  /** The EPP's own view of a pod's load (for tests and debugging). */
  podLoad(pod: string): Readonly<Pick<PodLoad, 'queuedTokens' | 'queuedRequests' | 'decoding' | 'decodeContext'>> {
    const { queuedTokens, queuedRequests, decoding, decodeContext } = this.load(pod);
    return { queuedTokens, queuedRequests, decoding, decodeContext };
  }

  /** Advances the modelled drain of the pod's queued prefill to now; returns what is left. */
  private drain(l: PodLoad): number {
    if (!this.opts.queueDrain) return l.queuedTokens;
    const now = this.now();
    if (now > l.drainedAt) l.drained = Math.min(l.queuedTokens, l.drained + ((now - l.drainedAt) * this.opts.prefillTokensPerSecond) / 1000);
    l.drainedAt = now;
    return l.queuedTokens - l.drained;
  }

  /** Leading blocks of `keys` the speculative entries place on each pod. */
  private speculativeBlocks(keys: readonly BlockKey[], pods: ReadonlySet<string>): Map<string, number> {
    const out = new Map<string, number>();
    if (!this.opts.speculative || this.spec.size === 0) return out;
    const now = this.now();
    let alive = new Set(pods);
    for (let i = 0; i < keys.length && alive.size > 0; i++) {
      const holders = this.spec.get(keys[i] as BlockKey);
      if (!holders) break;
      const next = new Set<string>();
      for (const pod of alive) {
        const h = holders.get(pod);
        if (h && (h.holds > 0 || h.until > now)) {
          next.add(pod);
          out.set(pod, i + 1);
        }
      }
      alive = next;
    }
    return out;
  }

  async score(req: SchedulingRequest, candidates: readonly EndpointState[], state: CycleState): Promise<Map<string, number>> {
    const pods = new Set(candidates.map((c) => c.endpoint.address));
    const promptTokens = req.tokens?.length ?? 0;
    let indexBlocks = new Map<string, number>();
    let keys: readonly BlockKey[] = [];
    if (req.tokens && promptTokens > 0) {
      const r = await this.indexer.scoreTokens(req.tokens, req.model, pods);
      keys = r.requestKeys;
      state.totalBlocks = keys.length;
      state.prefix = new Map(r.pods.map((p) => [p.pod, p]));
      indexBlocks = new Map(r.pods.map((p) => [p.pod, p.consecutiveBlocks]));
    }
    state.requestKeys = keys;
    const specBlocks = this.speculativeBlocks(keys, pods);
    // vLLM computes at least the last prompt token: hits are capped at ⌊(L−1)/bs⌋ full blocks
    const maxHitBlocks = promptTokens > 0 ? Math.floor((promptTokens - 1) / this.blockSize) : 0;
    const o = this.opts;
    // blocks each pod holds: from the index, or from a speculative entry, whichever is longer
    const hits = candidates.map((c) => {
      const a = c.endpoint.address;
      const idx = Math.min(indexBlocks.get(a) ?? 0, maxHitBlocks);
      const spc = Math.min(specBlocks.get(a) ?? 0, maxHitBlocks);
      return { idx, spc, held: Math.max(idx, spc) * this.blockSize };
    });
    let bestHeld = 0;
    for (const h of hits) bestHeld = Math.max(bestHeld, h.held);
    const byLoad = promptTokens > 0 && bestHeld < o.minCachedFraction * promptTokens;
    const costs = new Map<string, number>();
    const terms = new Map<string, TtftTerms>();
    let min = Infinity;
    for (const [i, c] of candidates.entries()) {
      const a = c.endpoint.address;
      const { idx, spc, held } = hits[i] as { idx: number; spc: number; held: number };
      const cached = byLoad ? 0 : held;
      const uncached = Math.max(promptTokens > 0 ? 1 : 0, promptTokens - cached);
      const l = this.loads.get(a);
      const queued = l ? this.drain(l) : 0;
      const own = l?.decoding ?? 0;
      const running = c.metrics?.running;
      const decoding = running !== undefined && Number.isFinite(running) && running > own ? running : own;
      const context = l?.decodeContext ?? 0;
      const work = queued + uncached;
      const steps = Math.max(1, Math.ceil(work / o.chunkTokens));
      const perStep = o.stepOverheadTokens + o.decodeSequenceTokens * decoding + o.contextTokenFactor * context;
      const occupancy = o.memoryPressure ? this.occupancy(c, queued + uncached + context) : 0;
      const memory = 1 - Math.min(MAX_OCCUPANCY, occupancy);
      const cost = (work + steps * perStep + o.missPenalty * uncached) / memory;
      costs.set(a, cost);
      if (cost < min) min = cost;
      terms.set(a, {
        // the request's own first-token time: the miss penalty ranks pods but is not a delay to it
        predictedTtftMs: ((work + steps * perStep) / memory / o.prefillTokensPerSecond) * 1000,
        cachedTokens: cached,
        speculativeTokens: byLoad ? 0 : Math.max(0, spc - idx) * this.blockSize,
        placedByLoad: byLoad,
        uncachedTokens: uncached,
        queuedPrefillTokens: queued,
        decodingRequests: decoding,
        decodeContextTokens: context,
        steps,
        kvOccupancy: occupancy,
        costTokens: cost,
      });
    }
    state.ttft = terms;
    const out = new Map<string, number>();
    for (const [a, cost] of costs) out.set(a, cost > 0 ? min / cost : 1);
    return out;
  }

  /**
   * KV occupancy of the pod once this EPP's queued prefills and the request are placed: the
   * scraped `kv_cache_usage_perc` plus the tokens not yet allocated (`newTokens` minus the
   * decoding context, already counted in the usage), over `num_gpu_blocks`·blockSize. With stale
   * metrics, the EPP's own footprint (`newTokens`, decoding context included) over the remembered
   * capacity; 0 when the capacity was never scraped.
   */
  private occupancy(c: EndpointState, newTokens: number): number {
    const a = c.endpoint.address;
    const n = c.metrics?.numGpuBlocks;
    if (n !== undefined && Number.isFinite(n) && n > 0) this.capacity.set(a, n);
    const cap = (this.capacity.get(a) ?? 0) * this.blockSize;
    const u = c.metrics?.kvCacheUsage;
    const fresh = u !== undefined && Number.isFinite(u) ? Math.min(1, Math.max(0, u)) : undefined;
    if (cap <= 0) return fresh ?? 0;
    const context = this.loads.get(a)?.decodeContext ?? 0;
    if (fresh !== undefined) return fresh + Math.max(0, newTokens - context) / cap;
    return newTokens / cap;
  }

  /**
   * Books the request on `pod`: its uncached tokens join the pod's prefill queue until `started`
   * (first response chunk), then it counts as decoding until `finished`; its prompt's blocks are
   * speculative entries for the pod. Needs the cycle's `state` (this scorer ran in it).
   */
  reserve(req: SchedulingRequest, pod: string, state: CycleState): Reservation {
    const t = state.ttft?.get(pod);
    const uncached = t?.uncachedTokens ?? req.tokens?.length ?? 0;
    const prompt = req.tokens?.length ?? 0;
    const l = this.load(pod);
    this.drain(l);
    l.queuedTokens += uncached;
    l.queuedRequests += 1;
    const keys = this.opts.speculative ? (state.requestKeys ?? []) : [];
    for (const k of keys) {
      let holders = this.spec.get(k);
      if (!holders) {
        holders = new Map();
        this.spec.set(k, holders);
      }
      const h = holders.get(pod);
      if (h) h.holds++;
      else holders.set(pod, { holds: 1, until: 0 });
    }
    if (++this.reservationsSinceSweep >= 1024) this.sweep();
    let phase: 'queued' | 'decoding' | 'done' = 'queued';
    const unhold = (grace: number): void => {
      const until = this.now() + grace;
      for (const k of keys) {
        const h = this.spec.get(k)?.get(pod);
        if (!h) continue;
        h.holds--;
        if (until > h.until) h.until = until;
      }
    };
    const leaveQueue = (): void => {
      this.drain(l);
      l.queuedTokens = Math.max(0, l.queuedTokens - uncached);
      l.drained = Math.max(0, l.drained - uncached);
      l.queuedRequests = Math.max(0, l.queuedRequests - 1);
    };
    return {
      started: () => {
        if (phase !== 'queued') return;
        phase = 'decoding';
        leaveQueue();
        unhold(this.opts.speculativeGraceMs);
        l.decoding++;
        l.decodeContext += prompt;
      },
      finished: () => {
        if (phase === 'done') return;
        if (phase === 'queued') {
          leaveQueue();
          unhold(0); // never started: nothing was computed for sure
        } else {
          l.decoding = Math.max(0, l.decoding - 1);
          l.decodeContext = Math.max(0, l.decodeContext - prompt);
        }
        phase = 'done';
      },
    };
  }

  /** Number of block keys with speculative entries (for tests and memory checks). */
  get speculativeKeys(): number {
    return this.spec.size;
  }

  /** Drops expired speculative entries. */
  sweep(): void {
    this.reservationsSinceSweep = 0;
    const now = this.now();
    for (const [k, holders] of this.spec) {
      for (const [pod, h] of holders) if (h.holds <= 0 && h.until <= now) holders.delete(pod);
      if (holders.size === 0) this.spec.delete(k);
    }
  }
}
