/**
 * llm-d's approximate `prefix-cache-scorer` (GAIE v1.4 / inference-scheduler v0.8 semantics): it
 * never hears from the model servers; it remembers which pod it sent each prompt prefix to and
 * assumes the pod still holds it.
 *
 * - Input: the prompt text (chat: the JSON of the messages), cut into blocks of
 *   blockSizeTokens × 4 characters (a trailing partial block is hashed too), at most
 *   `maxPrefixBlocksToMatch` blocks.
 * - Hashes chain: h₀ = xxh64(model), hᵢ = xxh64(blockᵢ, seed hᵢ₋₁).
 * - Index: hash → pods holding it, plus one LRU of `lruCapacityPerServer` hashes per pod; evicting
 *   a hash from a pod's LRU removes the pod from that hash.
 * - Score: walk the hashes from the first and stop at the first one no pod holds; every candidate
 *   holding hash i gets +1; score = matched / total blocks.
 * - Learning: the primary pick gets every hash of the prompt (llm-d's PreRequest), at once.
 * - `autoTune` (default on) takes blockSizeTokens from the pods' `cache_config_info` block size.
 * - Pods not seen among the candidates for 2 minutes are forgotten.
 */
import type { EndpointState } from '../datalayer/endpoint-store.js';
import { u64Out, xxh64 } from '../kvindex/keys/hash-fast.js';
import type { CycleState, Reservation, Scorer, SchedulingRequest } from './types.js';

export interface PrefixCacheScorerOptions {
  /** Tokens per block; a block is 4 characters per token. @default 16 */
  readonly blockSizeTokens?: number;
  /** Characters per block, overriding blockSizeTokens (llm-d's deprecated `blockSize`). @default undefined */
  readonly blockSizeChars?: number;
  /** Take blockSizeTokens from the pods' scraped block size. @default true */
  readonly autoTune?: boolean;
  /** Blocks of the prompt considered. @default 256 */
  readonly maxPrefixBlocksToMatch?: number;
  /** Hashes remembered per pod. @default 31250 */
  readonly lruCapacityPerServer?: number;
  /** Forget pods not among the candidates for this long. @default 120000 */
  readonly inactivePodMs?: number;
  /** Clock in ms. @default Date.now */
  readonly now?: () => number;
}

const CHARS_PER_TOKEN = 4;
/** What a learning scorer books: nothing to release. */
export const NOTHING_BOOKED: Reservation = Object.freeze({ started: () => undefined, finished: () => undefined });
const encoder = new TextEncoder();

export class PrefixCacheScorer implements Scorer {
  readonly name = 'prefix-cache-scorer';
  private readonly holders = new Map<bigint, Set<string>>();
  private readonly lrus = new Map<string, Map<bigint, true>>();
  private readonly lastSeen = new Map<string, number>();
  private readonly pending = new WeakMap<CycleState, bigint[]>();
  private readonly blockSizeTokens: number;
  private readonly autoTune: boolean;
  private readonly maxBlocks: number;
  private readonly capacity: number;
  private readonly inactiveMs: number;
  private readonly now: () => number;
  private lastPurge: number;

  constructor(private readonly opts: PrefixCacheScorerOptions = {}) {
    this.blockSizeTokens = opts.blockSizeTokens ?? 16;
    this.autoTune = opts.autoTune ?? true;
    this.maxBlocks = opts.maxPrefixBlocksToMatch ?? 256;
    this.capacity = opts.lruCapacityPerServer ?? 31_250;
    this.inactiveMs = opts.inactivePodMs ?? 120_000;
    this.now = opts.now ?? Date.now;
    this.lastPurge = this.now();
  }

  /** Characters per block for these candidates. */
  blockChars(candidates: readonly EndpointState[]): number {
    if (this.opts.blockSizeChars !== undefined) return this.opts.blockSizeChars;
    if (this.autoTune) {
      for (const c of candidates) {
        const b = c.metrics?.blockSize;
        if (b !== undefined && b > 0) return b * CHARS_PER_TOKEN;
      }
    }
    return this.blockSizeTokens * CHARS_PER_TOKEN;
  }

