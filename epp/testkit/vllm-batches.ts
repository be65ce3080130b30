/**
 * KV-event traffic for the ingest benchmarks (epp.bench.ts (b), events.bench.ts): per pod a stream
 * of vLLM-format batches, each event a BlockStored of a fresh root chain with random token ids,
 * batches alternating between the array and the map encoding, seq numbers per pod.
 */
import { type PubEvent, encodeBatch, seqFrame } from './vllm-publisher.js';

/** One ZMQ multipart message: topic, 8-byte seq, msgpack payload. */
export interface KvEventMessage {
  topic: Buffer;
  seq: Buffer;
  payload: Buffer;
}

export interface KvEventTraffic {
  readonly batches: number;
  readonly pods: number;
  /** BlockStored events per batch. */
  readonly events: number;
  /** Blocks per event. */
  readonly blocks: number;
  readonly blockSize: number;
  readonly model: string;
  /** Token id for the next position (the caller's seeded generator). */
  readonly token: () => number;
  /** Pod `i`'s address as in the topic `kv@<address>@<model>`. */
  readonly podAddress: (i: number) => string;
}

export function makeKvEventMessages(t: KvEventTraffic): KvEventMessage[] {
  const msgs: KvEventMessage[] = [];
  const seqs = new Array<bigint>(t.pods).fill(0n);
  let h = 1n;
  for (let b = 0; b < t.batches; b++) {
    const pod = b % t.pods;
    const events: PubEvent[] = [];
    for (let e = 0; e < t.events; e++) {
      events.push({
        type: 'BlockStored',
        blockHashes: Array.from({ length: t.blocks }, () => (h++ * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn),
        parentBlockHash: null,
        tokenIds: Array.from({ length: t.blocks * t.blockSize }, t.token),
        blockSize: t.blockSize,
        medium: 'GPU',
      });
    }
    const seq = seqs[pod] as bigint;
    seqs[pod] = seq + 1n;
    msgs.push({ topic: Buffer.from(`kv@${t.podAddress(pod)}@${t.model}`), seq: seqFrame(seq), payload: encodeBatch(events, b % 2 ? 'map' : 'array') });
  }
  return msgs;
}
