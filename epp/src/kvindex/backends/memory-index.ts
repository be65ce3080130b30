/**
 * In-memory KV-block index, bounded by a memory budget in bytes, with LRU eviction of request keys.
 *
 * Layout (struct-of-arrays in typed arrays, so an entry costs a few dozen bytes and no GC objects):
 *
 * - Request keys: a pool of slots. Per slot the key (two u32 halves), LRU prev/next links, the head
 *   of its holder list and the head of its engine-edge list. An open-addressing table (linear
 *   probing, backward-shift deletion, load ≤ 3/4) maps a key to its slot.
 * - Holders: one record per (request key, pod, tier) with its reference count. Records of a key
 *   form a singly linked list; records of a (pod, tier) form a doubly linked list, the per-pod
 *   reverse index that makes `clear(pod)` O(entries of the pod) instead of a scan.
 * - Engine edges: one record per (engine key, request key) pair. A table maps an engine key to its
 *   newest edge; edges of an engine key are chained newest first (so `requestKeyFor` is the head),
 *   edges of a request key are chained so that freeing a request key drops the mappings onto it.
 *   An engine key therefore lives exactly as long as one of its request keys is held (Go keeps the
 *   mapping while the CPU tier still holds the block; so do we).
 * - (pod, tier) pairs are interned to small ids with a shared frozen `PodEntry`, so lookups
 *   allocate only their result arrays.
 *
 * Byte accounting (`approxBytes`): the byteLength of every typed array actually allocated (pools
 * and tables, including free capacity), plus the interned strings (2 bytes per UTF-16 unit + 64
 * bytes of object overhead per string/entry). This is what the index holds on the heap apart from
 * a fixed few KB of JS objects. Pools double up to 2^20 records and then grow by 1/4 (or by what
 * still fits), never past the budget minus a reserve for the interned strings (max(4 KiB,
 * budget/64)); when a pool is full and cannot grow, the least recently used request key (with its
 * holders and edges) is evicted. Per live record the arrays cost: request key 26 B, holder 24 B,
 * edge 20 B, plus 4 B per table slot (tables are powers of two with load ≤ 3/4, so 5.3–10.7 B per
 * key or edge). One block on one pod with a 1:1 engine mapping: ~84 B of live records; a block
 * shared by 16 pods: ~28 B per (block, pod) entry. Free capacity adds up to 25 % at scale
 * (100 % below 2^20 records); `npx tsx --expose-gc bench/index.bench.ts` prints both figures and
 * the measured heap growth, which matches `approxBytes`.
 *
 * Why not a Map: keys are split into u32 halves through a shared BigUint64Array (no allocation, no
 * bigint→string). On a 1M-key index (bench section 1, loaded 2-core box) a Map<bigint> get costs
 * ~360–410 ns/key, a Map<string> get with the decimal conversion ~690–815 ns/key. A full lookup
 * here (holders, LRU touch) returns `PrefixHits`, whose Map view is only built when used as a Map;
 * `npm run bench:epp` measured lookup + score of 256 keys at p50 26–33 µs (≈ 0.1 µs/key).
 *
 * Cache behaviour: a large index's tables and pools miss the CPU cache on nearly every key, so the
 * layout keeps what one step reads together (a key's two halves; a holder's pt and next link) and
 * `add`/`lookup` first read the table slots and records of a whole batch of keys in one pass of
 * independent loads (the CPU overlaps those misses), then do the real work on warm lines.
 *
 * Recency: `lookup` touches every key it returns and `add` touches every key it writes; `evict`,
 * `clear` and `requestKeyFor` do not. A touch skips keys already promoted in the current epoch
 * (approximate LRU, see `touch`), which halves the cost of a lookup on a large index.
 */
import type { Registry } from 'prom-client';
import type { BlockKey, Index, PodEntry, RawIndexWriter } from '../types.js';
import { MAX_BLOCK_KEY, assertBlockKey, engineGroups } from '../keys/engine-mapping.js';
import { registerMemoryIndexMetrics } from './index-metrics.js';
import { fromHalves } from '../keys/hash-fast.js';
import { PrefixHits } from '../prefix-hits.js';

export interface MemoryIndexOptions {
  /** Memory budget in bytes (`index.memoryBudgetBytes` of the EPP config). @default 536870912 (512 MiB) */
  readonly memoryBudgetBytes?: number;
  /**
   * Initial capacity of each pool (request keys, holders, edges) in records; pools double from
   * here while the budget allows. @default 1024
   */
  readonly initialCapacity?: number;
  /**
   * Registry for the kvroute_index_memory_* gauges and counters (keys, entries, bytes, budget, LRU
   * evictions), read at scrape time. @default undefined (no metrics)
   */
  readonly registry?: Registry;
}

/** Smallest budget accepted: room for the pools at a small initial capacity. */
export const MIN_MEMORY_BUDGET_BYTES = 16 * 1024;
/** @see MemoryIndexOptions.memoryBudgetBytes */
export const DEFAULT_MEMORY_BUDGET_BYTES = 512 * 1024 * 1024;
const DEFAULT_INITIAL_CAPACITY = 1024;

/** Bytes per record of each pool (arrays) and per slot of each table. */
const KEY_RECORD_BYTES = 6 * 4 + 2;
const HOLDER_RECORD_BYTES = 6 * 4;
const EDGE_RECORD_BYTES = 5 * 4;
const TABLE_SLOT_BYTES = 4;
/** Tables have at least 4/3 slots per pool record (load factor ≤ 3/4), rounded up to a power of two. */
const TABLE_SLOTS_PER_RECORD = 4 / 3;
/** Pools double up to this many records, then grow by a quarter (less slack at scale). */
const DOUBLING_LIMIT = 1 << 20;
const STRING_OVERHEAD_BYTES = 64;

const NIL = -1;

// Scratch for splitting a bigint into u32 halves without allocating.
const scratch64 = new BigUint64Array(1);
const scratch32 = new Uint32Array(scratch64.buffer);
// Lookup works in chunks of keys, prefetched one chunk at a time ([hi, lo] pairs of the chunk).
const LOOKUP_CHUNK = 32;
let lookupHalves = new Uint32Array(2 * LOOKUP_CHUNK);
const lookupHeads = new Int32Array(LOOKUP_CHUNK);
// Scratch slot list of addRawSync.
let rawSlots = new Int32Array(256);
// Scratch set of key slots for lookupSync's distinct-key count.
let seenSlots = new Int32Array(1024);
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const LO = LE ? 0 : 1;
const HI = LE ? 1 : 0;

