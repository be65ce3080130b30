/**
 * Step-level model of one vLLM V1 server (docs/benchmarks/method.md, "Server model").
 *
 * Scheduling per step (vLLM V1 semantics, simplified where noted):
 * 1. Running sequences first, in admission order: a decoding sequence takes 1 token of the step's
 *    budget (`maxBatchedTokens`), a sequence still in prefill takes its next chunk (chunked
 *    prefill). A decode that crosses a block boundary allocates one block; when none is free the
 *    most recently admitted running sequence is preempted (its blocks released, recomputed later),
 *    as vLLM V1 does.
 * 2. Then waiting requests, FCFS, while budget and `maxNumSeqs` allow. Admission computes the
 *    prefix hit — the longest run of leading **full** blocks whose keys are cached, capped at
 *    ⌊(L−1)/bs⌋ blocks (vLLM never serves the whole prompt from cache) — pins those blocks and
 *    allocates blocks for the rest of the prompt (simplification: the whole prompt at once, not per
 *    chunk). A request whose blocks do not fit waits (head-of-line, FCFS).
 *
 * Step time = α + β_p·P + β_d·D + γ·K (profiles.ts). At the end of the step computed tokens
 * advance, the first token of a sequence that finished its prefill is emitted (TTFT), decodes
 * produce one token each, and every block that became full and whose content is known is
 * registered in the prefix cache (BlockStored) unless an equal block is already cached.
 *
 * Cache: a block with reference count 0 stays cached and evictable; eviction takes the least
 * recently released one (a finished sequence releases its blocks tail first, so a prompt's tail is
 * evicted before its prefix, as in vLLM's free-block queue). Only unreferenced blocks are evicted.
 *
 * KV events: every step's evictions (BlockRemoved) and registrations (BlockStored with parent hash,
 * token ids, block size and medium `gpu`) are delivered as one vLLM-shaped `KvEventBatch` to the
 * `onKvEvents` listener at the end of the step; `resetPrefixCache` emits AllBlocksCleared.
 */
import type { BlockKey } from '../../src/kvindex/types.js';
import type { BlockRemovedEvent, BlockStoredEvent, KvEvent, KvEventBatch } from '../../src/kvevents/types.js';
import { checkProfile, stepCostMs, type PodProfile } from './profiles.js';
import { BlockKeyer, streamTokens, type SimRequest } from './request.js';
import type { VllmMetricValues } from './vllm-metrics.js';

/** A cached block (registered in the prefix cache under `key`). */
interface CachedBlock {
  readonly key: BlockKey;
  ref: number;
  /** LRU links while ref === 0. */
  prev: CachedBlock | null;
  next: CachedBlock | null;
  inLru: boolean;
}

/** A request while it is on the pod. */
export interface Seq {
  readonly req: SimRequest;
  /** Keys of the full blocks of the request's known stream. */
  readonly keys: readonly BlockKey[];
  /** Physical blocks held: a cached block, or null for a block not (yet) in the prefix cache. */
  blocks: (CachedBlock | null)[];
  /** Tokens whose KV is computed. */
  computed: number;
  /** Tokens to compute before decoding (the prompt; prompt + generated − 1 after a preemption). */
  prefillTarget: number;
  /** Output tokens generated. */
  generated: number;
  /** Next block index to consider for registration. */
  nextReg: number;
  /** Simulated time the pod received the request. */
  readonly receivedMs: number;
  /** End of the step that produced the first token. */
  firstTokenMs?: number;
  finishedMs?: number;
  /** Prompt tokens queried / hit at (every) admission (vLLM counts re-admissions too). */
  queriedTokens: number;
  hitTokens: number;
  /** Hit tokens of the first admission. */
  firstHitTokens?: number;
  preemptions: number;
}

interface StepItem {
  readonly seq: Seq;
  readonly tokens: number;
  readonly decode: boolean;
}

/** What one step did, returned by `endStep`. */
export interface StepResult {
  /** Sequences that produced their first token in this step. */
  readonly firstTokens: readonly Seq[];
  /** Sequences that finished in this step. */
  readonly finished: readonly Seq[];
  /** Output tokens produced in the step. */
  readonly outputTokens: number;
  /** The step's KV events (also delivered to `onKvEvents`), or undefined when there were none. */
  readonly events?: KvEventBatch;
}

