/**
 * Types shared by the block-key computation, the index backends, the event pool and the scorer.
 * Keys are unsigned 64-bit values held as `bigint`, never as JS `number`.
 */

/** A 64-bit block key: the EPP's own request key, or the engine hash vLLM puts in events. */
export type BlockKey = bigint;

/** Where a block lives on a pod: `gpu` (HBM), `cpu` (offloaded), or another medium vLLM reports. */
export type DeviceTier = string;

/** One (pod, tier) holder of a block. `pod` is the endpoint id `ip:port` from the event topic. */
export interface PodEntry {
  readonly pod: string;
  readonly tier: DeviceTier;
}

/** Extra inputs that change a block's hash (vLLM `generate_block_hash_extra_keys`). */
export interface BlockExtraKeys {
  /** LoRA adapter name; part of every block's preimage. */
  readonly loraName?: string;
  /**
   * LoRA adapter integer id (vLLM `lora_int_id`), which vLLM hashed instead of the name before
   * PR #27211 (~v0.11.1): required for LoRA blocks in `sha256_cbor_64bit`; used by the other
   * modes only when `loraName` is unset.
   */
  readonly loraId?: number;
  /** `cache_salt`; part of block 0's preimage only. */
  readonly cacheSalt?: string;
  /** Multimodal inputs: identifier and token offset range [start, start+length). */
  readonly mmInputs?: readonly { readonly identifier: string; readonly offset: number; readonly length: number }[];
  /**
   * The exact extra keys of each block, as vLLM reports them in `BlockStored.extra_keys`
   * (≥ ~v0.17; decoded msgpack: null, or an array of strings, integers, bytes and nested arrays).
   * Entry i is used verbatim for block i of the call, instead of deriving the keys from the fields
   * above (which must then be unset). Lets a subscriber recompute engine hashes with multimodal,
   * cache_salt or prompt-embeds keys it could not otherwise know.
   */
  readonly engineExtraKeys?: readonly unknown[];
}

/** Hash modes: vLLM's two CBOR/SHA-256 chains, and the index's own fast request keys. */
export type KeyAlgo = 'sha256_cbor' | 'sha256_cbor_64bit' | 'fast';

/** Turns token ids into block keys. Implementations are pure and synchronous. */
export interface TokenProcessor {
  readonly algo: KeyAlgo;
  readonly blockSize: number;
  /**
   * Keys of every full block of `tokens` (a trailing partial block is never hashed).
   * `parent` continues a chain (write path); without it the chain starts at the seed root.
   */
  blockKeys(tokens: ArrayLike<number>, extra?: BlockExtraKeys, parent?: ChainState): BlockKey[];
  /** Like blockKeys, and also the chain state after the last full block (to continue hashing). */
  blockChain(tokens: ArrayLike<number>, extra?: BlockExtraKeys, parent?: ChainState): { keys: BlockKey[]; last: ChainState };
  /**
   * Chain state whose parent is the 64-bit `key`: possible for the 64-bit chains (`fast`,
   * `sha256_cbor_64bit`); undefined for `sha256_cbor`, whose 32-byte parent a u64 cannot restore.
   */
  chainFromKey(key: BlockKey): ChainState | undefined;
}

/** Options of `createTokenProcessor` (in `token-processor.ts`). */
export interface TokenProcessorOptions {
  readonly algo: KeyAlgo;
  readonly blockSize: number;
  /** PYTHONHASHSEED for the vLLM modes; any string for `fast`. */
  readonly hashSeed: string;
  /** For `fast` request keys: the model name folded into the root, so models never share keys. */
  readonly model?: string;
}

/** Opaque chain position, so a caller can continue hashing after a known block. */
export interface ChainState {
  readonly algo: KeyAlgo;
  /** Full parent hash (32 bytes for sha256_cbor, 8 for the 64-bit chains). */
  readonly parent: Uint8Array;
}

/**
 * The KV-block index: request key → holders, plus engine key → request key so that
 * `BlockRemoved` (engine hashes only) evicts the right entries. Entries are reference counted:
 * the same (key, pod, tier) stored twice must be removed twice.
 */
export interface Index {
  /**
   * Holders of each key, walking `requestKeys` in order and stopping at the first key no
   * (filtered) pod holds. `pods` restricts the answer; undefined or empty means all pods.
   */
  lookup(requestKeys: readonly BlockKey[], pods?: ReadonlySet<string>): Promise<Map<BlockKey, PodEntry[]>>;
  /**
   * Record that `entries` hold the blocks. `engineKeys` may be empty (no mapping written) or of a
   * different length than `requestKeys` when the engine's block size differs from the index's
   * (map E[i·|E|/n] → R[i·|R|/n], n = max(|E|,|R|)).
   */
  add(engineKeys: readonly BlockKey[], requestKeys: readonly BlockKey[], entries: readonly PodEntry[]): Promise<void>;
  /** Remove `entries` from the request keys mapped to `engineKey` (one reference each). */
  evict(engineKey: BlockKey, entries: readonly PodEntry[]): Promise<void>;
  /** The request key most recently mapped to `engineKey`, if any (parent chaining on the write path). */
  requestKeyFor(engineKey: BlockKey): Promise<BlockKey | undefined>;
  /** Drop every entry of `pod` (pod removed, or AllBlocksCleared). */
  clear(pod: string): Promise<void>;
  /**
   * Drop `pod`'s entries (every tier, every reference) of these request keys: the pod was found not
   * to hold them (self-healing, `accuracy/`). Resolves to the number of keys that had an entry of
   * the pod. Undefined when the backend cannot do it (then self-healing only counts, never drops).
   */
  forget?(requestKeys: readonly BlockKey[], pod: string): Promise<number>;
  /** Release connections and timers. */
  close(): Promise<void>;
  /**
   * The backend's synchronous, allocation-free write path for the event applier, when it has one
   * (the in-memory index; decorators pass it through). Undefined: the applier uses `add`.
   */
  readonly raw?: RawIndexWriter;
}

/**
 * Keys as [hi, lo] u32 pairs instead of bigints (see MemoryIndex.addRawSync). Same effects as the
 * `Index` methods they mirror.
 */
export interface RawIndexWriter {
  /** `add(engineKeys, requestKeys, [entry])` for `n` keys of each, mapped one to one. */
  addRawSync(engine: Uint32Array, engineOff: number, request: Uint32Array, requestOff: number, n: number, entry: PodEntry): void;
  /** `requestKeyFor` of engine key (hi, lo): writes [hi, lo] into `out` at `outOff`; false when not mapped. */
  requestKeyForRawSync(hi: number, lo: number, out: Uint32Array, outOff: number): boolean;
}
