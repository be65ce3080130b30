/**
 * The demo gateway in process against the real EPP runtime (ext_proc gRPC, ZMQ events) and two
 * simulated pod servers publishing their KV events over real ZMQ. Everything on 127.0.0.1.
 */
import { fileURLToPath } from 'node:url';
import { EppRuntime } from '../../../src/app/epp.js';
import { parseEppConfig } from '../../../src/contract/config.js';
import { DemoGateway } from '../../../lab/demo/gateway.js';
import { freePort } from '../../../lab/demo/procs.js';
import { PROFILE_B } from '../../../lab/sim/profiles.js';
import { SimPodServer } from '../../../lab/sim/server/pod-server.js';
import { KvPublisher } from '../../../lab/sim/server/publisher.js';
import { silentLogger } from '../../../src/util/logger.js';

const TOKENIZER = fileURLToPath(new URL('../../data/tokenizers/tiny-llama3', import.meta.url));
const MODEL = 'sim-model';

interface Completion {
  usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } };
}

describe('DemoGateway', () => {
  const servers: SimPodServer[] = [];
  const pubs: KvPublisher[] = [];
  const pods: string[] = [];
  let rt: EppRuntime;
  let kv: DemoGateway;
  let kvPort: number;

  beforeAll(async () => {
    const sinks: ((b: Parameters<KvPublisher['publish']>[0]) => void)[] = [];
    for (let i = 0; i < 2; i++) {
      const s = await SimPodServer.create({
        id: `pod-${i}`,
        model: MODEL,
        profile: PROFILE_B,
        tokenizerDir: TOKENIZER,
        tokenizerWorkers: 0,
        speedup: 4,
        onKvEvents: (b) => sinks[i]?.(b),
      });
      servers.push(s);
      pods.push(`127.0.0.1:${await s.listen(0)}`);
    }
    rt = await EppRuntime.start(
      parseEppConfig({
        model: MODEL,
        server: { httpPort: 0, grpcPort: 0, healthPort: 0, host: '127.0.0.1' },
        events: { zmqBind: 'tcp://127.0.0.1:*' },
        discovery: { mode: 'static', endpoints: pods.map((address, i) => ({ address, name: `pod-${i}` })) },
        tokenizer: { path: TOKENIZER, workers: 1 },
        index: { backend: 'memory', memoryBudgetBytes: 8 * 1024 * 1024 },
      }),
      { logger: silentLogger() },
    );
    for (let i = 0; i < 2; i++) {
      const p = new KvPublisher({ endpoint: rt.zmqEndpoint as string, topic: `kv@${pods[i]}@${MODEL}`, encoding: i === 0 ? 'map' : 'array' });
      await p.start();
      pubs.push(p);
      sinks[i] = (b) => void p.publish(b);
    }
    await new Promise((r) => setTimeout(r, 300)); // PUB → SUB connect
    kv = new DemoGateway({ policy: 'kvroute', pods, eppAddress: `127.0.0.1:${rt.grpcPort}` });
    kvPort = await kv.listen(0);
  }, 30000);

  afterAll(async () => {
    await kv?.close();
    for (const p of pubs) await p.close();
    await rt?.stop();
    for (const s of servers) await s.close();
  });

  const post = (port: number, path: string, body: unknown): Promise<Response> =>
    fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  async function cachedOn(prompt: string): Promise<number> {
    const r = await post(rt.httpPort, '/v1/score', { model: MODEL, prompt });
    const j = (await r.json()) as { pods: { consecutiveBlocks: number }[] };
    return Math.max(...j.pods.map((p) => p.consecutiveBlocks));
  }

  it('sends a repeated prompt to the pod that cached it (EPP over ext_proc + ZMQ events)', async () => {
    for (let k = 0; k < 4; k++) {
      const prompt = `Document ${k}. ` + `policy clause ${k} applies to every region and customer tier. `.repeat(12);
      const first = await post(kvPort, '/v1/completions', { model: MODEL, prompt, max_tokens: 2 });
      expect(first.status).toBe(200);
      const dest = first.headers.get('x-gateway-destination-endpoint');
      expect(pods).toContain(dest);
      const b1 = (await first.json()) as Completion;
      expect(b1.usage.prompt_tokens_details.cached_tokens).toBe(0);
      const deadline = Date.now() + 5000;
      while ((await cachedOn(prompt)) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const again = await post(kvPort, '/v1/completions', { model: MODEL, prompt, max_tokens: 2 });
      expect(again.headers.get('x-gateway-destination-endpoint')).toBe(dest);
      const b2 = (await again.json()) as Completion;
      expect(b2.usage.prompt_tokens_details.cached_tokens).toBe(Math.floor((b2.usage.prompt_tokens - 1) / 16) * 16);
    }
  }, 30000);

  it('passes an SSE response through the ext_proc response phase intact', async () => {
    const r = await post(kvPort, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'stream me a short answer please' }], max_tokens: 3, stream: true, stream_options: { include_usage: true } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/event-stream');
    const text = await r.text();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(text).toContain('"completion_tokens":3');
  });

  it('returns the EPP immediate response for a bad body without reaching a pod', async () => {
    const before = servers.map((s) => s.responses.get(400) ?? 0);
    const r = await post(kvPort, '/v1/completions', '{"model": ');
    expect(r.status).toBe(400);
    expect(await r.text()).toMatch(/json/i);
    expect(servers.map((s) => s.responses.get(400) ?? 0)).toEqual(before);
  });

  it('round-robin alternates the pods without the EPP', async () => {
    const rr = new DemoGateway({ policy: 'round-robin', pods });
    const port = await rr.listen(0);
    try {
      const seen: (string | null)[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await post(port, '/v1/completions', { model: MODEL, prompt: `hello ${i}`, max_tokens: 1 });
        await r.arrayBuffer();
        seen.push(r.headers.get('x-gateway-destination-endpoint'));
      }
      expect(seen).toEqual([pods[0], pods[1], pods[0], pods[1]]);
      expect([...rr.served.values()]).toEqual([2, 2]);
    } finally {
      await rr.close();
    }
  });

  it('answers 503 (upstream connect error, as Envoy) naming the upstream when the pod is down', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const rr = new DemoGateway({ policy: 'round-robin', pods: [dead] });
    const port = await rr.listen(0);
    try {
      const r = await post(port, '/v1/completions', { model: MODEL, prompt: 'x' });
      expect(r.status).toBe(503);
      expect(await r.text()).toContain(dead);
      expect(rr.errors).toBe(1);
    } finally {
      await rr.close();
    }
  });

  describe('EPP unavailable', () => {
    it('FailClose (the default) answers 503 naming the EPP failure; FailOpen sends the request to a pod unrouted', async () => {
      const deadEpp = `127.0.0.1:${await freePort()}`;
      const closed = new DemoGateway({ policy: 'kvroute', pods, eppAddress: deadEpp, extprocTimeoutMs: 2000 });
      const open = new DemoGateway({ policy: 'kvroute', pods, eppAddress: deadEpp, extprocTimeoutMs: 2000, failureMode: 'FailOpen' });
      const [cp, op] = [await closed.listen(0), await open.listen(0)];
      try {
        const r1 = await post(cp, '/v1/completions', { model: MODEL, prompt: 'fail close please', max_tokens: 1 });
        expect(r1.status).toBe(503);
        expect(await r1.text()).toContain('EPP unavailable (FailClose)');
        expect(closed.eppUnavailable).toBe(1);
        const r2 = await post(op, '/v1/completions', { model: MODEL, prompt: 'fail open please', max_tokens: 1 });
        expect(r2.status).toBe(200);
        expect(pods).toContain(r2.headers.get('x-gateway-destination-endpoint'));
        expect(((await r2.json()) as Completion).usage.prompt_tokens).toBeGreaterThan(0);
        expect(open.eppUnavailable).toBe(1);
        expect(open.errors).toBe(0);
      } finally {
        await closed.close();
        await open.close();
      }
    });

    it('rejects an unknown failureMode', () => {
      expect(() => new DemoGateway({ policy: 'kvroute', pods, eppAddress: '127.0.0.1:1', failureMode: 'Maybe' as never })).toThrow(/failureMode "Maybe" is not FailOpen or FailClose/);
    });
  });

  it('answers 413 for a body over maxBodyBytes', async () => {
    const rr = new DemoGateway({ policy: 'round-robin', pods, maxBodyBytes: 100 });
    const port = await rr.listen(0);
    try {
      const r = await post(port, '/v1/completions', { model: MODEL, prompt: 'x'.repeat(200) });
      expect(r.status).toBe(413);
      expect(await r.text()).toContain('over 100 bytes');
    } finally {
      await rr.close();
    }
  });

  it('rejects bad options with a clear error', () => {
    expect(() => new DemoGateway({ policy: 'kvroute', pods })).toThrow(/needs eppAddress/);
    expect(() => new DemoGateway({ policy: 'round-robin', pods: [] })).toThrow(/no pods/);
  });
});
