/**
 * llm-d router / Gateway API Inference Extension (GIE) EPP profiles, re-implemented for the
 * simulator from their specification (our own code; no upstream code is copied). Sources read:
 * - framework, scorers, pickers, precise scorer: llm-d/llm-d-router pkg/epp/scheduling/
 *   scheduler_profile.go, pkg/epp/config/loader/defaults.go and the prefix/affinity/token-load
 *   plugins @ebab6879; precise index llm-d/llm-d-kv-cache @7be76e11;
 * - guide profiles: llm-d/llm-d guides, precise-prefix-cache @019a3f3f, optimized-baseline values
 *   @0a3b0c93;
 * - the no-config default and its approximate prefix scorer: GIE tag v1.4.0 (6e787dd3)
 *   pkg/epp/config/loader/defaults.go and pkg/epp/scheduling/framework/plugins/multi/prefix.
 *
 * What every profile shares (the llm-d scheduling framework): each scorer maps a pod to [0, 1]; the
 * pod's total is Σ weight·score (not divided by Σ weight); the max-score picker takes the highest
 * total and breaks ties uniformly at random. Pod metrics are the router's 50 ms scrape
 * (`FleetView`), exactly what `kvroute` sees.
 *
 * Policies:
 * - `llmd-precise`: precise-prefix-cache guide profile. decode-filter (a no-op here: every
 *   simulated pod serves both roles), precise prefix scorer weight 2, kv-cache-utilization 1,
 *   queue 1. The precise scorer walks the request's blocks from block 0 over the pods still
 *   matching, adding the tier weight of each held block (gpu 1.0, cpu 0.8), then scores
 *   floor(sum) ÷ number of blocks (capped at 1). Its index is the EPP's own (`EppIndexView`), fed
 *   by the pods' KV events with the run's event lag, as `kvroute`'s is. The guide sets blockSize
 *   64 because its vLLM runs with block size 64; the index block size here equals the simulated
 *   engine's (the two must match for the keys to meet).
 * - `llmd-precise-2025`: the same profile with the scorer's earlier normalisation: min-max of the
 *   raw sums across the pods that hit at all (all equal → 1, no hit → 0), the form behind llm-d's
 *   2025-09 blog numbers.
 * - `llmd-estimate`: the optimized-baseline profile. An approximate prefix index over token-id
 *   blocks (block = max(64, engine block size) tokens, at most 40,960 tokens matched) learned from
 *   the router's own decisions; the prefix-cache-affinity filter (pods whose match ÷ total ≥ 0.80
 *   are sticky; if there are none, every pod stays; else, when the best sticky pod's estimated
 *   wait exceeds the best other pod's by more than 18,000 ms, where wait = in-flight tokens ÷
 *   15,928 tok/s, every pod stays, otherwise only the sticky ones); then the token-load scorer
 *   (1 − min(1, (in-flight tokens + this request's uncached tokens) ÷ 4,194,304)), weight 1. The
 *   in-flight-load producer adds a routed request's uncached tokens (unmatched blocks × block
 *   size + the unhashed tail) to its pod and releases them at the first streamed token. The
 *   router's LRU per pod holds num_gpu_blocks entries (as GIE's autoTune sizes it; the spec gives
 *   no other size for the 64-token blocks, so with 16-token engine blocks the router may believe a
 *   pod holds more than it can).
 * - `gie-default`: the EPP with no config file: queue 2, kv-cache-utilization 2, approximate
 *   prefix 3. The approximate prefix scorer of GIE v1.4.0 cuts the prompt *text* into blocks of
 *   blockSizeTokens × 4 characters (blockSizeTokens from `vllm:cache_config_info`), keeps at most
 *   256 full blocks, and learns which pod holds which block hash from its own routing (one LRU
 *   per pod sized by num_gpu_blocks). The simulator has token ids, not text: it treats each
 *   token as 4 characters, so a block is blockSizeTokens token ids (hashed with the shared
 *   `BlockKeyer` chain, deterministic in the token ids). Matching walks the hashes in order and
 *   stops at the first hash no pod holds; each pod holding hash i gets +1 (no per-pod contiguity
 *   check, as upstream); score = matches ÷ total blocks.
 */
