/**
 * The llm-d chart's EPP command line starts a real `kvroute-epp` process (no subcommand, flags
 * only, as the chart's `args:` replace the image's CMD). `--endpoints` stands in for the pool's
 * Kubernetes discovery (there is no cluster here). The pods are real HTTP servers exporting
 * SGLang's metric names, which the chart's SGLang flags name (rendered with literal quotes, as the
 * chart's template writes them); the EPP serves ext_proc over TLS with a self-signed certificate
 * (llm-d's --secure-serving default) and routes by what it scraped.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { ExtProcTestClient, HealthTestClient, routeRequest } from '../../testkit/extproc-client.js';

const EPP_DIR = fileURLToPath(new URL('../..', import.meta.url));

/** A model-server stand-in: a real HTTP server whose /metrics exports SGLang's gauges. */
async function sglangPod(
  queue: number,
  running: number,
  tokenUsage: number,
): Promise<{ server: Server; address: string; scrapes: () => number; set: (queue: number, tokenUsage: number) => void }> {
  let scrapes = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.statusCode = 404;
      res.end();
      return;
    }
    scrapes++;
    res.setHeader('content-type', 'text/plain; version=0.0.4');
    res.end(
      [
        '# HELP sglang:num_queue_reqs The number of requests in the waiting queue.',
        '# TYPE sglang:num_queue_reqs gauge',
        `sglang:num_queue_reqs{model_name="qwen",engine_type="unified"} ${queue}`,
        '# TYPE sglang:num_running_reqs gauge',
        `sglang:num_running_reqs{model_name="qwen",engine_type="unified"} ${running}`,
        '# TYPE sglang:token_usage gauge',
        `sglang:token_usage{model_name="qwen",engine_type="unified"} ${tokenUsage}`,
        '# TYPE sglang:cache_config_info gauge',
        'sglang:cache_config_info{page_size="16"} 1',
        // vLLM's names are absent: a scraper still reading them would find nothing
        '',
      ].join('\n'),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const set = (q: number, u: number): void => {
    queue = q;
    tokenUsage = u;
  };
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, scrapes: () => scrapes, set };
}

interface Started {
  child: ChildProcessWithoutNullStreams;
  grpcPort: number;
  healthPort: number;
  httpPort: number;
  stderr: () => string;
}

function start(args: string[]): Promise<Started> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: EPP_DIR, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no start line in 90 s; stderr: ${stderr}`));
    }, 90_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const line = stderr.split('\n').find((l) => l.includes('"kvroute-epp started"'));
      if (line) {
        clearTimeout(timer);
        const j = JSON.parse(line) as { grpcPort: number; healthPort: number; httpPort: number };
        resolve({ child, grpcPort: j.grpcPort, healthPort: j.healthPort, httpPort: j.httpPort, stderr: () => stderr });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code}: ${stderr}`));
    });
  });
}

