/**
 * Prefix store: remembers the token ids of texts already tokenized, so that a text extending one
 * of them (the next turn of a conversation, a shared system prompt) only tokenizes its new part.
 *
 * ## Exactness
 * BPE does not split at arbitrary points: the last tokens of a cached prefix may merge with the
 * text that follows it. The store therefore never reuses tokens up to the end of the shared
 * prefix. It reuses them up to a *safe boundary* c, a token end strictly inside the common prefix
 * where the pre-tokenizer is guaranteed to cut in both texts, and the caller re-tokenizes the
 * new text from character c. For byte-level BPE tokenizers of the GPT-2 / cl100k / Llama-3 family
 * (checked by `CoreTokenizer`, see `prefixSafe`) the safe boundaries are:
 *   - an ASCII letter or digit followed by a space (`…word| next`), and
 *   - a newline followed by an ASCII letter or digit (`…\n|word`).
 * Every alternative of those split regexes ends a match at such a transition, and none of them
 * reads past it (each alternative consumes one character class run, with at most one character
 * of lookahead), so the split before c depends only on the text before c+1, which both texts
 * share. BPE runs inside split pieces, so the tokens before c are identical, and the pieces from c
 * on are the same as when tokenizing the text from c alone. Added (special) tokens are matched
 * before the split; c is also kept at least `guardChars` (the longest added token) before the end
 * of the common prefix so no added token can straddle it differently.
 * The property test in test/tokenization compares against full tokenization on random prompts.
 *
 * ## Structure
 * Entries (text, ids, token end offsets) in an LRU bounded by bytes. Each entry registers the
 * chained hash of every full block of `blockChars` characters of its text; a lookup walks the
 * blocks of the new text to the deepest registered one, then confirms the shared prefix by direct
 * string comparison (hash collisions cannot cause a wrong answer). An entry that is a prefix of a
 * newly inserted text is dropped: the new entry answers every lookup the old one could.
 */
import { NO_OFFSET } from './core.js';

/** Options of the prefix store; all optional. */
export interface PrefixStoreOptions {
  /**
   * Memory budget in bytes (texts, ids, offsets and index); least recently used entries go first.
   * 0 disables the store.
   * @default 67108864 (64 MiB, the config default `tokenizer.prefixStoreBytes`)
   */
  readonly maxBytes?: number;
  /**
   * Block length, in UTF-16 units, of the hashed prefix index. Texts shorter than one block are
   * never reused (they are cheap to tokenize anyway).
   * @default 256
   */
  readonly blockChars?: number;
  /**
   * Characters a safe boundary keeps from the end of the shared prefix (at least the longest
   * added token, so no special token can straddle it).
   * @default 32
   */
  readonly guardChars?: number;
  /**
   * Longest backward walk, in tokens, from the end of the shared prefix to a safe boundary before
   * giving up on reuse (text with no spaces or newlines, e.g. long CJK runs).
   * @default 4096
   */
  readonly maxBoundarySearchTokens?: number;
  /**
   * Only the first this many characters of a text are block-hashed (index and lookup), which bounds
   * the main-thread hashing cost per request (~40 ns/char); a longer shared prefix is still found
   * and reused, by native string comparison past the last indexed block.
   * @default 1048576
   */
  readonly maxIndexedChars?: number;
}

/** The reusable part of a stored text for a new text. */
export interface PrefixHit {
  /** Token ids of `text.slice(0, fromChar)` (no special tokens); a view, do not modify. */
  readonly ids: Uint32Array;
  /** End offsets of those tokens. */
  readonly charEnds: Uint32Array;
  /** Where to resume tokenizing the new text. Equal to its length when the whole text is known. */
  readonly fromChar: number;
}

/** Counters of the store (cumulative), for metrics. */
export interface PrefixStoreStats {
  entries: number;
  bytes: number;
  lookups: number;
  hits: number;
  reusedChars: number;
  evictions: number;
}

interface Entry {
  readonly text: string;
  readonly ids: Uint32Array;
  readonly charEnds: Uint32Array;
  readonly hashes: number[];
  readonly bytes: number;
}

const ENTRY_OVERHEAD = 160;
const HASH_ENTRY_BYTES = 72;

/** 53-bit chained hash of text[from, to) continuing `seed` (two FNV-1a lanes). */
function blockHash(text: string, from: number, to: number, seed: number): number {
  let a = (seed ^ 0x811c9dc5) >>> 0;
  let b = (Math.floor(seed / 0x100000000) ^ 0x01000193 ^ 0x9e3779b9) >>> 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff);
}

