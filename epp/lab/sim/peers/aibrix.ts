/**
 * AIBrix `prefix-cache` routing, re-implemented for the simulator from its specification (our
 * own code; none of AIBrix's is copied). Source read: vllm-project/aibrix @e3e10f9e (v0.7.0+),
 * the gateway's prefix-cache router, its prefix-cache indexer and the character tokenizer —
 * where the code and the README disagree the code's values are used (block 4, imbalance 8, 1 σ).
 *
 * Per request, with R(w) the gateway's real-time running-request count of pod w (the router's own
 * in-flight count here, `FleetView.pods[w].inFlight`):
 * 1. if max R − min R > 8, the candidates are only the pods with the minimum count;
 * 2. the prompt's blocks are walked from the first, intersecting the set of candidates holding
 *    each block; a pod's match % = ⌊(i + 1)·100 ÷ n⌋ for the deepest block i it holds as part of an
 *    unbroken run from block 0 (n = number of blocks);
 * 3. if some pod matched: shuffle the matched pods, stable-sort by (match % desc, R asc) and take
 *    the first whose R ≤ mean + 1·σ of R over all pods; if none qualifies, least-request (min R,
 *    random ties) among the candidates;
 * 4. no match → least-request among the candidates, random ties;
 * 5. the chosen pod is recorded as holding every block of the prompt.
 * The block store is one LRU of 200,000 blocks (block hash → pods with their last use); entries
 * idle more than 20 minutes are dropped by a sweep every second (simulated time).
 *
 * Bytes: AIBrix's default "character" tokenizer yields the prompt's bytes and a block is 4 bytes.
 * The simulator has token ids, not text: the text is derived deterministically as 4 bytes per
 * token id (a fixed-width rendering of the id), so one block = one token id, and the block hash
 * chain is computed over the token ids (a 53-bit chain of 32-bit mixes, seed 0). The prompt never
 * has a partial final block under this derivation.
 */
import type { FleetView, PolicyContext, RoutingPolicy } from '../policy.js';
import { promptTokens, type SimRequest } from '../request.js';
import { mix32 } from '../rng.js';

export const AIBRIX_DEFAULTS = Object.freeze({
  blockBytes: 4,
  bytesPerToken: 4,
  maxBlocks: 200_000,
  idleEvictMs: 20 * 60_000,
  sweepIntervalMs: 1000,
  imbalanceThreshold: 8,
  stdDevFactor: 1,
});

export interface AibrixOptions {
  /** Blocks in the store's LRU. @default 200000 */
  readonly maxBlocks?: number;
  /** @default 8 */
  readonly imbalanceThreshold?: number;
  /** The load gate is mean + this × σ. @default 1 */
  readonly stdDevFactor?: number;
  /** @default 1200000 (20 min) */
  readonly idleEvictMs?: number;
}

/** Hash chain over the prompt's blocks (one token id per block here): 53-bit safe integers. */
export function aibrixBlockHashes(tokens: ArrayLike<number>): number[] {
  const out = new Array<number>(tokens.length);
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as number;
    const nhi = mix32(hi ^ 0x27d4eb2f, t ^ lo);
    const nlo = mix32(lo ^ 0x165667b1, t ^ hi);
    hi = nhi;
    lo = nlo;
    out[i] = (hi & 0x1fffff) * 0x100000000 + (lo >>> 0);
  }
  return out;
}

/** Mean + k·σ (population σ) of `xs`. */
export function loadGate(xs: readonly number[], k: number): number {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length);
  return mean + k * sd;
}

/**
 * hash → slot map for the block store: open addressing with linear probing and backward-shift
 * deletion over typed arrays (the store does tens of millions of lookups per run; a `Map` keyed
 * by 53-bit numbers allocates a heap number per key). Keys are safe integers ≥ 0.
 */
export class SlotMap {
  private readonly keys: Float64Array;
  private readonly vals: Int32Array;
  private readonly mask: number;
  private count = 0;

  constructor(maxEntries: number) {
    let cap = 16;
    while (cap < maxEntries * 2) cap *= 2;
    this.keys = new Float64Array(cap);
    this.vals = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.count;
  }

