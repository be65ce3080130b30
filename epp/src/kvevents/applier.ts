/**
 * Applies decoded KV events of one pod to the index (the write path; docs/facts/vllm-kv-events.md, "How llm-d's Go indexer applies events",
 * improved):
 *
 * - **BlockStored** → request keys are computed from the event's token ids with a `fast`-mode
 *   TokenProcessor at the **index's** block size; the model of the key space is the event's LoRA
 *   name when it has one, else the topic's model. A continuation (`parent_block_hash` set) resumes
 *   the chain from `index.requestKeyFor(parent)`; when the index does not know the parent the
 *   chain cannot be placed and the event is dropped (`parent_unknown`). Then
 *   `index.add(engineKeys, requestKeys, [{pod, tier: medium}])`.
 * - A token-less BlockStored (offloading-connector placeholder, `block_size` 0) is a device-tier
 *   update: each engine hash is resolved to its request key and the new tier is added.
 * - **BlockRemoved** → `index.evict(engineHash, [{pod, tier}])` per hash.
 * - **AllBlocksCleared** → `index.clear(pod)`.
 *
 * Engine block size E ≠ index block size I: tokens are re-chunked at I. When E is a multiple of I
 * every engine block ends on an index-block boundary and one `add` maps each engine key to its
 * E/I request keys. Otherwise each engine key is mapped to the request keys of the index blocks
 * that **end inside it**. The tokens after the last full index block ("leftover" tokens, fewer
 * than I) are never hashed on their own: they are remembered per pod under the engine hash they
 * end in (a bounded "carry" map), and prepended when a later event continues that chain, so a
 * continuation is re-chunked at the right absolute offset. If no continuation comes, they stay
 * unindexed (a prompt is only ever looked up in whole index blocks anyway). An engine block with
 * no index block ending inside it gets no engine→request mapping; its index block is evicted
 * when the engine block it ends in is removed.
 *
 * Hash-mismatch detection: for a sample of BlockStored events whose first block vLLM's hash can
 * be recomputed (chain roots for `sha256_cbor`, any block for `sha256_cbor_64bit`; no extra keys
 * besides the LoRA name), the engine hash is computed with the configured algorithm and
 * PYTHONHASHSEED and compared with the event's. A difference increments
 * `kvroute_kv_events_hash_mismatch_total` and logs a rate-limited warning naming the likely cause.
 */
import type { HashAlgo } from '../contract/names.js';
import { fromHalves } from '../kvindex/keys/hash-fast.js';
import { type RawKeyProcessor, createTokenProcessor, rawKeyProcessor } from '../kvindex/keys/token-processor.js';
import type { BlockExtraKeys, BlockKey, ChainState, Index, PodEntry, RawIndexWriter, TokenProcessor, TokenProcessorOptions } from '../kvindex/types.js';
import { type DropReason, type KvEventsMetrics, type Logger, RateLimitedLog, noopMetrics, silentLogger } from './observe.js';
import type { BlockRemovedEvent, BlockStoredEvent, KvEvent, KvEventBatch } from './types.js';
import type { RawBatch, RawEvent } from './raw-decoder.js';

/** The general decoder's event for a fast-decoder event (same fields, bigint hashes). */
export function materialize(ev: RawEvent, batch: RawBatch): KvEvent {
  if (ev.type === 'AllBlocksCleared') return { type: 'AllBlocksCleared' };
  const blockHashes: BlockKey[] = new Array<BlockKey>(ev.nHashes);
  for (let i = 0; i < ev.nHashes; i++) blockHashes[i] = fromHalves(batch.hashes[ev.hashOff + 2 * i] as number, batch.hashes[ev.hashOff + 2 * i + 1] as number);
  const group = ev.groupIdx === undefined ? {} : { groupIdx: ev.groupIdx };
  if (ev.type === 'BlockRemoved') return { type: 'BlockRemoved', blockHashes, medium: ev.medium, ...group };
  return {
    type: 'BlockStored',
    blockHashes,
    tokenIds: Array.from(batch.tokens.subarray(ev.tokenOff, ev.tokenOff + ev.nTokens)),
    blockSize: ev.blockSize,
    medium: ev.medium,
    ...(ev.hasParent ? { parentBlockHash: fromHalves(ev.parentHi, ev.parentLo) } : {}),
    ...group,
  };
}