import type { BlockKey } from '../../../src/kvindex/types.js';
import type { KvEventBatch } from '../../../src/kvevents/types.js';
import { argmaxRandomTie, type FleetView, type PolicyContext, type RoutingPolicy } from '../policy.js';
import { EppIndexView, type PreciseOptions } from '../precise.js';
import { promptTokens, type SimRequest } from '../request.js';

/** Min-max queue scorer: (q_max − q)/(q_max − q_min); 1 for every pod when all queues are equal. */
export function llmdQueueScores(fleet: FleetView): number[] {
  let min = Infinity;
  let max = -Infinity;
  for (const p of fleet.pods) {
    min = Math.min(min, p.waiting);
    max = Math.max(max, p.waiting);
  }
  return fleet.pods.map((p) => (max === min ? 1 : (max - p.waiting) / (max - min)));
}

/** kv-cache-utilization scorer: 1 − usage. */
export const kvUtilScore = (usage: number): number => 1 - Math.min(1, Math.max(0, usage));

/** Clamp to [0, 1], as the framework does before weighting. */
const clamp01 = (x: number): number => Math.min(1, Math.max(0, x));

/** Precise scorer normalisations. */
export type PreciseNormalisation = 'blocks' | 'min-max';

/**
 * Per-pod precise prefix scores from raw tier-weighted sums.
 * `blocks` (current llm-d): floor(raw) ÷ total blocks, capped at 1.
 * `min-max` (llm-d before 2026-05): (raw − min)/(max − min) over the pods with raw > 0; every hit
 * pod scores 1 when they are all equal; pods without a hit score 0.
 */
export function normalisePrecise(raw: readonly number[], totalBlocks: number, mode: PreciseNormalisation): number[] {
  if (mode === 'blocks') return raw.map((r) => (totalBlocks <= 0 ? 0 : Math.min(1, Math.floor(r) / totalBlocks)));
  let min = Infinity;
  let max = -Infinity;
  for (const r of raw) {
    if (r <= 0) continue;
    min = Math.min(min, r);
    max = Math.max(max, r);
  }
  return raw.map((r) => (r <= 0 ? 0 : max === min ? 1 : (r - min) / (max - min)));
}

export interface LlmdPreciseOptions extends PreciseOptions {
  /** @default 'blocks' */
  readonly normalisation?: PreciseNormalisation;
  /** @default { prefix: 2, kvCacheUtilization: 1, queue: 1 } (the precise guide) */
  readonly weights?: { readonly prefix: number; readonly kvCacheUtilization: number; readonly queue: number };
}

export const LLMD_PRECISE_WEIGHTS = Object.freeze({ prefix: 2, kvCacheUtilization: 1, queue: 1 });

export class LlmdPrecisePolicy implements RoutingPolicy {
  readonly name: string;
  readonly epp: EppIndexView;
  readonly normalisation: PreciseNormalisation;
  readonly weights: { readonly prefix: number; readonly kvCacheUtilization: number; readonly queue: number };
  private readonly podIndex = new Map<string, number>();

  constructor(
    private readonly ctx: PolicyContext,
    opts: LlmdPreciseOptions = {},
  ) {
    this.normalisation = opts.normalisation ?? 'blocks';
    this.name = this.normalisation === 'blocks' ? 'llmd-precise' : 'llmd-precise-2025';
    this.weights = opts.weights ?? LLMD_PRECISE_WEIGHTS;
    this.epp = new EppIndexView(ctx, opts);
    ctx.podIds.forEach((id, i) => this.podIndex.set(id, i));
  }

  onKvEvents(podIndex: number, batch: KvEventBatch): Promise<void> {
    return this.epp.apply(podIndex, batch);
  }

