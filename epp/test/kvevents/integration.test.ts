/**
 * End to end over real ZeroMQ sockets on 127.0.0.1: vLLM-format publishers (PUB + ROUTER replay)
 * → KvEventPool (SUB, DEALER) → MemoryIndex.
 */
import { Registry } from 'prom-client';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import { KvEventsMetricNames } from '../../src/kvevents/observe.js';
import { KvEventPool, type KvEventPoolOptions, type StaleInfo } from '../../src/kvevents/pool.js';
import { type EventEncoding, type PubEvent, VllmPublisher } from '../../testkit/vllm-publisher.js';
import { counter, hashCase, range, recordingLogger } from './helpers.js';

const MODEL = 'meta-llama/Llama-3.2-1B';
const tp = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: '42', model: MODEL });

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A chain of blocks for one pod: block i covers tokens base+16i .. base+16i+15. */
function chain(base: number, from: number, to: number, hashOf: (i: number) => bigint | Uint8Array): PubEvent {
  return {
    type: 'BlockStored',
    blockHashes: range(from, to).map(hashOf),
    parentBlockHash: from === 0 ? null : hashOf(from - 1),
    tokenIds: range(base + from * 16, base + to * 16),
    blockSize: 16,
  };
}

interface Rig {
  pool: KvEventPool;
  index: MemoryIndex;
  registry: Registry;
  pubs: VllmPublisher[];
  held(pod: string, base: number, blocks: number): Promise<number>;
  publisher(pod: string, enc: EventEncoding, extra?: { replay?: boolean; legacyReplay?: boolean; dpRank?: number }): Promise<VllmPublisher>;
}

const rigs: Rig[] = [];

async function rig(over: Partial<KvEventPoolOptions> = {}): Promise<Rig> {
  const index = new MemoryIndex({ memoryBudgetBytes: 16 << 20 });
  const registry = new Registry();
  const pool = new KvEventPool({
    index,
    blockSize: 16,
    hashSeed: '42',
    bindAddress: 'tcp://127.0.0.1:*',
    registry,
    logger: recordingLogger(),
    replayTimeoutMs: 1000,
    ...over,
  });
  await pool.start();
  const r: Rig = {
    pool,
    index,
    registry,
    pubs: [],
    async held(pod, base, blocks) {
      const keys = tp.blockKeys(range(base, base + blocks * 16));
      const hits = await index.lookup(keys, new Set([pod]));
      let n = 0;
      while (n < keys.length && hits.get(keys[n] as bigint)?.some((e) => e.pod === pod)) n++;
      return n;
    },
    async publisher(pod, enc, extra = {}) {
      const pub = new VllmPublisher({
        endpoint: over.mode === 'connect' ? 'tcp://127.0.0.1:*' : (pool.endpoint as string),
        topic: `kv@${pod}@${MODEL}`,
        encoding: enc,
        ...(extra.replay ? { replayEndpoint: 'tcp://127.0.0.1:*' } : {}),
        ...(extra.legacyReplay ? { replayFormat: 'legacy' as const } : {}),
        ...(extra.dpRank !== undefined ? { dpRank: extra.dpRank } : {}),
      });
      await pub.start();
      r.pubs.push(pub);
      if (over.mode !== 'connect') await pub.waitForSubscribers();
      return pub;
    },
  };
  rigs.push(r);
  return r;
}

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.pool.stop();
    for (const p of r.pubs) await p.close();
    await r.index.close();
  }
});

const h = (pod: number) => (i: number): bigint => (BigInt(pod + 1) << 56n) + BigInt(i);