export type TokenProcessorFactory = (opts: TokenProcessorOptions) => TokenProcessor;

export interface HashCheckOptions {
  /**
   * Recompute vLLM's engine hash for eligible BlockStored events and compare.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * Check one eligible event out of this many (the first eligible event is always checked).
   * @default 8
   */
  readonly sampleEvery?: number;
}

export interface EventApplierOptions {
  readonly index: Index;
  /** The index's block size (tokens per request key). */
  readonly blockSize: number;
  /** vLLM's PYTHONHASHSEED (also seeds the fast request keys). */
  readonly hashSeed: string;
  /**
   * Builds the `fast` request-key processors and the engine-hash processors of the check.
   * @default createTokenProcessor (kvindex/keys/token-processor)
   */
  readonly createTokenProcessor?: TokenProcessorFactory;
  /**
   * vLLM's `--prefix-caching-hash-algo`, used by the hash check.
   * @default 'sha256_cbor'
   */
  readonly hashAlgo?: HashAlgo;
  /** @default { enabled: true, sampleEvery: 8 } */
  readonly hashCheck?: HashCheckOptions;
  /**
   * Per pod, how many unaligned chain ends (leftover tokens) are remembered; oldest dropped first.
   * @default 4096
   */
  readonly carryEntriesPerPod?: number;
  /** @default no-op */
  readonly metrics?: KvEventsMetrics;
  /**
   * Per-pod facts for the cache-accuracy diagnosis (accuracy/diagnosis.ts): batches arriving,
   * the engine block size, hash-check results.
   * @default none
   */
  readonly podObserver?: KvEventPodObserver;
  /** @default silent */
  readonly logger?: Logger;
}

/** Per-pod facts the applier reports (cheap; must not throw). */
export interface KvEventPodObserver {
  /** A batch of the pod is being applied (its events arrive). */
  batch(pod: string): void;
  /** A BlockStored event of the pod has a block size other than the index's. */
  blockSize(pod: string, engineBlockSize: number): void;
  /** The engine hash of one of the pod's events was recomputed: `matched` false is a mismatch. */
  hashChecked(pod: string, matched: boolean): void;
}

interface Carry {
  /** Request key of the last full index block before `tokens` (undefined: the chain root). */
  readonly parentKey: BlockKey | undefined;
  readonly tokens: readonly number[];
}

/** Cache kinds whose blocks form a prefix chain the index can use. */
const PREFIX_KINDS = new Set(['full_attention', 'mla_attention', 'sink_full_attention']);

export class EventApplier {
  private readonly index: Index;
  private readonly blockSize: number;
  private readonly hashSeed: string;
  private readonly factory: TokenProcessorFactory;
  private readonly hashAlgo: HashAlgo;
  private readonly checkEnabled: boolean;
  private readonly sampleEvery: number;
  private readonly carryLimit: number;
  private readonly metrics: KvEventsMetrics;
  private readonly podObserver: KvEventPodObserver | undefined;
  private readonly logger: Logger;
  private readonly warnLog: RateLimitedLog;
  private readonly requestTps = new Map<string, TokenProcessor>();
  private readonly engineTps = new Map<string, TokenProcessor>();
  private readonly carries = new Map<string, Map<BlockKey, Carry>>();
  private eligibleSeen = 0;
  private readonly parentOut = new Uint32Array(2);
  private keysOut = new Uint32Array(512);
  private readonly entries = new Map<string, PodEntry>();

