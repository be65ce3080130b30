/**
 * EPP restart with the memory index and `index.snapshot`: the runtime writes the snapshot on stop,
 * a new runtime loads it (warm at once), drops pods no longer configured, repairs the gap since the
 * snapshot from the pod's replay socket, and refuses (and counts) a foreign snapshot. Real ZMQ
 * publisher (vLLM wire format, with a replay ROUTER) on 127.0.0.1/127.0.0.2.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EppRuntime } from '../../src/app/epp.js';
import { parseEppConfig, type EppConfig } from '../../src/contract/config.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import { silentLogger } from '../../src/util/logger.js';
import { freePort } from '../../lab/demo/procs.js';
import { VllmPublisher } from '../../testkit/vllm-publisher.js';

const MODEL = 'm';
const POD_A = '127.0.0.2:18100';
const POD_B = '127.0.0.3:18100';
const engine = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '42' });
const tokens = (n: number, base: number): number[] => Array.from({ length: n }, (_, i) => base + i);

async function consecutive(rt: EppRuntime, toks: number[]): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${rt.httpPort}/v1/score`, { method: 'POST', body: JSON.stringify({ model: MODEL, token_ids: toks }), headers: { 'content-type': 'application/json' } });
  const body = (await res.json()) as { pods: { endpoint: string; consecutiveBlocks: number }[] };
  return Object.fromEntries(body.pods.map((p) => [p.endpoint, p.consecutiveBlocks]));
}

async function until(fn: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function metric(rt: EppRuntime, sample: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${rt.httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? NaN : Number(line.slice(sample.length + 1));
}

describe('EPP restart with an index snapshot', () => {
  let dir: string;
  let zmq: number;
  let replay: number;
  const pubs: VllmPublisher[] = [];
  const rts: EppRuntime[] = [];

  const config = (pods: string[]): EppConfig =>
    parseEppConfig({
      model: MODEL,
      server: { httpPort: 0, grpcPort: 0, healthPort: 0, host: '127.0.0.1' },
      events: { zmqBind: `tcp://127.0.0.1:${zmq}`, podReplayPort: replay },
      discovery: { mode: 'static', endpoints: pods.map((address, i) => ({ address, name: `p${i}`, metricsUrl: 'http://127.0.0.1:1/metrics' })) },
      index: { backend: 'memory', memoryBudgetBytes: 8 * 1024 * 1024, snapshot: { path: join(dir, 'snap', 'index.snapshot'), intervalMs: 60_000 } },
    });
  const start = async (pods: string[]): Promise<EppRuntime> => {
    const rt = await EppRuntime.start(config(pods), { logger: silentLogger() });
    rts.push(rt);
    return rt;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-snaprt-'));
    zmq = await freePort();
    replay = await freePort();
  });
  afterAll(async () => {
    for (const rt of rts) await rt.stop();
    for (const p of pubs) await p.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the config has no snapshot by default', () => {
    const c = parseEppConfig({ model: MODEL });
    expect(c.index.backend === 'memory' && c.index.snapshot).toBeUndefined();
    const s = parseEppConfig({ model: MODEL, index: { backend: 'memory', snapshot: { path: '/var/lib/kvroute/index.snapshot' } } });
    expect(s.index.backend === 'memory' && s.index.snapshot).toEqual({ path: '/var/lib/kvroute/index.snapshot', intervalMs: 30_000 });
  });

  it('is warm right after a restart, drops removed pods, and replays what the pod published meanwhile', async () => {
    const rt1 = await start([POD_A, POD_B]);
    expect(await metric(rt1, 'kvroute_index_snapshot_loads_total{result="absent"}')).toBe(1);
    const a = new VllmPublisher({ endpoint: `tcp://127.0.0.1:${zmq}`, topic: `kv@${POD_A}@${MODEL}`, replayEndpoint: `tcp://127.0.0.2:${replay}` });
    const b = new VllmPublisher({ endpoint: `tcp://127.0.0.1:${zmq}`, topic: `kv@${POD_B}@${MODEL}` });
    pubs.push(a, b);
    await a.start();
    await b.start();
    await new Promise((r) => setTimeout(r, 300));
    const t1 = tokens(64, 1000);
    const t2 = tokens(32, 9000);
    await a.publish([{ type: 'BlockStored', blockHashes: engine.blockKeys(t1), parentBlockHash: null, tokenIds: t1, blockSize: 16, medium: 'GPU' }]);
    await b.publish([{ type: 'BlockStored', blockHashes: engine.blockKeys(t1).slice(0, 2), parentBlockHash: null, tokenIds: t1.slice(0, 32), blockSize: 16, medium: 'GPU' }]);
    await until(async () => (await consecutive(rt1, t1))[POD_A] === 4 && (await consecutive(rt1, t1))[POD_B] === 2);
    await rt1.stop(); // writes the snapshot

    // While the EPP is down, pod A stores more (seq 1, never delivered): only its replay buffer has it.
    await a.publish([{ type: 'BlockStored', blockHashes: engine.blockKeys(t2), parentBlockHash: null, tokenIds: t2, blockSize: 16, medium: 'GPU' }], { drop: true });

    const rt2 = await start([POD_A]); // pod B is gone
    expect(await metric(rt2, 'kvroute_index_snapshot_loads_total{result="ok"}')).toBe(1);
    expect(await metric(rt2, 'kvroute_index_snapshot_dropped_entries_total')).toBe(2);
    expect(await consecutive(rt2, t1)).toEqual({ [POD_A]: 4 }); // warm before any new event
    expect((await consecutive(rt2, t2))[POD_A]).toBe(0);
    // The next live batch (seq 2) reveals the gap since the snapshot: seq 1 is replayed first.
    await new Promise((r) => setTimeout(r, 300));
    await a.publish([{ type: 'BlockRemoved', blockHashes: [engine.blockKeys(t1)[3] as bigint], medium: 'GPU' }]);
    await until(async () => (await consecutive(rt2, t2))[POD_A] === 2);
    expect((await consecutive(rt2, t1))[POD_A]).toBe(3);
    expect(await metric(rt2, 'kvroute_kv_events_replayed_batches_total')).toBe(1);
    await rt2.stop();
  });

  it('refuses a foreign snapshot with a counted error and starts empty', async () => {
    writeFileSync(join(dir, 'snap', 'index.snapshot'), 'not a snapshot at all, just some text that is long enough to be looked at');
    const rt3 = await start([POD_A]);
    expect(await metric(rt3, 'kvroute_index_snapshot_loads_total{result="foreign"}')).toBe(1);
    expect((await consecutive(rt3, tokens(64, 1000)))[POD_A]).toBe(0);
    await rt3.stop();
    // the refused file was replaced by a valid snapshot on stop
    const rt4 = await start([POD_A]);
    expect(await metric(rt4, 'kvroute_index_snapshot_loads_total{result="ok"}')).toBe(1);
    await rt4.stop();
  });
});