/** The PEM certificate a TLS server presents (the EPP's self-signed one). */
function servedCertificate(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (cert) resolve(cert.toString());
      else reject(new Error('no certificate'));
    });
    socket.on('error', reject);
  });
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const gauge = (text: string, name: string): number | undefined => {
  const m = new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

describe("kvroute-epp with the llm-d chart's command line (process)", () => {
  let dir: string;
  let podA: Awaited<ReturnType<typeof sglangPod>>;
  let podB: Awaited<ReturnType<typeof sglangPod>>;
  let epp: Started | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-llmd-'));
    // the chart's ConfigMap file: llm-d's default plugins, written as an EndpointPickerConfig
    writeFileSync(
      join(dir, 'default-plugins.yaml'),
      [
        'apiVersion: inference.networking.x-k8s.io/v1alpha1',
        'kind: EndpointPickerConfig',
        'plugins:',
        '- type: queue-scorer',
        '- type: kv-cache-utilization-scorer',
        '- type: prefix-cache-scorer',
        'schedulingProfiles:',
        '- name: default',
        '  plugins:',
        '  - pluginRef: queue-scorer',
        '    weight: 2',
        '  - pluginRef: kv-cache-utilization-scorer',
        '    weight: 2',
        '  - pluginRef: prefix-cache-scorer',
        '    weight: 3',
        '',
      ].join('\n'),
    );
    podA = await sglangPod(6, 3, 0.25);
    podB = await sglangPod(2, 5, 0.75);
  });

  afterAll(async () => {
    if (epp && epp.child.exitCode === null) {
      epp.child.kill('SIGKILL');
    }
    await new Promise<void>((r) => podA.server.close(() => r()));
    await new Promise<void>((r) => podB.server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts, serves ext_proc over TLS, routes by the SGLang metrics it scrapes and by the prefixes it sent', async () => {
    // what the chart's template renders for modelServerType: sglang, with two inferenceExtension.flags
    const chartArgs = [
      '--pool-name', 'qwen-pool',
      '--pool-namespace', 'llm-d',
      '--pool-group', 'inference.networking.k8s.io',
      '--total-queued-requests-metric="sglang:num_queue_reqs"',
      '--total-running-requests-metric="sglang:num_running_reqs"',
      '--kv-cache-usage-percentage-metric="sglang:token_usage"',
      '--cache-info-metric="sglang:cache_config_info"',
      '--zap-encoder', 'json',
      '--config-file', join(dir, 'default-plugins.yaml'),
      '--refresh-metrics-interval=50ms',
      '--metrics-staleness-threshold=2s',
      '--tracing=false',
      '--metrics-endpoint-auth=false',
    ];
    // local stand-ins: static pods instead of the InferencePool, free ports, loopback only
    const local = ['--endpoints', `${podA.address}=qwen-a,${podB.address}=qwen-b`, '--grpc-port', '0', '--grpc-health-port=0', '--metrics-port', '0', '--host', '127.0.0.1', '--zmq-bind', 'tcp://127.0.0.1:*'];
    epp = await start([...chartArgs, ...local]);
    const log = epp.stderr();
    expect(log).toMatch(/"tls":"self-signed"/);
    expect(log).toMatch(/--endpoints replaces the pool's \(qwen-pool\) Kubernetes discovery/);

    // the pods' SGLang gauges reach the EPP: pool averages over both pods
    const metrics = await until(
      async () => (await fetch(`http://127.0.0.1:${epp!.httpPort}/metrics`)).text(),
      (t) => gauge(t, 'inference_pool_ready_pods') === 2,
    );
    expect(gauge(metrics, 'inference_pool_ready_pods')).toBe(2);
    expect(gauge(metrics, 'inference_pool_average_queue_size')).toBe(4); // (6 + 2) / 2
    expect(gauge(metrics, 'inference_pool_average_kv_cache_utilization')).toBe(0.5); // (0.25 + 0.75) / 2
    expect(podA.scrapes()).toBeGreaterThan(0);

    const caPem = await servedCertificate(epp.grpcPort);
    const health = new HealthTestClient({ address: `127.0.0.1:${epp.healthPort}` });
    const client = new ExtProcTestClient({ address: `127.0.0.1:${epp.grpcPort}`, caPem, serverName: 'localhost' });
    try {
      expect((await health.check('inference-extension')).status).toBe(1); // SERVING (the chart's probe service name)
      // queue 2·[0, 1] + kv 2·[0.75, 0.25] + prefix 0: a = 1.5, b = 2.5 → b
      const body = JSON.stringify({ model: 'qwen', prompt: 'Write a haiku about the sea.', max_tokens: 8 });
      const out = await routeRequest(client.open(), { headers: { ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json' }, body }, 20_000);
      expect(out).toMatchObject({ kind: 'routed', destination: podB.address, metadataDestination: podB.address });
      expect(out.body.toString()).toBe(body);

      // the approximate prefix-cache scorer remembers b for that prompt: with b now busier
      // (queue 10, kv 0.5) the same prompt still goes to b, another one goes to a
      podB.set(10, 0.5);
      await until(
        async () => (await fetch(`http://127.0.0.1:${epp!.httpPort}/metrics`)).text(),
        (t) => gauge(t, 'inference_pool_average_queue_size') === 8, // (6 + 10) / 2
      );
      // same prompt: a = 2·1 + 2·0.75 = 3.5; b = 2·0 + 2·0.5 + 3·1 = 4 → b
      const again = await routeRequest(client.open(), { headers: { ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json' }, body }, 20_000);
      expect(again).toMatchObject({ kind: 'routed', destination: podB.address });
      // another prompt: a = 3.5; b = 1 → a
      const other = JSON.stringify({ model: 'qwen', prompt: 'List three prime numbers greater than one hundred.', max_tokens: 8 });
      const fresh = await routeRequest(client.open(), { headers: { ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json' }, body: other }, 20_000);
      expect(fresh).toMatchObject({ kind: 'routed', destination: podA.address });
    } finally {
      client.close();
      health.close();
    }
    const code = await new Promise<number | null>((resolve) => {
      epp!.child.removeAllListeners('exit');
      epp!.child.on('exit', (c) => resolve(c));
      epp!.child.kill('SIGTERM');
    });
    expect(code).toBe(0);
  }, 150_000);

  it.each([
    [['--pool-name', 'p', '--pool-group=inference.example.com'], /--pool-group=inference\.example\.com: kvroute watches InferencePools of inference\.networking\.k8s\.io \(v1\) or inference\.networking\.x-k8s\.io \(v1alpha2\)/],
    [['--pool-name', 'p', '--metrics-endpoint-auth=true'], /--metrics-endpoint-auth=true: kvroute serves \/metrics without authentication; pass --metrics-endpoint-auth=false/],
    [['--endpoint-selector', 'app=vllm'], /--endpoint-selector=app=vllm needs --endpoint-target-ports/],
  ])('exits 2 naming the flag and value it cannot honour: %j', async (args, message) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: EPP_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  }, 90_000);
});