  constructor(opts: EventApplierOptions) {
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1) {
      throw new Error(`EventApplier: blockSize must be a positive integer (the index block size, e.g. 16), got ${opts.blockSize}`);
    }
    this.index = opts.index;
    this.blockSize = opts.blockSize;
    this.hashSeed = opts.hashSeed;
    this.factory = opts.createTokenProcessor ?? createTokenProcessor;
    this.hashAlgo = opts.hashAlgo ?? 'sha256_cbor';
    this.checkEnabled = opts.hashCheck?.enabled ?? true;
    this.sampleEvery = Math.max(1, Math.floor(opts.hashCheck?.sampleEvery ?? 8));
    this.carryLimit = Math.max(0, opts.carryEntriesPerPod ?? 4096);
    this.metrics = opts.metrics ?? noopMetrics;
    this.podObserver = opts.podObserver;
    this.logger = opts.logger ?? silentLogger;
    this.warnLog = new RateLimitedLog(this.logger);
  }

  /** Apply every event of `batch` in order; a failing event is counted and skipped. */
  async applyBatch(pod: string, model: string, batch: KvEventBatch): Promise<void> {
    this.podObserver?.batch(pod);
    for (const ev of batch.events) await this.applyEvent(pod, model, ev);
  }

  async applyEvent(pod: string, model: string, ev: KvEvent): Promise<void> {
    try {
      switch (ev.type) {
        case 'BlockStored':
          await this.stored(pod, model, ev);
          break;
        case 'BlockRemoved':
          await this.removed(pod, ev);
          break;
        case 'AllBlocksCleared':
          await this.clearPod(pod);
          this.metrics.applied('AllBlocksCleared');
          break;
      }
    } catch (e) {
      this.drop('apply_error', pod, `${ev.type} could not be applied: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /**
   * Apply a batch from the fast decoder (`raw-decoder.ts`), with the same effects as `applyBatch`
   * of the general decoder's batch. A BlockStored whose chain can be hashed in place (index block
   * size divides the engine's, no leftover tokens remembered for the pod) goes through the
   * allocation-free path when the index has one (`Index.raw`): request keys hashed from the token
   * array into [hi, lo] pairs and written with `addRawSync`. Every other event is turned into the
   * general decoder's event and applied as usual.
   */
  async applyRawBatch(pod: string, model: string, batch: RawBatch): Promise<void> {
    this.podObserver?.batch(pod);
    const writer = this.index.raw;
    // The raw hashing needs the built-in fast processor (a custom factory takes the general path).
    const raw = writer === undefined ? undefined : rawKeyProcessor(this.requestTp(model));
    for (const ev of batch.events) {
      // Same block size on both sides (what the chart deploys): engine key i ↔ request key i.
      if (raw !== undefined && writer !== undefined && ev.type === 'BlockStored' && ev.blockSize === this.blockSize && !this.carries.get(pod)?.size) {
        try {
          this.storedRaw(pod, ev, batch, writer, raw);
        } catch (e) {
          this.drop('apply_error', pod, `BlockStored could not be applied: ${e instanceof Error ? e.message : String(e)}`);
        }
      } else {
        await this.applyEvent(pod, model, materialize(ev, batch));
      }
    }
  }

  private storedRaw(pod: string, ev: RawEvent, batch: RawBatch, writer: RawIndexWriter, raw: RawKeyProcessor): void {
    const n = ev.nHashes;
    if (n === 0) return;
    if (ev.nTokens !== n * ev.blockSize) {
      this.drop(
        'bad_event',
        pod,
        `BlockStored has ${ev.nTokens} token ids for ${n} blocks of ${ev.blockSize} (expected ${n * ev.blockSize}); a non-dense span cannot be re-chunked`,
      );
      return;
    }
    let parentHi: number | undefined;
    let parentLo = 0;
    if (ev.hasParent) {
      if (!writer.requestKeyForRawSync(ev.parentHi, ev.parentLo, this.parentOut, 0)) {
        this.drop('parent_unknown', pod, `BlockStored parent hash ${fromHalves(ev.parentHi, ev.parentLo)} is not in the index; its chain of ${n} blocks cannot be placed`);
        return;
      }
      parentHi = this.parentOut[0] as number;
      parentLo = this.parentOut[1] as number;
    }
    if (this.checkEnabled) this.maybeCheckHashRaw(pod, ev, batch);
    if (this.keysOut.length < 2 * n) this.keysOut = new Uint32Array(Math.max(2 * n, 2 * this.keysOut.length));
    raw.blockKeysInto(batch.tokens, ev.tokenOff, n, parentHi, parentLo, this.keysOut, 0);
    writer.addRawSync(batch.hashes, ev.hashOff, this.keysOut, 0, n, this.entryFor(pod, ev.medium));
    this.metrics.applied('BlockStored');
  }

  /** The shared frozen entry of (pod, medium). */
  private entryFor(pod: string, tier: string): PodEntry {
    const k = `${tier}\u0000${pod}`;
    let e = this.entries.get(k);
    if (e === undefined) {
      if (this.entries.size >= 65536) this.entries.clear();
      e = Object.freeze({ pod, tier });
      this.entries.set(k, e);
    }
    return e;
  }

  /** Drop every index entry and remembered chain end of `pod`. */
  async clearPod(pod: string): Promise<void> {
    this.carries.delete(pod);
    await this.index.clear(pod);
  }

  private drop(reason: DropReason, pod: string, detail: string): void {
    this.metrics.dropped(reason);
    this.warnLog.warn(`drop:${reason}`, { pod, reason }, `KV event dropped: ${detail}`);
  }

  private requestTp(model: string): TokenProcessor {
    let tp = this.requestTps.get(model);
    if (!tp) {
      if (this.requestTps.size >= 4096) this.requestTps.clear();
      tp = this.factory({ algo: 'fast', blockSize: this.blockSize, hashSeed: this.hashSeed, model });
      this.requestTps.set(model, tp);
    }
    return tp;
  }

  private engineTp(algo: HashAlgo, blockSize: number): TokenProcessor {
    const k = `${algo}/${blockSize}`;
    let tp = this.engineTps.get(k);
    if (!tp) {
      if (this.engineTps.size >= 64) this.engineTps.clear(); // block sizes come from the wire
      tp = this.factory({ algo, blockSize, hashSeed: this.hashSeed });
      this.engineTps.set(k, tp);
    }
    return tp;
  }

  private async stored(pod: string, topicModel: string, ev: BlockStoredEvent): Promise<void> {
    const entries: PodEntry[] = [{ pod, tier: ev.medium }];
    if (ev.kvCacheSpecKind !== undefined && !PREFIX_KINDS.has(ev.kvCacheSpecKind)) {
      this.drop('bad_event', pod, `BlockStored of kv_cache_spec_kind "${ev.kvCacheSpecKind}" is not a prefix-cache group; skipped`);
      return;
    }
    if (ev.tokenIds.length === 0) {
      await this.tierUpdate(pod, ev, entries);
      return;
    }
    const E = ev.blockSize;
    if (E !== this.blockSize && E > 0) this.podObserver?.blockSize(pod, E);
    const n = ev.blockHashes.length;
    if (n === 0) return;
    if (ev.tokenIds.length !== n * E) {
      this.drop(
        'bad_event',
        pod,
        `BlockStored has ${ev.tokenIds.length} token ids for ${n} blocks of ${E} (expected ${n * E}); a non-dense span cannot be re-chunked`,
      );
      return;
    }
    const model = ev.loraName ?? topicModel;
    const tp = this.requestTp(model);
    let parentKey: BlockKey | undefined;
    let carry: readonly number[] = [];
    if (ev.parentBlockHash !== undefined) {
      const c = this.carries.get(pod)?.get(ev.parentBlockHash);
      if (c) {
        parentKey = c.parentKey;
        carry = c.tokens;
      } else {
        parentKey = await this.index.requestKeyFor(ev.parentBlockHash);
        if (parentKey === undefined) {
          this.drop('parent_unknown', pod, `BlockStored parent hash ${ev.parentBlockHash} is not in the index; its chain of ${n} blocks cannot be placed`);
          return;
        }
      }
    }
    let state: ChainState | undefined;
    if (parentKey !== undefined) {
      state = tp.chainFromKey(parentKey);
      if (state === undefined) {
        this.drop('parent_unknown', pod, `request-key processor cannot continue a chain from key ${parentKey}`);
        return;
      }
    }
    if (this.checkEnabled) this.maybeCheckHash(pod, ev);

    const I = this.blockSize;
    const tokens = carry.length === 0 ? ev.tokenIds : carry.concat(ev.tokenIds);
    const keys = tp.blockKeys(tokens, undefined, state);
    if (carry.length === 0 && E % I === 0) {
      await this.index.add(ev.blockHashes, keys, entries);
    } else {
      for (let j = 0; j < n; j++) {
        const start = carry.length + j * E;
        const end = start + E;
        const first = Math.floor(start / I);
        const fullEnd = Math.floor(end / I); // index blocks [first, fullEnd) end inside engine block j
        if (fullEnd > first) await this.index.add([ev.blockHashes[j] as BlockKey], keys.slice(first, fullEnd), entries);
        if (end % I !== 0) {
          this.remember(pod, ev.blockHashes[j] as BlockKey, {
            parentKey: fullEnd > 0 ? keys[fullEnd - 1] : parentKey,
            tokens: tokens.slice(fullEnd * I, end),
          });
        }
      }
    }
    this.metrics.applied('BlockStored');
  }

  private remember(pod: string, engineKey: BlockKey, c: Carry): void {
    if (this.carryLimit === 0) return;
    let m = this.carries.get(pod);
    if (!m) {
      m = new Map();
      this.carries.set(pod, m);
    }
    m.delete(engineKey);
    m.set(engineKey, c);
    if (m.size > this.carryLimit) {
      const oldest = m.keys().next();
      if (!oldest.done) m.delete(oldest.value);
    }
  }

  private async tierUpdate(pod: string, ev: BlockStoredEvent, entries: PodEntry[]): Promise<void> {
    const resolved: BlockKey[] = [];
    let unresolved = 0;
    for (const h of ev.blockHashes) {
      const r = await this.index.requestKeyFor(h);
      if (r === undefined) unresolved++;
      else resolved.push(r);
    }
    if (resolved.length > 0) {
      await this.index.add([], resolved, entries);
      this.metrics.applied('BlockStored');
    }
    if (unresolved > 0) {
      this.metrics.dropped('unresolved_tier_update', unresolved);
      this.warnLog.warn('drop:unresolved_tier_update', { pod, unresolved }, `${unresolved} token-less BlockStored hash(es) for tier ${ev.medium} are not in the index; skipped`);
    }
  }

  private async removed(pod: string, ev: BlockRemovedEvent): Promise<void> {
    const entries: PodEntry[] = [{ pod, tier: ev.medium }];
    const carry = this.carries.get(pod);
    for (const h of ev.blockHashes) {
      carry?.delete(h);
      await this.index.evict(h, entries);
    }
    this.metrics.applied('BlockRemoved');
  }

  // ---- hash-mismatch detection ------------------------------------------------------------

  /** Extra keys vLLM hashed into block 0, when the event lets us know them exactly. */
  private checkableExtra(ev: BlockStoredEvent): BlockExtraKeys | undefined | null {
    // Before vLLM ~v0.11.1 the LoRA key was the int id, which we cannot reproduce.
    if (ev.loraId !== undefined && ev.loraName === undefined) return null;
    const first: unknown = ev.extraKeys?.[0];
    if (ev.extraKeys !== undefined && first !== null && first !== undefined) {
      // Only the LoRA name is reproducible here; MM identifiers and cache_salt are not known.
      if (!(Array.isArray(first) && first.length === 1 && ev.loraName !== undefined && first[0] === ev.loraName)) return null;
    }
    return ev.loraName !== undefined ? { loraName: ev.loraName } : undefined;
  }

  private engineKey(algo: HashAlgo, ev: BlockStoredEvent, extra: BlockExtraKeys | undefined): BlockKey | undefined {
    const tp = this.engineTp(algo, ev.blockSize);
    let parent: ChainState | undefined;
    if (ev.parentBlockHash !== undefined) {
      parent = tp.chainFromKey(ev.parentBlockHash);
      if (parent === undefined) return undefined; // sha256_cbor: a u64 cannot restore the 32-byte parent
    }
    const first = ev.tokenIds.length === ev.blockSize ? ev.tokenIds : ev.tokenIds.slice(0, ev.blockSize);
    return tp.blockKeys(first, extra, parent)[0];
  }

  /** `maybeCheckHash` of a fast-path event (no LoRA, no extra keys): builds the event only when sampled. */
  private maybeCheckHashRaw(pod: string, ev: RawEvent, batch: RawBatch): void {
    if (ev.nTokens < ev.blockSize) return;
    if (this.hashAlgo === 'sha256_cbor' && ev.hasParent) return;
    if (this.eligibleSeen++ % this.sampleEvery !== 0) return;
    const first: BlockStoredEvent = {
      type: 'BlockStored',
      blockHashes: [fromHalves(batch.hashes[ev.hashOff] as number, batch.hashes[ev.hashOff + 1] as number)],
      tokenIds: Array.from(batch.tokens.subarray(ev.tokenOff, ev.tokenOff + ev.blockSize)),
      blockSize: ev.blockSize,
      medium: ev.medium,
      ...(ev.hasParent ? { parentBlockHash: fromHalves(ev.parentHi, ev.parentLo) } : {}),
    };
    this.checkHash(pod, first, undefined);
  }

  private maybeCheckHash(pod: string, ev: BlockStoredEvent): void {
    if (ev.blockSize < 1 || ev.tokenIds.length < ev.blockSize) return;
    if (this.hashAlgo === 'sha256_cbor' && ev.parentBlockHash !== undefined) return;
    const extra = this.checkableExtra(ev);
    if (extra === null) return;
    if (this.eligibleSeen++ % this.sampleEvery !== 0) return;
    this.checkHash(pod, ev, extra);
  }

  /** Recompute the engine hash of `ev`'s first block and compare (metric, warning on mismatch). */
  private checkHash(pod: string, ev: BlockStoredEvent, extra: BlockExtraKeys | undefined): void {
    let computed: BlockKey | undefined;
    try {
      computed = this.engineKey(this.hashAlgo, ev, extra);
    } catch (e) {
      this.logger.debug({ pod, err: String(e) }, 'engine hash could not be recomputed');
      return;
    }
    if (computed === undefined) return;
    const got = ev.blockHashes[0] as BlockKey;
    const matched = computed === got;
    this.metrics.hashCheck(matched);
    this.podObserver?.hashChecked(pod, matched);
    if (matched) return;
    let cause =
      `PYTHONHASHSEED of the vLLM pod differs from the EPP hashSeed "${this.hashSeed}" (or is unset, so vLLM hashes randomly per process), ` +
      `or vLLM's --prefix-caching-hash-algo is not ${this.hashAlgo} (e.g. builtin, sha256 (pickle) or xxhash, which cannot be reproduced)`;
    const other: HashAlgo = this.hashAlgo === 'sha256_cbor' ? 'sha256_cbor_64bit' : 'sha256_cbor';
    try {
      if ((other === 'sha256_cbor_64bit' || ev.parentBlockHash === undefined) && this.engineKey(other, ev, extra) === got) {
        cause = `vLLM uses --prefix-caching-hash-algo ${other === 'sha256_cbor_64bit' ? 'sha256_cbor_64bit (vLLM 0.10.0–0.10.1)' : 'sha256_cbor'} but the EPP is configured for ${this.hashAlgo}`;
      }
    } catch {
      // keep the generic cause
    }
    this.warnLog.warn(
      'hash_mismatch',
      { pod, eventHash: got.toString(), computedHash: computed.toString(), algo: this.hashAlgo, hashSeed: this.hashSeed, blockSize: ev.blockSize },
      `KV-event block hash does not match the EPP's ${this.hashAlgo} computation of the same tokens. Likely cause: ${cause}. ` +
        `Fix: set PYTHONHASHSEED=${this.hashSeed} and --prefix-caching-hash-algo ${this.hashAlgo} on vLLM, or change the EPP's hashSeed/hashAlgo to match.`,
    );
  }
}