  /** Precise prefix score per pod index. */
  async prefixScores(tokens: readonly number[]): Promise<number[]> {
    const raw = new Array<number>(this.ctx.podIds.length).fill(0);
    const res = await this.epp.indexer.scoreTokens(tokens, this.ctx.model);
    for (const p of res.pods) {
      const i = this.podIndex.get(p.pod);
      if (i !== undefined) raw[i] = p.raw;
    }
    return normalisePrecise(raw, res.requestKeys.length, this.normalisation);
  }

  async pick(req: SimRequest, fleet: FleetView): Promise<number> {
    const prefix = await this.prefixScores(promptTokens(req));
    const qs = llmdQueueScores(fleet);
    const w = this.weights;
    return argmaxRandomTie(
      fleet.pods.length,
      (i) => w.prefix * clamp01(prefix[i] as number) + w.kvCacheUtilization * kvUtilScore(fleet.pods[i]?.kvUsage ?? 0) + w.queue * clamp01(qs[i] as number),
      this.ctx.rng,
    );
  }
}

/**
 * Router-side approximate prefix index: block hash → pods holding it, with one LRU of hashes per
 * pod (evicting a hash from a pod's LRU removes the pod from that hash's holders).
 */
export class ApproxPrefixIndex {
  private readonly holders = new Map<BlockKey, Set<number>>();
  private readonly lrus: Map<BlockKey, true>[];

  constructor(
    pods: number,
    readonly capacityPerPod: number,
  ) {
    if (!Number.isInteger(capacityPerPod) || capacityPerPod < 1) throw new RangeError(`capacityPerPod is ${capacityPerPod}; use an integer ≥ 1`);
    this.lrus = Array.from({ length: pods }, () => new Map<BlockKey, true>());
  }

  /**
   * Matches per pod: walk `keys` in order, stop at the first key no pod holds, and give every
   * holder of key i one point (no per-pod contiguity check). Also returns the walk's length.
   */
  match(keys: readonly BlockKey[]): { perPod: number[]; walked: number } {
    const perPod = new Array<number>(this.lrus.length).fill(0);
    let walked = 0;
    for (const k of keys) {
      const hs = this.holders.get(k);
      if (!hs || hs.size === 0) break;
      for (const p of hs) perPod[p] = (perPod[p] as number) + 1;
      walked++;
    }
    return { perPod, walked };
  }

  /** Records that pod `pod` now holds `keys` (most recently used). */
  add(pod: number, keys: readonly BlockKey[]): void {
    const lru = this.lrus[pod];
    if (!lru) throw new RangeError(`approximate prefix index: no pod ${pod}`);
    for (const k of keys) {
      lru.delete(k);
      lru.set(k, true);
      let hs = this.holders.get(k);
      if (!hs) {
        hs = new Set<number>();
        this.holders.set(k, hs);
      }
      hs.add(pod);
    }
    while (lru.size > this.capacityPerPod) {
      const oldest = lru.keys().next();
      if (oldest.done) break;
      lru.delete(oldest.value);
      const hs = this.holders.get(oldest.value);
      if (hs) {
        hs.delete(pod);
        if (hs.size === 0) this.holders.delete(oldest.value);
      }
    }
  }

  /** Hashes held by pod `pod`. */
  size(pod: number): number {
    return this.lrus[pod]?.size ?? 0;
  }
}

/**
 * num_gpu_blocks as `vllm:cache_config_info` reports it (autoTune). Pod configuration, not cache
 * state: the simulated pods all share one profile, read lazily (the pods exist from the first
 * event on). Falls back to GIE's fixed 31,250 before the pods are known.
 */
export function numGpuBlocks(ctx: PolicyContext): number {
  return ctx.pods[0]?.profile.numBlocks ?? 31_250;
}

export interface GieDefaultOptions {
  /** @default { prefix: 3, queue: 2, kvCacheUtilization: 2 } */
  readonly weights?: { readonly prefix: number; readonly queue: number; readonly kvCacheUtilization: number };
  /** Prompt blocks hashed. @default 256 */
  readonly maxPrefixBlocks?: number;
  /** LRU entries per pod. @default num_gpu_blocks from `vllm:cache_config_info` */
  readonly lruCapacityPerPod?: number;
}

