/**
 * The simulated pod's runtime KV-event publisher: payloads decode with the EPP's decoder, are
 * byte-identical to the msgspec-faithful test publisher, and go over real ZMQ as
 * [topic, 8-byte big-endian seq, payload]; the ROUTER replay answers from a start seq.
 */
import { Dealer, Subscriber } from 'zeromq';
import { decodeKvEventBatch } from '../../../src/kvevents/decoder.js';
import { parseTopicFrame } from '../../../src/kvevents/topic.js';
import type { KvEventBatch } from '../../../src/kvevents/types.js';
import { encodeKvBatch, KvPublisher, seqFrame } from '../../../lab/sim/server/publisher.js';
import { encodeBatch } from '../../../testkit/vllm-publisher.js';

const BIG = (1n << 64n) - 5n;
const batch: KvEventBatch = {
  ts: 1712.5,
  events: [
    { type: 'BlockStored', blockHashes: [BIG, 7n], parentBlockHash: 3n, tokenIds: Array.from({ length: 32 }, (_, i) => 128000 + i), blockSize: 16, medium: 'gpu' },
    { type: 'BlockStored', blockHashes: [9n], tokenIds: Array.from({ length: 16 }, (_, i) => i * 300), blockSize: 16, medium: 'gpu' },
    { type: 'BlockRemoved', blockHashes: [BIG, 70000n], medium: 'gpu' },
    { type: 'AllBlocksCleared' },
  ],
};

describe('encodeKvBatch', () => {
  it.each(['map', 'array'] as const)('%s encoding decodes with the EPP decoder to the same events', (enc) => {
    const r = decodeKvEventBatch(encodeKvBatch(batch, enc));
    if (!r.ok) throw new Error(`decode failed: ${r.reason} ${r.detail}`);
    expect(r.problems).toEqual([]);
    expect(r.batch.ts).toBe(1712.5);
    expect(r.batch.events.map((e) => e.type)).toEqual(['BlockStored', 'BlockStored', 'BlockRemoved', 'AllBlocksCleared']);
    const s0 = r.batch.events[0];
    if (s0?.type !== 'BlockStored') throw new Error('not BlockStored');
    expect([...s0.blockHashes]).toEqual([BIG, 7n]);
    expect(s0.parentBlockHash).toBe(3n);
    expect([...s0.tokenIds]).toEqual(Array.from({ length: 32 }, (_, i) => 128000 + i));
    expect(s0.blockSize).toBe(16);
    const s1 = r.batch.events[1];
    if (s1?.type !== 'BlockStored') throw new Error('not BlockStored');
    expect(s1.parentBlockHash).toBeUndefined();
    const rm = r.batch.events[2];
    if (rm?.type !== 'BlockRemoved') throw new Error('not BlockRemoved');
    expect([...rm.blockHashes]).toEqual([BIG, 70000n]);
  });

  it.each(['map', 'array'] as const)('%s payload is byte-identical to the msgspec-faithful encoder', (enc) => {
    const ref = encodeBatch(
      [
        { type: 'BlockStored', blockHashes: [BIG, 7n], parentBlockHash: 3n, tokenIds: Array.from({ length: 32 }, (_, i) => 128000 + i), blockSize: 16, medium: 'GPU' },
        { type: 'BlockStored', blockHashes: [9n], parentBlockHash: null, tokenIds: Array.from({ length: 16 }, (_, i) => i * 300), blockSize: 16, medium: 'GPU' },
        { type: 'BlockRemoved', blockHashes: [BIG, 70000n], medium: 'GPU' },
        ...(enc === 'array' ? [{ type: 'AllBlocksCleared' as const }] : []),
      ],
      enc,
      1712.5,
    );
    const mine = encodeKvBatch(enc === 'array' ? batch : { ts: batch.ts, events: batch.events.slice(0, 3) }, enc);
    expect(mine.equals(ref)).toBe(true);
  });

  it('writes a ts as float64 (an integral one as an int, read back the same) and the seq frame as 8-byte big-endian', () => {
    expect([...encodeKvBatch({ ts: 5.5, events: [] }, 'array').subarray(0, 2)]).toEqual([0x93, 0xcb]);
    const p = encodeKvBatch({ ts: 5, events: [] }, 'array');
    expect([...p.subarray(0, 2)]).toEqual([0x93, 0x05]);
    expect(decodeKvEventBatch(p)).toMatchObject({ ok: true, batch: { ts: 5, events: [] } });
    expect(seqFrame(258n).toString('hex')).toBe('0000000000000102');
  });
});