  /** The hash chain of `text` for `model` with blocks of `blockChars` characters. */
  hashes(model: string, text: string, blockChars: number): bigint[] {
    const out = u64Out();
    const m = encoder.encode(model);
    xxh64(m, m.length, out);
    let hi = out[0] as number;
    let lo = out[1] as number;
    const n = Math.min(Math.ceil(text.length / blockChars), this.maxBlocks);
    const keys: bigint[] = [];
    for (let i = 0; i < n; i++) {
      const block = encoder.encode(text.slice(i * blockChars, (i + 1) * blockChars));
      xxh64(block, block.length, out, hi, lo);
      hi = out[0] as number;
      lo = out[1] as number;
      keys.push((BigInt(hi) << 32n) | BigInt(lo));
    }
    return keys;
  }

  score(req: SchedulingRequest, candidates: readonly EndpointState[], state: CycleState): Map<string, number> {
    const t = this.now();
    for (const c of candidates) this.lastSeen.set(c.endpoint.address, t);
    if (t - this.lastPurge >= this.inactiveMs) this.purge(t);
    const out = new Map<string, number>();
    if (req.prompt === undefined || req.prompt.length === 0) return out;
    const keys = this.hashes(req.model, req.prompt, this.blockChars(candidates));
    this.pending.set(state, keys);
    const matched = new Map<string, number>();
    const wanted = new Set(candidates.map((c) => c.endpoint.address));
    for (const k of keys) {
      const pods = this.holders.get(k);
      if (pods === undefined || pods.size === 0) break;
      for (const p of pods) if (wanted.has(p)) matched.set(p, (matched.get(p) ?? 0) + 1);
    }
    state.approximatePrefix = matched;
    for (const c of candidates) {
      const a = c.endpoint.address;
      out.set(a, (matched.get(a) ?? 0) / keys.length);
    }
    return out;
  }

  /** Remembers that `pod` (the primary pick) now holds the prompt scored in `state` (llm-d's PreRequest). */
  reserve(_req: SchedulingRequest, pod: string, state: CycleState): Reservation {
    const keys = this.pending.get(state);
    if (keys !== undefined) this.add(pod, keys);
    return NOTHING_BOOKED;
  }

  /** Records that `pod` holds `keys` (most recent last). */
  add(pod: string, keys: readonly bigint[]): void {
    let lru = this.lrus.get(pod);
    if (lru === undefined) {
      lru = new Map();
      this.lrus.set(pod, lru);
    }
    for (const k of keys) {
      lru.delete(k);
      lru.set(k, true);
      let set = this.holders.get(k);
      if (set === undefined) {
        set = new Set();
        this.holders.set(k, set);
      }
      set.add(pod);
    }
    while (lru.size > this.capacity) {
      const oldest = lru.keys().next().value as bigint;
      lru.delete(oldest);
      this.dropHolder(oldest, pod);
    }
  }

  /** Forgets everything about `pod`. */
  forget(pod: string): void {
    const lru = this.lrus.get(pod);
    if (lru) for (const k of lru.keys()) this.dropHolder(k, pod);
    this.lrus.delete(pod);
    this.lastSeen.delete(pod);
  }

  /** Hashes remembered for `pod`. */
  size(pod: string): number {
    return this.lrus.get(pod)?.size ?? 0;
  }

  private dropHolder(k: bigint, pod: string): void {
    const set = this.holders.get(k);
    if (!set) return;
    set.delete(pod);
    if (set.size === 0) this.holders.delete(k);
  }

  private purge(t: number): void {
    this.lastPurge = t;
    for (const [pod, seen] of this.lastSeen) if (t - seen >= this.inactiveMs) this.forget(pod);
    for (const pod of this.lrus.keys()) if (!this.lastSeen.has(pod)) this.forget(pod);
  }
}
