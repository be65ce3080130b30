/** Pool behaviour driven through `ingest` (frames as the SUB socket delivers them), no sockets. */
import { Registry } from 'prom-client';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import type { BlockKey, Index, PodEntry } from '../../src/kvindex/types.js';
import { KvEventsMetricNames } from '../../src/kvevents/observe.js';
import { KvEventPool, Pool, type KvEventPoolOptions, type StaleInfo } from '../../src/kvevents/pool.js';
import { type PubEvent, encodeBatch, seqFrame } from '../../testkit/vllm-publisher.js';
import { counter, range, recordingLogger } from './helpers.js';

const MODEL = 'Qwen/Qwen3-0.6B';
const topic = (pod: string): Buffer => Buffer.from(`kv@${pod}@${MODEL}`);
const frames = (pod: string, seq: number, events: PubEvent[], enc: 'map' | 'array' = 'map', rank = 0): Buffer[] => [
  topic(pod),
  seqFrame(BigInt(seq)),
  encodeBatch(events, enc, 1, rank),
];
const eh = (pod: number, i: number): bigint => (BigInt(pod) << 32n) + BigInt(i) + 1n;
const store = (pod: number, i: number, parent?: number): PubEvent => ({
  type: 'BlockStored',
  blockHashes: [eh(pod, i)],
  parentBlockHash: parent === undefined ? null : eh(pod, parent),
  tokenIds: range(i * 16, i * 16 + 16),
  blockSize: 16,
});

/** Wraps an index, recording the order of writes per pod and adding random async delays. */
class RecordingIndex implements Index {
  readonly order = new Map<string, bigint[]>();
  private active = 0;
  maxActive = 0;
  constructor(
    private readonly inner: Index,
    private readonly rnd: () => number,
  ) {}
  private async delay(): Promise<void> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    await new Promise((r) => setTimeout(r, Math.floor(this.rnd() * 3)));
    this.active--;
  }
  lookup(keys: readonly BlockKey[], pods?: ReadonlySet<string>): Promise<Map<BlockKey, PodEntry[]>> {
    return this.inner.lookup(keys, pods);
  }
  async add(e: readonly BlockKey[], r: readonly BlockKey[], entries: readonly PodEntry[]): Promise<void> {
    await this.delay();
    for (const x of entries) this.order.set(x.pod, [...(this.order.get(x.pod) ?? []), ...e]);
    return this.inner.add(e, r, entries);
  }
  async evict(e: BlockKey, entries: readonly PodEntry[]): Promise<void> {
    await this.delay();
    return this.inner.evict(e, entries);
  }
  requestKeyFor(e: BlockKey): Promise<BlockKey | undefined> {
    return this.inner.requestKeyFor(e);
  }
  clear(pod: string): Promise<void> {
    return this.inner.clear(pod);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function mkPool(over: Partial<KvEventPoolOptions> = {}) {
  const index = new MemoryIndex({ memoryBudgetBytes: 8 << 20 });
  const registry = new Registry();
  const logger = recordingLogger();
  const pool = new KvEventPool({ index, blockSize: 16, hashSeed: '42', registry, logger, hashCheck: { enabled: false }, ...over });
  const tp = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: '42', model: MODEL });
  const held = async (pod: string, blocks: number): Promise<number> => {
    const keys = tp.blockKeys(range(0, blocks * 16));
    const hits = await (over.index ?? index).lookup(keys, new Set([pod]));
    let n = 0;
    while (n < keys.length && hits.get(keys[n] as bigint)?.some((e) => e.pod === pod)) n++;
    return n;
  };
  return { pool, index, registry, logger, held };
}

