/**
 * `kvroute-epp verify` end to end against the demo stack, all real processes: `kvroute-epp serve`
 * and three simulated vLLM pods (KV events over ZMQ), the demo gateway (HTTP → ext_proc gRPC → the
 * picked pod), and `kvroute-epp verify` itself as a child process reading the pods' and the EPP's
 * /metrics. Through the kvroute gateway the check passes; through the round-robin gateway (the same
 * pods, no EPP) the hit rate and the stickiness fall and it fails with exit 1.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DemoGateway } from '../../lab/demo/gateway.js';
import { ProcessGroup } from '../../lab/demo/procs.js';
import { demoStackPorts, EPP_DIR, MODEL, startDemoStack, type DemoStack } from '../../lab/demo/run.js';

const TINY_TOKENIZER = fileURLToPath(new URL('../data/tokenizers/tiny-llama3', import.meta.url));
const TSX = join(EPP_DIR, '..', 'node_modules', '.bin', 'tsx');

interface VerifyJson {
  pass: boolean;
  requests: number;
  errors: number;
  tokenHitRate: number;
  ceiling: number;
  shareSource: string;
  share: Record<string, number>;
  imbalance: number;
  stickiness: number;
  stickinessSource: string;
  hits: number;
  misses: number;
  ttftHitsP50: number;
  ttftMissesP50: number;
  predictedTokens: number;
  actualTokens: number;
  clientCachedTokens: number;
  checks: { name: string; pass: boolean | null }[];
}

function verify(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(TSX, ['src/cli/run.ts', 'verify', ...args], { cwd: EPP_DIR, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('kvroute-epp verify against the demo stack', () => {
  const group = new ProcessGroup();
  const dir = mkdtempSync(join(tmpdir(), 'kvroute-verify-'));
  let stack: DemoStack;
  let kv: DemoGateway;
  let rr: DemoGateway;
  let kvPort = 0;
  let rrPort = 0;
  let kvHitRate = NaN;

  beforeAll(async () => {
    stack = await demoStackPorts(3);
    // The EPP runs its default scheduler (predicted TTFT). Where it puts each of the 4 prefix groups
    // depends on timing, so the balance threshold is widened below; stickiness and hit rate are not.
    await startDemoStack(stack, { tokenizerDir: TINY_TOKENIZER, numBlocks: 2000 }, group);
    kv = new DemoGateway({ policy: 'kvroute', pods: stack.pods, eppAddress: stack.grpc });
    rr = new DemoGateway({ policy: 'round-robin', pods: stack.pods });
    kvPort = await kv.listen(0);
    rrPort = await rr.listen(0);
  }, 120_000);

  afterAll(async () => {
    await kv?.close();
    await rr?.close();
    await group.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  const common = (gw: number, json: string): string[] => [
    '--gateway', `http://127.0.0.1:${gw}`,
    '--model', MODEL,
    '--pods', stack.pods.join(','),
    '--epp', `http://127.0.0.1:${stack.http}`,
    '--sessions', '12', '--turns', '3', '--groups', '4', '--system-words', '150', '--max-tokens', '4',
    '--json', json,
  ];

  it('passes through the kvroute gateway: hit rate near the ceiling, sticky sessions, predictions match', async () => {
    const file = join(dir, 'kv.json');
    // 4 prefix groups on 3 pods: a prefix-affine router may give one pod most of this short run, so
    // the balance threshold is widened here; the round-robin case checks the other thresholds fail.
    const r = await verify([...common(kvPort, file), '--max-imbalance', '3']);
    const j = JSON.parse(readFileSync(file, 'utf8')) as VerifyJson;
    try {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/\nPASS\n$/);
      expect(j.pass).toBe(true);
      expect(j.requests).toBe(36);
      expect(j.errors).toBe(0);
      expect(j.ceiling).toBeGreaterThan(0.5);
      expect(j.tokenHitRate).toBeGreaterThanOrEqual(0.7 * j.ceiling);
      // the demo gateway names the serving pod: share and stickiness come from it
      expect(j.shareSource).toBe('gateway-header');
      expect(Object.keys(j.share).sort()).toEqual([...stack.pods].sort());
      expect(j.stickiness).toBeGreaterThanOrEqual(0.8);
      expect(j.hits).toBeGreaterThan(0);
      expect(j.misses).toBeGreaterThan(0);
      expect(Number.isFinite(j.ttftHitsP50) && Number.isFinite(j.ttftMissesP50)).toBe(true);
      // the EPP's own counters: what vLLM reported equals what the client saw
      expect(j.actualTokens).toBe(j.clientCachedTokens);
      expect(j.predictedTokens).toBeGreaterThan(0);
      kvHitRate = j.tokenHitRate;
    } catch (e) {
      process.stderr.write(`verify output:\n${r.stdout}\n${r.stderr}\n`);
      throw e;
    }
  }, 150_000);

  it('fails with exit 1 through a round-robin gateway (no EPP): hit rate and stickiness fall', async () => {
    const file = join(dir, 'rr.json');
    const r = await verify(common(rrPort, file));
    const j = JSON.parse(readFileSync(file, 'utf8')) as VerifyJson;
    try {
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/\nFAIL\n$/);
      expect(j.pass).toBe(false);
      expect(j.errors).toBe(0);
      expect(j.stickiness).toBeLessThan(0.8);
      // a fresh run id: the round-robin run starts from cold prompts too, and hits less
      expect(j.tokenHitRate).toBeLessThan(kvHitRate);
      expect(j.checks.find((c) => c.name === 'session stickiness')?.pass).toBe(false);
    } catch (e) {
      process.stderr.write(`verify output:\n${r.stdout}\n${r.stderr}\n`);
      throw e;
    }
  }, 150_000);

  it('answers bad flags with exit 2 naming the flag', async () => {
    const none = await verify(['--model', MODEL]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--gateway is required/);
    const both = await verify(['--gateway', 'http://x:1', '--model', 'm', '--pods', '1.2.3.4:1', '--prometheus', 'http://p:9090']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--prometheus or --pods, not both/);
    const noSource = await verify(['--gateway', 'http://x:1', '--model', 'm']);
    expect(noSource.code).toBe(2);
    expect(noSource.stderr).toMatch(/give --prometheus URL or --pods/);
    const unreachable = await verify(['--gateway', 'http://127.0.0.1:1', '--model', 'm', '--pods', '127.0.0.1:1']);
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr).toMatch(/cannot read pod 127\.0\.0\.1:1's \/metrics/);
  }, 60_000);
});
