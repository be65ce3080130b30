/**
 * `kvevents.Pool`: receives vLLM KV events over ZeroMQ and applies them to the index.
 *
 * Sockets: one SUB socket with the topic filter (`kv@`). In `bind` mode (default) it binds
 * `tcp://*:5557` and every vLLM pod connects its PUB socket to it. In `connect` mode the pool
 * connects to each discovered pod's PUB socket (`addPod` / `removePod`).
 *
 * Frames: exactly `[topic, seq (8 bytes, big-endian u64), payload (msgpack KVEventBatch)]`.
 * Anything else is counted in `kvroute_kv_events_dropped_total{reason}`, logged (rate-limited)
 * and skipped; nothing a publisher sends can stop the pool.
 *
 * Ordering: messages are sharded by pod (FNV-1a of the pod id modulo `concurrency`) onto bounded
 * queues, each drained by one async worker, so one pod's batches are applied strictly in order
 * while different pods proceed concurrently. A full queue applies backpressure to the receive
 * loop (ZeroMQ then buffers up to its high-water mark; whatever it drops shows up as a sequence
 * gap and is repaired like any other gap).
 *
 * Sequence numbers are tracked per (pod, data-parallel rank), because every vLLM DP rank runs its
 * own publisher with its own counter (the rank comes from the batch):
 * - `seq == last + 1`: applied.
 * - `seq > last + 1` (gap): when the pod has a replay address, the missing range is fetched from
 *   the publisher's ROUTER socket (DEALER, `["", start_seq]`, port + rank for DP ranks) and applied
 *   first. Otherwise, or when the replay fails or no longer holds the whole range, the pod is
 *   marked stale: `kvroute_kv_events_pod_stale_total` is incremented, `onStale` is called, and with
 *   `gapPolicy: 'clear'` (default) the pod's index entries are dropped before the batch that
 *   revealed the gap is applied (a missed BlockRemoved would otherwise leave phantom hits forever;
 *   with `'keep'` the entries stay and age out through the index's LRU).
 * - `seq <= last`: the publisher restarted (its counter starts again at 0, its cache is empty):
 *   the pod's entries are cleared and tracking restarts at this seq.
 * - the first batch seen from a (pod, rank) with `seq > 0` and a replay address: batches
 *   `[0, seq)` still in the publisher's buffer are replayed first (`replayOnJoin`).
 * An undecodable payload does not advance the watermark, so the hole it leaves is handled as a
 * gap by the next good batch; if the replayed copy does not decode either, the batch is lost for
 * good and the pod is marked stale like for any unrecoverable gap.
 *
 * Replay runs on the pod's shard (so at most `concurrency` replays at once, and the pod's live
 * batches wait behind it, in order). Only the hole `[last + 1, seq)` is applied from the reply;
 * later batches arrive live. After a failed request the address is left alone for
 * `replayCooldownMs`. Connect-mode reconnects are libzmq's own (the SUB socket redials by itself).
 */
import { Subscriber } from 'zeromq';
import type { Registry } from 'prom-client';
import { EppPorts, type HashAlgo, KvEventsTopic } from '../contract/names.js';
import { createTokenProcessor } from '../kvindex/keys/token-processor.js';
import type { Index } from '../kvindex/types.js';
import { EventApplier, type HashCheckOptions, type KvEventPodObserver, type TokenProcessorFactory } from './applier.js';
import { RawBatchDecoder } from './raw-decoder.js';
import { decodeKvEventBatch } from './decoder.js';
import {
  type DropReason,
  type KvEventsMetrics,
  type Logger,
  RateLimitedLog,
  createPromKvEventsMetrics,
  noopMetrics,
  silentLogger,
} from './observe.js';
import { offsetEndpointPort, readSeq, requestReplay } from './replay.js';
import { TopicError, parseTopicFrame } from './topic.js';
import type { KvEventBatch } from './types.js';

export type GapPolicy = 'clear' | 'keep';

export interface StaleInfo {
  /** Data-parallel rank whose stream had the gap. */
  readonly dpRank: number;
  /** Batches that could not be recovered. */
  readonly missing: bigint;
  /** Why: no replay address, replay failed, or replay no longer held the range. */
  readonly cause: string;
  /** `Date.now()` when it happened. */
  readonly at: number;
}

