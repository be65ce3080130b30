/**
 * A test publisher that speaks vLLM's KV-event wire format (docs/facts/vllm-kv-events.md, "KV events"),
 * reusable by the simulator:
 * - PUB frames `[topic, seq (8-byte big-endian, from 0), msgpack KVEventBatch]`;
 * - the batch `[ts (float64), events, data_parallel_rank]` with events as tagged arrays
 *   (≤ v0.23, every field present), maps with a `type` key (≥ v0.24, defaulted fields omitted when
 *   nil), or the original v0.9.0 layout (`[ts, events]`, 5-field BlockStored);
 * - msgpack written with @msgpack/msgpack the way msgspec writes it (ints in their smallest form,
 *   non-integral floats as float64, bytes as bin), so payloads are byte-identical to vLLM's
 *   (integral floats excepted, see packMsgspec);
 * - an optional ROUTER replay socket: a request `[id, "", start_seq8]` is answered with every
 *   buffered batch `seq >= start` then the end marker, in the current (`[topic, seq, payload]`)
 *   or the pre-#45177 (`[seq, payload]`) reply format.
 * The PUB side is an XPUB socket (the same wire protocol for subscribers) so a test can wait until
 * a subscriber's subscription has arrived instead of sleeping.
 */
import { Encoder } from '@msgpack/msgpack';
import { Router, XPublisher } from 'zeromq';

// ---- msgpack, written the way msgspec writes it -----------------------------------------------

/** A Python `float` (written as float64 when not integral; see packMsgspec). */
export class F64 {
  constructor(readonly value: number) {}
}
/** An ordered msgpack map with string keys. */
export class MsgMap {
  constructor(readonly entries: readonly (readonly [string, MsgValue])[]) {}
}
export type MsgValue = null | boolean | number | bigint | string | Uint8Array | F64 | MsgMap | readonly MsgValue[];

const encoder = new Encoder({ useBigInt64: true });

const I32_MIN = -(2 ** 31);
const U32_END = 2 ** 32;

/**
 * The JS value @msgpack/msgpack encodes like msgspec. With `useBigInt64` the library writes a
 * number outside [-2^31, 2^32) as float64 and every bigint as 8 bytes, so ints inside that range
 * go in as numbers (smallest form) and ints outside as bigints (`cf` / `d3`).
 */
function plain(v: MsgValue): unknown {
  if (typeof v === 'bigint') return v >= I32_MIN_N && v < U32_END_N ? Number(v) : v;
  if (typeof v === 'number') return Number.isInteger(v) && (v < I32_MIN || v >= U32_END) ? BigInt(v) : v;
  if (v instanceof F64) return v.value;
  if (v instanceof MsgMap) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v.entries) o[k] = plain(x);
    return o;
  }
  if (Array.isArray(v)) return v.map(plain);
  return v;
}
const I32_MIN_N = BigInt(I32_MIN);
const U32_END_N = BigInt(U32_END);

/**
 * Encode a value with @msgpack/msgpack the way msgspec does: ints in their smallest form (u64 above
 * 2^53 as `cf`, from bigints), non-integral floats as float64, str/bin/array/map headers of the
 * smallest width. One difference: an integral `F64` (a Python float such as `1.0`) is written as
 * an int, where msgspec writes float64; the EPP reads both, and vLLM's `ts` (time.time()) is not
 * integral in practice. A `MsgMap` goes through a JS object: a repeated key keeps its last value
 * only, and keys that look like array indices ("0", "1") come first; vLLM's keys are names.
 */