describe('KvPublisher over real ZMQ', () => {
  it('defaults to the map encoding and keeps bufferSteps batches for replay', async () => {
    const sub = new Subscriber({ linger: 0 });
    await sub.bind('tcp://127.0.0.1:*');
    sub.subscribe('');
    const pub = new KvPublisher({ endpoint: sub.lastEndpoint as string, topic: 'kv@127.0.0.1:1@m', replayEndpoint: 'tcp://127.0.0.1:*', bufferSteps: 2 });
    await pub.start();
    const dealer = new Dealer({ linger: 0 });
    try {
      let got: Buffer[] | undefined;
      const receiving = sub.receive().then((f) => (got = f));
      while (!got) {
        await pub.publish({ ts: 1.5, events: [{ type: 'AllBlocksCleared' }] });
        await Promise.race([receiving, new Promise((r) => setTimeout(r, 20))]);
      }
      const payload = (got as Buffer[])[2] as Buffer;
      // [ts, [event], rank]: 0x93, float64 (9 bytes), 0x91, then the event: a fixmap (0x8N), not a fixarray
      expect(payload[0]).toBe(0x93);
      expect(payload[10]).toBe(0x91);
      expect((payload[11] as number) & 0xf0).toBe(0x80);
      for (let i = 0; i < 3; i++) await pub.publish({ ts: 2, events: [{ type: 'AllBlocksCleared' }] });
      dealer.connect(pub.replayAddress as string);
      await dealer.send(['', seqFrame(0n)]);
      const seqs: bigint[] = [];
      for (;;) {
        const [, , s] = (await dealer.receive()) as [Buffer, Buffer, Buffer];
        if (s.toString('hex') === 'ffffffffffffffff') break;
        seqs.push(s.readBigUInt64BE(0));
      }
      expect(seqs).toEqual([BigInt(pub.published) - 2n, BigInt(pub.published) - 1n]);
    } finally {
      dealer.close();
      await pub.close();
      sub.close();
    }
  }, 15000);

  it('connects to the bind address and sends [topic, seq, payload] with seq from 0; replay answers from a start seq', async () => {
    const sub = new Subscriber({ linger: 0 });
    await sub.bind('tcp://127.0.0.1:*');
    sub.subscribe('kv@');
    const replayPortProbe = new Dealer({ linger: 0 });
    const topic = 'kv@127.0.0.1:8000@meta-llama/Llama-3.1-8B-Instruct';
    const pub = new KvPublisher({ endpoint: sub.lastEndpoint as string, topic, encoding: 'array', replayEndpoint: 'tcp://127.0.0.1:*' });
    await pub.start();
    try {
      // slow joiner: publish until the first frame arrives, then check the sequence continues
      const first = batch.events.slice(0, 1);
      let got: Buffer[] | undefined;
      const receiving = sub.receive().then((f) => (got = f));
      while (!got) {
        await pub.publish({ ts: 1, events: first });
        await Promise.race([receiving, new Promise((r) => setTimeout(r, 20))]);
      }
      const [t, s, payload] = got as [Buffer, Buffer, Buffer];
      expect(parseTopicFrame(t)).toMatchObject({ pod: '127.0.0.1:8000', model: 'meta-llama/Llama-3.1-8B-Instruct' });
      expect(s.length).toBe(8);
      const firstSeq = s.readBigUInt64BE(0);
      expect(decodeKvEventBatch(payload).ok).toBe(true);
      await pub.publish({ ts: 2, events: [{ type: 'AllBlocksCleared' }] });
      let next = await sub.receive();
      while ((next[1] as Buffer).readBigUInt64BE(0) < BigInt(pub.published) - 1n) next = await sub.receive();
      expect((next[1] as Buffer).readBigUInt64BE(0)).toBe(BigInt(pub.published) - 1n);
      expect(BigInt(pub.published) - 1n).toBeGreaterThan(firstSeq);

      // replay from seq 0 returns every batch then the end marker
      replayPortProbe.connect(pub.replayAddress as string);
      await replayPortProbe.send(['', seqFrame(0n)]);
      const seqs: bigint[] = [];
      for (;;) {
        const [, rt, rs] = (await replayPortProbe.receive()) as [Buffer, Buffer, Buffer];
        if (rs.toString('hex') === 'ffffffffffffffff') break;
        expect(rt.toString()).toBe(topic);
        seqs.push(rs.readBigUInt64BE(0));
      }
      expect(seqs).toEqual(Array.from({ length: pub.published }, (_, i) => BigInt(i)));
    } finally {
      replayPortProbe.close();
      await pub.close();
      sub.close();
    }
  }, 15000);
});