  private home(key: number): number {
    const lo = key >>> 0;
    const hi = Math.floor(key / 4294967296) >>> 0;
    return (Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b) ^ (lo >>> 15)) & this.mask;
  }

  /** Slot of `key`, or −1. */
  get(key: number): number {
    for (let i = this.home(key); ; i = (i + 1) & this.mask) {
      const v = this.vals[i] as number;
      if (v < 0) return -1;
      if (this.keys[i] === key) return v;
    }
  }

  set(key: number, val: number): void {
    for (let i = this.home(key); ; i = (i + 1) & this.mask) {
      const v = this.vals[i] as number;
      if (v < 0) {
        if (this.count * 2 >= this.keys.length) throw new RangeError('SlotMap is full (bug: more entries than its capacity)');
        this.keys[i] = key;
        this.vals[i] = val;
        this.count++;
        return;
      }
      if (this.keys[i] === key) {
        this.vals[i] = val;
        return;
      }
    }
  }

  delete(key: number): void {
    let i = this.home(key);
    for (; ; i = (i + 1) & this.mask) {
      if ((this.vals[i] as number) < 0) return;
      if (this.keys[i] === key) break;
    }
    this.count--;
    // backward-shift: move later entries of the probe run into the hole when their home allows it
    let hole = i;
    for (let j = (i + 1) & this.mask; (this.vals[j] as number) >= 0; j = (j + 1) & this.mask) {
      const h = this.home(this.keys[j] as number);
      // entry at j may move to hole iff hole lies cyclically in [h, j)
      const movable = hole <= j ? h <= hole || h > j : h <= hole && h > j;
      if (movable) {
        this.keys[hole] = this.keys[j] as number;
        this.vals[hole] = this.vals[j] as number;
        hole = j;
      }
    }
    this.vals[hole] = -1;
  }
}

/**
 * The block store: an LRU of at most `capacity` block hashes, each with the last-use time of every
 * pod holding it (NaN = not held). Slots in fixed arrays, linked in use order (head = oldest).
 */
export class AibrixBlockStore {
  private readonly slotOf: SlotMap;
  private readonly hashOf: Float64Array;
  private readonly times: Float64Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = -1;
  private tail = -1;
  private used = 0;

  constructor(
    readonly capacity: number,
    readonly pods: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`aibrix maxBlocks is ${capacity}; use an integer ≥ 1`);
    if (pods > 31) throw new RangeError(`aibrix simulation supports ≤ 31 pods, got ${pods}`);
    this.slotOf = new SlotMap(capacity);
    this.hashOf = new Float64Array(capacity);
    this.times = new Float64Array(capacity * pods).fill(NaN);
    this.prev = new Int32Array(capacity).fill(-1);
    this.next = new Int32Array(capacity).fill(-1);
  }

  get size(): number {
    return this.slotOf.size;
  }

  /** Slot of `hash` (for `timeAt`), −1 when absent. */
  slot(hash: number): number {
    return this.slotOf.get(hash);
  }

  /** Last use recorded in slot `s` by `pod`, NaN when not held. */
  timeAt(s: number, pod: number): number {
    return this.times[s * this.pods + pod] as number;
  }

  /** Last use of `hash` by `pod`, NaN when not held. */
  lastUse(hash: number, pod: number): number {
    const s = this.slotOf.get(hash);
    return s < 0 ? NaN : (this.times[s * this.pods + pod] as number);
  }

  private unlink(s: number): void {
    const p = this.prev[s] as number;
    const n = this.next[s] as number;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
    this.prev[s] = -1;
    this.next[s] = -1;
  }

  private append(s: number): void {
    this.prev[s] = this.tail;
    this.next[s] = -1;
    if (this.tail >= 0) this.next[this.tail] = s;
    else this.head = s;
    this.tail = s;
  }

  /** Drops the oldest hash. */
  private dropHead(): number {
    const s = this.head;
    this.unlink(s);
    this.slotOf.delete(this.hashOf[s] as number);
    this.times.fill(NaN, s * this.pods, (s + 1) * this.pods);
    return s;
  }

  /** `pod` used `hash` at `now` (most recently used; evicts the oldest hash when full). */
  touch(hash: number, pod: number, now: number): void {
    let s = this.slotOf.get(hash);
    if (s >= 0) this.unlink(s);
    else {
      s = this.free.pop() ?? (this.used < this.capacity ? this.used++ : this.dropHead());
      this.hashOf[s] = hash;
      this.slotOf.set(hash, s);
    }
    this.times[s * this.pods + pod] = now;
    this.append(s);
  }

  /** Drops, oldest first, every hash no pod has used within `idleMs` of `now`. */
  sweepIdle(now: number, idleMs: number): void {
    while (this.head >= 0) {
      const s = this.head;
      let newest = -Infinity;
      for (let p = 0; p < this.pods; p++) {
        const t = this.times[s * this.pods + p] as number;
        if (t > newest) newest = t;
      }
      if (now - newest <= idleMs) break;
      this.free.push(this.dropHead());
    }
  }

  /** Slots freed by the idle sweep, reused before the LRU evicts. */
  private readonly free: number[] = [];
}

