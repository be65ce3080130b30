/** vLLM KV events after decoding, independent of the wire encoding (array ≤ v0.23, map ≥ v0.24). */
import type { BlockKey } from '../kvindex/types.js';

export interface BlockStoredEvent {
  readonly type: 'BlockStored';
  /** Engine hashes of the stored blocks, normalised to u64 (bytes → last 8 bytes big-endian). */
  readonly blockHashes: readonly BlockKey[];
  /** Engine hash of the parent of the first block, or undefined for a chain root. */
  readonly parentBlockHash?: BlockKey;
  /** Token ids of all stored blocks, concatenated (blockSize × blockHashes.length). */
  readonly tokenIds: readonly number[];
  /** Engine block size. */
  readonly blockSize: number;
  readonly loraId?: number;
  readonly loraName?: string;
  /** `GPU`/`CPU`/...; normalised to lower case (`gpu` when absent). */
  readonly medium: string;
  /**
   * Per-block extra keys as vLLM sent them (≥ v0.17; one entry per hash, `null` for a block
   * without keys), or undefined when the field is absent. Kept raw: only the hash check reads it.
   */
  readonly extraKeys?: readonly unknown[];
  /** KV-cache group (hybrid models, ≥ v0.21); undefined when absent. */
  readonly groupIdx?: number;
  /** `full_attention`, `sliding_window`, `mamba`, ... (≥ v0.22); undefined when absent. */
  readonly kvCacheSpecKind?: string;
}

export interface BlockRemovedEvent {
  readonly type: 'BlockRemoved';
  readonly blockHashes: readonly BlockKey[];
  readonly medium: string;
  /** KV-cache group (hybrid models, ≥ v0.21); undefined when absent. */
  readonly groupIdx?: number;
}

export interface AllBlocksClearedEvent {
  readonly type: 'AllBlocksCleared';
}

export type KvEvent = BlockStoredEvent | BlockRemovedEvent | AllBlocksClearedEvent;

export interface KvEventBatch {
  /** Seconds since the epoch (float). */
  readonly ts: number;
  readonly events: readonly KvEvent[];
  readonly dpRank?: number;
}

/** One message received on the SUB socket, after topic parsing. */
export interface KvEventMessage {
  /** Endpoint id `ip:port` (or the raw pod id) from topic `kv@<pod>@<model>`. */
  readonly pod: string;
  readonly model: string;
  readonly seq: bigint;
  readonly payload: Uint8Array;
}