describe('KvEventPool over real ZeroMQ', () => {
  it('binds, receives both encodings (int and bytes hashes) from two pods, and indexes them', async () => {
    const r = await rig();
    const a = await r.publisher('10.0.0.1:8000', 'map');
    const b = await r.publisher('[fd00::2]:8000', 'array');
    const c = await r.publisher('10.0.0.3:8000', 'array-v09');
    const bytesHash = (i: number): Uint8Array => {
      const d = Buffer.alloc(32, 0x5a);
      d.writeBigUInt64BE(h(2)(i), 24);
      return d;
    };
    await a.publish([chain(0, 0, 2, h(0))]);
    await a.publish([chain(0, 2, 4, h(0))]);
    await b.publish([chain(0, 0, 3, h(1))]);
    await b.publish([{ type: 'BlockRemoved', blockHashes: [h(1)(2)], medium: 'GPU' }]);
    await c.publish([chain(1000, 0, 2, h(2))]);
    const d = await r.publisher('10.0.0.4:8000', 'map');
    await d.publish([chain(0, 0, 2, bytesHash)]);
    await waitFor(() => r.pool.lastSeq('10.0.0.1:8000') === 1n && r.pool.lastSeq('[fd00::2]:8000') === 1n && r.pool.lastSeq('10.0.0.4:8000') === 0n && r.pool.lastSeq('10.0.0.3:8000') === 0n, 'all batches');
    await r.pool.idle();
    expect(await r.held('10.0.0.1:8000', 0, 5)).toBe(4);
    expect(await r.held('[fd00::2]:8000', 0, 5)).toBe(2);
    expect(await r.held('10.0.0.3:8000', 1000, 5)).toBe(2);
    expect(await r.held('10.0.0.4:8000', 0, 5)).toBe(2);
    expect(await r.index.requestKeyFor(h(2)(1))).toBe(tp.blockKeys(range(0, 32))[1]);
    expect(await counter(r.registry, KvEventsMetricNames.received)).toBe(6);
    expect(await counter(r.registry, KvEventsMetricNames.dropped)).toBe(0);
  });

  it('survives garbage frames and applies every good batch after them', async () => {
    const r = await rig();
    const P = '10.0.0.1:8000';
    const a = await r.publisher(P, 'map');
    await a.publish([chain(0, 0, 1, h(0))]);
    await a.sendRaw([`kv@${P}@${MODEL}`]);
    await a.sendRaw([`kv@${P}@${MODEL}`, Buffer.alloc(3), a.encode([])]);
    await a.sendRaw([`kv@${P}`, Buffer.alloc(8), a.encode([])]);
    await a.sendRaw([`kv@${P}@${MODEL}`, Buffer.alloc(8), a.encode([]), 'extra']);
    await a.sendRaw(['not-kv-topic', Buffer.alloc(8), Buffer.from('zz')]); // filtered by the subscription
    await a.publish([chain(0, 1, 2, h(0))]);
    await a.publish([chain(0, 2, 3, h(0)), { type: 'BlockStored', blockHashes: [1n], parentBlockHash: null, tokenIds: [0.5], blockSize: 16 }]);
    await waitFor(() => r.pool.lastSeq(P) === 2n, 'seq 2');
    await r.pool.idle();
    expect(await r.held(P, 0, 4)).toBe(3);
    expect(await counter(r.registry, KvEventsMetricNames.dropped, { reason: 'frame_count' })).toBe(2);
    expect(await counter(r.registry, KvEventsMetricNames.dropped, { reason: 'bad_seq' })).toBe(1);
    expect(await counter(r.registry, KvEventsMetricNames.dropped, { reason: 'bad_topic' })).toBe(1);
    expect(await counter(r.registry, KvEventsMetricNames.dropped, { reason: 'bad_event' })).toBe(1);
  });

  it.each([
    ['current replay format', false, 'map' as const],
    ['legacy replay format', true, 'array' as const],
  ])('repairs a sequence gap through the replay socket (%s)', async (_n, legacyReplay, enc) => {
    const r = await rig();
    const P = '10.0.0.1:8000';
    const a = await r.publisher(P, enc, { replay: true, legacyReplay });
    r.pool.addPod(P, undefined, a.replayAddress);
    await a.publish([chain(0, 0, 1, h(0))]);
    await a.publish([chain(0, 1, 2, h(0))], { drop: true });
    await a.publish([chain(0, 2, 3, h(0))], { drop: true });
    await a.publish([chain(0, 3, 4, h(0))]);
    await waitFor(() => r.pool.lastSeq(P) === 3n, 'seq 3');
    await r.pool.idle();
    expect(await r.held(P, 0, 5)).toBe(4);
    expect(a.replayRequests).toBe(1);
    expect(await counter(r.registry, KvEventsMetricNames.seqGaps, { outcome: 'replayed' })).toBe(1);
    expect(await counter(r.registry, KvEventsMetricNames.replayedBatches)).toBe(2);
    expect(await counter(r.registry, KvEventsMetricNames.podStale)).toBe(0);
  });

  it('an undecodable batch is lost for good even with replay: stale, and the next good batch is applied', async () => {
    const r = await rig({ gapPolicy: 'keep' });
    const P = '10.0.0.1:8000';
    const a = await r.publisher(P, 'map', { replay: true });
    r.pool.addPod(P, undefined, a.replayAddress);
    await a.publish([chain(0, 0, 1, h(0))]);
    await a.publishPayload(Buffer.from([0x93, 0xcb, 0x41]));
    await a.publish([chain(0, 1, 2, h(0))]);
    await waitFor(() => r.pool.lastSeq(P) === 2n, 'seq 2');
    await r.pool.idle();
    expect(await r.held(P, 0, 3)).toBe(2);
    expect(a.replayRequests).toBe(1);
    expect(await counter(r.registry, KvEventsMetricNames.dropped, { reason: 'msgpack' })).toBe(2); // live + replayed copy
    expect(r.pool.stalePods().get(P)?.cause).toContain('1 undecodable batch(es) in seq 1..1');
  });

  it('a replay buffer that no longer holds the whole gap: partial repair, then stale', async () => {
    const r = await rig({ gapPolicy: 'keep' });
    const P = '10.0.0.1:8000';
    const a = new VllmPublisher({ endpoint: r.pool.endpoint as string, topic: `kv@${P}@${MODEL}`, replayEndpoint: 'tcp://127.0.0.1:*', bufferSteps: 2 });
    await a.start();
    r.pubs.push(a);
    await a.waitForSubscribers();
    r.pool.addPod(P, undefined, a.replayAddress);
    await a.publish([chain(0, 0, 1, h(0))]);
    for (let i = 1; i < 4; i++) await a.publish([chain(0, i, i + 1, h(0))], { drop: true }); // seq 1..3 lost; buffer keeps 2..3
    await a.publish([chain(0, 4, 5, h(0))]); // buffer now 3..4
    await waitFor(() => r.pool.lastSeq(P) === 4n, 'seq 4');
    await r.pool.idle();
    expect(await counter(r.registry, KvEventsMetricNames.seqGaps, { outcome: 'partially_replayed' })).toBe(1);
    expect(await counter(r.registry, KvEventsMetricNames.replayRequests, { result: 'incomplete' })).toBe(1);
    expect(r.pool.stalePods().get(P)).toMatchObject({ missing: 2n });
    expect(r.pool.stalePods().get(P)?.cause).toContain('no longer holds seq 1..3');
    expect(await r.held(P, 0, 5)).toBe(1); // block 1 never came back, so the chain breaks there
  });

  it('without a replay socket a gap marks the pod stale and clears its entries', async () => {
    const stale: StaleInfo[] = [];
    const r = await rig({ onStale: (_p, i) => stale.push(i) });
    const P = '10.0.0.1:8000';
    const a = await r.publisher(P, 'map');
    await a.publish([chain(0, 0, 2, h(0))]);
    await a.publish([chain(0, 2, 3, h(0))], { drop: true });
    await a.publish([chain(500, 0, 1, h(9))]);
    await waitFor(() => r.pool.lastSeq(P) === 2n, 'seq 2');
    await r.pool.idle();
    expect(await r.held(P, 0, 3)).toBe(0);
    expect(await r.held(P, 500, 1)).toBe(1);
    expect(stale).toEqual([expect.objectContaining({ missing: 1n })]);
    expect(await counter(r.registry, KvEventsMetricNames.podStale)).toBe(1);
  });

  it('a replay socket that does not answer: timeout, then stale', async () => {
    const r = await rig({ replayTimeoutMs: 200 });
    const P = '10.0.0.1:8000';
    const a = await r.publisher(P, 'map');
    r.pool.addPod(P, undefined, 'tcp://127.0.0.1:1'); // nothing listens there
    await a.publish([chain(0, 0, 1, h(0))]);
    await a.publish([chain(0, 1, 2, h(0))], { drop: true });
    await a.publish([chain(0, 2, 3, h(0))]);
    await waitFor(() => r.pool.lastSeq(P) === 2n, 'seq 2');
    expect(await counter(r.registry, KvEventsMetricNames.replayRequests, { result: 'timeout' })).toBe(1);
    expect(r.pool.stalePods().get(P)?.cause).toContain('no reply within 200 ms');
    // the next gap within the cooldown is not replayed (no second 200 ms stall)
    await a.publish([chain(0, 3, 4, h(0))], { drop: true });
    await a.publish([chain(0, 4, 5, h(0))]);
    await waitFor(() => r.pool.lastSeq(P) === 4n, 'seq 4');
    expect(await counter(r.registry, KvEventsMetricNames.replayRequests)).toBe(1);
    expect(r.pool.stalePods().get(P)?.cause).toContain('cooling down');
    expect(await counter(r.registry, KvEventsMetricNames.podStale)).toBe(2);
  });

  it('connect mode: connects to a binding publisher, replays what it missed on join, removePod clears', async () => {
    const r = await rig({ mode: 'connect' });
    const P = '10.0.0.1:8000';
    const a = await r.publisher(P, 'map', { replay: true });
    // published before anyone subscribed: lost on the wire, kept in the replay buffer
    await a.publish([chain(0, 0, 2, h(0))]);
    await a.publish([chain(0, 2, 3, h(0))]);
    r.pool.addPod(P, a.endpoint, a.replayAddress);
    await a.waitForSubscribers();
    await a.publish([chain(0, 3, 4, h(0))]);
    await waitFor(() => r.pool.lastSeq(P) === 2n, 'seq 2');
    await r.pool.idle();
    expect(await r.held(P, 0, 5)).toBe(4);
    expect(await counter(r.registry, KvEventsMetricNames.replayRequests, { result: 'ok' })).toBe(1);
    await r.pool.removePod(P);
    await r.pool.idle();
    expect(await r.held(P, 0, 5)).toBe(0);
  });

  it('repairs gaps per data-parallel rank through the rank-offset replay port', async () => {
    const r = await rig();
    const P = '10.0.0.1:8000';
    // rank 0 and rank 1 publish on the same topic with their own counters; rank r replays on port + r
    const r0 = await r.publisher(P, 'map', { replay: true, dpRank: 0 });
    const port0 = Number(/:(\d+)$/.exec(r0.replayAddress as string)?.[1]);
    const r1 = new VllmPublisher({ endpoint: r.pool.endpoint as string, topic: `kv@${P}@${MODEL}`, dpRank: 1, replayEndpoint: `tcp://127.0.0.1:${port0 + 1}` });
    try {
      await r1.start();
    } catch {
      return; // port+1 taken by something else on this machine; nothing to test
    }
    r.pubs.push(r1);
    await r1.waitForSubscribers();
    r.pool.addPod(P, undefined, r0.replayAddress);
    await r0.publish([chain(0, 0, 1, h(0))]);
    await r1.publish([chain(700, 0, 1, h(1))]);
    await r1.publish([chain(700, 1, 2, h(1))], { drop: true });
    await r1.publish([chain(700, 2, 3, h(1))]);
    await waitFor(() => r.pool.lastSeq(P, 1) === 2n, 'rank 1 seq 2');
    await r.pool.idle();
    expect(r1.replayRequests).toBe(1);
    expect(r0.replayRequests).toBe(0);
    expect(await r.held(P, 700, 3)).toBe(3);
    expect(await r.held(P, 0, 1)).toBe(1);
  });

  it('warns when the pods hash with another PYTHONHASHSEED', async () => {
    const logger = recordingLogger();
    const r = await rig({ logger, hashSeed: '7', hashCheck: { sampleEvery: 1 } });
    const P = '10.0.0.1:8000';
    const a = await r.publisher(P, 'map');
    const c = hashCase('range_0_40__bs16__seed42');
    await a.publish([{ type: 'BlockStored', blockHashes: c.sha256_cbor_u64.map((x) => BigInt(x)), parentBlockHash: null, tokenIds: c.tokens.slice(0, 32), blockSize: 16 }]);
    await waitFor(() => r.pool.lastSeq(P) === 0n, 'seq 0');
    await r.pool.idle();
    expect(await counter(r.registry, KvEventsMetricNames.hashMismatch)).toBe(1);
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('PYTHONHASHSEED'))).toBe(true);
  });

  it('start() names the address when it cannot bind; stop() is idempotent', async () => {
    const r = await rig();
    const other = new KvEventPool({ index: r.index, blockSize: 16, hashSeed: '42', bindAddress: r.pool.endpoint as string });
    await expect(other.start()).rejects.toThrow(`cannot bind the KV-event SUB socket to ${r.pool.endpoint}`);
    await other.stop();
    await other.stop();
  });
});
