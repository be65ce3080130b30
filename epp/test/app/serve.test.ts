/**
 * The EPP as a whole: a real ZMQ publisher speaking vLLM's wire format feeds the running EPP, and
 * `POST /v1/score` answers where a prompt is cached. Everything listens on 127.0.0.1.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { EppRuntime } from '../../src/app/epp.js';
import { parseEppConfig } from '../../src/contract/config.js';
import { EppServingV8Flags } from '../../src/contract/names.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import { silentLogger } from '../../src/util/logger.js';
import { VllmPublisher } from '../../testkit/vllm-publisher.js';
import { ExtProcTestClient, HealthTestClient, routeRequest } from '../../testkit/extproc-client.js';

const MODEL = 'meta-llama/Llama-3.2-1B';
const POD_A = '127.0.0.2:18000';
const POD_B = '127.0.0.3:18000';
const TOKENIZER_DIR = fileURLToPath(new URL('../data/tokenizers/llama3_1', import.meta.url));
const EPP_DIR = fileURLToPath(new URL('../..', import.meta.url));
const engine = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '42' });

interface ScoreBody {
  model: string;
  blockKeys: string[];
  pods: { endpoint: string; name: string; consecutiveBlocks: number; score: number; predicted?: Record<string, number> }[];
  pick?: string;
}

async function post(port: number, body: unknown, raw?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/score`, { method: 'POST', body: raw ?? JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

const tokens = (n: number, base = 5000): number[] => Array.from({ length: n }, (_, i) => base + i);

describe('kvroute-epp serve (in process)', () => {
  let rt: EppRuntime;
  let pub: VllmPublisher;
  let metricsServer: Server;
  let metricsPort: number;

  beforeAll(async () => {
    metricsServer = createServer((_req, res) => {
      res.end('# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="m"} 3\nvllm:num_requests_running{model_name="m"} 1\nvllm:kv_cache_usage_perc{model_name="m"} 0.25\n');
    });
    await new Promise<void>((r) => metricsServer.listen(0, '127.0.0.1', r));
    metricsPort = (metricsServer.address() as AddressInfo).port;
    const config = parseEppConfig({
      model: MODEL,
      server: { httpPort: 0, grpcPort: 0, healthPort: 0, host: '127.0.0.1', maxBodyBytes: 4096 },
      events: { zmqBind: 'tcp://127.0.0.1:*' },
      discovery: {
        mode: 'static',
        endpoints: [
          { address: POD_A, name: 'decode-a', role: 'decode', metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` },
          { address: POD_B, name: 'decode-b', role: 'decode', metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` },
        ],
      },
      tokenizer: { path: TOKENIZER_DIR, workers: 1 },
      index: { backend: 'memory', memoryBudgetBytes: 8 * 1024 * 1024 },
    });
    rt = await EppRuntime.start(config, { logger: silentLogger() });
    pub = new VllmPublisher({ endpoint: rt.zmqEndpoint as string, topic: `kv@${POD_A}@${MODEL}`, encoding: 'map' });
    await pub.start();
    await new Promise((r) => setTimeout(r, 200)); // let the PUB connect (slow joiner)
  });

  afterAll(async () => {
    await pub?.close();
    await rt?.stop();
    await new Promise<void>((r) => metricsServer.close(() => r()));
  });

  it('is healthy and ready, and exports its metrics', async () => {
    expect((await fetch(`http://127.0.0.1:${rt.httpPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${rt.httpPort}/readyz`)).status).toBe(200);
    const text = await (await fetch(`http://127.0.0.1:${rt.httpPort}/metrics`)).text();
    expect(text).toContain('inference_extension_info');
    expect(text).toContain('kvroute_kv_events');
  });

  it('scores token ids against blocks a pod announced over ZMQ, and reports vLLM block keys', async () => {
    const toks = tokens(64);
    const hashes = engine.blockKeys(toks);
    await pub.publish([{ type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: toks, blockSize: 16, medium: 'GPU' }]);
    const query = tokens(80);
    const r = await until(
      () => post(rt.httpPort, { model: MODEL, token_ids: query }),
      (v) => ((v.json as unknown as ScoreBody).pods?.[0]?.consecutiveBlocks ?? 0) > 0,
    );
    expect(r.status).toBe(200);
    const body = r.json as unknown as ScoreBody;
    expect(body.model).toBe(MODEL);
    expect(body.blockKeys).toEqual(engine.blockKeys(query).map(String));
    expect(body.blockKeys.slice(0, 4)).toEqual(hashes.map(String));
    expect(body.pods).toMatchObject([
      { endpoint: POD_A, name: 'decode-a', consecutiveBlocks: 4, score: 0.8 },
      { endpoint: POD_B, name: 'decode-b', consecutiveBlocks: 0, score: 0 },
    ]);
    // the scheduler's dry run: where it would go and why (predicted-TTFT terms per pod)
    expect(body.pick).toBe(POD_A);
    expect(body.pods[0]?.predicted).toMatchObject({ cachedTokens: 64, uncachedTokens: 16, queuedPrefillTokens: 0 });
    expect(body.pods[1]?.predicted).toMatchObject({ cachedTokens: 0, uncachedTokens: 80 });
    expect(body.pods[0]?.predicted?.predictedTtftMs).toBeLessThan(body.pods[1]?.predicted?.predictedTtftMs ?? 0);
  });

  it('follows BlockRemoved and AllBlocksCleared', async () => {
    const toks = tokens(64);
    const hashes = engine.blockKeys(toks);
    await pub.publish([{ type: 'BlockRemoved', blockHashes: [hashes[2]], medium: 'GPU' }]);
    const r = await until(
      () => post(rt.httpPort, { model: MODEL, token_ids: toks }),
      (v) => (v.json as unknown as ScoreBody).pods[0].consecutiveBlocks === 2,
    );
    expect((r.json as unknown as ScoreBody).pods[0]).toMatchObject({ endpoint: POD_A, consecutiveBlocks: 2, score: 0.5 });
    await pub.publish([{ type: 'AllBlocksCleared' }]);
    const c = await until(
      () => post(rt.httpPort, { model: MODEL, token_ids: toks }),
      (v) => (v.json as unknown as ScoreBody).pods.every((p) => p.consecutiveBlocks === 0),
    );
    expect((c.json as unknown as ScoreBody).pods.map((p) => p.consecutiveBlocks)).toEqual([0, 0]);
  });

  it('tokenizes a prompt on the spot (first sight) and finds the blocks vLLM stored for it', async () => {
    const prompt = 'The quick brown fox jumps over the lazy dog. '.repeat(12);
    const first = await post(rt.httpPort, { model: MODEL, prompt });
    expect(first.status).toBe(200);
    const keys = (first.json as unknown as ScoreBody).blockKeys;
    expect(keys.length).toBeGreaterThan(3);
    // vLLM would tokenize the same way: publish what it would store for the prompt.
    const ids = Array.from(await rt.director['opts'].tokenizer!.tokenizeCompletion(MODEL, prompt));
    expect(ids[0]).toBe(128000); // <|begin_of_text|>
    const full = ids.slice(0, Math.floor(ids.length / 16) * 16);
    expect(engine.blockKeys(full).map(String)).toEqual(keys);
    await pub.publish([{ type: 'BlockStored', blockHashes: engine.blockKeys(full), parentBlockHash: null, tokenIds: full, blockSize: 16, medium: 'CPU' }]);
    const r = await until(
      () => post(rt.httpPort, { model: MODEL, prompt }),
      (v) => (v.json as unknown as ScoreBody).pods[0].consecutiveBlocks === keys.length,
    );
    expect((r.json as unknown as ScoreBody).pods[0]).toMatchObject({ endpoint: POD_A, consecutiveBlocks: keys.length });
    expect((r.json as unknown as ScoreBody).pods[0].score).toBeCloseTo(0.8); // cpu tier weight
    const chat = await post(rt.httpPort, { model: MODEL, messages: [{ role: 'user', content: 'Hello there' }] });
    expect(chat.status).toBe(200);
  });

  it('scrapes vLLM metrics from the endpoints', async () => {
    const s = await until(
      async () => rt.store.freshMetrics(POD_A),
      (m) => m !== undefined,
    );
    expect(s).toMatchObject({ waiting: 3, running: 1, kvCacheUsage: 0.25 });
  });

  it.each([
    ['truncated JSON', undefined, '{"model": ', 400, 'bad_json'],
    ['no model', { prompt: 'x' }, undefined, 400, 'missing_model'],
    ['no prompt', { model: MODEL }, undefined, 400, 'missing_prompt'],
    ['negative token id', { model: MODEL, token_ids: [1, -2] }, undefined, 400, 'bad_request'],
    ['body over the limit', { model: MODEL, prompt: 'x'.repeat(5000) }, undefined, 413, 'body_too_large'],
  ])('answers bad input (%s) with a clear error', async (_label, body, raw, status, code) => {
    const r = await post(rt.httpPort, body, raw);
    expect(r.status).toBe(status);
    expect((r.json.error as { code: string }).code).toBe(code);
    expect(typeof (r.json.error as { message: string }).message).toBe('string');
  });

  it('routes an ext_proc request to the pod holding its prefix (header and envoy.lb metadata)', async () => {
    const prompt = 'Summarize the following support ticket for the on-call engineer. '.repeat(6);
    const ids = Array.from(await rt.director['opts'].tokenizer!.tokenizeCompletion(MODEL, prompt));
    const full = ids.slice(0, Math.floor(ids.length / 16) * 16);
    const podB = new VllmPublisher({ endpoint: rt.zmqEndpoint as string, topic: `kv@${POD_B}@${MODEL}`, encoding: 'array' });
    await podB.start();
    await new Promise((r) => setTimeout(r, 200));
    await podB.publish([{ type: 'BlockStored', blockHashes: engine.blockKeys(full), parentBlockHash: null, tokenIds: full, blockSize: 16, medium: 'GPU' }]);
    await until(
      () => post(rt.httpPort, { model: MODEL, prompt }),
      (v) => (v.json as unknown as ScoreBody).pods[0].endpoint === POD_B,
    );
    const client = new ExtProcTestClient({ address: `127.0.0.1:${rt.grpcPort}` });
    try {
      const body = JSON.stringify({ model: MODEL, prompt, max_tokens: 16 });
      const out = await routeRequest(client.open(), { headers: { ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json' }, body, chunkBytes: 7 }, 10000);
      expect(out).toMatchObject({ kind: 'routed', destination: POD_B, metadataDestination: POD_B, clearRouteCache: true });
      expect(out.body.toString()).toBe(body);
      const bad = await routeRequest(client.open(), { headers: { ':method': 'POST', ':path': '/v1/completions' }, body: '{"prompt": 1' }, 10000);
      expect(bad).toMatchObject({ kind: 'immediate', status: 400 });
    } finally {
      client.close();
      await podB.close();
    }
    const health = new HealthTestClient({ address: `127.0.0.1:${rt.healthPort}` });
    try {
      expect((await health.check('')).status).toBe(1); // SERVING
    } finally {
      health.close();
    }
  });

  it('rejects GET on /v1/score and unknown routes', async () => {
    expect((await fetch(`http://127.0.0.1:${rt.httpPort}/v1/score`)).status).toBe(405);
    expect((await fetch(`http://127.0.0.1:${rt.httpPort}/nope`)).status).toBe(404);
  });

  it('keeps serving after garbage on the ZMQ socket', async () => {
    await pub.sendRaw(['kv@garbage', 'x']);
    await pub.publishPayload(Buffer.from([0xc1, 0xc1]));
    expect((await fetch(`http://127.0.0.1:${rt.httpPort}/healthz`)).status).toBe(200);
    const text = await until(
      async () => (await fetch(`http://127.0.0.1:${rt.httpPort}/metrics`)).text(),
      (t) => /kvroute_kv_events_dropped_total\{[^}]*\} [1-9]/.test(t),
    );
    expect(text).toMatch(/kvroute_kv_events_dropped_total\{[^}]*\} [1-9]/);
  });
});

describe('kvroute-epp serve (process)', () => {
  it('starts from flags, logs its ports, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [...EppServingV8Flags, '--import', 'tsx', 'src/cli/run.ts', 'serve', '--model', MODEL, '--http-port', '0', '--grpc-port', '0', '--health-port', '0', '--host', '127.0.0.1', '--zmq-bind', 'tcp://127.0.0.1:*', '--endpoints', `${POD_A}=a`], {
      cwd: EPP_DIR,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`no start line in 20 s; stderr: ${stderr}`));
      }, 20000);
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /"httpPort":(\d+)/.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    // started like the image's ENTRYPOINT (the V8 flags on node's command line), serve reports them in effect
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "V8 flags for serving" line in 5 s; stderr: ${stderr}`)), 5000);
      const check = (): void => {
        if (stderr.includes('V8 flags for serving')) {
          clearTimeout(timer);
          resolve();
        } else setTimeout(check, 20);
      };
      check();
    });
    const tuned = stderr.split('\n').find((l) => l.includes('V8 flags for serving'))!;
    expect(JSON.parse(tuned).v8Flags).toEqual(['--no-allocation-site-pretenuring']);
    expect(stderr).not.toContain('started without');
    const code = await new Promise<number | null>((resolve) => {
      child.removeAllListeners('exit');
      child.on('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    expect(code).toBe(0);
  }, 30000);

  it('exits 2 with a message naming the flag for bad input', async () => {
    const child = spawn(process.execPath, [...EppServingV8Flags, '--import', 'tsx', 'src/cli/run.ts', 'serve', '--model', MODEL, '--block-size', '12'], { cwd: EPP_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toMatch(/blockSize 12 is not a power of two/);
  }, 30000);
});
