/**
 * The simulated pod as a real process (src/sim/server/main.ts): flags, ready line, KV events over
 * real ZMQ in vLLM's wire format (decoded with the EPP's decoder), exit 0 on SIGTERM, exit 2 on
 * bad flags.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Subscriber } from 'zeromq';
import { createTokenProcessor } from '../../../src/kvindex/keys/token-processor.js';
import { decodeKvEventBatch } from '../../../src/kvevents/decoder.js';
import { parseTopicFrame } from '../../../src/kvevents/topic.js';
import { freePort } from '../../../lab/demo/procs.js';

const EPP_DIR = fileURLToPath(new URL('../../..', import.meta.url));
const TOKENIZER = fileURLToPath(new URL('../../data/tokenizers/tiny-llama3', import.meta.url));

describe('sim pod process', () => {
  it('serves, publishes sha256_cbor BlockStored over ZMQ after --event-lag-ms, and exits 0 on SIGTERM', async () => {
    const sub = new Subscriber({ linger: 0 });
    await sub.bind('tcp://127.0.0.1:*');
    sub.subscribe('kv@');
    const port = await freePort();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'lab/sim/server/main.ts', '--port', String(port), '--tokenizer', TOKENIZER, '--model', 'm', '--zmq-endpoint', sub.lastEndpoint as string, '--encoding', 'array', '--event-lag-ms', '50', '--speedup', '2'],
      { cwd: EPP_DIR, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    try {
      const ready = await new Promise<{ port: number; topic: string }>((resolve, reject) => {
        let out = '';
        const t = setTimeout(() => reject(new Error(`no ready line: ${out}`)), 20000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const line = out.split('\n').find((l) => l.includes('"ready":true'));
          if (line) {
            clearTimeout(t);
            resolve(JSON.parse(line) as { port: number; topic: string });
          }
        });
      });
      expect(ready).toMatchObject({ port, topic: `kv@127.0.0.1:${port}@m` });
      await new Promise((r) => setTimeout(r, 200)); // PUB connect
      const prompt = 'A prompt long enough for two full blocks of sixteen tokens each, and then some more words.';
      const sent = Date.now();
      const res = await fetch(`http://127.0.0.1:${port}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', prompt, max_tokens: 1 }) });
      const usage = ((await res.json()) as { usage: { prompt_tokens: number } }).usage;
      const [topic, seq, payload] = (await sub.receive()) as [Buffer, Buffer, Buffer];
      expect(Date.now() - sent).toBeGreaterThanOrEqual(50);
      expect(parseTopicFrame(topic)).toMatchObject({ pod: `127.0.0.1:${port}`, model: 'm' });
      expect(seq.readBigUInt64BE(0)).toBe(0n);
      const d = decodeKvEventBatch(payload);
      if (!d.ok) throw new Error(d.detail);
      const ev = d.batch.events[0];
      if (ev?.type !== 'BlockStored') throw new Error(`expected BlockStored, got ${ev?.type}`);
      const full = Math.floor(usage.prompt_tokens / 16) * 16;
      expect(ev.tokenIds).toHaveLength(full);
      const engine = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '42' });
      expect([...ev.blockHashes]).toEqual(engine.blockKeys([...ev.tokenIds]));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      sub.close();
    }
  }, 30000);

  it('exits 2 naming the bad flag', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'lab/sim/server/main.ts', '--port', '1', '--tokenizer', TOKENIZER, '--encoding', 'json'], { cwd: EPP_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).toBe(2);
    expect(err).toMatch(/--encoding "json" is not map or array/);
  }, 30000);
});
