/**
 * Runtime KV-event publisher of the simulated pod, in vLLM's wire format (docs/facts/vllm-kv-events.md, "KV events"):
 * PUB frames `[topic, seq (8-byte big-endian, from 0), msgpack KVEventBatch]`, the batch written
 * with @msgpack/msgpack the way msgspec writes it (`[ts float64, events, data_parallel_rank]`;
 * ints in their smallest form; testkit's packMsgspec), events as tagged arrays (vLLM ≤ v0.23) or maps with a `type` key
 * (≥ v0.24, nil optional fields omitted). An optional ROUTER replay socket answers
 * `[id, "", start_seq8]` with every buffered batch `seq >= start`, then the end marker.
 */
import { Publisher, Router } from 'zeromq';
import { F64, MsgMap, packMsgspec, type MsgValue } from '../../../testkit/vllm-publisher.js';
import type { KvEvent, KvEventBatch } from '../../../src/kvevents/types.js';

/** `array`: vLLM ≤ v0.23 tagged arrays; `map`: vLLM ≥ v0.24 maps with `type`. */
export type WireEncoding = 'array' | 'map';

/** vLLM writes the medium upper-case (`GPU`, `CPU`). */
const medium = (m: string | undefined): string => (m ?? 'gpu').toUpperCase();

function encodeEvent(e: KvEvent, enc: WireEncoding): MsgValue {
  if (e.type === 'AllBlocksCleared') return enc === 'map' ? new MsgMap([['type', 'AllBlocksCleared']]) : ['AllBlocksCleared'];
  if (e.type === 'BlockRemoved') {
    const hashes = [...e.blockHashes];
    return enc === 'map'
      ? new MsgMap([
          ['type', 'BlockRemoved'],
          ['block_hashes', hashes],
          ['medium', medium(e.medium)],
        ])
      : ['BlockRemoved', hashes, medium(e.medium), null];
  }
  const hashes = [...e.blockHashes];
  const parent = e.parentBlockHash ?? null;
  const tokens = [...e.tokenIds];
  if (enc === 'map') {
    return new MsgMap([
      ['type', 'BlockStored'],
      ['block_hashes', hashes],
      ['parent_block_hash', parent],
      ['token_ids', tokens],
      ['block_size', e.blockSize],
      ['lora_id', null],
      ['medium', medium(e.medium)],
      ['lora_name', null],
    ]);
  }
  return ['BlockStored', hashes, parent, tokens, e.blockSize, null, medium(e.medium), null, null, null, null, null];
}

/** The payload of one `KVEventBatch`, as msgspec writes it (an integral ts excepted: see packMsgspec). */
export function encodeKvBatch(batch: KvEventBatch, enc: WireEncoding, dpRank = 0): Buffer {
  return packMsgspec([new F64(batch.ts), batch.events.map((e) => encodeEvent(e, enc)), dpRank]);
}

export function seqFrame(seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(seq);
  return b;
}

export interface KvPublisherOptions {
  /** The EPP's SUB bind address, connected to (e.g. `tcp://127.0.0.1:5557`). */
  readonly endpoint: string;
  /** `kv@<ip:port>@<model>`. */
  readonly topic: string;
  /** @default 'map' */
  readonly encoding?: WireEncoding;
  /** ROUTER replay bind address (e.g. `tcp://127.0.0.1:5558`). @default none */
  readonly replayEndpoint?: string;
  /** Batches kept for replay. @default 10000 */
  readonly bufferSteps?: number;
}

const END = Buffer.from('ffffffffffffffff', 'hex');
const EMPTY = Buffer.alloc(0);

/** Publishes a pod's KV-event batches; sends are serialized (ZMQ sockets allow one send at a time). */
export class KvPublisher {
  private readonly pub = new Publisher({ linger: 0, sendHighWaterMark: 100_000 });
  private router: Router | undefined;
  private readonly buffer: { seq: bigint; payload: Buffer }[] = [];
  private nextSeq = 0n;
  private chain: Promise<void> = Promise.resolve();
  private replayLoop: Promise<void> | undefined;
  private closed = false;
  /** Batches published / send failures. */
  published = 0;
  failures = 0;

  constructor(readonly opts: KvPublisherOptions) {}

  /** The ROUTER replay address actually bound, or undefined without replay. */
  get replayAddress(): string | undefined {
    return this.router?.lastEndpoint ?? undefined;
  }

  async start(): Promise<void> {
    this.pub.connect(this.opts.endpoint);
    if (this.opts.replayEndpoint) {
      this.router = new Router({ linger: 0 });
      await this.router.bind(this.opts.replayEndpoint);
      this.replayLoop = this.serveReplay(this.router);
    }
  }

  /** Queues one batch; resolves once it is handed to the socket. */
  publish(batch: KvEventBatch): Promise<void> {
    const payload = encodeKvBatch(batch, this.opts.encoding ?? 'map');
    const seq = this.nextSeq++;
    this.buffer.push({ seq, payload });
    if (this.buffer.length > (this.opts.bufferSteps ?? 10_000)) this.buffer.shift();
    this.chain = this.chain.then(async () => {
      if (this.closed) return;
      try {
        await this.pub.send([Buffer.from(this.opts.topic, 'utf8'), seqFrame(seq), payload]);
        this.published++;
      } catch {
        this.failures++;
      }
    });
    return this.chain;
  }

  async close(): Promise<void> {
    await this.chain;
    this.closed = true;
    this.pub.close();
    this.router?.close();
    await this.replayLoop;
  }

  private async serveReplay(router: Router): Promise<void> {
    const topic = Buffer.from(this.opts.topic, 'utf8');
    while (!this.closed) {
      let frames: Buffer[];
      try {
        frames = await router.receive();
      } catch {
        return;
      }
      if (frames.length !== 3 || (frames[2] as Buffer).length !== 8) continue;
      const id = frames[0] as Buffer;
      const start = (frames[2] as Buffer).readBigUInt64BE(0);
      try {
        for (const b of this.buffer) if (b.seq >= start) await router.send([id, EMPTY, topic, seqFrame(b.seq), b.payload]);
        await router.send([id, EMPTY, EMPTY, END, EMPTY]);
      } catch {
        return;
      }
    }
  }
}
