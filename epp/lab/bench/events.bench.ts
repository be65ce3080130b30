/**
 * KV-event ingest benchmark: block entries per second through
 *   1. msgpack decode alone (@msgpack/msgpack `decode`, as the general decoder runs it),
 *   2. the KVEventBatch decoder (unpack + validation into typed events), and the fast decoder the
 *      pool tries first (msgpack straight to typed arrays, raw-decoder.ts),
 *   3. the pool without sockets (`ingest`: frame checks, topic, seq, decode, request keys, MemoryIndex),
 *   4. the real path: a vLLM-format PUB socket in a worker thread → the pool's SUB socket → index.
 * The EPP side runs on the main thread (one core). A "block entry" is one (block, pod) stored.
 *
 *   npx tsx bench/events.bench.ts [--batches 2000] [--events 8] [--blocks 16] [--block-size 16] [--pods 16]
 */
import { Worker } from 'node:worker_threads';
import { Decoder } from '@msgpack/msgpack';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import { decodeKvEventBatch } from '../../src/kvevents/decoder.js';
import { decodeRawBatch } from '../../src/kvevents/raw-decoder.js';
import { KvEventPool } from '../../src/kvevents/pool.js';
import type { BlockStoredEvent } from '../../src/kvevents/types.js';
import { type KvEventMessage, makeKvEventMessages } from '../../testkit/vllm-batches.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const BATCHES = arg('batches', 2000);
const EVENTS = arg('events', 8);
const BLOCKS = arg('blocks', 16);
const BS = arg('block-size', 16);
const PODS = arg('pods', 16);
const MODEL = 'meta-llama/Llama-3.2-1B';

let s = 12345;
const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);

/** Per pod: a stream of batches; every event stores a fresh root chain of BLOCKS blocks. */
const makeMessages = (): KvEventMessage[] =>
  makeKvEventMessages({
    batches: BATCHES,
    pods: PODS,
    events: EVENTS,
    blocks: BLOCKS,
    blockSize: BS,
    model: MODEL,
    token: () => Math.floor(rnd() * 150_000),
    podAddress: (i) => `10.0.${i >> 8}.${i & 255}:8000`,
  });

interface Row {
  stage: string;
  ms: number;
}
const rows: Row[] = [];
const entries = BATCHES * EVENTS * BLOCKS;

function row(stage: string, ms: number): void {
  rows.push({ stage, ms });
}

function mkPool(bindAddress?: string): { pool: KvEventPool; index: MemoryIndex } {
  const index = new MemoryIndex({ memoryBudgetBytes: 2 * 1024 * 1024 * 1024 });
  const pool = new KvEventPool({
    index,
    blockSize: 16,
    hashSeed: '42',
    hashCheck: { enabled: false },
    receiveHighWaterMark: 0,
    ...(bindAddress ? { bindAddress } : {}),
  });
  return { pool, index };
}