export interface KvEventPoolOptions {
  readonly index: Index;
  /** Index block size (tokens per request key); the EPP config `blockSize`. */
  readonly blockSize: number;
  /** vLLM PYTHONHASHSEED; the EPP config `hashSeed`. */
  readonly hashSeed: string;
  /**
   * Builds TokenProcessors (`fast` request keys, and the engine algo for the hash check).
   * @default createTokenProcessor (kvindex/keys/token-processor)
   */
  readonly createTokenProcessor?: TokenProcessorFactory;
  /**
   * vLLM `--prefix-caching-hash-algo` (hash check).
   * @default 'sha256_cbor'
   */
  readonly hashAlgo?: HashAlgo;
  /**
   * `bind`: the SUB socket binds `bindAddress` and vLLM connects. `connect`: the pool connects to
   * each pod passed to `addPod`.
   * @default 'bind'
   */
  readonly mode?: 'bind' | 'connect';
  /**
   * Bind address in `bind` mode (`tcp://127.0.0.1:*` picks a free port; see `endpoint`).
   * @default 'tcp://*:5557'
   */
  readonly bindAddress?: string;
  /**
   * ZeroMQ subscription prefix.
   * @default 'kv@'
   */
  readonly topicFilter?: string;
  /**
   * Number of shards (pods applied concurrently); per-pod order is always kept.
   * @default 8
   */
  readonly concurrency?: number;
  /**
   * Messages queued per shard before the receive loop waits.
   * @default 1024
   */
  readonly queueCapacity?: number;
  /**
   * What an unrepaired sequence gap does to the pod's index entries.
   * @default 'clear'
   */
  readonly gapPolicy?: GapPolicy;
  /** Called when a pod is marked stale (after the gap policy ran). @default none */
  readonly onStale?: (pod: string, info: StaleInfo) => void;
  /**
   * Time allowed for a replay request to send and for each reply to arrive.
   * @default 2000
   */
  readonly replayTimeoutMs?: number;
  /**
   * After a replay request to an address fails (timeout or error), gaps of that pod are not
   * replayed for this long (each attempt would hold up its shard for up to `replayTimeoutMs`).
   * @default 30000
   */
  readonly replayCooldownMs?: number;
  /**
   * Replay `[0, seq)` for the first batch seen from a pod with a replay address (rebuilds an empty
   * in-memory index after an EPP restart). Turn it off when the index outlives the pool (a shared
   * Redis index), or the replayed batches would be counted twice.
   * @default true
   */
  readonly replayOnJoin?: boolean;
  /** @default { enabled: true, sampleEvery: 8 } */
  readonly hashCheck?: HashCheckOptions;
  /** Per-pod facts for the cache-accuracy diagnosis (see EventApplierOptions.podObserver). @default none */
  readonly podObserver?: KvEventPodObserver;
  /**
   * Pods whose sequence state is kept (bind mode accepts any topic, so this bounds memory); past
   * it the longest-tracked pod's state is dropped and its next batch counts as its first.
   * @default 16384
   */
  readonly maxTrackedPods?: number;
  /**
   * Which pods' events are applied: a message whose topic names a pod this returns false for is
   * dropped (counted as `bad_topic`) before it reaches a shard, so a publisher cannot fill the
   * index with pods that are not endpoints (bind mode accepts any publisher that connects).
   * @default undefined (every pod)
   */
  readonly acceptPod?: (pod: string) => boolean;
  /**
   * ZeroMQ receive high-water mark of the SUB socket (messages).
   * @default 100000
   */
  readonly receiveHighWaterMark?: number;
  /** Metrics sink; wins over `registry`. @default prom-client metrics on `registry`, else none */
  readonly metrics?: KvEventsMetrics;
  /** prom-client registry for the `kvroute_kv_events_*` metrics. @default none (no metrics) */
  readonly registry?: Registry;
  /** pino-compatible logger. @default silent */
  readonly logger?: Logger;
}

type Task = () => Promise<void>;

/** A bounded FIFO drained by one async worker. */
class Shard {
  /** Fast decoder of this shard's batches (one task runs at a time, so its scratch is never shared). */
  readonly decoder = new RawBatchDecoder();
  private readonly queue: Task[] = [];
  private running = false;
  private readonly spaceWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly capacity: number,
    private readonly onError: (e: unknown) => void,
  ) {}

  get size(): number {
    return this.queue.length;
  }

  async push(task: Task): Promise<void> {
    while (this.queue.length >= this.capacity) await new Promise<void>((r) => this.spaceWaiters.push(r));
    this.queue.push(task);
    if (!this.running) void this.run();
  }

  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private async run(): Promise<void> {
    this.running = true;
    for (let t = this.queue.shift(); t !== undefined; t = this.queue.shift()) {
      this.spaceWaiters.shift()?.();
      try {
        await t();
      } catch (e) {
        this.onError(e);
      }
    }
    this.running = false;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }
}

