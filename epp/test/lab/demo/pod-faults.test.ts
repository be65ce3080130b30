/**
 * The simulated pod's fault switches (lab/sim/server/faults.ts) over real HTTP: a stalled engine
 * holds requests until the stall is lifted; a hung /metrics never answers until lifted (then the
 * held scrape gets 503 and new scrapes answer); bad switch bodies are refused naming the field.
 */
import { fileURLToPath } from 'node:url';
import { PROFILE_B } from '../../../lab/sim/profiles.js';
import { SimPodServer } from '../../../lab/sim/server/pod-server.js';

const TOKENIZER = fileURLToPath(new URL('../../data/tokenizers/tiny-llama3', import.meta.url));
const MODEL = 'sim-model';

describe('SimPodServer fault switches', () => {
  let server: SimPodServer;
  let base: string;
  beforeAll(async () => {
    server = await SimPodServer.create({ id: '127.0.0.1:1', model: MODEL, profile: { ...PROFILE_B, numBlocks: 64 }, tokenizerDir: TOKENIZER, tokenizerWorkers: 0, speedup: 4 });
    base = `http://127.0.0.1:${await server.listen(0)}`;
  });
  afterAll(() => server.close());

  const fault = (body: unknown): Promise<Response> => fetch(`${base}/sim/fault`, { method: 'POST', body: JSON.stringify(body) });
  const settle = <T>(p: Promise<T>, ms: number): Promise<T | 'pending'> => Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);

  it('starts with no fault', async () => {
    expect(await (await fetch(`${base}/sim/fault`)).json()).toEqual({ stall: false, metricsHang: false });
  });

  it('stall: requests are accepted but make no progress until the stall is lifted', async () => {
    expect(await (await fault({ stall: true })).json()).toEqual({ stall: true, metricsHang: false });
    const req = fetch(`${base}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt: 'hello there, stalled pod', max_tokens: 2 }) }).then((r) => r.status);
    expect(await settle(req, 600)).toBe('pending');
    expect((await (await fetch(`${base}/metrics`)).text())).toMatch(/vllm:num_requests_waiting\{[^}]*\} 1/);
    await fault({ stall: false });
    expect(await settle(req, 5000)).toBe(200);
  });

  it('metricsHang: /metrics does not answer; lifting it answers the held scrape 503 and serves again', async () => {
    await fault({ metricsHang: true });
    const held = fetch(`${base}/metrics`).then((r) => r.status);
    expect(await settle(held, 500)).toBe('pending');
    expect((await fetch(`${base}/health`)).status).toBe(200); // the rest still answers
    expect(await (await fault({ metricsHang: false })).json()).toEqual({ stall: false, metricsHang: false });
    expect(await settle(held, 2000)).toBe(503);
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
  });

  it('refuses unknown switches and non-boolean values, naming them', async () => {
    const r1 = await fault({ slow: true });
    expect(r1.status).toBe(400);
    expect(await r1.text()).toContain('unknown fault \\"slow\\"; the switches are stall and metricsHang');
    const r2 = await fault({ stall: 'yes' });
    expect(await r2.text()).toContain('fault \\"stall\\" must be true or false; got \\"yes\\"');
    expect((await fault([1])).status).toBe(400);
  });
});
