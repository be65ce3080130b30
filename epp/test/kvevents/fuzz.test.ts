/**
 * Fuzz: ≥ 100,000 random and mutated messages (seeded) through the pool's ingest path (frame
 * checks, topic, seq, msgpack decode, event validation, apply). Nothing may throw past the pool,
 * and every good batch that follows a bad one must be applied.
 */
import { Registry } from 'prom-client';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import { KvEventsMetricNames } from '../../src/kvevents/observe.js';
import { KvEventPool } from '../../src/kvevents/pool.js';
import { type EventEncoding, type PubEvent, type WireHash, encodeBatch, seqFrame } from '../../testkit/vllm-publisher.js';
import { counter, mutatePayload as mutate, prng, recordingLogger } from './helpers.js';

const MODEL = 'org/model@v1';
const VICTIM = '10.9.9.9:8000';
const TOTAL = 100_000;
const GOOD_EVERY = 10;

type Rnd = () => number;
const int = (r: Rnd, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rnd, xs: readonly T[]): T => xs[int(r, xs.length)] as T;

function randomHash(r: Rnd): WireHash {
  switch (int(r, 4)) {
    case 0:
      return BigInt(int(r, 1 << 30));
    case 1:
      return (BigInt(int(r, 1 << 30)) << 34n) | BigInt(int(r, 1 << 30)) | (1n << 63n); // ≥ 2^63: uint64
    case 2:
      return Uint8Array.from({ length: 32 }, () => int(r, 256));
    default:
      return Uint8Array.from({ length: 1 + int(r, 16) }, () => int(r, 256));
  }
}

/** A valid batch of BlockStored/BlockRemoved events (no AllBlocksCleared, so the victim keeps its entries). */
function randomValidEvents(r: Rnd): PubEvent[] {
  const events: PubEvent[] = [];
  const n = int(r, 4);
  for (let i = 0; i < n; i++) {
    if (r() < 0.7) {
      const blocks = 1 + int(r, 2);
      const bs = pick(r, [4, 8, 16]);
      events.push({
        type: 'BlockStored',
        blockHashes: Array.from({ length: blocks }, () => randomHash(r)),
        parentBlockHash: r() < 0.5 ? null : randomHash(r),
        tokenIds: Array.from({ length: blocks * bs }, () => int(r, 200_000)),
        blockSize: bs,
        loraName: r() < 0.2 ? 'lora-x' : null,
        medium: pick(r, ['GPU', 'CPU', null]),
        groupIdx: r() < 0.5 ? 0 : null,
        extraKeys: r() < 0.3 ? Array.from({ length: blocks }, () => null) : null,
      });
    } else {
      events.push({ type: 'BlockRemoved', blockHashes: [randomHash(r)], medium: pick(r, ['GPU', 'CPU']) });
    }
  }
  return events;
}

describe('fuzz: mutated KV-event messages through the pool', () => {
  it(`survives ${TOTAL} random and mutated messages and applies every good batch`, async () => {
    const r = prng(20261123);
    const index = new MemoryIndex({ memoryBudgetBytes: 64 << 20 });
    const registry = new Registry();
    const logger = recordingLogger();
    const pool = new KvEventPool({ index, blockSize: 16, hashSeed: '42', registry, logger, gapPolicy: 'keep', concurrency: 4 });
    const encodings: EventEncoding[] = ['map', 'array', 'array-v09'];
    const victimTopic = Buffer.from(`kv@${VICTIM}@${MODEL}`);
    let victimSeq = 0n;
    let good = 0;
    let rejected = 0;
    const goodTokens: number[][] = [];
    const validPool: Buffer[] = Array.from({ length: 64 }, () => encodeBatch(randomValidEvents(r), pick(r, encodings), r() * 2e9, int(r, 3)));

    for (let i = 0; i < TOTAL; i++) {
      let frames: Buffer[];
      if (i % GOOD_EVERY === GOOD_EVERY - 1) {
        // a good batch for the victim: a root block with unique tokens, after the bad ones
        const tokens = Array.from({ length: 16 }, (_, t) => 1_000_000 + good * 16 + t);
        goodTokens.push(tokens);
        const ev: PubEvent = { type: 'BlockStored', blockHashes: [0xf000000000000000n + BigInt(good)], parentBlockHash: null, tokenIds: tokens, blockSize: 16 };
        frames = [victimTopic, seqFrame(victimSeq++), encodeBatch([ev], pick(r, ['map', 'array'] as const), 1)];
        good++;
      } else {
        const payload = r() < 0.9 ? mutate(r, pick(r, validPool)) : pick(r, validPool);
        const kind = int(r, 10);
        if (kind < 5) {
          // bad payload for the victim with a proper seq (it consumes the seq, as a real publisher's would)
          frames = [victimTopic, seqFrame(victimSeq++), payload];
        } else if (kind < 7) {
          frames = [Buffer.from(`kv@10.0.${int(r, 4)}.${int(r, 4)}:8000@${MODEL}`), seqFrame(BigInt(int(r, 50))), payload];
        } else if (kind === 7) {
          frames = Array.from({ length: pick(r, [0, 1, 2, 4, 5]) }, () => payload);
        } else if (kind === 8) {
          frames = [victimTopic, Buffer.alloc(pick(r, [0, 1, 7, 9, 16])), payload];
        } else {
          // a mutated topic may still name the victim (another model, say): it is then part of its stream
          frames = [mutate(r, victimTopic), seqFrame(victimSeq++), payload];
        }
      }
      try {
        await pool.ingest(frames);
      } catch {
        rejected++;
      }
    }
    await pool.idle();

    expect(rejected).toBe(0);
    expect(logger.lines.filter((l) => l.level === 'error')).toEqual([]);
    expect(good).toBe(TOTAL / GOOD_EVERY);
    // every good batch is in the index
    const tp = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: '42', model: MODEL });
    const keys = goodTokens.map((t) => tp.blockKeys(t)[0] as bigint);
    let found = 0;
    for (const k of keys) {
      const hits = await index.lookup([k], new Set([VICTIM]));
      if (hits.get(k)?.some((e) => e.pod === VICTIM)) found++;
    }
    expect(found).toBe(good);
    expect(pool.lastSeq(VICTIM)).toBe(victimSeq - 1n);
    // the garbage was seen and counted under several reasons
    for (const reason of ['frame_count', 'bad_seq', 'bad_topic', 'msgpack', 'bad_batch', 'bad_event']) {
      expect(await counter(registry, KvEventsMetricNames.dropped, { reason })).toBeGreaterThan(0);
    }
    // some mutations still decode (valid msgpack of a valid shape) and are applied or dropped event by event
    expect(await counter(registry, KvEventsMetricNames.applied, { type: 'BlockStored' })).toBeGreaterThan(good + 1000);
    expect(index.stats.lruEvictions).toBe(0);
    await pool.stop();
  }, 180_000); // ~8 s of CPU; the generous limit is for a loaded shared machine
});
