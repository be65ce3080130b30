/**
 * The simulated vLLM pod server over real HTTP on 127.0.0.1: OpenAI responses with usage and
 * cached tokens, SSE with a final usage chunk, vLLM metrics, errors, and KV events whose block
 * hashes are vLLM's sha256_cbor chain of the prompt's token ids.
 */
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { createTokenProcessor } from '../../../src/kvindex/keys/token-processor.js';
import type { KvEventBatch } from '../../../src/kvevents/types.js';
import { PROFILE_B } from '../../../lab/sim/profiles.js';
import { SimPodServer } from '../../../lab/sim/server/pod-server.js';
import { parsePodArgs, PodUsageError } from '../../../lab/sim/server/main.js';
import { Tokenization } from '../../../src/tokenization/index.js';

const TOKENIZER = fileURLToPath(new URL('../../data/tokenizers/tiny-llama3', import.meta.url));
const MODEL = 'sim-model';
const engine = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '42' });
const PROMPT = 'The quarterly report covers revenue, churn and support tickets for every region. '.repeat(8);

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

describe('SimPodServer', () => {
  let server: SimPodServer;
  let port: number;
  let tok: Tokenization;
  const batches: KvEventBatch[] = [];

  beforeAll(async () => {
    server = await SimPodServer.create({
      id: '127.0.0.1:1',
      model: MODEL,
      profile: { ...PROFILE_B, numBlocks: 64 },
      tokenizerDir: TOKENIZER,
      tokenizerWorkers: 0,
      speedup: 4,
      onKvEvents: (b) => batches.push(b),
    });
    port = await server.listen(0);
    tok = await Tokenization.create({ path: TOKENIZER, workers: 0 });
  });

  afterAll(async () => {
    await server?.close();
    await tok?.close();
  });

  const post = (path: string, body: unknown): Promise<Response> =>
    fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const m = new RegExp(`^${name}\\{engine="0",model_name="${MODEL}"\\} (\\S+)$`, 'm').exec(text);
    if (!m) throw new Error(`${name} missing in:\n${text}`);
    return Number(m[1]);
  };

  it('answers /health', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  });

  it('serves a completion with usage; the repeat is served from cache (full blocks, capped at L-1) and counted in the metrics', async () => {
    const ids = await tok.tokenizeCompletion(MODEL, PROMPT);
    const q0 = await metric('vllm:prefix_cache_queries_total');
    const h0 = await metric('vllm:prefix_cache_hits_total');
    const r1 = await post('/v1/completions', { model: MODEL, prompt: PROMPT, max_tokens: 3 });
    expect(r1.status).toBe(200);
    const b1 = (await r1.json()) as { object: string; choices: { text: string; finish_reason: string }[]; usage: Usage };
    expect(b1.object).toBe('text_completion');
    expect(b1.choices[0]?.finish_reason).toBe('length');
    expect(b1.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: 3, total_tokens: ids.length + 3, prompt_tokens_details: { cached_tokens: 0 } });
    const r2 = await post('/v1/completions', { model: MODEL, prompt: PROMPT, max_tokens: 2 });
    const b2 = (await r2.json()) as { usage: Usage };
    const expectedHit = Math.floor((ids.length - 1) / 16) * 16;
    expect(b2.usage.prompt_tokens_details.cached_tokens).toBe(expectedHit);
    expect(await metric('vllm:prefix_cache_queries_total')).toBe(q0 + 2 * ids.length);
    expect(await metric('vllm:prefix_cache_hits_total')).toBe(h0 + expectedHit);
    expect(await metric('vllm:num_requests_running')).toBe(0);
  });

  it('publishes BlockStored with vLLM sha256_cbor hashes of the prompt tokens, chained by parent hash', async () => {
    const ids = Array.from(await tok.tokenizeCompletion(MODEL, PROMPT));
    const full = ids.slice(0, Math.floor(ids.length / 16) * 16);
    const stored = batches.flatMap((b) => b.events).filter((e) => e.type === 'BlockStored');
    const hashes = stored.flatMap((e) => (e.type === 'BlockStored' ? [...e.blockHashes] : []));
    expect(hashes.slice(0, full.length / 16)).toEqual(engine.blockKeys(full));
    const first = stored[0];
    if (first?.type !== 'BlockStored') throw new Error('no BlockStored');
    expect(first.parentBlockHash).toBeUndefined();
    expect([...first.tokenIds]).toEqual(full.slice(0, first.blockHashes.length * 16));
  });

  it('streams a chat completion as SSE chunks with a final usage chunk (include_usage) and [DONE]', async () => {
    const messages = [{ role: 'user', content: PROMPT }];
    const ids = await tok.tokenizeChat(MODEL, messages);
    const r = await post('/v1/chat/completions', { model: MODEL, messages, max_tokens: 4, stream: true, stream_options: { include_usage: true } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/event-stream');
    const events = (await r.text()).split('\n\n').filter(Boolean);
    expect(events[events.length - 1]).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, '')) as { object: string; choices: { delta: { content: string }; finish_reason: string | null }[]; usage?: Usage });
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0]?.choices[0]?.finish_reason).toBeNull();
    expect(chunks[chunks.length - 2]?.choices[0]?.finish_reason).toBe('length');
    const usage = chunks[chunks.length - 1]?.usage;
    expect(usage).toMatchObject({ prompt_tokens: ids.length, completion_tokens: 4, total_tokens: ids.length + 4 });
    expect(typeof (usage as { prompt_tokens_details?: { cached_tokens?: unknown } }).prompt_tokens_details?.cached_tokens).toBe('number');
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content)).join('');
    expect(text.trim().split(' ')).toHaveLength(4);
  });

  it.each([
    ['is false', { stream_options: { include_usage: false } }],
    ['is not given (vLLM sends usage only when asked)', {}],
  ])('omits the usage chunk when stream_options.include_usage %s', async (_what, extra) => {
    const r = await post('/v1/completions', { model: MODEL, prompt: 'short prompt here', max_tokens: 2, stream: true, ...extra });
    const body = await r.text();
    expect(body).not.toContain('"usage"');
    expect(body).toContain('data: [DONE]');
  });

  it.each([
    ['unknown model', '/v1/completions', { model: 'other', prompt: 'x' }, 404, /model `other` does not exist/],
    ['bad JSON', '/v1/completions', '{"model": ', 400, /not valid JSON/],
    ['bad max_tokens', '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 0 }, 400, /max_tokens/],
    ['prompt over max_model_len', '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 40000 }, 400, /max_model_len/],
    ['no messages', '/v1/chat/completions', { model: MODEL }, 400, /./],
  ])('answers %s with a clear OpenAI-style error', async (_l, path, body, status, msg) => {
    const r = await post(path, body);
    expect(r.status).toBe(status);
    const j = (await r.json()) as { error: { message: string; code: number } };
    expect(j.error.code).toBe(status);
    expect(j.error.message).toMatch(msg);
  });

  it('reports one simulated TTFT per admitted request on /sim/stats, longer for an uncached prompt', async () => {
    const stats = async (): Promise<number[]> => ((await (await fetch(`http://127.0.0.1:${port}/sim/stats`)).json()) as { ttftMs: number[] }).ttftMs;
    const n = (await stats()).length;
    const long = 'Uncached long prompt about invoices and refunds. '.repeat(40);
    await (await post('/v1/completions', { model: MODEL, prompt: long, max_tokens: 1 })).json();
    await (await post('/v1/completions', { model: MODEL, prompt: long, max_tokens: 1 })).json();
    const t = (await stats()).slice(n);
    expect(t).toHaveLength(2);
    expect(t.every((x) => x > 0)).toBe(true);
    // step cost α + β_p·P: the miss computes the whole prompt, the hit only its last block
    expect(t[0]).toBeGreaterThan(t[1] as number);
  });

  it('serves the same TTFTs as vllm:time_to_first_token_seconds on /metrics (count = TTFTs on /sim/stats)', async () => {
    await (await post('/v1/completions', { model: MODEL, prompt: 'TTFT histogram check', max_tokens: 1 })).json();
    const stats = ((await (await fetch(`http://127.0.0.1:${port}/sim/stats`)).json()) as { ttftMs: number[] }).ttftMs;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const count = /^vllm:time_to_first_token_seconds_count\{[^}]*\} (\S+)$/m.exec(text);
    const inf = /^vllm:time_to_first_token_seconds_bucket\{[^}]*le="\+Inf"\} (\S+)$/m.exec(text);
    const sum = /^vllm:time_to_first_token_seconds_sum\{[^}]*\} (\S+)$/m.exec(text);
    expect(stats.length).toBeGreaterThan(0);
    expect(Number(count?.[1])).toBe(stats.length);
    expect(Number(inf?.[1])).toBe(stats.length);
    expect(Number(sum?.[1])).toBeCloseTo(stats.reduce((a, b) => a + b, 0) / 1000, 6);
  });

  it('defaults max_tokens to 16', async () => {
    const r = await post('/v1/completions', { model: MODEL, prompt: 'default length please' });
    expect(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(16);
  });

  it('404s an unknown route', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);
  });

  it('reset_prefix_cache clears the cache and emits AllBlocksCleared', async () => {
    const n = batches.length;
    const r = await fetch(`http://127.0.0.1:${port}/reset_prefix_cache`, { method: 'POST' });
    expect(r.status).toBe(200);
    expect(batches.slice(n).flatMap((b) => b.events)).toEqual([{ type: 'AllBlocksCleared' }]);
    const again = await post('/v1/completions', { model: MODEL, prompt: PROMPT, max_tokens: 1 });
    expect(((await again.json()) as { usage: Usage }).usage.prompt_tokens_details.cached_tokens).toBe(0);
  });

  it('serves concurrent requests (batched steps) and evicts with BlockRemoved when the cache is full', async () => {
    const prompts = Array.from({ length: 6 }, (_, i) => `Distinct document number ${i}: ` + `alpha beta gamma delta ${i} `.repeat(30));
    const rs = await Promise.all(prompts.map((p) => post('/v1/completions', { model: MODEL, prompt: p, max_tokens: 2 })));
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    await Promise.all(rs.map((r) => r.json()));
    expect(batches.flatMap((b) => b.events).some((e) => e.type === 'BlockRemoved')).toBe(true);
    expect(server.pod.checkInvariants()).toEqual([]);
  });
});

