/**
 * Longest-prefix scorer: per pod, how many consecutive leading blocks of the request it holds,
 * weighted by the device tier the block sits in (gpu 1.0, cpu 0.8 by default).
 *
 * A pod enters the race only if it holds block 0; it drops out for good at the first block it
 * misses. The raw score is the sum of the pod's best tier weight over its consecutive blocks;
 * the normalized score divides by the number of blocks in the request, so a pod holding the whole
 * prompt on GPU scores 1 and the score is comparable across requests (llm-d's current rule,
 * rather than min-max across candidates, which turns "one block vs none" into "1 vs 0").
 */
import type { BlockKey, PodEntry } from './types.js';

/** Score of one pod for one request. */
export interface PodPrefixScore {
  /** Endpoint id `ip:port`. */
  readonly pod: string;
  /** Consecutive leading blocks held (any tier). */
  readonly consecutiveBlocks: number;
  /** Sum of tier weights over those blocks. */
  readonly raw: number;
  /** raw / total blocks, in [0, 1]. */
  readonly score: number;
}

export interface PrefixScorerOptions {
  /**
   * Weight of a block by device tier. A tier missing from the map weighs `defaultTierWeight`.
   * @default { gpu: 1.0, cpu: 0.8 }
   */
  readonly tierWeights?: Readonly<Record<string, number>>;
  /**
   * Weight of a tier that is not in `tierWeights`.
   * @default 1.0
   */
  readonly defaultTierWeight?: number;
}

export const DEFAULT_TIER_WEIGHTS: Readonly<Record<string, number>> = Object.freeze({ gpu: 1.0, cpu: 0.8 });

export class PrefixScorer {
  private readonly tierWeights: Readonly<Record<string, number>>;
  private readonly defaultTierWeight: number;

  constructor(options: PrefixScorerOptions = {}) {
    this.tierWeights = options.tierWeights ?? DEFAULT_TIER_WEIGHTS;
    this.defaultTierWeight = options.defaultTierWeight ?? 1.0;
    for (const [tier, w] of Object.entries(this.tierWeights)) {
      if (!(w >= 0) || !Number.isFinite(w)) {
        throw new Error(`tierWeights.${tier} is ${w}; tier weights must be finite numbers ≥ 0 (e.g. gpu: 1.0, cpu: 0.8)`);
      }
    }
  }

  /** Weight of a tier name (case-insensitive). */
  weightOf(tier: string): number {
    const w = this.tierWeights[tier] ?? this.tierWeights[tier.toLowerCase()];
    return w ?? this.defaultTierWeight;
  }

  /**
   * Scores every pod that holds block 0, ordered by score (desc) then pod id.
   * `hits` is the index lookup answer for `keys` (keys absent from the map are held by nobody).
   */
  score(keys: readonly BlockKey[], hits: ReadonlyMap<BlockKey, readonly PodEntry[]>): PodPrefixScore[] {
    const total = keys.length;
    if (total === 0) return [];
    const raw = new Map<string, number>();
    const blocks = new Map<string, number>();
    let active: Set<string> | undefined;
    for (const key of keys) {
      const entries = hits.get(key);
      if (!entries || entries.length === 0) break;
      const best = new Map<string, number>();
      for (const e of entries) {
        if (active && !active.has(e.pod)) continue;
        const w = this.weightOf(e.tier);
        const prev = best.get(e.pod);
        if (prev === undefined || w > prev) best.set(e.pod, w);
      }
      if (best.size === 0) break;
      for (const [pod, w] of best) {
        raw.set(pod, (raw.get(pod) ?? 0) + w);
        blocks.set(pod, (blocks.get(pod) ?? 0) + 1);
      }
      active = new Set(best.keys());
    }
    const out: PodPrefixScore[] = [];
    for (const [pod, r] of raw) {
      out.push({ pod, consecutiveBlocks: blocks.get(pod) ?? 0, raw: r, score: Math.min(1, Math.max(0, r / total)) });
    }
    out.sort((a, b) => b.score - a.score || (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0));
    return out;
  }
}