async function main(): Promise<void> {
  const msgs = makeMessages();
  const bytes = msgs.reduce((a, m) => a + m.payload.length, 0);
  console.log(`${BATCHES} batches × ${EVENTS} BlockStored × ${BLOCKS} blocks of ${BS} tokens = ${entries} block entries, ${PODS} pods, ${(bytes / 1e6).toFixed(1)} MB msgpack`);

  // warm-up of every code path
  for (const m of msgs.slice(0, 200)) decodeKvEventBatch(m.payload);

  const unpackr = new Decoder({ useBigInt64: true }); // the general decoder's settings
  let t = performance.now();
  for (const m of msgs) unpackr.decode(m.payload);
  row('msgpack unpack alone', performance.now() - t);

  t = performance.now();
  for (const m of msgs) if (!decodeKvEventBatch(m.payload).ok) throw new Error('bench payload did not decode');
  row('decode (unpack + validate)', performance.now() - t);

  t = performance.now();
  for (const m of msgs) if (decodeRawBatch(m.payload) === undefined) throw new Error('bench payload left the fast decoder');
  row('fast decoder (typed arrays, the ingest path)', performance.now() - t);

  // the two halves of applying: request keys (fast TokenProcessor) and the index writes
  const decoded = msgs.map((m) => {
    const r = decodeKvEventBatch(m.payload);
    if (!r.ok) throw new Error(r.detail);
    return r.batch.events.filter((e): e is BlockStoredEvent => e.type === 'BlockStored');
  });
  const tp = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: '42', model: MODEL });
  t = performance.now();
  const keys = decoded.map((evs) => evs.map((e) => tp.blockKeys(e.tokenIds)));
  row('request keys alone (fast TokenProcessor)', performance.now() - t);
  {
    const index = new MemoryIndex({ memoryBudgetBytes: 2 * 1024 * 1024 * 1024 });
    t = performance.now();
    for (let b = 0; b < decoded.length; b++) {
      const entry = [{ pod: `p${b % PODS}`, tier: 'gpu' }];
      const evs = decoded[b] as BlockStoredEvent[];
      for (let e = 0; e < evs.length; e++) await index.add((evs[e] as BlockStoredEvent).blockHashes, (keys[b] as bigint[][])[e] as bigint[], entry);
    }
    row('MemoryIndex.add alone (keys given)', performance.now() - t);
    await index.close();
  }

  {
    const { pool, index } = mkPool();
    t = performance.now();
    for (const m of msgs) await pool.ingest([m.topic, m.seq, m.payload]);
    await pool.idle();
    row('pool.ingest → MemoryIndex (no sockets)', performance.now() - t);
    if (index.stats.entries !== entries) throw new Error(`expected ${entries} entries, index holds ${index.stats.entries}`);
    await index.close();
  }

  {
    const { pool, index } = mkPool('tcp://127.0.0.1:*');
    await pool.start();
    const worker = new Worker(
      `
      const { workerData, parentPort } = require('node:worker_threads');
      const zmq = require('zeromq');
      (async () => {
        const pub = new zmq.XPublisher({ sendHighWaterMark: 0, linger: 1000 });
        pub.connect(workerData.endpoint);
        await pub.receive(); // the pool's subscription has arrived
        parentPort.postMessage('ready');
        await new Promise((r) => parentPort.once('message', r));
        for (const m of workerData.msgs) await pub.send([m.topic, m.seq, m.payload]);
        parentPort.postMessage('sent');
        await new Promise((r) => parentPort.once('message', r));
        pub.close();
      })();
      `,
      { eval: true, workerData: { endpoint: pool.endpoint, msgs: msgs.map((m) => ({ topic: m.topic, seq: m.seq, payload: m.payload })) } },
    );
    await new Promise<void>((r) => worker.once('message', () => r()));
    t = performance.now();
    worker.postMessage('go');
    const last = msgs.length;
    for (;;) {
      let applied = 0;
      for (let p = 0; p < PODS; p++) {
        const seq = pool.lastSeq(`10.0.${p >> 8}.${p & 255}:8000`);
        applied += seq === undefined ? 0 : Number(seq) + 1;
      }
      if (applied >= last) break;
      await new Promise((r) => setTimeout(r, 1));
    }
    await pool.idle();
    row('ZMQ PUB → SUB → pool → MemoryIndex', performance.now() - t);
    const held = index.stats.entries;
    worker.postMessage('stop');
    await pool.stop();
    await worker.terminate();
    if (held !== entries) console.log(`warning: ZMQ run indexed ${held} of ${entries} entries (gaps?)`);
    await index.close();
  }

  console.log('');
  console.log('| stage | ms | block entries/s | batches/s | µs per batch |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of rows) {
    const sec = r.ms / 1000;
    console.log(`| ${r.stage} | ${r.ms.toFixed(0)} | ${Math.round(entries / sec).toLocaleString('en-US')} | ${Math.round(BATCHES / sec).toLocaleString('en-US')} | ${((r.ms * 1000) / BATCHES).toFixed(1)} |`);
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