describe('SimPodServer defaults', () => {
  it('runs simulated time at wall speed (speedup 1) and rejects a bad speedup', async () => {
    const s = await SimPodServer.create({ id: 'x', model: MODEL, profile: PROFILE_B, tokenizerDir: TOKENIZER, tokenizerWorkers: 0 });
    try {
      const a = s.now();
      const w = performance.now();
      await new Promise((r) => setTimeout(r, 100));
      const sim = s.now() - a;
      const wall = performance.now() - w;
      expect(Math.abs(sim - wall)).toBeLessThan(5);
    } finally {
      await s.close();
    }
    await expect(SimPodServer.create({ id: 'x', model: MODEL, profile: PROFILE_B, tokenizerDir: TOKENIZER, tokenizerWorkers: 0, speedup: 0 })).rejects.toThrow(/speedup 0/);
  });
});

describe('parsePodArgs', () => {
  it('applies the documented defaults', () => {
    const a = parsePodArgs(['--port', '0', '--tokenizer', 'dir']);
    expect(a).toMatchObject({ port: 0, host: '127.0.0.1', encoding: 'map', eventLagMs: 0, speedup: 1, hashSeed: '42', model: 'meta-llama/Llama-3.2-1B' });
    expect(a.profile.name).toBe('A');
    expect(a.zmqEndpoint).toBeUndefined();
  });

  it('overrides the profile block count and block size', () => {
    const a = parsePodArgs(['--port', '1', '--tokenizer', 'd', '--profile', 'b', '--num-blocks', '100', '--block-size', '32', '--encoding', 'array']);
    expect(a.profile).toMatchObject({ name: 'B', numBlocks: 100, blockSize: 32 });
    expect(a.encoding).toBe('array');
  });

  it.each([
    [['--tokenizer', 'd'], /--port is required/],
    [['--port', '1'], /--tokenizer is required/],
    [['--port', 'x', '--tokenizer', 'd'], /--port "x"/],
    [['--port', '1', '--tokenizer', 'd', '--profile', 'Z'], /--profile "Z"/],
    [['--port', '1', '--tokenizer', 'd', '--encoding', 'json'], /--encoding "json"/],
    [['--port', '1', '--tokenizer', 'd', '--speedup', '0'], /--speedup "0"/],
    [['--port', '1', '--tokenizer', 'd', '--bogus'], /bogus/],
  ])('rejects %j', (argv, msg) => {
    expect(() => parsePodArgs(argv)).toThrow(PodUsageError);
    expect(() => parsePodArgs(argv)).toThrow(msg);
  });
});