export const GIE_DEFAULT_WEIGHTS = Object.freeze({ prefix: 3, queue: 2, kvCacheUtilization: 2 });

export class GieDefaultPolicy implements RoutingPolicy {
  readonly name = 'gie-default';
  readonly weights: { readonly prefix: number; readonly queue: number; readonly kvCacheUtilization: number };
  readonly maxPrefixBlocks: number;
  private index: ApproxPrefixIndex | undefined;

  constructor(
    private readonly ctx: PolicyContext,
    private readonly opts: GieDefaultOptions = {},
  ) {
    this.weights = opts.weights ?? GIE_DEFAULT_WEIGHTS;
    this.maxPrefixBlocks = opts.maxPrefixBlocks ?? 256;
  }

  /** The index, created on first use (its capacity comes from the pods' cache config). */
  get prefixIndex(): ApproxPrefixIndex {
    this.index ??= new ApproxPrefixIndex(this.ctx.podIds.length, this.opts.lruCapacityPerPod ?? numGpuBlocks(this.ctx));
    return this.index;
  }

  /** Block hashes of the prompt: blockSizeTokens × 4 characters = blockSizeTokens token ids each. */
  keysOf(req: SimRequest): BlockKey[] {
    const full = Math.floor(Math.min(req.inputLength, this.maxPrefixBlocks * this.ctx.blockSize) / this.ctx.blockSize);
    return this.ctx.keyer.prefixKeys(req, this.ctx.blockSize, full);
  }

  pick(req: SimRequest, fleet: FleetView): number {
    const keys = this.keysOf(req);
    const { perPod } = this.prefixIndex.match(keys);
    const qs = llmdQueueScores(fleet);
    const w = this.weights;
    const pick = argmaxRandomTie(
      fleet.pods.length,
      (i) =>
        w.prefix * (keys.length === 0 ? 0 : clamp01((perPod[i] as number) / keys.length)) +
        w.queue * clamp01(qs[i] as number) +
        w.kvCacheUtilization * kvUtilScore(fleet.pods[i]?.kvUsage ?? 0),
      this.ctx.rng,
    );
    this.prefixIndex.add(pick, keys);
    return pick;
  }
}

export interface LlmdEstimateOptions {
  /** Router block size in tokens; clamped to ≥ 64. @default max(64, engine block size) */
  readonly blockTokens?: number;
  /** @default 40960 (optimized-baseline values) */
  readonly maxPrefixTokensToMatch?: number;
  /** @default 0.8 */
  readonly affinityThreshold?: number;
  /** Wait gap above which the affinity filter keeps every pod, ms. @default 18000 */
  readonly maxTtftPenaltyMs?: number;
  /** Prefill rate of the affinity filter's wait estimate, tokens/s. @default 15928 */
  readonly prefillTokensPerSec?: number;
  /** Token-load scorer's saturation. @default 4194304 */
  readonly tokenLoadCap?: number;
  /** LRU entries per pod. @default num_gpu_blocks from `vllm:cache_config_info` */
  readonly lruCapacityPerPod?: number;
}

export interface LlmdEstimateSettings {
  readonly minBlockTokens: number;
  readonly maxPrefixTokensToMatch: number;
  readonly affinityThreshold: number;
  readonly maxTtftPenaltyMs: number;
  readonly prefillTokensPerSec: number;
  readonly tokenLoadCap: number;
}

export const LLMD_ESTIMATE_DEFAULTS: LlmdEstimateSettings = Object.freeze({
  minBlockTokens: 64,
  maxPrefixTokensToMatch: 40_960,
  affinityThreshold: 0.8,
  maxTtftPenaltyMs: 18_000,
  prefillTokensPerSec: 15_928,
  tokenLoadCap: 4_194_304,
});

/**
 * prefix-cache-affinity filter: indices of the pods that stay. `match` is matched ÷ total blocks
 * per pod, `inflightTokens` the router's in-flight prefill tokens per pod.
 */