function hash32(lo: number, hi: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** A second mix of `h` whose high bits are a slot tag (independent of the position bits h & mask). */
function tagOf(h: number): number {
  return Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
}

/** Table slots for a pool of `cap` records: a power of two, at least 2 per record. */
function tableSlotsFor(cap: number): number {
  return 2 ** Math.ceil(Math.log2(Math.ceil(cap * TABLE_SLOTS_PER_RECORD)));
}


function grownInt32(a: Int32Array, cap: number): Int32Array {
  const b = new Int32Array(cap);
  b.set(a);
  return b;
}
function grownUint32(a: Uint32Array, cap: number): Uint32Array {
  const b = new Uint32Array(cap);
  b.set(a);
  return b;
}

/**
 * Open-addressing map from a u64 (stored by the owner as lo/hi u32 arrays) to a record index.
 * Linear probing with backward-shift deletion, so there are no tombstones.
 *
 * A slot holds `tag | (record + 1)` (0 = empty): the low `bits` bits are the record (the table
 * has 2^bits slots and at most 3/4 as many records, so it fits), the high bits a tag taken from a
 * second mix of the key's hash. A probe compares tags first and only reads the owner's key
 * arrays on a tag match, so walking a probe run costs no random reads of the key pools (the
 * dominant cost of inserts before tags: an unsuccessful search at load 3/4 probes ~8 slots).
 */
class SlotTable {
  table: Int32Array;
  mask: number;

  constructor(size: number) {
    this.table = new Int32Array(size);
    this.mask = size - 1;
  }

  get byteLength(): number {
    return this.table.byteLength;
  }

  /** Number of slots. */
  get size(): number {
    return this.table.length;
  }

  find(lo: number, hi: number, keys: Uint32Array): number {
    const t = this.table;
    const mask = this.mask;
    const h = hash32(lo, hi);
    const tag = tagOf(h) & ~mask;
    let i = h & mask;
    for (;;) {
      const v = t[i] as number;
      if (v === 0) return NIL;
      if ((v & ~mask) === tag) {
        const s = (v & mask) - 1;
        if (keys[2 * s] === lo && keys[2 * s + 1] === hi) return s;
      }
      i = (i + 1) & mask;
    }
  }

  /** Position of record `rec` (which must be present). */
  position(rec: number, keys: Uint32Array): number {
    const t = this.table;
    const mask = this.mask;
    let i = hash32(keys[2 * rec] as number, keys[2 * rec + 1] as number) & mask;
    while (((t[i] as number) & mask) !== rec + 1) i = (i + 1) & mask;
    return i;
  }

  /** Let the slot at `pos` point to `rec`, a record with the same key as the one it held. */
  replaceAt(pos: number, rec: number): void {
    const v = this.table[pos] as number;
    this.table[pos] = (v & ~this.mask) | (rec + 1);
  }

  insert(rec: number, keys: Uint32Array): void {
    const t = this.table;
    const mask = this.mask;
    const h = hash32(keys[2 * rec] as number, keys[2 * rec + 1] as number);
    let i = h & mask;
    while (t[i] !== 0) i = (i + 1) & mask;
    t[i] = (tagOf(h) & ~mask) | (rec + 1);
  }

  removeAt(pos: number, keys: Uint32Array): void {
    const t = this.table;
    const mask = this.mask;
    let hole = pos;
    let i = pos;
    for (;;) {
      i = (i + 1) & mask;
      const v = t[i] as number;
      if (v === 0) break;
      const s = (v & mask) - 1;
      const home = hash32(keys[2 * s] as number, keys[2 * s + 1] as number) & mask;
      // Move s into the hole unless its home lies cyclically in (hole, i].
      const inRange = hole <= i ? home > hole && home <= i : home > hole || home <= i;
      if (!inRange) {
        t[hole] = v;
        hole = i;
      }
    }
    t[hole] = 0;
  }

  /** Rebuild at `size` slots with the records currently present. */
  rehash(size: number, keys: Uint32Array): void {
    const old = this.table;
    const oldMask = this.mask;
    this.table = new Int32Array(size);
    this.mask = size - 1;
    for (let i = 0; i < old.length; i++) {
      const v = old[i] as number;
      if (v !== 0) this.insert((v & oldMask) - 1, keys);
    }
  }
}

/** Live statistics of a MemoryIndex (also what its metrics report). */
export interface MemoryIndexStats {
  /** Request keys held. */
  readonly keys: number;
  /** (request key, pod, tier) holder records. */
  readonly entries: number;
  /** Engine key → request key edges. */
  readonly engineEdges: number;
  /** Allocated bytes (see the file header for the accounting). */
  readonly approxBytes: number;
  readonly budgetBytes: number;
  /** Request keys evicted because the budget was reached. */
  readonly lruEvictions: number;
  /** Holder entries that could not be stored even after eviction (budget smaller than one add). */
  readonly droppedEntries: number;
}

/** The in-memory `Index`. Single-threaded; every method completes synchronously under its promise. */
export class MemoryIndex implements Index, RawIndexWriter {
  readonly budgetBytes: number;

  // Request-key pool.
  private kCap: number;
  private kUsed = 0;
  private kFree = NIL;
  /** Keys as interleaved u32 halves: [2i] = lo, [2i + 1] = hi (one cache line for a compare). */
  private kKey: Uint32Array;
  private kPrev: Int32Array;
  /** Promotion epoch in which each key last moved to the head (see `touch`); 0 = never. */
  private kStamp: Uint16Array;
  private epoch = 1;
  private epochMoves = 0;
  private kNext: Int32Array;
  private kHolders: Int32Array;
  private kEdges: Int32Array;
  private readonly kTable: SlotTable;
  private lruHead = NIL; // most recently used
  private lruTail = NIL; // least recently used
  private liveKeys = 0;

  // Holder pool.
  private hCap: number;
  private hUsed = 0;
  private hFree = NIL;
  /** Holder pt id and next-holder-of-the-key link, interleaved ([2h] = pt, [2h + 1] = next): read together on every lookup. */
  private hPN: Int32Array;
  private hCount: Int32Array;
  private hKey: Int32Array;
  private hPrevP: Int32Array;
  private hNextP: Int32Array;
  private liveHolders = 0;

  // Engine-edge pool.
  private eCap: number;
  private eUsed = 0;
  private eFree = NIL;
  /** Keys as interleaved u32 halves: [2i] = lo, [2i + 1] = hi (one cache line for a compare). */
  private eKey: Uint32Array;
  private eReq: Int32Array;
  private eNextE: Int32Array;
  private eNextR: Int32Array;
  private readonly eTable: SlotTable;
  private liveEdges = 0;

  // Interned (pod, tier) pairs.
  private readonly ptIds = new Map<string, Map<string, number>>();
  private readonly ptEntry: PodEntry[] = [];
  private ptHead: Int32Array = new Int32Array(16).fill(NIL);
  private readonly podPts = new Map<string, number[]>();
  private stringBytes = 0;

  /** Budget bytes kept for interned pod/tier strings (not used by the pools). */
  private readonly stringReserve: number;
  private evictedCount = 0;
  private droppedCount = 0;
  private closed = false;

  constructor(opts: MemoryIndexOptions = {}) {
    const budget = opts.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET_BYTES;
    if (!Number.isSafeInteger(budget) || budget < MIN_MEMORY_BUDGET_BYTES) {
      throw new RangeError(
        `MemoryIndex memoryBudgetBytes: ${String(budget)} is too small or not an integer; use an integer ≥ ${MIN_MEMORY_BUDGET_BYTES} (the EPP default is ${DEFAULT_MEMORY_BUDGET_BYTES})`,
      );
    }
    const init = opts.initialCapacity ?? DEFAULT_INITIAL_CAPACITY;
    if (!Number.isSafeInteger(init) || init < 4) {
      throw new RangeError(`MemoryIndex initialCapacity: ${String(init)} is invalid; use an integer ≥ 4 (default ${DEFAULT_INITIAL_CAPACITY})`);
    }
    this.budgetBytes = budget;
    this.stringReserve = Math.max(4096, Math.floor(budget / 64));
    // Shrink the initial capacity (a power of two) until the three pools fit in a quarter of the budget.
    let cap = 1 << Math.ceil(Math.log2(init));
    const perRecord = KEY_RECORD_BYTES + HOLDER_RECORD_BYTES + EDGE_RECORD_BYTES + 2 * TABLE_SLOTS_PER_RECORD * TABLE_SLOT_BYTES;
    while (cap > 4 && cap * perRecord > budget / 4) cap >>= 1;
    this.kCap = cap;
    this.kKey = new Uint32Array(2 * cap);
    this.kPrev = new Int32Array(cap);
    this.kStamp = new Uint16Array(cap);
    this.kNext = new Int32Array(cap);
    this.kHolders = new Int32Array(cap);
    this.kEdges = new Int32Array(cap);
    this.kTable = new SlotTable(tableSlotsFor(cap));
    this.hCap = cap;
    this.hPN = new Int32Array(2 * cap);
    this.hCount = new Int32Array(cap);
    this.hKey = new Int32Array(cap);
    this.hPrevP = new Int32Array(cap);
    this.hNextP = new Int32Array(cap);
    this.eCap = cap;
    this.eKey = new Uint32Array(2 * cap);
    this.eReq = new Int32Array(cap);
    this.eNextE = new Int32Array(cap);
    this.eNextR = new Int32Array(cap);
    this.eTable = new SlotTable(tableSlotsFor(cap));
    if (opts.registry !== undefined) registerMemoryIndexMetrics(opts.registry, this);
  }

  /** The raw write path (this index itself). */
  get raw(): RawIndexWriter {
    return this;
  }

  /** Request keys held. */
  get size(): number {
    return this.liveKeys;
  }

  /** Bytes allocated by the index (see the file header). Never exceeds `budgetBytes`. */
  get approxBytes(): number {
    return (
      this.kCap * KEY_RECORD_BYTES +
      this.kTable.byteLength +
      this.hCap * HOLDER_RECORD_BYTES +
      this.eCap * EDGE_RECORD_BYTES +
      this.eTable.byteLength +
      this.ptHead.byteLength +
      this.stringBytes
    );
  }

  get stats(): MemoryIndexStats {
    return {
      keys: this.liveKeys,
      entries: this.liveHolders,
      engineEdges: this.liveEdges,
      approxBytes: this.approxBytes,
      budgetBytes: this.budgetBytes,
      lruEvictions: this.evictedCount,
      droppedEntries: this.droppedCount,
    };
  }

  /**
   * Visits every request key from the least to the most recently used (so re-adding them in this
   * order restores the LRU order), with its holders (reference counts) and the engine keys mapped
   * onto it. For snapshots (snapshot.ts); the callback must not modify the index.
   */
  forEachRecord(visit: (key: BlockKey, holders: readonly { entry: PodEntry; count: number }[], engineKeys: readonly BlockKey[]) => void): void {
    for (let slot = this.lruTail; slot !== NIL; slot = this.kPrev[slot] as number) {
      const holders: { entry: PodEntry; count: number }[] = [];
      for (let h = this.kHolders[slot] as number; h !== NIL; h = this.hPN[2 * h + 1] as number) {
        holders.push({ entry: this.ptEntry[this.hPN[2 * h] as number] as PodEntry, count: this.hCount[h] as number });
      }
      const engineKeys: BlockKey[] = [];
      for (let e = this.kEdges[slot] as number; e !== NIL; e = this.eNextR[e] as number) {
        engineKeys.push(fromHalves(this.eKey[2 * e + 1] as number, this.eKey[2 * e] as number));
      }
      visit(fromHalves(this.kKey[2 * slot + 1] as number, this.kKey[2 * slot] as number), holders, engineKeys);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Index

  async lookup(requestKeys: readonly BlockKey[], pods?: ReadonlySet<string>): Promise<Map<BlockKey, PodEntry[]>> {
    return this.lookupSync(requestKeys, pods);
  }

  /** `lookup` without the promise (for callers on a hot synchronous path). */
  lookupSync(requestKeys: readonly BlockKey[], pods?: ReadonlySet<string>): Map<BlockKey, PodEntry[]> {
    // The answer is always the held prefix keys[0..n-1]: its holders in one flat array (see PrefixHits).
    const flat: PodEntry[] = [];
    const offsets: number[] = [0];
    let unique = 0;
    let seenMask = 0;
    const filter = pods !== undefined && pods.size > 0 ? pods : undefined;
    // Per (pod, tier) id: 0 unknown, 1 allowed, 2 filtered out.
    const allowed = filter === undefined ? undefined : new Uint8Array(this.ptEntry.length);
    const kKey = this.kKey;
    const nKeys = requestKeys.length;
    if (lookupHalves.length < 2 * LOOKUP_CHUNK) lookupHalves = new Uint32Array(2 * LOOKUP_CHUNK);
    const halves = lookupHalves;
    for (let i = 0; i < nKeys; i++) {
      const c = i % LOOKUP_CHUNK;
      if (c === 0) this.prefetchLookup(requestKeys, i, Math.min(nKeys, i + LOOKUP_CHUNK), halves);
      const slot = this.kTable.find(halves[2 * c + 1] as number, halves[2 * c] as number, kKey);
      if (slot === NIL) break;
      const before = flat.length;
      for (let h = this.kHolders[slot] as number; h !== NIL; h = this.hPN[2 * h + 1] as number) {
        const pt = this.hPN[2 * h] as number;
        if (allowed !== undefined) {
          let a = allowed[pt] as number;
          if (a === 0) {
            a = filter?.has((this.ptEntry[pt] as PodEntry).pod) === true ? 1 : 2;
            allowed[pt] = a;
          }
          if (a !== 1) continue;
        }
        flat.push(this.ptEntry[pt] as PodEntry);
      }
      if (flat.length === before) break;
      this.touch(slot);
      // Distinct keys (for `size`): an open-addressing set of slot numbers, reused across calls.
      if (offsets.length === 1) {
        const need = 2 ** Math.ceil(Math.log2(Math.max(16, requestKeys.length * 2)));
        if (seenSlots.length < need) seenSlots = new Int32Array(need);
        seenSlots.fill(NIL, 0, need);
        seenMask = need - 1;
      }
      let p = Math.imul(slot, 0x9e3779b1) & seenMask;
      for (;;) {
        const v = seenSlots[p] as number;
        if (v === NIL) {
          seenSlots[p] = slot;
          unique++;
          break;
        }
        if (v === slot) break;
        p = (p + 1) & seenMask;
      }
      offsets.push(flat.length);
    }
    return new PrefixHits(requestKeys.slice(0, offsets.length - 1), flat, offsets, unique);
  }

  async add(engineKeys: readonly BlockKey[], requestKeys: readonly BlockKey[], entries: readonly PodEntry[]): Promise<void> {
    this.addSync(engineKeys, requestKeys, entries);
  }

  /** `add` without the promise. */
  addSync(engineKeys: readonly BlockKey[], requestKeys: readonly BlockKey[], entries: readonly PodEntry[]): void {
    this.assertOpen('add');
    // The message is only built for a bad key (a template per key cost ~0.1 µs of a ~0.5 µs add).
    for (let i = 0; i < requestKeys.length; i++) {
      const k = requestKeys[i];
      if (typeof k !== 'bigint' || k < 0n || k > MAX_BLOCK_KEY) assertBlockKey(k, `MemoryIndex.add requestKeys[${i}]`);
    }
    for (let i = 0; i < engineKeys.length; i++) {
      const k = engineKeys[i];
      if (typeof k !== 'bigint' || k < 0n || k > MAX_BLOCK_KEY) assertBlockKey(k, `MemoryIndex.add engineKeys[${i}]`);
    }
    const pts = entries.map((e, i) => this.internPt(e, `MemoryIndex.add entries[${i}]`));
    const n = requestKeys.length;
    const oneToOne = engineKeys.length === n;
    const slots = oneToOne ? new Int32Array(n) : undefined;
    for (let i = 0; i < n; i++) {
      let slot = NIL;
      if (pts.length > 0) {
        slot = this.upsertKey(requestKeys[i] as BlockKey);
        for (const pt of pts) this.addHolder(slot, pt);
        // A key whose holders could not be stored (budget below one add) is not kept empty.
        if (this.kHolders[slot] === NIL) {
          this.freeKey(slot);
          slot = NIL;
        }
      } else if (slots !== undefined) {
        scratch64[0] = requestKeys[i] as BlockKey;
        slot = this.kTable.find(scratch32[LO] as number, scratch32[HI] as number, this.kKey);
      }
      if (slots !== undefined) slots[i] = slot;
    }
    if (slots !== undefined) {
      // The common case (same block size): E[i] → R[i], without building groups.
      for (let i = 0; i < n; i++) this.mapEngineOne(engineKeys[i] as BlockKey, requestKeys[i] as BlockKey, slots[i] as number);
    } else {
      for (const g of engineGroups(engineKeys, requestKeys)) this.mapEngine(g.engineKey, g.requestKeys);
    }
  }

  /**
   * The event applier's allocation-free `add` for one holder and a one-to-one engine mapping:
   * `n` engine keys and `n` request keys given as [hi, lo] u32 pairs (`engine[engineOff + 2i]`,
   * `request[requestOff + 2i]`), entry i of each mapped to the other. Same effect as
   * `addSync(engineKeys, requestKeys, [entry])` with the same keys as bigints (tests compare the
   * two), without a bigint per key. Typed arrays cannot hold anything but u64 halves, so only the
   * entry and the bounds are checked.
   */
  addRawSync(engine: Uint32Array, engineOff: number, request: Uint32Array, requestOff: number, n: number, entry: PodEntry): void {
    this.assertOpen('add');
    if (!Number.isInteger(n) || n < 0 || engineOff < 0 || requestOff < 0 || engineOff + 2 * n > engine.length || requestOff + 2 * n > request.length) {
      throw new RangeError(
        `MemoryIndex.addRawSync: ${n} key pairs from offsets ${engineOff}/${requestOff} do not fit arrays of ${engine.length}/${request.length} u32s; pass [hi, lo] pairs and n ≤ (length - offset) / 2`,
      );
    }
    const pt = this.internPt(entry, 'MemoryIndex.addRawSync entry');
    this.prefetch(engine, engineOff, request, requestOff, n);
    if (rawSlots.length < n) rawSlots = new Int32Array(Math.max(n, rawSlots.length * 2));
    const slots = rawSlots;
    for (let i = 0, r = requestOff; i < n; i++, r += 2) {
      let slot = this.upsertHalves(request[r + 1] as number, request[r] as number);
      this.addHolder(slot, pt);
      if (this.kHolders[slot] === NIL) {
        this.freeKey(slot);
        slot = NIL;
      }
      slots[i] = slot;
    }
    for (let i = 0, e = engineOff, r = requestOff; i < n; i++, e += 2, r += 2) {
      this.mapEngineHalves(engine[e + 1] as number, engine[e] as number, request[r + 1] as number, request[r] as number, slots[i] as number);
    }
  }

  /**
   * Read the home slot of every key of an add in one pass before the writes: the loads are
   * independent, so the CPU overlaps their cache misses instead of taking them one by one inside
   * the inserts (the tables of a large index do not fit in cache).
   */
  private prefetch(engine: Uint32Array, engineOff: number, request: Uint32Array, requestOff: number, n: number): void {
    const kt = this.kTable.table;
    const km = this.kTable.mask;
    const et = this.eTable.table;
    const em = this.eTable.mask;
    let acc = 0;
    for (let i = 0, e = engineOff, r = requestOff; i < n; i++, e += 2, r += 2) {
      acc ^= (kt[hash32(request[r + 1] as number, request[r] as number) & km] as number) ^ (et[hash32(engine[e + 1] as number, engine[e] as number) & em] as number);
    }
    this.prefetchSink ^= acc;
  }

  /**
   * Lookup's prefetch for keys [from, to): split them into `halves` ([hi, lo] pairs), then read
   * each home table slot, then the key and holder-list words of the record a slot's tag points at,
   * each pass a run of independent loads whose misses overlap (see `prefetch`).
   */
  private prefetchLookup(keys: readonly BlockKey[], from: number, to: number, halves: Uint32Array): void {
    const t = this.kTable.table;
    const mask = this.kTable.mask;
    let acc = 0;
    for (let i = from, j = 0; i < to; i++, j += 2) {
      scratch64[0] = keys[i] as BlockKey;
      const lo = scratch32[LO] as number;
      const hi = scratch32[HI] as number;
      halves[j] = hi;
      halves[j + 1] = lo;
      acc ^= t[hash32(lo, hi) & mask] as number;
    }
    for (let i = from, j = 0; i < to; i++, j += 2) {
      const h = hash32(halves[j + 1] as number, halves[j] as number);
      const v = t[h & mask] as number;
      if (v !== 0 && (v & ~mask) === (tagOf(h) & ~mask)) {
        const rec = (v & mask) - 1;
        acc ^= (this.kKey[2 * rec] as number) ^ (this.kKey[2 * rec + 1] as number) ^ (this.kStamp[rec] as number);
        lookupHeads[i - from] = this.kHolders[rec] as number;
      } else {
        lookupHeads[i - from] = NIL;
      }
    }
    // Third pass: the holder chains (each a few records allocated at different times).
    for (let i = 0; i < to - from; i++) {
      for (let hd = lookupHeads[i] as number, n = 0; hd !== NIL && n < 16; n++) {
        acc ^= this.hPN[2 * hd] as number;
        hd = this.hPN[2 * hd + 1] as number;
      }
    }
    this.prefetchSink ^= acc;
  }

  /** Keeps the prefetch loads observable (never read). */
  private prefetchSink = 0;

  /**
   * `requestKeyForSync` with the engine key as (hi, lo) halves, writing the request key's [hi, lo]
   * into `out` from `outOff`. False (and `out` untouched) when the engine key is not mapped.
   */
  requestKeyForRawSync(hi: number, lo: number, out: Uint32Array, outOff: number): boolean {
    const e = this.eTable.find(lo >>> 0, hi >>> 0, this.eKey);
    if (e === NIL) return false;
    const slot = this.eReq[e] as number;
    out[outOff] = this.kKey[2 * slot + 1] as number;
    out[outOff + 1] = this.kKey[2 * slot] as number;
    return true;
  }

  async evict(engineKey: BlockKey, entries: readonly PodEntry[]): Promise<void> {
    this.evictSync(engineKey, entries);
  }

  /** `evict` without the promise. */
  evictSync(engineKey: BlockKey, entries: readonly PodEntry[]): void {
    this.assertOpen('evict');
    assertBlockKey(engineKey, 'MemoryIndex.evict engineKey');
    scratch64[0] = engineKey;
    let e = this.eTable.find(scratch32[LO] as number, scratch32[HI] as number, this.eKey);
    if (e === NIL || entries.length === 0) return;
    const slots: number[] = [];
    for (; e !== NIL; e = this.eNextE[e] as number) slots.push(this.eReq[e] as number);
    const pts: number[] = [];
    for (const entry of entries) {
      const pt = this.ptIds.get(entry.pod)?.get(entry.tier);
      if (pt !== undefined) pts.push(pt);
    }
    for (const slot of slots) {
      // A slot can only disappear (freeKey) once its last holder is gone; re-check before each use.
      if (this.kHolders[slot] === NIL) continue;
      for (const pt of pts) this.removeHolderRef(slot, pt);
      if (this.kHolders[slot] === NIL) this.freeKey(slot);
    }
  }

  async requestKeyFor(engineKey: BlockKey): Promise<BlockKey | undefined> {
    return this.requestKeyForSync(engineKey);
  }

  /** `requestKeyFor` without the promise. */
  requestKeyForSync(engineKey: BlockKey): BlockKey | undefined {
    assertBlockKey(engineKey, 'MemoryIndex.requestKeyFor engineKey');
    scratch64[0] = engineKey;
    const e = this.eTable.find(scratch32[LO] as number, scratch32[HI] as number, this.eKey);
    if (e === NIL) return undefined;
    const slot = this.eReq[e] as number;
    return fromHalves(this.kKey[2 * slot + 1] as number, this.kKey[2 * slot] as number);
  }

  async clear(pod: string): Promise<void> {
    this.clearSync(pod);
  }

  /** `clear` without the promise. O(entries of the pod). */
  clearSync(pod: string): void {
    const pts = this.podPts.get(pod);
    if (pts === undefined) return;
    for (const pt of pts) {
      let h = this.ptHead[pt] as number;
      while (h !== NIL) {
        const next = this.hNextP[h] as number;
        const slot = this.hKey[h] as number;
        this.unlinkHolderFromKey(slot, h);
        this.freeHolder(h);
        if (this.kHolders[slot] === NIL) this.freeKey(slot);
        h = next;
      }
      this.ptHead[pt] = NIL;
    }
  }

  async forget(requestKeys: readonly BlockKey[], pod: string): Promise<number> {
    return this.forgetSync(requestKeys, pod);
  }

  /** `forget` without the promise: unlinks every (pod, tier) holder of each key, whatever its count. */
  forgetSync(requestKeys: readonly BlockKey[], pod: string): number {
    this.assertOpen('forget');
    const pts = this.podPts.get(pod);
    if (pts === undefined) return 0;
    let dropped = 0;
    for (const key of requestKeys) {
      assertBlockKey(key, 'MemoryIndex.forget requestKeys[]');
      scratch64[0] = key;
      const slot = this.kTable.find(scratch32[LO] as number, scratch32[HI] as number, this.kKey);
      if (slot === NIL) continue;
      let hit = false;
      for (let h = this.kHolders[slot] as number; h !== NIL; ) {
        const next = this.hPN[2 * h + 1] as number;
        if (pts.includes(this.hPN[2 * h] as number)) {
          this.unlinkHolderFromKey(slot, h);
          this.freeHolder(h);
          hit = true;
        }
        h = next;
      }
      if (hit) dropped++;
      if (this.kHolders[slot] === NIL) this.freeKey(slot);
    }
    return dropped;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  private assertOpen(op: string): void {
    if (this.closed) throw new Error(`MemoryIndex.${op}: the index is closed; create a new MemoryIndex`);
  }

  private internPt(e: PodEntry, what: string): number {
    if (e === null || typeof e !== 'object' || typeof e.pod !== 'string' || typeof e.tier !== 'string' || e.pod === '') {
      throw new TypeError(`${what}: ${JSON.stringify(e)} is not a pod entry; pass { pod: 'ip:port', tier: 'gpu' | 'cpu' | ... } with a non-empty pod`);
    }
    let byTier = this.ptIds.get(e.pod);
    if (byTier === undefined) {
      byTier = new Map();
      this.ptIds.set(e.pod, byTier);
      this.podPts.set(e.pod, []);
      this.stringBytes += 2 * e.pod.length + 2 * STRING_OVERHEAD_BYTES;
    }
    let id = byTier.get(e.tier);
    if (id === undefined) {
      id = this.ptEntry.length;
      byTier.set(e.tier, id);
      this.ptEntry.push(Object.freeze({ pod: e.pod, tier: e.tier }));
      (this.podPts.get(e.pod) as number[]).push(id);
      this.stringBytes += 2 * e.tier.length + 2 * STRING_OVERHEAD_BYTES;
      if (id >= this.ptHead.length) {
        const grown = new Int32Array(this.ptHead.length * 2).fill(NIL);
        grown.set(this.ptHead);
        this.ptHead = grown;
      }
    }
    return id;
  }

  /**
   * Move `slot` to the MRU end, unless it already got there in the current promotion epoch.
   *
   * Approximate LRU: an epoch ends after max(1, live keys / 8) promotions (moves and inserts at
   * the head); a key promoted in the current epoch is at most that many places from the head, in
   * the most recent eighth of the list, so moving it again changes nothing eviction would see soon,
   * and skipping it saves the five random reads/writes of the unlink and relink. A lookup of a
   * 256-block prompt is ~2× cheaper with the skip on a 1M-key index (`npm run bench:epp`, (a)).
   * Small indexes get one-promotion epochs, i.e. exact LRU. Epochs are 16-bit and wrap: a key left
   * untouched for exactly a multiple of 65,536 epochs could miss one promotion.
   */
  private touch(slot: number): void {
    if (this.kStamp[slot] === this.epoch) return;
    this.stamp(slot);
    if (this.lruHead === slot) return;
    const prev = this.kPrev[slot] as number;
    const next = this.kNext[slot] as number;
    // Unlink (slot is not the head, so prev !== NIL).
    this.kNext[prev] = next;
    if (next !== NIL) this.kPrev[next] = prev;
    else this.lruTail = prev;
    // Link at head.
    this.kPrev[slot] = NIL;
    this.kNext[slot] = this.lruHead;
    this.kPrev[this.lruHead] = slot;
    this.lruHead = slot;
  }

  /** Record a promotion of `slot` to the head in the current epoch, advancing the epoch when it is full. */
  private stamp(slot: number): void {
    this.kStamp[slot] = this.epoch;
    if (++this.epochMoves >= Math.max(1, this.liveKeys >>> 3)) {
      this.epochMoves = 0;
      this.epoch = (this.epoch + 1) & 0xffff || 1;
    }
  }

  /** Slot of `key`, created (at the MRU end) if missing; touched either way. */
  private upsertKey(key: BlockKey): number {
    scratch64[0] = key;
    return this.upsertHalves(scratch32[LO] as number, scratch32[HI] as number);
  }

  /** `upsertKey` of the key (hi << 32) | lo. */
  private upsertHalves(lo: number, hi: number): number {
    const found = this.kTable.find(lo, hi, this.kKey);
    if (found !== NIL) {
      this.touch(found);
      return found;
    }
    const slot = this.allocKey();
    this.kKey[2 * slot] = lo;
    this.kKey[2 * slot + 1] = hi;
    this.kHolders[slot] = NIL;
    this.kEdges[slot] = NIL;
    this.kTable.insert(slot, this.kKey);
    this.kPrev[slot] = NIL;
    this.kNext[slot] = this.lruHead;
    if (this.lruHead !== NIL) this.kPrev[this.lruHead] = slot;
    else this.lruTail = slot;
    this.lruHead = slot;
    this.liveKeys++;
    this.stamp(slot);
    return slot;
  }

  private addHolder(slot: number, pt: number): void {
    for (let h = this.kHolders[slot] as number; h !== NIL; h = this.hPN[2 * h + 1] as number) {
      if (this.hPN[2 * h] === pt) {
        this.hCount[h] = (this.hCount[h] as number) + 1;
        return;
      }
    }
    const h = this.allocHolder(slot);
    if (h === NIL) {
      this.droppedCount++;
      return;
    }
    this.hPN[2 * h] = pt;
    this.hCount[h] = 1;
    this.hKey[h] = slot;
    this.hPN[2 * h + 1] = this.kHolders[slot] as number;
    this.kHolders[slot] = h;
    const head = this.ptHead[pt] as number;
    this.hPrevP[h] = NIL;
    this.hNextP[h] = head;
    if (head !== NIL) this.hPrevP[head] = h;
    this.ptHead[pt] = h;
    this.liveHolders++;
  }

  /** Drop one reference of (slot, pt); unlink the holder at zero. */
  private removeHolderRef(slot: number, pt: number): void {
    let prev = NIL;
    for (let h = this.kHolders[slot] as number; h !== NIL; prev = h, h = this.hPN[2 * h + 1] as number) {
      if (this.hPN[2 * h] !== pt) continue;
      const c = (this.hCount[h] as number) - 1;
      if (c > 0) {
        this.hCount[h] = c;
        return;
      }
      if (prev === NIL) this.kHolders[slot] = this.hPN[2 * h + 1] as number;
      else this.hPN[2 * prev + 1] = this.hPN[2 * h + 1] as number;
      this.freeHolder(h);
      return;
    }
  }

  private unlinkHolderFromKey(slot: number, target: number): void {
    let prev = NIL;
    for (let h = this.kHolders[slot] as number; h !== NIL; prev = h, h = this.hPN[2 * h + 1] as number) {
      if (h !== target) continue;
      if (prev === NIL) this.kHolders[slot] = this.hPN[2 * h + 1] as number;
      else this.hPN[2 * prev + 1] = this.hPN[2 * h + 1] as number;
      return;
    }
  }

  /** Return holder `h` to the free list after unlinking it from its (pod, tier) list. */
  private freeHolder(h: number): void {
    const prev = this.hPrevP[h] as number;
    const next = this.hNextP[h] as number;
    if (prev !== NIL) this.hNextP[prev] = next;
    else this.ptHead[this.hPN[2 * h] as number] = next;
    if (next !== NIL) this.hPrevP[next] = prev;
    this.hPN[2 * h + 1] = this.hFree;
    this.hFree = h;
    this.liveHolders--;
  }

  /** Free a request key: its holders, the engine edges onto it, its LRU and table places. */
  private freeKey(slot: number): void {
    for (let h = this.kHolders[slot] as number; h !== NIL; ) {
      const next = this.hPN[2 * h + 1] as number;
      this.freeHolder(h);
      h = next;
    }
    this.kHolders[slot] = NIL;
    for (let e = this.kEdges[slot] as number; e !== NIL; ) {
      const next = this.eNextR[e] as number;
      this.unlinkEdgeFromEngine(e);
      this.freeEdge(e);
      e = next;
    }
    this.kEdges[slot] = NIL;
    const prev = this.kPrev[slot] as number;
    const next = this.kNext[slot] as number;
    if (prev !== NIL) this.kNext[prev] = next;
    else this.lruHead = next;
    if (next !== NIL) this.kPrev[next] = prev;
    else this.lruTail = prev;
    this.kTable.removeAt(this.kTable.position(slot, this.kKey), this.kKey);
    this.kNext[slot] = this.kFree;
    this.kFree = slot;
    this.liveKeys--;
  }

  /** Remove edge `e` from its engine key's chain (updating the table when it is the head). */
  private unlinkEdgeFromEngine(e: number): void {
    const lo = this.eKey[2 * e] as number;
    const hi = this.eKey[2 * e + 1] as number;
    const head = this.eTable.find(lo, hi, this.eKey);
    if (head === e) {
      const pos = this.eTable.position(e, this.eKey);
      const next = this.eNextE[e] as number;
      // The successor has the same key, so it can take the head's table position as is.
      if (next !== NIL) this.eTable.replaceAt(pos, next);
      else this.eTable.removeAt(pos, this.eKey);
      return;
    }
    for (let p = head; p !== NIL; p = this.eNextE[p] as number) {
      if (this.eNextE[p] === e) {
        this.eNextE[p] = this.eNextE[e] as number;
        return;
      }
    }
  }

  /** Remove edge `e` from its request key's chain. */
  private unlinkEdgeFromRequest(e: number): void {
    const slot = this.eReq[e] as number;
    let prev = NIL;
    for (let p = this.kEdges[slot] as number; p !== NIL; prev = p, p = this.eNextR[p] as number) {
      if (p !== e) continue;
      if (prev === NIL) this.kEdges[slot] = this.eNextR[p] as number;
      else this.eNextR[prev] = this.eNextR[p] as number;
      return;
    }
  }

  private freeEdge(e: number): void {
    this.eNextE[e] = this.eFree;
    this.eFree = e;
    this.liveEdges--;
  }

  /** `mapEngine(engineKey, [requestKey])` where `slot` is the key's slot as of the add, or NIL. */
  private mapEngineOne(engineKey: BlockKey, requestKey: BlockKey, slot: number): void {
    scratch64[0] = requestKey;
    const rlo = scratch32[LO] as number;
    const rhi = scratch32[HI] as number;
    scratch64[0] = engineKey;
    this.mapEngineHalves(scratch32[LO] as number, scratch32[HI] as number, rlo, rhi, slot);
  }

  /** `mapEngineOne` with both keys as u32 halves. */
  private mapEngineHalves(lo: number, hi: number, rlo: number, rhi: number, slot: number): void {
    // A slot resolved earlier in this add may have been evicted (tiny budgets): re-check it.
    if (slot !== NIL) slot = this.reresolve(slot, rlo, rhi);
    let head = this.eTable.find(lo, hi, this.eKey);
    if (head !== NIL) {
      // Fast path: the same mapping again (every pod that stores a block sends the same pair).
      if (this.eReq[head] === slot && this.eNextE[head] === NIL) return;
      while (head !== NIL) {
        const next = this.eNextE[head] as number;
        this.unlinkEdgeFromRequest(head);
        this.unlinkEdgeFromEngine(head);
        this.freeEdge(head);
        head = next;
      }
    }
    if (slot === NIL) return;
    const e = this.allocEdge();
    if (e === NIL) return;
    slot = this.reresolve(slot, rlo, rhi);
    if (slot === NIL) {
      this.returnEdge(e);
      return;
    }
    this.linkEdge(e, lo, hi, slot);
    this.eNextE[e] = NIL;
    this.eTable.insert(e, this.eKey);
  }

  /**
   * `slot` if it still holds the key (lo, hi), else the key's current slot or NIL: an allocation
   * between resolving and using a slot may have evicted LRU keys, possibly this one.
   */
  private reresolve(slot: number, lo: number, hi: number): number {
    if (this.kHolders[slot] !== NIL && this.kKey[2 * slot] === lo && this.kKey[2 * slot + 1] === hi) return slot;
    return this.kTable.find(lo, hi, this.kKey);
  }

  /** Fill edge `e` (engine key lo/hi → request `slot`) and chain it on the request key. */
  private linkEdge(e: number, lo: number, hi: number, slot: number): void {
    this.liveEdges++;
    this.eKey[2 * e] = lo;
    this.eKey[2 * e + 1] = hi;
    this.eReq[e] = slot;
    this.eNextR[e] = this.kEdges[slot] as number;
    this.kEdges[slot] = e;
  }

  /** Give back an edge that was allocated but not used. */
  private returnEdge(e: number): void {
    this.eNextE[e] = this.eFree;
    this.eFree = e;
  }

  /** Replace the request keys of `engineKey` by `requestKeys` (in order; the last is the newest). */
  private mapEngine(engineKey: BlockKey, requestKeys: readonly BlockKey[]): void {
    // Resolve the request slots; keys not held (no entries, or evicted) are not mapped.
    const keys: BlockKey[] = [];
    const slots: number[] = [];
    for (const rk of requestKeys) {
      scratch64[0] = rk;
      const s = this.kTable.find(scratch32[LO] as number, scratch32[HI] as number, this.kKey);
      if (s !== NIL) {
        keys.push(rk);
        slots.push(s);
      }
    }
    scratch64[0] = engineKey;
    const lo = scratch32[LO] as number;
    const hi = scratch32[HI] as number;
    let head = this.eTable.find(lo, hi, this.eKey);
    if (head !== NIL) {
      // Fast path: the same mapping again (every pod that stores a block sends the same pair).
      let e = head;
      let i = slots.length - 1;
      while (e !== NIL && i >= 0 && this.eReq[e] === slots[i]) {
        e = this.eNextE[e] as number;
        i--;
      }
      if (e === NIL && i < 0) return;
      // Drop the old mapping.
      while (head !== NIL) {
        const next = this.eNextE[head] as number;
        this.unlinkEdgeFromRequest(head);
        this.unlinkEdgeFromEngine(head);
        this.freeEdge(head);
        head = next;
      }
    }
    for (let i = 0; i < slots.length; i++) {
      const e = this.allocEdge();
      if (e === NIL) return;
      // Allocation may have evicted LRU keys, possibly this one: re-resolve it.
      scratch64[0] = keys[i] as BlockKey;
      const rlo = scratch32[LO] as number;
      const rhi = scratch32[HI] as number;
      const slot = this.reresolve(slots[i] as number, rlo, rhi);
      if (slot === NIL) {
        this.returnEdge(e);
        continue;
      }
      this.linkEdge(e, lo, hi, slot);
      const cur = this.eTable.find(lo, hi, this.eKey);
      if (cur === NIL) {
        this.eNextE[e] = NIL;
        this.eTable.insert(e, this.eKey);
      } else {
        this.eNextE[e] = cur;
        this.eTable.replaceAt(this.eTable.position(cur, this.eKey), e);
      }
    }
  }

  // --- allocation: free list, else grow within the budget, else evict the LRU key ---------------

  private evictLru(): boolean {
    const victim = this.lruTail;
    if (victim === NIL) return false;
    this.freeKey(victim);
    this.evictedCount++;
    return true;
  }

  /** Bytes the pools may still grow by: the budget minus what is allocated and the string reserve. */
  private headroom(): number {
    return this.budgetBytes - this.stringReserve - this.approxBytes;
  }

  private allocKey(): number {
    for (;;) {
      if (this.kFree !== NIL) {
        const s = this.kFree;
        this.kFree = this.kNext[s] as number;
        return s;
      }
      if (this.kUsed < this.kCap) return this.kUsed++;
      if (this.growKeys()) continue;
      if (!this.evictLru()) throw new Error('MemoryIndex: internal error, no request-key slot and nothing to evict');
    }
  }

  /** A free holder slot, or NIL when only `protect` (the key being written) is left to evict. */
  private allocHolder(protect: number): number {
    for (;;) {
      if (this.hFree !== NIL) {
        const h = this.hFree;
        this.hFree = this.hPN[2 * h + 1] as number;
        return h;
      }
      if (this.hUsed < this.hCap) return this.hUsed++;
      if (this.growHolders()) continue;
      if (this.lruTail === protect) return NIL;
      this.evictLru();
    }
  }

  private allocEdge(): number {
    for (;;) {
      if (this.eFree !== NIL) {
        const e = this.eFree;
        this.eFree = this.eNextE[e] as number;
        return e;
      }
      if (this.eUsed < this.eCap) return this.eUsed++;
      if (this.growEdges()) continue;
      if (!this.evictLru()) return NIL;
    }
  }

  /**
   * New capacity for a pool of `cap` records costing `perRecord` bytes (plus its table, if any):
   * double, or as much as the headroom allows; 0 when less than 1/16 more fits.
   */
  private grownCap(cap: number, perRecord: number, table: SlotTable | undefined): number {
    const head = this.headroom();
    const oldTable = table === undefined ? 0 : table.size;
    const cost = (c: number): number => (c - cap) * perRecord + (table === undefined ? 0 : (tableSlotsFor(c) - oldTable) * TABLE_SLOT_BYTES);
    const want = cap < DOUBLING_LIMIT ? cap * 2 : cap + (cap >> 2);
    if (cost(want) <= head) return want;
    let lo = cap;
    let hi = want;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (cost(mid) <= head) lo = mid;
      else hi = mid;
    }
    return lo - cap >= Math.max(4, cap >> 4) ? lo : 0;
  }

  private growKeys(): boolean {
    const cap = this.grownCap(this.kCap, KEY_RECORD_BYTES, this.kTable);
    if (cap === 0) return false;
    this.kKey = grownUint32(this.kKey, 2 * cap);
    this.kPrev = grownInt32(this.kPrev, cap);
    const stamps = new Uint16Array(cap);
    stamps.set(this.kStamp);
    this.kStamp = stamps;
    this.kNext = grownInt32(this.kNext, cap);
    this.kHolders = grownInt32(this.kHolders, cap);
    this.kEdges = grownInt32(this.kEdges, cap);
    this.kCap = cap;
    if (tableSlotsFor(cap) !== this.kTable.size) this.kTable.rehash(tableSlotsFor(cap), this.kKey);
    return true;
  }

  private growHolders(): boolean {
    const cap = this.grownCap(this.hCap, HOLDER_RECORD_BYTES, undefined);
    if (cap === 0) return false;
    this.hPN = grownInt32(this.hPN, 2 * cap);
    this.hCount = grownInt32(this.hCount, cap);
    this.hKey = grownInt32(this.hKey, cap);
    this.hPrevP = grownInt32(this.hPrevP, cap);
    this.hNextP = grownInt32(this.hNextP, cap);
    this.hCap = cap;
    return true;
  }

  private growEdges(): boolean {
    const cap = this.grownCap(this.eCap, EDGE_RECORD_BYTES, this.eTable);
    if (cap === 0) return false;
    this.eKey = grownUint32(this.eKey, 2 * cap);
    this.eReq = grownInt32(this.eReq, cap);
    this.eNextE = grownInt32(this.eNextE, cap);
    this.eNextR = grownInt32(this.eNextR, cap);
    this.eCap = cap;
    if (tableSlotsFor(cap) !== this.eTable.size) this.eTable.rehash(tableSlotsFor(cap), this.eKey);
    return true;
  }
}