/** Length of the common prefix of a and b, known to be at least `from`: native compares of 4 KiB slices, then chars. */
function commonPrefix(a: string, b: string, from: number): number {
  const lim = Math.min(a.length, b.length);
  let i = from;
  const CHUNK = 4096;
  while (i + CHUNK <= lim && a.slice(i, i + CHUNK) === b.slice(i, i + CHUNK)) i += CHUNK;
  while (i < lim && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function isAsciiAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** Whether the split is guaranteed between text[c-1] and text[c] (see the module comment). */
export function isSafeBoundary(text: string, c: number): boolean {
  if (c <= 0 || c >= text.length) return false;
  const before = text.charCodeAt(c - 1);
  const after = text.charCodeAt(c);
  return (isAsciiAlnum(before) && after === 0x20) || (before === 0x0a && isAsciiAlnum(after));
}

/** A bounded LRU of tokenized texts answering "which tokens of this text do I already know?". */
export class PrefixStore {
  readonly maxBytes: number;
  readonly blockChars: number;
  readonly guardChars: number;
  readonly maxBoundarySearchTokens: number;
  readonly maxIndexedChars: number;
  private readonly lru = new Map<Entry, true>();
  private readonly byHash = new Map<number, Entry>();
  private readonly s: PrefixStoreStats = { entries: 0, bytes: 0, lookups: 0, hits: 0, reusedChars: 0, evictions: 0 };

  constructor(opts: PrefixStoreOptions = {}) {
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    this.blockChars = opts.blockChars ?? 256;
    this.guardChars = opts.guardChars ?? 32;
    this.maxBoundarySearchTokens = opts.maxBoundarySearchTokens ?? 4096;
    this.maxIndexedChars = opts.maxIndexedChars ?? 1024 * 1024;
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 0) throw new RangeError(`prefix store maxBytes must be an integer ≥ 0, got ${this.maxBytes}`);
    if (!Number.isInteger(this.blockChars) || this.blockChars < 1) throw new RangeError(`prefix store blockChars must be an integer ≥ 1, got ${this.blockChars}`);
  }

  /** Current counters (a copy). */
  get stats(): PrefixStoreStats {
    return { ...this.s };
  }

  /**
   * The longest reusable token prefix of `text`, or undefined. When `text` equals a stored text
   * exactly, `fromChar === text.length` and `ids` are its complete tokens.
   */
  lookup(text: string): PrefixHit | undefined {
    if (this.maxBytes === 0) return undefined;
    this.s.lookups++;
    const B = this.blockChars;
    let h = 0;
    let found: Entry | undefined;
    let foundEnd = 0;
    const last = Math.min(text.length, this.maxIndexedChars);
    for (let end = B; end <= last; end += B) {
      h = blockHash(text, end - B, end, h);
      const e = this.byHash.get(h);
      if (e === undefined) break;
      found = e;
      foundEnd = end;
    }
    if (found === undefined) return undefined;
    const e = found;
    // Confirm the hashed blocks by comparison, then extend the shared prefix.
    if (e.text.length < foundEnd || !text.startsWith(e.text.slice(0, foundEnd))) return undefined;
    const common = text.startsWith(e.text) ? e.text.length : commonPrefix(text, e.text, foundEnd);
    this.touch(e);
    if (common === e.text.length && common === text.length) {
      this.s.hits++;
      this.s.reusedChars += common;
      return { ids: e.ids, charEnds: e.charEnds, fromChar: common };
    }
    const limit = common - this.guardChars;
    if (limit <= 0) return undefined;
    // Last token ending at or before `limit`, then walk back to a safe boundary.
    let lo = 0;
    let hi = e.charEnds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const v = e.charEnds[mid]!;
      // NO_OFFSET entries sit between valid, increasing offsets; treat them as their neighbour.
      const end = v === NO_OFFSET ? this.nextValid(e.charEnds, mid) : v;
      if (end <= limit) lo = mid + 1;
      else hi = mid;
    }
    const stop = Math.max(0, lo - this.maxBoundarySearchTokens);
    for (let k = lo; k > stop; k--) {
      const c = e.charEnds[k - 1]!;
      if (c === NO_OFFSET || c > limit) continue;
      if (isSafeBoundary(text, c)) {
        this.s.hits++;
        this.s.reusedChars += c;
        return { ids: e.ids.subarray(0, k), charEnds: e.charEnds.subarray(0, k), fromChar: c };
      }
    }
    return undefined;
  }

  /**
   * Remember the tokens of `text`. `charEnds[i]` is where token i ends (UTF-16 offset, or
   * NO_OFFSET inside a code point). Stored texts that `text` extends are dropped.
   */
  insert(text: string, ids: Uint32Array, charEnds: Uint32Array): void {
    if (this.maxBytes === 0 || text.length < this.blockChars) return;
    const nBlocks = Math.floor(Math.min(text.length, this.maxIndexedChars) / this.blockChars);
    const bytes = ENTRY_OVERHEAD + text.length * 2 + ids.byteLength + charEnds.byteLength + nBlocks * HASH_ENTRY_BYTES;
    if (bytes > this.maxBytes) return;
    const hashes: number[] = new Array<number>(nBlocks);
    let h = 0;
    for (let i = 0; i < nBlocks; i++) {
      h = blockHash(text, i * this.blockChars, (i + 1) * this.blockChars, h);
      hashes[i] = h;
    }
    // Drop stored texts that this one extends (or repeats): it answers all their lookups.
    const seen = new Set<Entry>();
    for (const h2 of hashes) {
      const old = this.byHash.get(h2);
      if (old === undefined || seen.has(old)) continue;
      seen.add(old);
      if (old.text.length <= text.length && text.startsWith(old.text)) this.remove(old);
    }
    const entry: Entry = { text, ids, charEnds, hashes, bytes };
    for (const h2 of hashes) this.byHash.set(h2, entry);
    this.lru.set(entry, true);
    this.s.entries++;
    this.s.bytes += bytes;
    while (this.s.bytes > this.maxBytes) {
      const oldest = this.lru.keys().next().value;
      if (oldest === undefined) break;
      this.remove(oldest);
      this.s.evictions++;
    }
  }

  /** Forget everything. */
  clear(): void {
    this.lru.clear();
    this.byHash.clear();
    this.s.entries = 0;
    this.s.bytes = 0;
  }

  private nextValid(ends: Uint32Array, i: number): number {
    for (let j = i; j < ends.length; j++) if (ends[j] !== NO_OFFSET) return ends[j]!;
    return Number.MAX_SAFE_INTEGER;
  }

  private touch(e: Entry): void {
    this.lru.delete(e);
    this.lru.set(e, true);
  }

  private remove(e: Entry): void {
    if (!this.lru.delete(e)) return;
    for (const h of e.hashes) if (this.byHash.get(h) === e) this.byHash.delete(h);
    this.s.entries--;
    this.s.bytes -= e.bytes;
  }
}
