/**
 * `acceptPod`: events whose topic names a pod that is not an endpoint are dropped before they
 * reach the index (counted as bad_topic); accepted pods are applied as before; the default
 * accepts every pod.
 */
import { Registry } from 'prom-client';
import { KvEventPool } from '../../src/kvevents/pool.js';
import { encodeSeq as seqFrame } from '../../src/kvevents/replay.js';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import { VllmPublisher } from '../../testkit/vllm-publisher.js';

const engine = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '42' });
const toks = Array.from({ length: 32 }, (_, i) => 700 + i);
const payload = new VllmPublisher({ endpoint: 'tcp://127.0.0.1:1', topic: 'unused' }).encode([
  { type: 'BlockStored', blockHashes: engine.blockKeys(toks), parentBlockHash: null, tokenIds: toks, blockSize: 16, medium: 'GPU' },
]);
const frames = (pod: string, seq: bigint): Uint8Array[] => [Buffer.from(`kv@${pod}@m`), seqFrame(seq), payload];

async function run(acceptPod?: (pod: string) => boolean): Promise<{ index: MemoryIndex; metrics: string }> {
  const index = new MemoryIndex({ memoryBudgetBytes: 1 << 20 });
  const registry = new Registry();
  const pool = new KvEventPool({ index, blockSize: 16, hashSeed: '42', registry, ...(acceptPod ? { acceptPod } : {}) });
  await pool.ingest(frames('10.0.0.1:8000', 0n));
  await pool.ingest(frames('10.9.9.9:8000', 0n));
  await pool.idle();
  return { index, metrics: await registry.metrics() };
}

describe('KvEventPool acceptPod', () => {
  it('drops the events of pods it rejects, counted as bad_topic, and applies the others', async () => {
    const { index, metrics } = await run((pod) => pod === '10.0.0.1:8000');
    const pods = new Set<string>();
    index.forEachRecord((_k, hs) => hs.forEach((h) => pods.add(h.entry.pod)));
    expect([...pods]).toEqual(['10.0.0.1:8000']);
    expect(metrics).toMatch(/kvroute_kv_events_dropped_total\{reason="bad_topic"\} 1/);
  });

  it('accepts every pod by default', async () => {
    const { index } = await run();
    const pods = new Set<string>();
    index.forEachRecord((_k, hs) => hs.forEach((h) => pods.add(h.entry.pod)));
    expect([...pods].sort()).toEqual(['10.0.0.1:8000', '10.9.9.9:8000']);
  });
});
