/**
 * Client of vLLM's KV-event replay socket (ROUTER, `_service_replay`; docs/facts/vllm-kv-events.md, "KV events" (replay)).
 *
 * Request: a DEALER sends `["", start_seq as 8-byte big-endian]`. Replies, oldest first, are every
 * buffered batch with `seq >= start`, then an end marker. Both reply generations are understood:
 * - before vLLM PR #45177: `["", seq8, payload]`, end `["", ffffffffffffffff, ""]`;
 * - after: `["", topic, seq8, payload]`, end `["", "", ffffffffffffffff, ""]`.
 * An empty payload frame or the all-ones seq is the end marker. One fresh DEALER is used per
 * request and closed afterwards, so late replies of a timed-out request can never be mistaken
 * for the next request's.
 */
import { Dealer } from 'zeromq';

export interface ReplayedBatch {
  readonly seq: bigint;
  readonly payload: Uint8Array;
}

export interface ReplayResponse {
  /** Replayed batches with `from <= seq < until`, in the order received. */
  readonly batches: ReplayedBatch[];
  /** True when the end marker (or a batch at or beyond `until`) was seen. */
  readonly complete: boolean;
  /** Set when the request failed or timed out. */
  readonly error?: string;
}

const END_SEQ = 0xffffffffffffffffn;

export function encodeSeq(seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, seq));
  return b;
}

export function readSeq(frame: Uint8Array): bigint | undefined {
  if (frame.length !== 8) return undefined;
  return Buffer.from(frame.buffer, frame.byteOffset, 8).readBigUInt64BE(0);
}

/** Port offset for data-parallel rank `r` (vLLM uses `port + r` for tcp endpoints). */
export function offsetEndpointPort(endpoint: string, rank: number): string {
  if (rank === 0) return endpoint;
  const m = /^(tcp:\/\/.*):(\d+)$/.exec(endpoint);
  if (!m) return endpoint;
  return `${m[1]}:${Number(m[2]) + rank}`;
}

/**
 * Ask the replay socket at `endpoint` for batches from `from` on, keeping those below `until`
 * (exclusive; undefined = keep all). Never throws: failures come back as `error`.
 */
export async function requestReplay(endpoint: string, from: bigint, until: bigint | undefined, timeoutMs: number): Promise<ReplayResponse> {
  const batches: ReplayedBatch[] = [];
  const dealer = new Dealer({ linger: 0, ipv6: true, receiveTimeout: timeoutMs, sendTimeout: timeoutMs });
  try {
    dealer.connect(endpoint);
    await dealer.send([Buffer.alloc(0), encodeSeq(from)]);
    for (;;) {
      const frames = await dealer.receive();
      let i = 0;
      if (frames.length > 0 && (frames[0] as Buffer).length === 0 && frames.length >= 3) i = 1; // DEALER delimiter
      const rest = frames.length - i;
      if (rest !== 2 && rest !== 3) continue; // not a replay reply; ignore
      const seqFrame = frames[frames.length - 2] as Buffer;
      const payload = frames[frames.length - 1] as Buffer;
      const seq = readSeq(seqFrame);
      if (seq === undefined) continue;
      if (seq === END_SEQ || payload.length === 0) return { batches, complete: true };
      if (until !== undefined && seq >= until) return { batches, complete: true };
      if (seq >= from) batches.push({ seq, payload });
    }
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const timedOut = err.code === 'EAGAIN';
    return { batches, complete: false, error: timedOut ? `no reply within ${timeoutMs} ms` : (err.message ?? String(e)) };
  } finally {
    dealer.close();
  }
}
