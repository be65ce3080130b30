/**
 * A test publisher that speaks vLLM's KV-event wire format (vllm-kv-spec.md §2.2, §2.5, §2.6),
 * reusable by the simulator:
 * - PUB frames `[topic, seq (8-byte big-endian, from 0), msgpack KVEventBatch]`;
 * - the batch `[ts (float64), events, data_parallel_rank]` with events as tagged arrays
 *   (≤ v0.23, every field present), maps with a `type` key (≥ v0.24, defaulted fields omitted when
 *   nil), or the original v0.9.0 layout (`[ts, events]`, 5-field BlockStored);
 * - msgpack written the way msgspec writes it (ints in their smallest form, floats always float64,
 *   bytes as bin), by a small encoder below, so payloads are byte-identical to vLLM's;
 * - an optional ROUTER replay socket: a request `[id, "", start_seq8]` is answered with every
 *   buffered batch `seq >= start` then the end marker, in the current (`[topic, seq, payload]`)
 *   or the pre-#45177 (`[seq, payload]`) reply format.
 * The PUB side is an XPUB socket (the same wire protocol for subscribers) so a test can wait until
 * a subscriber's subscription has arrived instead of sleeping.
 */
import { Router, XPublisher } from 'zeromq';

// ---- msgspec-compatible msgpack encoder ------------------------------------------------------

/** A float that must be written as float64 even when integral (Python `float`). */
export class F64 {
  constructor(readonly value: number) {}
}
/** An ordered msgpack map with string keys. */
export class MsgMap {
  constructor(readonly entries: readonly (readonly [string, MsgValue])[]) {}
}
export type MsgValue = null | boolean | number | bigint | string | Uint8Array | F64 | MsgMap | readonly MsgValue[];

class Writer {
  private buf = Buffer.alloc(256);
  private pos = 0;
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const nb = Buffer.alloc(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(nb, 0, 0, this.pos);
    this.buf = nb;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}

function writeInt(w: Writer, v: bigint): void {
  if (v >= 0n) {
    if (v < 128n) w.u8(Number(v));
    else if (v < 256n) { w.u8(0xcc); w.u8(Number(v)); }
    else if (v < 65536n) { w.u8(0xcd); w.u16(Number(v)); }
    else if (v < 4294967296n) { w.u8(0xce); w.u32(Number(v)); }
    else if (v < 1n << 64n) {
      const b = Buffer.alloc(9);
      b[0] = 0xcf;
      b.writeBigUInt64BE(v, 1);
      w.bytes(b);
    } else throw new RangeError(`int ${v} does not fit msgpack (msgspec raises OverflowError)`);
  } else {
    if (v >= -32n) w.u8(Number(v) & 0xff);
    else if (v >= -128n) { w.u8(0xd0); w.u8(Number(v) & 0xff); }
    else if (v >= -32768n) { w.u8(0xd1); w.u16(Number(v) & 0xffff); }
    else if (v >= -2147483648n) { w.u8(0xd2); w.u32(Number(v) >>> 0); }
    else if (v >= -(1n << 63n)) {
      const b = Buffer.alloc(9);
      b[0] = 0xd3;
      b.writeBigInt64BE(v, 1);
      w.bytes(b);
    } else throw new RangeError(`int ${v} does not fit msgpack (msgspec raises OverflowError)`);
  }
}

function writeLen(w: Writer, n: number, fix: number, fixMax: number, c8: number | undefined, c16: number, c32: number): void {
  if (n <= fixMax) w.u8(fix + n);
  else if (c8 !== undefined && n < 256) { w.u8(c8); w.u8(n); }
  else if (n < 65536) { w.u8(c16); w.u16(n); }
  else { w.u8(c32); w.u32(n); }
}

function write(w: Writer, v: MsgValue): void {
  if (v === null) w.u8(0xc0);
  else if (v === false) w.u8(0xc2);
  else if (v === true) w.u8(0xc3);
  else if (typeof v === 'bigint') writeInt(w, v);
  else if (typeof v === 'number') {
    if (Number.isInteger(v)) writeInt(w, BigInt(v));
    else write(w, new F64(v));
  } else if (v instanceof F64) {
    const b = Buffer.alloc(9);
    b[0] = 0xcb;
    b.writeDoubleBE(v.value, 1);
    w.bytes(b);
  } else if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8');
    writeLen(w, b.length, 0xa0, 31, 0xd9, 0xda, 0xdb);
    w.bytes(b);
  } else if (v instanceof Uint8Array) {
    writeLen(w, v.length, 0, -1, 0xc4, 0xc5, 0xc6);
    w.bytes(v);
  } else if (v instanceof MsgMap) {
    writeLen(w, v.entries.length, 0x80, 15, undefined, 0xde, 0xdf);
    for (const [k, x] of v.entries) {
      write(w, k);
      write(w, x);
    }
  } else {
    writeLen(w, v.length, 0x90, 15, undefined, 0xdc, 0xdd);
    for (const x of v) write(w, x);
  }
}

/** Encode a value the way msgspec does. */
export function packMsgspec(v: MsgValue): Buffer {
  const w = new Writer();
  write(w, v);
  return w.result();
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