export function packMsgspec(v: MsgValue): Buffer {
  const out = encoder.encode(plain(v));
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

// ---- vLLM event model -----------------------------------------------------------------------

export type WireHash = bigint | Uint8Array;

export interface PubBlockStored {
  readonly type: 'BlockStored';
  readonly blockHashes: readonly WireHash[];
  readonly parentBlockHash: WireHash | null;
  readonly tokenIds: readonly number[];
  readonly blockSize: number;
  readonly loraId?: number | null;
  readonly medium?: string | null;
  readonly loraName?: string | null;
  readonly extraKeys?: readonly MsgValue[] | null;
  readonly groupIdx?: number | null;
  readonly kvCacheSpecKind?: string | null;
  readonly kvCacheSpecSlidingWindow?: number | null;
  readonly locality?: string | null;
}
export interface PubBlockRemoved {
  readonly type: 'BlockRemoved';
  readonly blockHashes: readonly WireHash[];
  readonly medium?: string | null;
  readonly groupIdx?: number | null;
  readonly locality?: string | null;
}
export interface PubAllBlocksCleared {
  readonly type: 'AllBlocksCleared';
}
export type PubEvent = PubBlockStored | PubBlockRemoved | PubAllBlocksCleared;

/** `array`: ≤ v0.23 (fields as of PR #40984); `map`: ≥ v0.24; `array-v09`: the v0.9.0 layout. */
export type EventEncoding = 'array' | 'map' | 'array-v09';

const n = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

function encodeEvent(e: PubEvent, enc: EventEncoding): MsgValue {
  if (enc === 'map') {
    const entries: [string, MsgValue][] = [['type', e.type]];
    const opt = (k: string, v: MsgValue | undefined): void => {
      if (v !== undefined && v !== null) entries.push([k, v]);
    };
    if (e.type === 'BlockStored') {
      entries.push(['block_hashes', [...e.blockHashes]]);
      entries.push(['parent_block_hash', e.parentBlockHash]);
      entries.push(['token_ids', [...e.tokenIds]]);
      entries.push(['block_size', e.blockSize]);
      entries.push(['lora_id', n(e.loraId)]);
      entries.push(['medium', e.medium === undefined ? 'GPU' : e.medium]);
      entries.push(['lora_name', n(e.loraName)]);
      opt('extra_keys', e.extraKeys === undefined || e.extraKeys === null ? undefined : [...e.extraKeys]);
      opt('group_idx', e.groupIdx);
      opt('kv_cache_spec_kind', e.kvCacheSpecKind);
      opt('kv_cache_spec_sliding_window', e.kvCacheSpecSlidingWindow);
      opt('locality', e.locality);
    } else if (e.type === 'BlockRemoved') {
      entries.push(['block_hashes', [...e.blockHashes]]);
      entries.push(['medium', e.medium === undefined ? 'GPU' : e.medium]);
      opt('group_idx', e.groupIdx);
      opt('locality', e.locality);
    }
    return new MsgMap(entries);
  }
  if (e.type === 'AllBlocksCleared') return ['AllBlocksCleared'];
  if (e.type === 'BlockRemoved') {
    if (enc === 'array-v09') return ['BlockRemoved', [...e.blockHashes]];
    return ['BlockRemoved', [...e.blockHashes], e.medium === undefined ? 'GPU' : e.medium, n(e.groupIdx)];
  }
  const head: MsgValue[] = ['BlockStored', [...e.blockHashes], e.parentBlockHash, [...e.tokenIds], e.blockSize, n(e.loraId)];
  if (enc === 'array-v09') return head;
  return [
    ...head,
    e.medium === undefined ? 'GPU' : e.medium,
    n(e.loraName),
    e.extraKeys === undefined || e.extraKeys === null ? null : [...e.extraKeys],
    n(e.groupIdx),
    n(e.kvCacheSpecKind),
    n(e.kvCacheSpecSlidingWindow),
  ];
}

/** Encode a `KVEventBatch` payload. */
export function encodeBatch(events: readonly PubEvent[], enc: EventEncoding, ts = Date.now() / 1000, dpRank = 0): Buffer {
  const evs = events.map((e) => encodeEvent(e, enc));
  return packMsgspec(enc === 'array-v09' ? [new F64(ts), evs] : [new F64(ts), evs, dpRank]);
}

export function seqFrame(seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(seq);
  return b;
}

// ---- the publisher --------------------------------------------------------------------------

export interface VllmPublisherOptions {
  /** PUB endpoint; bound if it contains `*` or `::` or is ipc/inproc (vLLM's rule), else connected. */
  readonly endpoint: string;
  /** Topic (frame 0), e.g. `kv@10.0.0.7:8000@meta-llama/Llama-3.2-1B`. */
  readonly topic: string;
  /** ROUTER replay endpoint (always bound), e.g. `tcp://127.0.0.1:*`. @default none */
  readonly replayEndpoint?: string;
  /** @default 'map' */
  readonly encoding?: EventEncoding;
  /** Replay buffer size in batches (vLLM `buffer_steps`). @default 10000 */
  readonly bufferSteps?: number;
  /** Reply format: `topic` (vLLM ≥ #45177) or `legacy`. @default 'topic' */
  readonly replayFormat?: 'topic' | 'legacy';
  /** `data_parallel_rank` written into each batch. @default 0 */
  readonly dpRank?: number;
}

const END = Buffer.from('ffffffffffffffff', 'hex');
const EMPTY = Buffer.alloc(0);

export class VllmPublisher {
  private readonly pub = new XPublisher({ linger: 0, sendHighWaterMark: 100_000 });
  private router: Router | undefined;
  private readonly buffer: { seq: bigint; payload: Buffer }[] = [];
  private nextSeq = 0n;
  private subscriptions = 0;
  private subWaiters: (() => void)[] = [];
  private loops: Promise<void>[] = [];
  private closed = false;
  /** Replay requests served. */
  replayRequests = 0;

  constructor(readonly opts: VllmPublisherOptions) {}

  get encoding(): EventEncoding {
    return this.opts.encoding ?? 'map';
  }

  /** The PUB endpoint actually bound (when bound). */
  get endpoint(): string {
    return this.pub.lastEndpoint ?? this.opts.endpoint;
  }

  /** The ROUTER endpoint actually bound. */
  get replayAddress(): string | undefined {
    return this.router?.lastEndpoint ?? undefined;
  }

  /** Seq the next batch will carry. */
  get seq(): bigint {
    return this.nextSeq;
  }

  async start(): Promise<void> {
    const e = this.opts.endpoint;
    if (e.includes('*') || e.includes('::') || e.startsWith('ipc://') || e.startsWith('inproc://')) await this.pub.bind(e);
    else this.pub.connect(e);
    this.loops.push(this.subscriptionLoop());
    if (this.opts.replayEndpoint) {
      this.router = new Router({ linger: 0 });
      await this.router.bind(this.opts.replayEndpoint);
      this.loops.push(this.replayLoop(this.router));
    }
  }

  /** Resolves once `count` subscriptions have reached the PUB socket. */
  async waitForSubscribers(count = 1, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.subscriptions < count) {
      if (Date.now() > deadline) throw new Error(`no subscriber reached ${this.endpoint} within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        this.subWaiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  /** Encode one batch for this publisher's encoding and rank. */
  encode(events: readonly PubEvent[], ts?: number): Buffer {
    return encodeBatch(events, this.encoding, ts, this.opts.dpRank ?? 0);
  }

  /**
   * Publish one batch with the next seq and keep it for replay. `drop: true` keeps it for replay
   * without sending it (a batch lost on the wire, as past the PUB high-water mark).
   */
  async publish(events: readonly PubEvent[], opts: { drop?: boolean; ts?: number } = {}): Promise<bigint> {
    return this.publishPayload(this.encode(events, opts.ts), opts);
  }

  /** Like publish, with a ready payload (it may be garbage: the seq is consumed all the same). */
  async publishPayload(payload: Buffer, opts: { drop?: boolean } = {}): Promise<bigint> {
    const seq = this.nextSeq++;
    if (!opts.drop) await this.pub.send([Buffer.from(this.opts.topic, 'utf8'), seqFrame(seq), payload]);
    this.buffer.push({ seq, payload });
    if (this.buffer.length > (this.opts.bufferSteps ?? 10_000)) this.buffer.shift();
    return seq;
  }

  /** Send arbitrary frames without touching the sequence counter (garbage tests). */
  async sendRaw(frames: readonly (Buffer | string)[]): Promise<void> {
    await this.pub.send(frames.map((f) => (typeof f === 'string' ? Buffer.from(f, 'utf8') : f)));
  }

  /** Simulate a restart: the counter starts again at 0 and the replay buffer is emptied. */
  restart(): void {
    this.nextSeq = 0n;
    this.buffer.length = 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pub.close();
    this.router?.close();
    await Promise.allSettled(this.loops);
  }

  private async subscriptionLoop(): Promise<void> {
    while (!this.closed) {
      try {
        const [msg] = await this.pub.receive();
        if (msg && msg[0] === 1) {
          this.subscriptions++;
          for (const w of this.subWaiters.splice(0)) w();
        }
      } catch {
        return;
      }
    }
  }

  private async replayLoop(router: Router): Promise<void> {
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await router.receive();
      } catch {
        return;
      }
      if (frames.length !== 3) continue; // vLLM logs and ignores other shapes
      const [id, , req] = frames as [Buffer, Buffer, Buffer];
      if (req.length !== 8) continue;
      this.replayRequests++;
      const start = req.readBigUInt64BE(0);
      const legacy = this.opts.replayFormat === 'legacy';
      const topic = Buffer.from(this.opts.topic, 'utf8');
      try {
        for (const b of this.buffer) {
          if (b.seq < start) continue;
          await router.send(legacy ? [id, EMPTY, seqFrame(b.seq), b.payload] : [id, EMPTY, topic, seqFrame(b.seq), b.payload]);
        }
        await router.send(legacy ? [id, EMPTY, END, EMPTY] : [id, EMPTY, EMPTY, END, EMPTY]);
      } catch {
        return;
      }
    }
  }
}