export function affinityFilter(match: readonly number[], inflightTokens: readonly number[], threshold: number, maxPenaltyMs: number, tokensPerSec: number): number[] {
  const all = match.map((_, i) => i);
  const sticky = all.filter((i) => (match[i] as number) >= threshold);
  if (sticky.length === 0) return all;
  const rest = all.filter((i) => (match[i] as number) < threshold);
  if (rest.length === 0) return sticky;
  const wait = (i: number): number => ((inflightTokens[i] as number) / tokensPerSec) * 1000;
  const bestSticky = Math.min(...sticky.map(wait));
  const bestRest = Math.min(...rest.map(wait));
  return bestSticky - bestRest > maxPenaltyMs ? all : sticky;
}

export class LlmdEstimatePolicy implements RoutingPolicy {
  readonly name = 'llmd-estimate';
  readonly blockTokens: number;
  readonly maxBlocks: number;
  readonly o: LlmdEstimateSettings;
  /** In-flight uncached prompt tokens per pod (released at the first token). */
  readonly inflightTokens: number[];
  private readonly pending = new Map<SimRequest, { pod: number; tokens: number }>();
  private index: ApproxPrefixIndex | undefined;

  constructor(
    private readonly ctx: PolicyContext,
    private readonly opts: LlmdEstimateOptions = {},
  ) {
    const d = LLMD_ESTIMATE_DEFAULTS;
    this.blockTokens = Math.max(d.minBlockTokens, opts.blockTokens ?? ctx.blockSize);
    this.o = {
      minBlockTokens: d.minBlockTokens,
      maxPrefixTokensToMatch: opts.maxPrefixTokensToMatch ?? d.maxPrefixTokensToMatch,
      affinityThreshold: opts.affinityThreshold ?? d.affinityThreshold,
      maxTtftPenaltyMs: opts.maxTtftPenaltyMs ?? d.maxTtftPenaltyMs,
      prefillTokensPerSec: opts.prefillTokensPerSec ?? d.prefillTokensPerSec,
      tokenLoadCap: opts.tokenLoadCap ?? d.tokenLoadCap,
    };
    this.maxBlocks = Math.floor(this.o.maxPrefixTokensToMatch / this.blockTokens);
    this.inflightTokens = new Array<number>(ctx.podIds.length).fill(0);
  }

  get prefixIndex(): ApproxPrefixIndex {
    this.index ??= new ApproxPrefixIndex(this.ctx.podIds.length, this.opts.lruCapacityPerPod ?? numGpuBlocks(this.ctx));
    return this.index;
  }

  pick(req: SimRequest, fleet: FleetView): number {
    const keys = this.ctx.keyer.prefixKeys(req, this.blockTokens, this.maxBlocks);
    const { perPod } = this.prefixIndex.match(keys);
    const n = fleet.pods.length;
    const total = keys.length;
    const match = perPod.map((m) => (total === 0 ? 0 : m / total));
    const uncached = perPod.map((m) => req.inputLength - m * this.blockTokens);
    const kept = affinityFilter(match, this.inflightTokens, this.o.affinityThreshold, this.o.maxTtftPenaltyMs, this.o.prefillTokensPerSec);
    const keep = new Array<boolean>(n).fill(false);
    for (const i of kept) keep[i] = true;
    const pick = argmaxRandomTie(
      n,
      (i) => (keep[i] ? 1 - Math.min(1, ((this.inflightTokens[i] as number) + (uncached[i] as number)) / this.o.tokenLoadCap) : -Infinity),
      this.ctx.rng,
    );
    const tokens = uncached[pick] as number;
    this.inflightTokens[pick] = (this.inflightTokens[pick] as number) + tokens;
    this.pending.set(req, { pod: pick, tokens });
    this.prefixIndex.add(pick, keys);
    return pick;
  }

  private release(req: SimRequest): void {
    const p = this.pending.get(req);
    if (!p) return;
    this.pending.delete(req);
    this.inflightTokens[p.pod] = (this.inflightTokens[p.pod] as number) - p.tokens;
  }

  onFirstToken(req: SimRequest): void {
    this.release(req);
  }

  /** Rejected requests never stream: release at completion too. */
  onComplete(req: SimRequest): void {
    this.release(req);
  }
}