interface PodInfo {
  publisher?: string;
  replay?: string;
}

function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export class KvEventPool {
  private readonly opts: KvEventPoolOptions;
  private readonly mode: 'bind' | 'connect';
  private readonly bindAddress: string;
  private readonly topicFilter: string;
  private readonly gapPolicy: GapPolicy;
  private readonly replayTimeoutMs: number;
  private readonly replayOnJoin: boolean;
  private readonly replayCooldownMs: number;
  private readonly maxTrackedPods: number;
  /** replay address → time before which it is not asked again. */
  private readonly replayBackoff = new Map<string, number>();
  private readonly metrics: KvEventsMetrics;
  private readonly logger: Logger;
  private readonly warnLog: RateLimitedLog;
  private readonly applier: EventApplier;
  private readonly shards: Shard[];
  private readonly pods = new Map<string, PodInfo>();
  /** pod → dp rank → last applied seq. */
  private readonly seqs = new Map<string, Map<number, bigint>>();
  private readonly stale = new Map<string, StaleInfo>();
  private sub: Subscriber | undefined;
  private loop: Promise<void> | undefined;
  private closing = false;

  constructor(opts: KvEventPoolOptions) {
    const concurrency = opts.concurrency ?? 8;
    const capacity = opts.queueCapacity ?? 1024;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new Error(`KvEventPool: concurrency must be an integer >= 1 (events.concurrency), got ${concurrency}`);
    }
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new Error(`KvEventPool: queueCapacity must be an integer >= 1, got ${capacity}`);
    }
    this.opts = opts;
    this.mode = opts.mode ?? 'bind';
    this.bindAddress = opts.bindAddress ?? `tcp://*:${EppPorts.zmq}`;
    this.topicFilter = opts.topicFilter ?? KvEventsTopic.prefix;
    this.gapPolicy = opts.gapPolicy ?? 'clear';
    this.replayTimeoutMs = opts.replayTimeoutMs ?? 2000;
    this.replayOnJoin = opts.replayOnJoin ?? true;
    this.replayCooldownMs = opts.replayCooldownMs ?? 30_000;
    this.maxTrackedPods = Math.max(1, opts.maxTrackedPods ?? 16_384);
    this.metrics = opts.metrics ?? (opts.registry ? createPromKvEventsMetrics(opts.registry) : noopMetrics);
    this.logger = opts.logger ?? silentLogger;
    this.warnLog = new RateLimitedLog(this.logger);
    this.applier = new EventApplier({
      index: opts.index,
      blockSize: opts.blockSize,
      hashSeed: opts.hashSeed,
      createTokenProcessor: opts.createTokenProcessor ?? createTokenProcessor,
      metrics: this.metrics,
      logger: this.logger,
      ...(opts.hashAlgo !== undefined ? { hashAlgo: opts.hashAlgo } : {}),
      ...(opts.hashCheck !== undefined ? { hashCheck: opts.hashCheck } : {}),
      ...(opts.podObserver !== undefined ? { podObserver: opts.podObserver } : {}),
    });
    const onError = (e: unknown): void => this.logger.error({ err: String(e) }, 'KV-event task failed unexpectedly');
    this.shards = Array.from({ length: concurrency }, () => new Shard(capacity, onError));
  }

  /** The bound endpoint (resolved port) in bind mode, once started. */
  get endpoint(): string | undefined {
    const e = this.sub?.lastEndpoint ?? undefined;
    // The socket is IPv6-enabled, so an IPv4 bind reports the mapped form `[::ffff:a.b.c.d]`.
    return e?.replace(/^tcp:\/\/\[::ffff:(\d+\.\d+\.\d+\.\d+)\]/, 'tcp://$1');
  }

  /** Pods marked stale by an unrepaired gap (cleared when the pod is removed or restarts). */
  stalePods(): ReadonlyMap<string, StaleInfo> {
    return this.stale;
  }

  /** Last applied seq per data-parallel rank of `pod`. */
  lastSeq(pod: string, dpRank = 0): bigint | undefined {
    return this.seqs.get(pod)?.get(dpRank);
  }

  /** Copy of every pod's last applied seq per data-parallel rank (for index snapshots). */
  watermarks(): Map<string, Map<number, bigint>> {
    const out = new Map<string, Map<number, bigint>>();
    for (const [pod, ranks] of this.seqs) out.set(pod, new Map(ranks));
    return out;
  }

  /**
   * Seeds the sequence state from a loaded index snapshot, before events flow: a pod's next batch
   * is then checked against the snapshot's watermark (a gap is replayed or marks the pod stale; a
   * seq that went back means the pod restarted and clears its entries).
   */
  restoreWatermarks(seqs: ReadonlyMap<string, ReadonlyMap<number, bigint>>): void {
    for (const [pod, ranks] of seqs) if (!this.seqs.has(pod)) this.seqs.set(pod, new Map(ranks));
  }

  async start(): Promise<void> {
    if (this.sub) return;
    this.closing = false;
    const sub = new Subscriber({ linger: 0, ipv6: true, receiveHighWaterMark: this.opts.receiveHighWaterMark ?? 100_000 });
    sub.subscribe(this.topicFilter);
    if (this.mode === 'bind') {
      try {
        await sub.bind(this.bindAddress);
      } catch (e) {
        sub.close();
        throw new Error(
          `KvEventPool: cannot bind the KV-event SUB socket to ${this.bindAddress}: ${e instanceof Error ? e.message : String(e)}; ` +
            'choose a free address with events.zmqBind / --zmq-bind',
        );
      }
    } else {
      for (const [pod, p] of this.pods) if (p.publisher) this.connectTo(sub, pod, p.publisher);
    }
    this.sub = sub;
    this.loop = this.receiveLoop(sub);
    this.logger.info({ mode: this.mode, endpoint: this.mode === 'bind' ? sub.lastEndpoint : undefined }, 'KV-event pool started');
  }

  /** Close the socket, then wait until every queued batch is applied. */
  async stop(): Promise<void> {
    this.closing = true;
    const sub = this.sub;
    this.sub = undefined;
    if (sub) sub.close();
    await this.loop;
    this.loop = undefined;
    await this.idle();
  }

  /** Resolves once every queued message has been applied. */
  async idle(): Promise<void> {
    for (;;) {
      await Promise.all(this.shards.map((s) => s.idle()));
      if (this.shards.every((s) => s.size === 0)) return;
    }
  }

  /**
   * Register a pod: in `connect` mode, subscribe to its PUB socket `publisherAddr`
   * (`tcp://ip:port`); in both modes, remember its replay (ROUTER) address for gap repair.
   * Idempotent; a changed address replaces the old one.
   */
  addPod(endpoint: string, publisherAddr?: string, replayAddr?: string): void {
    if (this.mode === 'connect' && !publisherAddr) {
      throw new Error(`KvEventPool.addPod(${JSON.stringify(endpoint)}): connect mode needs the pod's publisher address, e.g. "tcp://10.0.0.7:5557"`);
    }
    const old = this.pods.get(endpoint);
    const info: PodInfo = {
      ...(publisherAddr !== undefined ? { publisher: publisherAddr } : {}),
      ...(replayAddr !== undefined ? { replay: replayAddr } : {}),
    };
    this.pods.set(endpoint, info);
    if (this.mode === 'connect' && this.sub && old?.publisher !== publisherAddr) {
      if (old?.publisher) this.disconnectFrom(this.sub, old.publisher);
      if (publisherAddr) this.connectTo(this.sub, endpoint, publisherAddr);
    }
  }

  /**
   * Forget a pod: disconnect (connect mode), drop its sequence state, and clear its index entries
   * after every batch already queued for it.
   */
  async removePod(endpoint: string): Promise<void> {
    const info = this.pods.get(endpoint);
    this.pods.delete(endpoint);
    if (info?.publisher && this.mode === 'connect' && this.sub) this.disconnectFrom(this.sub, info.publisher);
    await this.shardFor(endpoint).push(async () => {
      this.seqs.delete(endpoint);
      this.stale.delete(endpoint);
      await this.clearPod(endpoint);
    });
  }

  /**
   * Handle one received multipart message (the receive loop calls this; tests and benchmarks may
   * too). Resolves when the message is queued on its pod's shard; never rejects.
   */
  async ingest(frames: readonly Uint8Array[]): Promise<void> {
    if (frames.length !== 3) {
      this.drop('frame_count', `expected 3 frames [topic, seq, payload], got ${frames.length}`);
      return;
    }
    const [topicFrame, seqFrame, payload] = frames as [Uint8Array, Uint8Array, Uint8Array];
    const seq = readSeq(seqFrame);
    if (seq === undefined) {
      this.drop('bad_seq', `the seq frame must be 8 bytes (big-endian u64), got ${seqFrame.length} bytes`);
      return;
    }
    let pod: string;
    let model: string;
    try {
      ({ pod, model } = parseTopicFrame(topicFrame));
    } catch (e) {
      this.drop('bad_topic', e instanceof TopicError ? e.message : String(e));
      return;
    }
    this.metrics.received();
    if (this.opts.acceptPod && !this.opts.acceptPod(pod)) {
      this.drop('bad_topic', `topic names pod ${pod}, which is not an endpoint of this pool; its events are ignored`, pod);
      return;
    }
    const shard = this.shardFor(pod);
    await shard.push(() => this.process(shard.decoder, pod, model, seq, payload));
  }

  // ---- internals ----------------------------------------------------------------------------

  private shardFor(pod: string): Shard {
    return this.shards[fnv1a32(pod) % this.shards.length] as Shard;
  }

  private drop(reason: DropReason, detail: string, pod?: string, n = 1): void {
    this.metrics.dropped(reason, n);
    this.warnLog.warn(`drop:${reason}`, { reason, ...(pod !== undefined ? { pod } : {}) }, `KV-event message dropped: ${detail}`);
  }

  private connectTo(sub: Subscriber, pod: string, addr: string): void {
    try {
      sub.connect(addr);
    } catch (e) {
      this.logger.error({ pod, addr, err: String(e) }, `cannot connect to the KV-event publisher of ${pod} at ${addr}; expected "tcp://ip:port"`);
    }
  }

  private disconnectFrom(sub: Subscriber, addr: string): void {
    try {
      sub.disconnect(addr);
    } catch {
      // not connected; nothing to do
    }
  }

  private async receiveLoop(sub: Subscriber): Promise<void> {
    while (!this.closing) {
      let frames: Buffer[];
      try {
        frames = await sub.receive();
      } catch (e) {
        if (this.closing || sub.closed) return;
        this.logger.error({ err: String(e) }, 'KV-event receive failed; retrying');
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      await this.ingest(frames);
    }
  }

  /** Decode, check the sequence (repairing gaps), apply. Runs on the pod's shard. */
  private async process(decoder: RawBatchDecoder, pod: string, model: string, seq: bigint, payload: Uint8Array): Promise<void> {
    // The fast decoder takes the common well-formed batches; the general one the rest (and explains
    // errors). The shard's own decoder: its batch stays valid until this task ends.
    const raw = decoder.decode(payload);
    const batch = raw === undefined ? this.decode(pod, payload) : undefined;
    if (!raw && !batch) return;
    const rank = (raw ?? batch)?.dpRank ?? 0;
    let ranks = this.seqs.get(pod);
    if (ranks && this.seqs.size > this.maxTrackedPods / 2) {
      // keep recently active pods at the young end, so a flood of new topics evicts idle ones
      this.seqs.delete(pod);
      this.seqs.set(pod, ranks);
    }
    if (!ranks) {
      if (this.seqs.size >= this.maxTrackedPods) {
        const oldest = this.seqs.keys().next();
        if (!oldest.done) this.seqs.delete(oldest.value);
      }
      ranks = new Map();
      this.seqs.set(pod, ranks);
    }
    const last = ranks.get(rank);
    if (last === undefined) {
      if (seq > 0n && this.replayOnJoin && this.replayAddress(pod, rank)) await this.repair(pod, model, rank, 0n, seq, false);
    } else if (seq <= last) {
      this.metrics.publisherRestart();
      this.logger.warn({ pod, dpRank: rank, seq: seq.toString(), last: last.toString() }, `KV-event sequence of ${pod} went back from ${last} to ${seq}: publisher restarted; clearing its entries`);
      this.stale.delete(pod);
      await this.clearPod(pod);
      // The other DP ranks' entries went too: their next batch counts as a first one (join replay).
      ranks.clear();
    } else if (seq > last + 1n) {
      await this.repair(pod, model, rank, last + 1n, seq, true);
    }
    if (raw) await this.applier.applyRawBatch(pod, model, raw);
    else if (batch) await this.applier.applyBatch(pod, model, batch);
    ranks.set(rank, seq);
  }

  private decode(pod: string, payload: Uint8Array): KvEventBatch | undefined {
    const r = decodeKvEventBatch(payload);
    if (!r.ok) {
      this.drop(r.reason, r.detail, pod);
      return undefined;
    }
    for (const p of r.problems) this.drop(p.reason, p.detail, pod);
    return r.batch;
  }

  private replayAddress(pod: string, rank: number): string | undefined {
    const base = this.pods.get(pod)?.replay;
    return base === undefined ? undefined : offsetEndpointPort(base, rank);
  }

  /** Recover batches [from, until) of (pod, rank); mark the pod stale for what cannot be. */
  private async repair(pod: string, model: string, rank: number, from: bigint, until: bigint, isGap: boolean): Promise<void> {
    const missing = until - from;
    const addr = this.replayAddress(pod, rank);
    if (!addr) {
      this.metrics.seqGap('unrepaired', Number(missing));
      await this.markStale(pod, { dpRank: rank, missing, cause: 'no replay address configured for this pod', at: Date.now() });
      return;
    }
    const coolUntil = this.replayBackoff.get(addr);
    if (coolUntil !== undefined && Date.now() < coolUntil) {
      if (isGap) {
        this.metrics.seqGap('unrepaired', Number(missing));
        await this.markStale(pod, { dpRank: rank, missing, cause: `replay from ${addr} is cooling down after a failure`, at: Date.now() });
      }
      return;
    }
    const res = await requestReplay(addr, from, until, this.replayTimeoutMs);
    if (res.error) this.replayBackoff.set(addr, Date.now() + this.replayCooldownMs);
    else this.replayBackoff.delete(addr);
    // Keep only batches of this rank's range, in order, without duplicates.
    const got: { seq: bigint; batch: KvEventBatch }[] = [];
    let next = from;
    let covered = true;
    let undecodable = 0;
    for (const b of res.batches) {
      if (b.seq < next || b.seq >= until) continue;
      if (b.seq > next) covered = false;
      const batch = this.decode(pod, b.payload);
      if (batch && (batch.dpRank ?? 0) === rank) got.push({ seq: b.seq, batch });
      else {
        // The same bytes again: the batch is lost for good, like one the buffer no longer holds.
        covered = false;
        undecodable++;
      }
      next = b.seq + 1n;
    }
    if (next < until) covered = false;
    const result = res.error ? (res.error.startsWith('no reply') ? 'timeout' : 'error') : covered ? 'ok' : 'incomplete';
    this.metrics.replay(result, got.length);
    if (isGap) this.metrics.seqGap(covered ? 'replayed' : got.length > 0 ? 'partially_replayed' : 'unrepaired', Number(missing));
    if (!covered && isGap) {
      const cause = res.error
        ? `replay from ${addr} failed: ${res.error}`
        : undecodable > 0
          ? `replay from ${addr} returned ${undecodable} undecodable batch(es) in seq ${from}..${until - 1n}`
          : `replay from ${addr} no longer holds seq ${from}..${until - 1n}`;
      await this.markStale(pod, { dpRank: rank, missing: missing - BigInt(got.length), cause, at: Date.now() });
    } else if (res.error) {
      this.logger.warn({ pod, addr, err: res.error }, 'KV-event replay on join failed; continuing with the live stream');
    }
    for (const g of got) await this.applier.applyBatch(pod, model, g.batch);
  }

  /** Clear a pod's entries; an index failure is counted and logged, never thrown. */
  private async clearPod(pod: string): Promise<void> {
    try {
      await this.applier.clearPod(pod);
    } catch (e) {
      this.drop('apply_error', `clearing the entries of ${pod} failed: ${e instanceof Error ? e.message : String(e)}`, pod);
    }
  }

  private async markStale(pod: string, info: StaleInfo): Promise<void> {
    this.metrics.podStale();
    this.stale.set(pod, info);
    this.logger.warn(
      { pod, dpRank: info.dpRank, missing: info.missing.toString(), cause: info.cause, gapPolicy: this.gapPolicy },
      `KV events of ${pod} lost ${info.missing} batch(es) (${info.cause}); ` +
        (this.gapPolicy === 'clear' ? 'clearing its index entries' : 'keeping its possibly stale entries') +
        '. Configure the pod replay endpoint (events.podReplayPort / vLLM replay_endpoint) to repair gaps.',
    );
    if (this.gapPolicy === 'clear') {
      await this.clearPod(pod);
      // The other DP ranks' entries went too: their next batch counts as a first one (join replay).
      const ranks = this.seqs.get(pod);
      if (ranks) for (const r of [...ranks.keys()]) if (r !== info.dpRank) ranks.delete(r);
    }
    try {
      this.opts.onStale?.(pod, info);
    } catch (e) {
      this.logger.error({ pod, err: String(e) }, 'onStale hook threw');
    }
  }
}

/** The seed's name for this component. */
export { KvEventPool as Pool };