export class AibrixPolicy implements RoutingPolicy {
  readonly name = 'aibrix';
  readonly o: Required<AibrixOptions>;
  readonly store: AibrixBlockStore;
  private nextSweepMs: number = AIBRIX_DEFAULTS.sweepIntervalMs;
  /** Simulated time of the request being routed. */
  private now = 0;

  constructor(
    private readonly ctx: PolicyContext,
    opts: AibrixOptions = {},
  ) {
    const d = AIBRIX_DEFAULTS;
    this.o = {
      maxBlocks: opts.maxBlocks ?? d.maxBlocks,
      imbalanceThreshold: opts.imbalanceThreshold ?? d.imbalanceThreshold,
      stdDevFactor: opts.stdDevFactor ?? d.stdDevFactor,
      idleEvictMs: opts.idleEvictMs ?? d.idleEvictMs,
    };
    this.store = new AibrixBlockStore(this.o.maxBlocks, ctx.podIds.length);
  }

  /** Match % per candidate pod (pods not matched are absent). */
  matchPercents(hashes: readonly number[], candidates: readonly number[]): Map<number, number> {
    const out = new Map<number, number>();
    let alive = 0;
    for (const p of candidates) alive |= 1 << p;
    const n = hashes.length;
    const pods = this.store.pods;
    const depth = new Array<number>(pods).fill(0);
    for (let i = 0; i < n && alive !== 0; i++) {
      const slot = this.store.slot(hashes[i] as number);
      if (slot < 0) break;
      let next = 0;
      for (let p = 0; p < pods; p++) {
        if ((alive & (1 << p)) === 0) continue;
        const at = this.store.timeAt(slot, p);
        if (at === at && this.now - at <= this.o.idleEvictMs) {
          next |= 1 << p;
          depth[p] = i + 1;
        }
      }
      alive = next;
    }
    for (let p = 0; p < pods; p++) if ((depth[p] as number) > 0) out.set(p, Math.floor(((depth[p] as number) * 100) / n));
    return out;
  }

  private leastRequest(cands: readonly number[], loads: readonly number[]): number {
    let best = Infinity;
    let pick = cands[0] as number;
    let ties = 0;
    for (const p of cands) {
      const l = loads[p] as number;
      if (l < best) {
        best = l;
        pick = p;
        ties = 1;
      } else if (l === best) {
        ties++;
        if (this.ctx.rng.int(ties) === 0) pick = p;
      }
    }
    return pick;
  }

  /** The decision for block hashes and loads (exported for tests; does not record). */
  decide(hashes: readonly number[], loads: readonly number[]): { pod: number; reason: 'prefix' | 'least-request' } {
    const all = loads.map((_, i) => i);
    const min = Math.min(...loads);
    const max = Math.max(...loads);
    const cands = max - min > this.o.imbalanceThreshold ? all.filter((i) => loads[i] === min) : all;
    const match = this.matchPercents(hashes, cands);
    if (match.size > 0) {
      const matched = [...match.keys()];
      for (let i = matched.length - 1; i > 0; i--) {
        const j = this.ctx.rng.int(i + 1);
        const t = matched[i] as number;
        matched[i] = matched[j] as number;
        matched[j] = t;
      }
      // Array.prototype.sort is stable
      matched.sort((a, b) => (match.get(b) as number) - (match.get(a) as number) || (loads[a] as number) - (loads[b] as number));
      const gate = loadGate(loads, this.o.stdDevFactor);
      for (const p of matched) if ((loads[p] as number) <= gate) return { pod: p, reason: 'prefix' };
    }
    return { pod: this.leastRequest(cands, loads), reason: 'least-request' };
  }

  /** Records that `pod` holds `hashes` at `now`. */
  record(hashes: readonly number[], pod: number, now: number): void {
    for (const h of hashes) this.store.touch(h, pod, now);
  }

  pick(req: SimRequest, fleet: FleetView): number {
    const now = fleet.nowMs;
    this.now = now;
    if (now >= this.nextSweepMs) {
      this.store.sweepIdle(now, this.o.idleEvictMs);
      this.nextSweepMs = now + AIBRIX_DEFAULTS.sweepIntervalMs;
    }
    const hashes = aibrixBlockHashes(promptTokens(req));
    const { pod } = this.decide(
      hashes,
      fleet.pods.map((p) => p.inFlight),
    );
    this.record(hashes, pod, now);
    return pod;
  }
}
