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
import { PrefixHits } from './prefix-hits.js';
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

  private readonly weightCache = new Map<string, number>();

  /** `weightOf` memoized per tier string (tiers are a handful of short names). */
  private cachedWeight(tier: string): number {
    let w = this.weightCache.get(tier);
    if (w === undefined) {
      w = this.weightOf(tier);
      if (this.weightCache.size < 64) this.weightCache.set(tier, w);
    }
    return w;
  }

  /** Weight of a tier name (case-insensitive). */
  weightOf(tier: string): number {
    // own properties only: a medium such as "constructor" in a KV event must not find Object.prototype's
    const own = (t: string): number | undefined => (Object.hasOwn(this.tierWeights, t) ? this.tierWeights[t] : undefined);
    return own(tier) ?? own(tier.toLowerCase()) ?? this.defaultTierWeight;
  }

  /**
   * Scores every pod that holds block 0, ordered by score (desc) then pod id.
   * `hits` is the index lookup answer for `keys` (keys absent from the map are held by nobody).
   */
  score(keys: readonly BlockKey[], hits: ReadonlyMap<BlockKey, readonly PodEntry[]>): PodPrefixScore[] {
    const total = keys.length;
    if (total === 0) return [];
    // Only pods holding block 0 can score, so they get dense ids there; per pod, `seen` is the last
    // block it was credited for (a pod is still racing at block k iff seen === k - 1), `best` its
    // best tier weight in the current block. No per-block Map/Set allocation.
    const ids = new Map<string, number>();
    const names: string[] = [];
    const raw: number[] = [];
    const blocks: number[] = [];
    const seen: number[] = [];
    const best: number[] = [];
    const racing: number[] = []; // ids credited in the current block (pass 1 → pass 2)
    const memoEntry: (PodEntry | undefined)[] = []; // per entry position: last entry object seen there,
    const memoId: number[] = []; // its pod id (-1: not racing since block 0),
    const memoW: number[] = []; // and its tier weight
    // A MemoryIndex answer for these keys is read in its compact form (no bigint Map lookups).
    const compact = hits instanceof PrefixHits && hits.answers(keys) ? hits : undefined;
    const end = compact === undefined ? total : compact.prefixLength;
    // The compact answer's holders are one flat array; a Map answer's are one array per key.
    const flat = compact?.flat;
    const offsets = compact?.offsets;
    for (let k = 0; k < end; k++) {
      let entries: readonly PodEntry[] | undefined;
      let from = 0;
      let to: number;
      if (flat !== undefined && offsets !== undefined) {
        entries = flat;
        from = offsets[k] as number;
        to = offsets[k + 1] as number;
      } else {
        entries = hits.get(keys[k] as BlockKey);
        to = entries === undefined ? 0 : entries.length;
      }
      if (entries === undefined || to === from) break;
      // Pass 1: best weight per racing pod in this block.
      let credited = 0;
      for (let j = from; j < to; j++) {
        const e = entries[j] as PodEntry;
        const i = j - from;
        let id: number;
        let w: number;
        if (memoEntry[i] === e) {
          // Same entry object at the same position as in the previous block (the index interns
          // its entries, so consecutive blocks of a run usually repeat them): no Map lookups.
          id = memoId[i] as number;
          w = memoW[i] as number;
        } else {
          const known = ids.get(e.pod);
          if (known === undefined && k !== 0) id = -1;
          else if (known === undefined) {
            id = names.length;
            ids.set(e.pod, id);
            names.push(e.pod);
            raw.push(0);
            blocks.push(0);
            seen.push(-1);
            best.push(0);
          } else id = known;
          w = this.cachedWeight(e.tier);
          memoEntry[i] = e;
          memoId[i] = id;
          memoW[i] = w;
        }
        if (id < 0) continue;
        const s = seen[id] as number;
        if (s === k) {
          if (w > (best[id] as number)) best[id] = w;
        } else if (s === k - 1) {
          seen[id] = k;
          best[id] = w;
          racing[credited++] = id;
        }
      }
      if (credited === 0) break;
      // Pass 2: credit each racing pod once with its best weight.
      for (let i = 0; i < credited; i++) {
        const id = racing[i] as number;
        raw[id] = (raw[id] as number) + (best[id] as number);
        blocks[id] = k + 1;
      }
    }
    const out: PodPrefixScore[] = [];
    for (let id = 0; id < names.length; id++) {
      const r = raw[id] as number;
      if ((blocks[id] as number) === 0) continue;
      out.push({ pod: names[id] as string, consecutiveBlocks: blocks[id] as number, raw: r, score: Math.min(1, Math.max(0, r / total)) });
    }
    out.sort((a, b) => b.score - a.score || (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0));
    return out;
  }
}
