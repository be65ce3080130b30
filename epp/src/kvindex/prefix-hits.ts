/**
 * The lookup answer of `MemoryIndex`: a `Map<BlockKey, PodEntry[]>` (what the `Index` contract
 * promises) that is filled lazily. The index walks the request keys and stops at the first miss, so
 * its answer is always "holders of keys[0..n-1]"; it stores that compactly (two arrays) and the
 * `PrefixScorer` reads it straight from there. Building a real Map of 256 bigint keys costs about as
 * much as the whole index walk, so the Map is only materialized when someone uses it as a Map
 * (get/has/iteration/mutation). `size` is exact without materializing (duplicate keys counted once).
 */
import type { BlockKey, PodEntry } from './types.js';

const nativeSize = Object.getOwnPropertyDescriptor(Map.prototype, 'size')?.get as (this: Map<unknown, unknown>) => number;

export class PrefixHits extends Map<BlockKey, PodEntry[]> {
  #keys: readonly BlockKey[];
  #flat: readonly PodEntry[];
  #offsets: readonly number[];
  #unique: number;
  #materialized = false;

  /**
   * @param keys the held prefix of the request keys (a private copy)
   * @param flat the holders of every key of the prefix, key after key
   * @param offsets `flat[offsets[i], offsets[i + 1])` are the holders of `keys[i]` (length keys.length + 1)
   * @param unique number of distinct keys in `keys`
   */
  constructor(keys: readonly BlockKey[], flat: readonly PodEntry[], offsets: readonly number[], unique: number) {
    super();
    this.#keys = keys;
    this.#flat = flat;
    this.#offsets = offsets;
    this.#unique = unique;
  }

  /** Length of the held prefix. */
  get prefixLength(): number {
    return this.#keys.length;
  }

  /** Holders of the i-th key of the held prefix (i < prefixLength), as a new array. */
  holdersAt(i: number): readonly PodEntry[] {
    return this.#flat.slice(this.#offsets[i], this.#offsets[i + 1]);
  }

  /**
   * The holders of every key in one array: those of key i are `flat[offsets[i], offsets[i + 1])`.
   * What the scorer reads (no array per key).
   */
  get flat(): readonly PodEntry[] {
    return this.#flat;
  }

  get offsets(): readonly number[] {
    return this.#offsets;
  }

  /** True when this answer is for `keys` (its held prefix equals the start of `keys`), unmodified. */
  answers(keys: readonly BlockKey[]): boolean {
    if (this.#materialized) return false;
    const n = this.#keys.length;
    if (keys.length < n) return false;
    for (let i = 0; i < n; i++) if (keys[i] !== this.#keys[i]) return false;
    return true;
  }

  #materialize(): void {
    if (this.#materialized) return;
    this.#materialized = true;
    for (let i = 0; i < this.#keys.length; i++) super.set(this.#keys[i] as BlockKey, this.#flat.slice(this.#offsets[i], this.#offsets[i + 1]));
  }

  /** @internal size without materializing */
  sizeNow(): number {
    return this.#materialized ? nativeSize.call(this) : this.#unique;
  }

  override get(key: BlockKey): PodEntry[] | undefined {
    this.#materialize();
    return super.get(key);
  }
  override has(key: BlockKey): boolean {
    this.#materialize();
    return super.has(key);
  }
  override set(key: BlockKey, value: PodEntry[]): this {
    this.#materialize();
    return super.set(key, value);
  }
  override delete(key: BlockKey): boolean {
    this.#materialize();
    return super.delete(key);
  }
  override clear(): void {
    this.#materialize();
    super.clear();
  }
  override forEach(cb: (value: PodEntry[], key: BlockKey, map: Map<BlockKey, PodEntry[]>) => void, thisArg?: unknown): void {
    this.#materialize();
    super.forEach(cb, thisArg);
  }
  override entries(): MapIterator<[BlockKey, PodEntry[]]> {
    this.#materialize();
    return super.entries();
  }
  override keys(): MapIterator<BlockKey> {
    this.#materialize();
    return super.keys();
  }
  override values(): MapIterator<PodEntry[]> {
    this.#materialize();
    return super.values();
  }
  override [Symbol.iterator](): MapIterator<[BlockKey, PodEntry[]]> {
    this.#materialize();
    return super[Symbol.iterator]();
  }
}

Object.defineProperty(PrefixHits.prototype, 'size', {
  get(this: PrefixHits): number {
    return this.sizeNow();
  },
  configurable: true,
  enumerable: false,
});