export interface SimPodOptions {
  /** Endpoint id `ip:port` (the pod id of the KV-event topic). */
  readonly id: string;
  readonly profile: PodProfile;
  /**
   * Computes block keys of a request (shared by all pods of a fleet so keys are computed once).
   * @default a new BlockKeyer()
   */
  readonly keyer?: BlockKeyer;
  /** Receives each step's KV events. @default none (events are still returned by `endStep`) */
  readonly onKvEvents?: (batch: KvEventBatch) => void;
  /** Medium reported in events. @default 'gpu' */
  readonly medium?: string;
}

export class SimPod {
  readonly id: string;
  readonly profile: PodProfile;
  private readonly keyer: BlockKeyer;
  private readonly onKvEvents?: (batch: KvEventBatch) => void;
  private readonly medium: string;
  private readonly bs: number;

  private readonly cache = new Map<BlockKey, CachedBlock>();
  private lruHead: CachedBlock | null = null;
  private lruTail: CachedBlock | null = null;
  private lruSize = 0;
  /** Blocks never used or released without a key. */
  private emptyBlocks: number;
  /** Blocks with ref > 0 (cached or not). */
  private usedBlocks = 0;

  private readonly waiting: Seq[] = [];
  private running: Seq[] = [];
  private batch: StepItem[] | undefined;
  private pending: KvEvent[] = [];

  // vLLM counters.
  private queries = 0;
  private hits = 0;
  private outputTokensTotal = 0;
  private preemptionsTotal = 0;
  private stepsTotal = 0;
  private busyMsTotal = 0;

  constructor(opts: SimPodOptions) {
    this.id = opts.id;
    this.profile = checkProfile(opts.profile);
    this.keyer = opts.keyer ?? new BlockKeyer();
    this.onKvEvents = opts.onKvEvents;
    this.medium = opts.medium ?? 'gpu';
    this.bs = opts.profile.blockSize;
    this.emptyBlocks = opts.profile.numBlocks;
  }

  // ---- inputs ---------------------------------------------------------------------------------

  /**
   * Why the pod would reject `req` (vLLM answers 400), or undefined when it accepts it:
   * prompt + output over `maxModelLen`, or more blocks than the pod has.
   */
  rejectReason(req: SimRequest): string | undefined {
    const total = req.inputLength + req.outputLength;
    if (total > this.profile.maxModelLen) {
      return `prompt ${req.inputLength} + output ${req.outputLength} tokens exceed max_model_len ${this.profile.maxModelLen}`;
    }
    if (Math.ceil(total / this.bs) > this.profile.numBlocks) {
      return `needs ${Math.ceil(total / this.bs)} KV blocks but the pod has ${this.profile.numBlocks}`;
    }
    if (req.inputLength < 1) return 'empty prompt';
    if (req.outputLength < 1) return `output length ${req.outputLength} (max_tokens must be ≥ 1)`;
    return undefined;
  }

  /** Queue a request (call `rejectReason` first). Returns its sequence. */
  enqueue(req: SimRequest, nowMs: number): Seq {
    const reason = this.rejectReason(req);
    if (reason) throw new RangeError(`pod ${this.id} cannot take request ${req.id}: ${reason}`);
    const seq: Seq = {
      req,
      keys: this.keyer.keys(req, this.bs),
      blocks: [],
      computed: 0,
      prefillTarget: req.inputLength,
      generated: 0,
      nextReg: 0,
      receivedMs: nowMs,
      queriedTokens: 0,
      hitTokens: 0,
      preemptions: 0,
    };
    this.waiting.push(seq);
    return seq;
  }

  // ---- stepping -------------------------------------------------------------------------------

  /** True while a step is in flight. */
  get busy(): boolean {
    return this.batch !== undefined;
  }