describe('KvEventPool (ingest path)', () => {
  it('is exported under the seed name Pool', () => {
    expect(Pool).toBe(KvEventPool);
  });

  it('keeps per-pod order while pods are processed concurrently', async () => {
    let s = 7;
    const rnd = (): number => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    const rec = new RecordingIndex(new MemoryIndex({ memoryBudgetBytes: 8 << 20 }), rnd);
    const { pool, held } = mkPool({ index: rec, concurrency: 4, queueCapacity: 4 });
    const pods = range(1, 9).map((i) => `10.0.0.${i}:8000`);
    const ingests: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      pods.forEach((p, k) => ingests.push(pool.ingest(frames(p, i, [store(k, i, i === 0 ? undefined : i - 1)]))));
    }
    await Promise.all(ingests);
    await pool.idle();
    pods.forEach((p, k) => expect(rec.order.get(p)).toEqual(range(0, 20).map((i) => eh(k, i))));
    for (const p of pods) expect(await held(p, 20)).toBe(20);
    expect(rec.maxActive).toBeGreaterThan(1);
    expect(rec.maxActive).toBeLessThanOrEqual(4);
  });

  it('counts and survives garbage frames, and applies the good batches after them', async () => {
    const { pool, registry, held, logger } = mkPool();
    const P = '10.0.0.1:8000';
    await pool.ingest(frames(P, 0, [store(0, 0)]));
    await pool.ingest([topic(P), seqFrame(1n)]); // 2 frames
    await pool.ingest([...frames(P, 1, [store(0, 1, 0)]), Buffer.from('x')]); // 4 frames
    await pool.ingest([topic(P), Buffer.alloc(7), encodeBatch([store(0, 1, 0)], 'map')]); // short seq
    await pool.ingest([Buffer.from('kv@nomodel'), seqFrame(1n), encodeBatch([], 'map')]);
    await pool.ingest([Buffer.from([0x6b, 0x76, 0x40, 0xff, 0x40, 0x6d]), seqFrame(1n), encodeBatch([], 'map')]);
    await pool.ingest(frames(P, 1, [store(0, 1, 0)]));
    await pool.idle();
    expect(await held(P, 2)).toBe(2);
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'frame_count' })).toBe(2);
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'bad_seq' })).toBe(1);
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'bad_topic' })).toBe(2);
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('expected 3 frames'))).toBe(true);
  });

  it('drops one bad event and applies the rest of its batch', async () => {
    const { pool, registry, held } = mkPool();
    const P = '10.0.0.1:8000';
    const bad: PubEvent = { type: 'BlockStored', blockHashes: [], parentBlockHash: null, tokenIds: [-1], blockSize: 16 };
    await pool.ingest(frames(P, 0, [store(0, 0), bad, store(0, 1, 0)], 'array'));
    await pool.idle();
    expect(await held(P, 2)).toBe(2);
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'bad_event' })).toBe(1);
  });

  it('an unrepairable gap marks the pod stale and clears it (gapPolicy clear, the default)', async () => {
    const stale: [string, StaleInfo][] = [];
    const { pool, registry, held } = mkPool({ onStale: (p, i) => stale.push([p, i]) });
    const P = '10.0.0.1:8000';
    await pool.ingest(frames(P, 0, [store(0, 0)]));
    await pool.ingest(frames(P, 1, [store(0, 1, 0)]));
    await pool.ingest(frames(P, 4, [store(0, 0)])); // 2 and 3 lost
    await pool.idle();
    expect(await held(P, 2)).toBe(1); // cleared, then seq 4 re-stored block 0
    expect(stale).toHaveLength(1);
    expect(stale[0]?.[0]).toBe(P);
    expect(stale[0]?.[1]).toMatchObject({ dpRank: 0, missing: 2n, cause: 'no replay address configured for this pod' });
    expect(pool.stalePods().get(P)?.missing).toBe(2n);
    expect(await counter(registry, KvEventsMetricNames.podStale)).toBe(1);
    expect(await counter(registry, KvEventsMetricNames.seqGaps, { outcome: 'unrepaired' })).toBe(1);
    expect(await counter(registry, KvEventsMetricNames.missingBatches)).toBe(2);
    expect(pool.lastSeq(P)).toBe(4n);
  });

  it('gapPolicy keep leaves the entries in place', async () => {
    const { pool, held } = mkPool({ gapPolicy: 'keep' });
    const P = '10.0.0.1:8000';
    await pool.ingest(frames(P, 0, [store(0, 0)]));
    await pool.ingest(frames(P, 1, [store(0, 1, 0)]));
    await pool.ingest(frames(P, 3, [store(0, 2, 1)]));
    await pool.idle();
    expect(await held(P, 3)).toBe(3);
    expect(pool.stalePods().has(P)).toBe(true);
  });

  it('an undecodable batch leaves a hole that is treated as a gap', async () => {
    const { pool, registry } = mkPool();
    const P = '10.0.0.1:8000';
    await pool.ingest(frames(P, 0, [store(0, 0)]));
    await pool.ingest([topic(P), seqFrame(1n), Buffer.from([0x93, 0xcb, 1, 2])]);
    await pool.ingest(frames(P, 2, [store(0, 1, 0)]));
    await pool.idle();
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'msgpack' })).toBe(1);
    expect(await counter(registry, KvEventsMetricNames.podStale)).toBe(1);
  });

  it('a sequence going backwards is a publisher restart: the pod is cleared', async () => {
    const { pool, registry, held } = mkPool();
    const P = '10.0.0.1:8000';
    await pool.ingest(frames(P, 0, [store(0, 0)]));
    await pool.ingest(frames(P, 1, [store(0, 1, 0)]));
    await pool.ingest(frames(P, 0, [store(0, 0)]));
    await pool.idle();
    expect(await held(P, 2)).toBe(1);
    expect(await counter(registry, KvEventsMetricNames.publisherRestarts)).toBe(1);
    expect(await counter(registry, KvEventsMetricNames.podStale)).toBe(0);
  });

  it('tracks sequences per data-parallel rank', async () => {
    const { pool, registry } = mkPool();
    const P = '10.0.0.1:8000';
    for (let i = 0; i < 3; i++) {
      await pool.ingest(frames(P, i, [store(0, i, i === 0 ? undefined : i - 1)], 'map', 0));
      await pool.ingest(frames(P, i, [store(1, i, i === 0 ? undefined : i - 1)], 'map', 1));
    }
    await pool.idle();
    expect(pool.lastSeq(P, 0)).toBe(2n);
    expect(pool.lastSeq(P, 1)).toBe(2n);
    expect(await counter(registry, KvEventsMetricNames.seqGaps)).toBe(0);
    expect(await counter(registry, KvEventsMetricNames.publisherRestarts)).toBe(0);
  });

  it('an index that fails to clear is counted, and the batch is still applied', async () => {
    const inner = new MemoryIndex({ memoryBudgetBytes: 8 << 20 });
    const failing: Index = {
      lookup: (k, p) => inner.lookup(k, p),
      add: (e, r, x) => inner.add(e, r, x),
      evict: (e, x) => inner.evict(e, x),
      requestKeyFor: (e) => inner.requestKeyFor(e),
      clear: () => Promise.reject(new Error('redis down')),
      close: () => inner.close(),
    };
    const { pool, registry, held, logger } = mkPool({ index: failing });
    const P = '10.0.0.1:8000';
    await pool.ingest(frames(P, 0, [store(0, 0)]));
    await pool.ingest(frames(P, 5, [store(0, 1, 0)])); // gap → stale → clear fails
    await pool.idle();
    expect(await counter(registry, KvEventsMetricNames.dropped, { reason: 'apply_error' })).toBe(1);
    expect(await held(P, 2)).toBe(2);
    expect(pool.lastSeq(P)).toBe(5n);
    expect(logger.lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('a restart of one DP rank resets the other ranks too (their entries were cleared with the pod)', async () => {
    const { pool, registry } = mkPool();
    const P = '10.0.0.1:8000';
    await pool.ingest(frames(P, 0, [], 'map', 0));
    await pool.ingest(frames(P, 3, [], 'map', 1));
    await pool.ingest(frames(P, 0, [], 'map', 0)); // rank 0 went back: restart
    await pool.idle();
    expect(pool.lastSeq(P, 0)).toBe(0n);
    expect(pool.lastSeq(P, 1)).toBeUndefined();
    await pool.ingest(frames(P, 0, [], 'map', 1)); // rank 1 restarted as well: not a second clear
    await pool.idle();
    expect(await counter(registry, KvEventsMetricNames.publisherRestarts)).toBe(1);
  });

  it('stop() drains every queued batch before it resolves', async () => {
    const { pool, held } = mkPool({ concurrency: 2, queueCapacity: 2 });
    const P = '10.0.0.1:8000';
    const pushes: Promise<void>[] = [];
    for (let i = 0; i < 30; i++) pushes.push(pool.ingest(frames(P, i, [store(0, i, i === 0 ? undefined : i - 1)])));
    await pool.stop();
    await Promise.all(pushes);
    expect(await held(P, 30)).toBe(30);
  });

  it('bounds the number of pods whose sequence state is kept', async () => {
    const { pool, registry } = mkPool({ maxTrackedPods: 2 });
    await pool.ingest(frames('10.0.0.1:1', 5, []));
    await pool.ingest(frames('10.0.0.2:1', 5, []));
    await pool.ingest(frames('10.0.0.1:1', 6, [])); // 10.0.0.1 is the most recently active now
    await pool.ingest(frames('10.0.0.3:1', 5, []));
    await pool.idle();
    expect(pool.lastSeq('10.0.0.2:1')).toBeUndefined();
    expect(pool.lastSeq('10.0.0.1:1')).toBe(6n);
    expect(pool.lastSeq('10.0.0.3:1')).toBe(5n);
    await pool.ingest(frames('10.0.0.4:1', 1, []));
    await pool.idle();
    expect(pool.lastSeq('10.0.0.1:1')).toBeUndefined();
    // the forgotten pod starts over without a false gap or restart
    await pool.ingest(frames('10.0.0.1:1', 9, []));
    await pool.idle();
    expect(pool.lastSeq('10.0.0.1:1')).toBe(9n);
    expect(await counter(registry, KvEventsMetricNames.seqGaps)).toBe(0);
    expect(await counter(registry, KvEventsMetricNames.publisherRestarts)).toBe(0);
  });

  it('removePod clears the pod after its queued batches', async () => {
    const { pool, held } = mkPool();
    const P = '10.0.0.1:8000';
    pool.addPod(P);
    await pool.ingest(frames(P, 0, [store(0, 0)]));
    await pool.removePod(P);
    await pool.idle();
    expect(await held(P, 1)).toBe(0);
    expect(pool.lastSeq(P)).toBeUndefined();
  });

  it('applies its option defaults', async () => {
    const { pool } = mkPool();
    const opts = pool as unknown as Record<string, unknown>;
    expect(opts['mode']).toBe('bind');
    expect(opts['bindAddress']).toBe('tcp://*:5557');
    expect(opts['topicFilter']).toBe('kv@');
    expect(opts['gapPolicy']).toBe('clear');
    expect(opts['replayTimeoutMs']).toBe(2000);
    expect(opts['replayOnJoin']).toBe(true);
    expect(opts['replayCooldownMs']).toBe(30_000);
    expect(opts['maxTrackedPods']).toBe(16_384);
    expect((opts['shards'] as unknown[]).length).toBe(8);
    expect((opts['shards'] as { capacity: number }[])[0]?.capacity).toBe(1024);
    expect(pool.endpoint).toBeUndefined();
    const applier = opts['applier'] as Record<string, unknown>;
    expect(applier['hashAlgo']).toBe('sha256_cbor');
    expect(applier['carryLimit']).toBe(4096);
  });

  it('defaults: silent logger, no metrics, SUB high-water mark 100000', async () => {
    const index = new MemoryIndex({ memoryBudgetBytes: 1 << 20 });
    const pool = new KvEventPool({ index, blockSize: 16, hashSeed: '42', bindAddress: 'tcp://127.0.0.1:*' });
    await pool.start();
    try {
      const sub = (pool as unknown as { sub: { receiveHighWaterMark: number } }).sub;
      expect(sub.receiveHighWaterMark).toBe(100_000);
      expect(pool.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
      await pool.ingest([Buffer.from('garbage')]); // counted by nobody, logged nowhere, no throw
      await pool.ingest(frames('10.0.0.1:8000', 0, [store(0, 0)]));
      await pool.idle();
      expect(pool.lastSeq('10.0.0.1:8000')).toBe(0n);
    } finally {
      await pool.stop();
    }
  });

  it('rejects bad options and a connect-mode pod without a publisher address', () => {
    const index = new MemoryIndex({ memoryBudgetBytes: 1 << 20 });
    expect(() => new KvEventPool({ index, blockSize: 16, hashSeed: '1', concurrency: 0 })).toThrow('concurrency must be an integer >= 1');
    expect(() => new KvEventPool({ index, blockSize: 16, hashSeed: '1', queueCapacity: 0.5 })).toThrow('queueCapacity');
    const p = new KvEventPool({ index, blockSize: 16, hashSeed: '1', mode: 'connect' });
    expect(() => p.addPod('1.2.3.4:8000')).toThrow('publisher address');
  });
});