  /** True when there is work (running or waiting sequences). */
  get hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0;
  }

  /**
   * Schedule the next step. Returns its duration in ms, or undefined when nothing can run
   * (idle, or waiting requests that do not fit yet).
   */
  beginStep(): number | undefined {
    if (this.batch) throw new Error(`pod ${this.id}: beginStep while a step is in flight; call endStep first`);
    const items: StepItem[] = [];
    let budget = this.profile.maxBatchedTokens;
    const preemptedBefore = this.preemptionsTotal;
    // 1. running sequences
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const seq = this.running[i] as Seq;
      if (seq.computed < seq.prefillTarget) {
        const n = Math.min(seq.prefillTarget - seq.computed, budget);
        items.push({ seq, tokens: n, decode: false });
        budget -= n;
        continue;
      }
      // decode: the token computed this step is position `computed`; it needs a slot
      if (seq.computed >= seq.blocks.length * this.bs) {
        let ok = this.allocate(seq, 1);
        while (!ok) {
          const victim = this.running[this.running.length - 1] as Seq;
          this.preempt(victim);
          if (victim === seq) break;
          ok = this.allocate(seq, 1);
        }
        if (!ok) {
          i--; // `seq` was removed from running; the loop continues with the next one
          continue;
        }
      }
      items.push({ seq, tokens: 1, decode: true });
      budget -= 1;
    }
    // 2. waiting requests, FCFS (none in a step that had to preempt, as vLLM)
    while (this.preemptionsTotal === preemptedBefore && budget > 0 && this.waiting.length > 0 && this.running.length < this.profile.maxNumSeqs) {
      const seq = this.waiting[0] as Seq;
      if (!this.admit(seq)) break;
      this.waiting.shift();
      this.running.push(seq);
      const n = Math.min(seq.prefillTarget - seq.computed, budget);
      items.push({ seq, tokens: n, decode: false });
      budget -= n;
    }
    if (items.length === 0) return undefined;
    let p = 0;
    let d = 0;
    let k = 0;
    for (const it of items) {
      if (it.decode) {
        d++;
        k += it.seq.computed;
      } else p += it.tokens;
    }
    this.batch = items;
    const ms = stepCostMs(this.profile, p, d, k);
    this.stepsTotal++;
    this.busyMsTotal += ms;
    return ms;
  }

  /** Finish the step begun by `beginStep`, at simulated time `nowMs` (its end). */
  endStep(nowMs: number): StepResult {
    const items = this.batch;
    if (!items) throw new Error(`pod ${this.id}: endStep without beginStep`);
    this.batch = undefined;
    const firstTokens: Seq[] = [];
    const finished: Seq[] = [];
    let outputTokens = 0;
    for (const it of items) {
      const seq = it.seq;
      seq.computed += it.tokens;
      if (it.decode) {
        seq.generated++;
        outputTokens++;
      } else if (seq.computed >= seq.prefillTarget && seq.generated === 0) {
        seq.generated = 1;
        outputTokens++;
        seq.firstTokenMs = nowMs;
        firstTokens.push(seq);
      }
      this.register(seq);
      if (seq.generated >= seq.req.outputLength && seq.computed >= seq.prefillTarget) {
        seq.finishedMs = nowMs;
        finished.push(seq);
      }
    }
    if (finished.length > 0) {
      const done = new Set(finished);
      this.running = this.running.filter((s) => !done.has(s));
      for (const s of finished) this.release(s);
    }
    this.outputTokensTotal += outputTokens;
    const events = this.flushEvents(nowMs);
    return { firstTokens, finished, outputTokens, events };
  }

  /**
   * vLLM's `reset_prefix_cache`: drops every cached block and emits AllBlocksCleared. Refused
   * (returns false, nothing changes) while any block is in use, as vLLM refuses.
   */
  resetPrefixCache(nowMs: number): boolean {
    if (this.usedBlocks > 0 || this.batch) return false;
    this.cache.clear();
    this.lruHead = this.lruTail = null;
    this.lruSize = 0;
    this.emptyBlocks = this.profile.numBlocks;
    this.pending = [{ type: 'AllBlocksCleared' }];
    this.flushEvents(nowMs);
    return true;
  }

  // ---- observation ----------------------------------------------------------------------------

  /** Current values of the vLLM metrics this pod serves. */
  metrics(): VllmMetricValues {
    return {
      prefixCacheQueries: this.queries,
      prefixCacheHits: this.hits,
      numRequestsWaiting: this.waiting.length,
      numRequestsRunning: this.running.length,
      kvCacheUsagePerc: this.usedBlocks / this.profile.numBlocks,
    };
  }

  /** Internal counters for reports and tests. */
  stats(): {
    cachedBlocks: number;
    evictableBlocks: number;
    usedBlocks: number;
    emptyBlocks: number;
    outputTokens: number;
    preemptions: number;
    steps: number;
    busyMs: number;
  } {
    return {
      cachedBlocks: this.cache.size,
      evictableBlocks: this.lruSize,
      usedBlocks: this.usedBlocks,
      emptyBlocks: this.emptyBlocks,
      outputTokens: this.outputTokensTotal,
      preemptions: this.preemptionsTotal,
      steps: this.stepsTotal,
      busyMs: this.busyMsTotal,
    };
  }

  /**
   * Check the block accounting (tests): every block is exactly one of in use, cached and
   * evictable, or empty; reference counts match the sequences holding the blocks.
   * Returns the problems found (empty when consistent).
   */
  checkInvariants(): string[] {
    const problems: string[] = [];
    const n = this.profile.numBlocks;
    if (this.usedBlocks + this.emptyBlocks + this.lruSize !== n) {
      problems.push(`used ${this.usedBlocks} + empty ${this.emptyBlocks} + evictable ${this.lruSize} ≠ ${n}`);
    }
    const refs = new Map<CachedBlock, number>();
    let anonymous = 0;
    for (const s of [...this.running, ...this.waiting]) {
      for (const b of s.blocks) {
        if (b === null) anonymous++;
        else refs.set(b, (refs.get(b) ?? 0) + 1);
      }
    }
    if (anonymous + refs.size !== this.usedBlocks) problems.push(`${anonymous} anonymous + ${refs.size} cached blocks held ≠ used ${this.usedBlocks}`);
    for (const [b, r] of refs) if (b.ref !== r) problems.push(`block ${b.key} ref ${b.ref} but held ${r} times`);
    for (const b of this.cache.values()) if ((b.ref === 0) !== b.inLru) problems.push(`block ${b.key} ref ${b.ref} inLru ${b.inLru}`);
    return problems;
  }

  /** Whether a block with this key is in the prefix cache. */
  isCached(key: BlockKey): boolean {
    return this.cache.has(key);
  }

  /** Snapshot of the cached keys (tests, oracle checks). */
  cachedKeys(): BlockKey[] {
    return [...this.cache.keys()];
  }

  /** Tokens vLLM would serve from cache if `req` were admitted now (full blocks, capped at L−1). */
  prefixHitTokens(req: SimRequest): number {
    return this.hitBlocks(this.keyer.keys(req, this.bs), req.inputLength) * this.bs;
  }

  /**
   * Prompt tokens still to compute on this pod (for oracles): what running sequences have left,
   * plus each waiting request's prompt minus what the cache would serve it now.
   */
  pendingPrefillTokens(): number {
    let n = 0;
    for (const s of this.running) n += Math.max(0, s.prefillTarget - s.computed);
    for (const s of this.waiting) n += s.prefillTarget - this.hitBlocks(s.keys, s.prefillTarget) * this.bs;
    return n;
  }

  // ---- internals ------------------------------------------------------------------------------

  private hitBlocks(keys: readonly BlockKey[], target: number): number {
    const cap = Math.min(keys.length, Math.floor((target - 1) / this.bs));
    let h = 0;
    while (h < cap && this.cache.has(keys[h] as BlockKey)) h++;
    return h;
  }

  /** Try to admit `seq`: pin its hit blocks and allocate the rest of its prompt. */
  private admit(seq: Seq): boolean {
    const target = seq.prefillTarget;
    const h = this.hitBlocks(seq.keys, target);
    const needNew = Math.ceil(target / this.bs) - h;
    let pinnedFromLru = 0;
    for (let i = 0; i < h; i++) if ((this.cache.get(seq.keys[i] as BlockKey) as CachedBlock).ref === 0) pinnedFromLru++;
    if (needNew > this.emptyBlocks + this.lruSize - pinnedFromLru) return false;
    const blocks: (CachedBlock | null)[] = [];
    for (let i = 0; i < h; i++) {
      const b = this.cache.get(seq.keys[i] as BlockKey) as CachedBlock;
      if (b.ref === 0) {
        this.lruRemove(b);
        this.usedBlocks++;
      }
      b.ref++;
      blocks.push(b);
    }
    seq.blocks = blocks;
    if (!this.allocate(seq, needNew)) throw new Error(`pod ${this.id}: allocation after a successful fit check failed (bug)`);
    seq.computed = h * this.bs;
    seq.nextReg = h;
    seq.queriedTokens += target;
    seq.hitTokens += h * this.bs;
    if (seq.firstHitTokens === undefined) seq.firstHitTokens = h * this.bs;
    this.queries += target;
    this.hits += h * this.bs;
    return true;
  }

  /** Allocate `n` anonymous blocks to `seq`, evicting unreferenced cached blocks as needed. */
  private allocate(seq: Seq, n: number): boolean {
    if (n > this.emptyBlocks + this.lruSize) return false;
    for (let i = 0; i < n; i++) {
      if (this.emptyBlocks > 0) this.emptyBlocks--;
      else this.evictLru();
      this.usedBlocks++;
      seq.blocks.push(null);
    }
    return true;
  }

  private evictLru(): void {
    const b = this.lruHead as CachedBlock;
    this.lruRemove(b);
    this.cache.delete(b.key);
    const last = this.pending[this.pending.length - 1];
    if (last && last.type === 'BlockRemoved') (last.blockHashes as BlockKey[]).push(b.key);
    else this.pending.push({ type: 'BlockRemoved', blockHashes: [b.key], medium: this.medium } satisfies BlockRemovedEvent);
  }

  /** Register the sequence's newly full, known blocks in the prefix cache. */
  private register(seq: Seq): void {
    const full = Math.min(Math.floor(seq.computed / this.bs), seq.keys.length);
    let run: BlockStoredEvent | undefined;
    let runTokens: number[] | undefined;
    for (let i = seq.nextReg; i < full; i++) {
      const key = seq.keys[i] as BlockKey;
      if (this.cache.has(key) || seq.blocks[i] !== null) {
        run = undefined; // an equal block is already cached: this physical block stays anonymous
        continue;
      }
      const b: CachedBlock = { key, ref: 1, prev: null, next: null, inLru: false };
      this.cache.set(key, b);
      seq.blocks[i] = b;
      const toks = streamTokens(seq.req, i * this.bs, (i + 1) * this.bs);
      if (run && runTokens) {
        (run.blockHashes as BlockKey[]).push(key);
        for (const t of toks) runTokens.push(t);
      } else {
        runTokens = toks;
        run = {
          type: 'BlockStored',
          blockHashes: [key],
          parentBlockHash: i > 0 ? (seq.keys[i - 1] as BlockKey) : undefined,
          tokenIds: runTokens,
          blockSize: this.bs,
          medium: this.medium,
        };
        if (run.parentBlockHash === undefined) delete (run as { parentBlockHash?: BlockKey }).parentBlockHash;
        this.pending.push(run);
      }
    }
    if (full > seq.nextReg) seq.nextReg = full;
  }

  /** Release a sequence's blocks, tail first (so a prompt's tail is evicted before its prefix). */
  private release(seq: Seq): void {
    for (let i = seq.blocks.length - 1; i >= 0; i--) {
      const b = seq.blocks[i];
      if (b === null || b === undefined) {
        this.usedBlocks--;
        this.emptyBlocks++;
        continue;
      }
      b.ref--;
      if (b.ref === 0) {
        this.usedBlocks--;
        this.lruAppend(b);
      }
    }
    seq.blocks = [];
  }

  private preempt(seq: Seq): void {
    const idx = this.running.lastIndexOf(seq);
    if (idx >= 0) this.running.splice(idx, 1);
    this.release(seq);
    seq.prefillTarget = seq.generated > 0 ? seq.req.inputLength + seq.generated - 1 : seq.req.inputLength;
    seq.computed = 0;
    seq.nextReg = 0;
    seq.preemptions++;
    this.preemptionsTotal++;
    this.waiting.unshift(seq);
  }

  private lruAppend(b: CachedBlock): void {
    b.prev = this.lruTail;
    b.next = null;
    if (this.lruTail) this.lruTail.next = b;
    else this.lruHead = b;
    this.lruTail = b;
    b.inLru = true;
    this.lruSize++;
  }

  private lruRemove(b: CachedBlock): void {
    if (!b.inLru) return;
    if (b.prev) b.prev.next = b.next;
    else this.lruHead = b.next;
    if (b.next) b.next.prev = b.prev;
    else this.lruTail = b.prev;
    b.prev = b.next = null;
    b.inLru = false;
    this.lruSize--;
  }

  private flushEvents(nowMs: number): KvEventBatch | undefined {
    if (this.pending.length === 0) return undefined;
    const batch: KvEventBatch = { ts: nowMs / 1000, events: this.pending };
    this.pending = [];
    this.onKvEvents?.(batch);
    return batch;
  }
}
