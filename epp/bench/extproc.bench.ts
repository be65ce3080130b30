/**
 * ext_proc load test: the EPP's gRPC server (real ExtProcServer, real protos, a trivial
 * round-robin director over 16 endpoints) in a child process, driven over loopback h2c by this
 * process playing Envoy in FULL_DUPLEX_STREAMED mode. Each stream is a whole exchange:
 *   request headers → 8 KB completions body (end_of_stream) → [EPP: headers response + body]
 *   → response headers → JSON response body with usage → [EPP: response replies] → half-close.
 *
 * Reported:
 *   - closed-loop throughput (streams/s) at a fixed concurrency;
 *   - open-loop latency at a fixed arrival rate: the EPP's added latency = time from sending the
 *     final request-body frame to receiving the headers response (includes both gRPC stacks and
 *     loopback; the client shares the machine);
 *   - the server's RSS at start, after warm-up and after the throughput run.
 *
 *   npx tsx bench/extproc.bench.ts [--streams 20000] [--concurrency 128] [--rates 250,1000] [--seconds 5]
 *                                  [--prompt-bytes 8192] [--endpoints 16] [--driver h2|grpc-js]
 *
 * The driver plays Envoy. `h2` (default, bench/support/h2-driver.ts) speaks gRPC over node:http2
 * with the fixed messages serialized once, like Envoy's C++ client it costs little CPU per stream;
 * `grpc-js` uses @grpc/grpc-js's client (≈ 330–400 µs CPU per stream, competing with the EPP for
 * the same 2 cores). Both check every reply.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadProtos, ServiceNames } from '../src/extproc/proto.js';
import type { ProcessingRequest, ProcessingResponse } from '../src/extproc/types.js';
import type { InferenceRequest, PickResult, RequestDirector } from '../src/extproc/director.js';
import { ExtProcServer } from '../src/server/grpc-server.js';
import { H2Driver } from './support/h2-driver.js';
import { Registry } from 'prom-client';
import { combineObservers, ExtProcLogging, ExtProcMetrics } from '../src/extproc/observer.js';
import { ExtProcStream } from '../src/extproc/stream.js';
import { silentLogger } from '../src/util/logger.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const STREAMS = arg('streams', 20_000);
const CONCURRENCY = arg('concurrency', 128);
/** Offered rates for the open-loop phase, e.g. `--rates 200,1000`. */
const RATES = (() => {
  const i = process.argv.indexOf('--rates');
  return i >= 0 ? process.argv[i + 1]!.split(',').map(Number) : [250, 1000];
})();
const SECONDS = arg('seconds', 5);
const PROMPT_BYTES = arg('prompt-bytes', 8192);
const ENDPOINTS = arg('endpoints', 16);
const DRIVER = (() => {
  const i = process.argv.indexOf('--driver');
  const d = i >= 0 ? process.argv[i + 1] : 'h2';
  if (d !== 'h2' && d !== 'grpc-js') throw new Error(`--driver ${d}: expected h2 or grpc-js`);
  return d;
})();

type ToParent = { port: number } | Sample;
interface Sample {
  rss: number;
  heap: number;
  /** Server CPU time (user + system) so far, µs. */
  cpuUs: number;
  /** Cumulative decisions (kvroute_extproc_decision_duration_seconds): total, ≤ 1 ms, ≤ 2 ms. */
  decisions: number;
  decisionsLe1ms: number;
  decisionsLe2ms: number;
}

// ---- server (child) ----------------------------------------------------------------------------

class RoundRobin implements RequestDirector {
  private i = 0;
  private inFlight = 0;
  constructor(private readonly endpoints: string[]) {}
  pick(_req: InferenceRequest): Promise<PickResult> {
    this.inFlight++;
    return Promise.resolve({ endpoints: [this.endpoints[this.i++ % this.endpoints.length]!] });
  }
  onDone(): void {
    this.inFlight--;
  }
}

async function serve(): Promise<void> {
  const endpoints = Array.from({ length: ENDPOINTS }, (_, k) => `10.0.${k >> 8}.${k & 255}:8000`);
  const server = new ExtProcServer({ director: new RoundRobin(endpoints) });
  const { grpcPort } = await server.start({ grpcPort: 0, healthPort: null, host: '127.0.0.1' });
  process.send!({ port: grpcPort } satisfies ToParent);
  process.on('message', (m: string) => {
    if (m === 'rss') {
      void sample();
    } else if (m === 'stop') {
      void server.stop(1000).then(() => process.exit(0));
    }
  });
  async function sample(): Promise<void> {
    const values = (await server.metrics.decision.get()).values as { value: number; labels: Record<string, string | number>; metricName?: string }[];
    const bucket = (le: number): number => values.find((v) => v.metricName?.endsWith('_bucket') && v.labels.le === le)?.value ?? 0;
    const decisions = values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
    // Retained memory, not garbage waiting for the next GC (the child runs with --expose-gc).
    (globalThis as { gc?: () => void }).gc?.();
    const mu = process.memoryUsage();
    const cpu = process.cpuUsage();
    process.send!({ rss: mu.rss, heap: mu.heapUsed, cpuUs: cpu.user + cpu.system, decisions, decisionsLe1ms: bucket(0.001), decisionsLe2ms: bucket(0.002) } satisfies ToParent);
  }
}

// ---- protocol layer alone (no gRPC) -------------------------------------------------------------

/** The same exchange pushed straight into ExtProcStream: the CPU cost of our layer without gRPC. */
async function layerOnly(n: number): Promise<number> {
  const endpoints = Array.from({ length: ENDPOINTS }, (_, k) => `10.0.${k >> 8}.${k & 255}:8000`);
  const director = new RoundRobin(endpoints);
  const logger = silentLogger();
  const observer = combineObservers(new ExtProcMetrics(new Registry()), new ExtProcLogging(logger));
  const filler = 'lorem ipsum dolor sit amet '.repeat(Math.ceil(PROMPT_BYTES / 27));
  const respBody = Buffer.from('{"id":"x","model":"m","choices":[{"text":"ok"}],"usage":{"prompt_tokens":2048,"completion_tokens":16}}');
  const c0 = process.cpuUsage();
  for (let k = 0; k < n; k++) {
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const s = new ExtProcStream(
      { director, maxBodyBytes: 8 << 20, maxResponseBufferBytes: 16 << 20, models: [], defaultBodyMode: 'duplex', observer, logger },
      { send: () => undefined, end: () => done() },
    );
    s.push({
      request_headers: { headers: headerMap({ ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json', 'x-request-id': `r${k}` }) },
      protocol_config: { request_body_mode: 4, response_body_mode: 4 },
    });
    s.push({ request_body: { body: Buffer.from(JSON.stringify({ model: 'm', prompt: `${k} ${filler}`.slice(0, PROMPT_BYTES), max_tokens: 16 })), end_of_stream: true } });
    s.push({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) } });
    s.push({ response_body: { body: respBody, end_of_stream: true } });
    s.endOfInput();
    await finished;
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

// ---- driver (parent) ---------------------------------------------------------------------------

function headerMap(h: Record<string, string>): { headers: { key: string; raw_value: Buffer }[] } {
  return { headers: Object.entries(h).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
}

/** The closed- and open-loop schedules over any `one()` (one whole exchange → added latency in ms). */
class LoopDriver {
  constructor(private readonly d: { one(): Promise<number>; close(): void }) {}

  async closedLoop(total: number, concurrency: number): Promise<{ seconds: number; latencies: number[] }> {
    const latencies: number[] = [];
    let started = 0;
    const t0 = performance.now();
    const worker = async (): Promise<void> => {
      while (started < total) {
        started++;
        latencies.push(await this.d.one());
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { seconds: (performance.now() - t0) / 1000, latencies };
  }

  async openLoop(rate: number, seconds: number): Promise<{ latencies: number[]; achievedRate: number; maxInFlight: number }> {
    const latencies: number[] = [];
    const total = Math.round(rate * seconds);
    const pending: Promise<void>[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const t0 = performance.now();
    let sent = 0;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      for (; sent < due; sent++) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        pending.push(
          this.d.one().then((l) => {
            inFlight--;
            latencies.push(l);
          }),
        );
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    const sendSeconds = (performance.now() - t0) / 1000;
    await Promise.all(pending);
    return { latencies, achievedRate: total / sendSeconds, maxInFlight };
  }

  close(): void {
    this.d.close();
  }
}

class Driver {
  private readonly clients: grpc.Client[];
  private readonly ser: (m: ProcessingRequest) => Buffer;
  private readonly de: (b: Buffer) => ProcessingResponse;
  private n = 0;
  private readonly filler: string;
  private readonly respHeaders: ProcessingRequest;
  private readonly respBody: ProcessingRequest;

  constructor(port: number, channels: number) {
    const def = loadProtos().extProcService.Process!;
    this.ser = def.requestSerialize as (m: ProcessingRequest) => Buffer;
    this.de = def.responseDeserialize as (b: Buffer) => ProcessingResponse;
    // Distinct channel args force distinct connections (like several Envoy workers).
    this.clients = Array.from({ length: channels }, (_, i) => new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'kvroute.channel': i, 'grpc.enable_channelz': 0 }));
    this.filler = 'lorem ipsum dolor sit amet '.repeat(Math.ceil(PROMPT_BYTES / 27)).slice(0, PROMPT_BYTES);
    this.respHeaders = { response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) } };
    this.respBody = { response_body: { body: Buffer.from('{"id":"x","model":"m","choices":[{"text":"ok"}],"usage":{"prompt_tokens":2048,"completion_tokens":16}}'), end_of_stream: true } };
  }

  /** One whole exchange; resolves with the added latency in ms. */
  one(): Promise<number> {
    const k = this.n++;
    const call = this.clients[k % this.clients.length]!.makeBidiStreamRequest(`/${ServiceNames.extProc}/Process`, this.ser, this.de);
    const body = Buffer.from(JSON.stringify({ model: 'm', prompt: `${k} ${this.filler}`.slice(0, PROMPT_BYTES), max_tokens: 16 }));
    return new Promise((resolve, reject) => {
      let sentAt = 0;
      let latency = -1;
      let got = 0;
      call.on('data', (r: ProcessingResponse) => {
        got++;
        if (r.immediate_response) reject(new Error(`immediate response ${r.immediate_response.status?.code}`));
        if (got === 1) latency = performance.now() - sentAt;
        if (r.request_body?.response?.body_mutation?.streamed_response?.end_of_stream) {
          call.write(this.respHeaders);
          call.write(this.respBody);
        }
        if (r.response_body) call.end();
      });
      call.on('status', (s: grpc.StatusObject) => (s.code === 0 && latency >= 0 ? resolve(latency) : reject(new Error(`status ${s.code} ${s.details}`))));
      call.on('error', () => undefined);
      call.write({
        request_headers: { headers: headerMap({ ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json', 'x-request-id': `r${k}` }) },
        protocol_config: { request_body_mode: 4, response_body_mode: 4 },
      });
      sentAt = performance.now();
      call.write({ request_body: { body, end_of_stream: true } });
    });
  }

  private readonly loops = new LoopDriver(this);

  closedLoop(total: number, concurrency: number): Promise<{ seconds: number; latencies: number[] }> {
    return this.loops.closedLoop(total, concurrency);
  }

  openLoop(rate: number, seconds: number): Promise<{ latencies: number[]; achievedRate: number; maxInFlight: number }> {
    return this.loops.openLoop(rate, seconds);
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function summary(lat: number[]): string {
  const s = [...lat].sort((a, b) => a - b);
  return `p50 ${pct(s, 50).toFixed(3)} ms, p90 ${pct(s, 90).toFixed(3)} ms, p99 ${pct(s, 99).toFixed(3)} ms, max ${s[s.length - 1]!.toFixed(3)} ms`;
}

const mb = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;

async function main(): Promise<void> {
  await layerOnly(2000);
  const layerUs = await layerOnly(10_000);
  console.log(`protocol layer alone (ExtProcStream, no gRPC, same exchange): ${layerUs.toFixed(0)} µs CPU/stream`);
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve', ...process.argv.slice(2)], {
    // KVROUTE_BENCH_CPU_PROF=<dir> writes a V8 CPU profile of the server process.
    execArgv: [
      ...process.execArgv,
      '--expose-gc',
      ...(process.env.KVROUTE_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.KVROUTE_BENCH_CPU_PROF}`] : []),
      // KVROUTE_BENCH_SERVER_FLAGS="--trace-gc ..." passes node flags to the server process.
      ...(process.env.KVROUTE_BENCH_SERVER_FLAGS ? process.env.KVROUTE_BENCH_SERVER_FLAGS.split(' ').filter((f) => f !== '') : []),
    ],
  });
  const next = (): Promise<ToParent> => new Promise((r) => child.once('message', (m: ToParent) => r(m)));
  const { port } = (await next()) as { port: number };
  const rss = async (): Promise<Sample> => {
    const p = next();
    child.send('rss');
    return (await p) as Sample;
  };
  const cpuPer = (a: Sample, b: Sample, n: number): string => {
    const us = (b.cpuUs - a.cpuUs) / n;
    const d = b.decisions - a.decisions;
    const share = (x: number): string => `${((100 * x) / Math.max(1, d)).toFixed(1)}%`;
    return (
      `server CPU ${us.toFixed(0)} µs/stream (≈ ${(1e6 / us).toFixed(0)} streams/s per fully available core); ` +
      `server-side decision (body complete → reply) ≤ 1 ms: ${share(b.decisionsLe1ms - a.decisionsLe1ms)}, ≤ 2 ms: ${share(b.decisionsLe2ms - a.decisionsLe2ms)}`
    );
  };
  const clientCpu = (): number => {
    const c = process.cpuUsage();
    return c.user + c.system;
  };
  const driver: Pick<Driver, 'closedLoop' | 'openLoop' | 'close'> = DRIVER === 'h2' ? new LoopDriver(new H2Driver({ port, connections: 4, promptBytes: PROMPT_BYTES })) : new Driver(port, 4);
  console.log(`driver: ${DRIVER}`);
  const m0 = await rss();
  console.log(`ext_proc bench: ${PROMPT_BYTES}-byte prompts, ${ENDPOINTS} endpoints, server pid ${child.pid} on 127.0.0.1:${port}`);
  console.log(`server RSS at start: ${mb(m0.rss)} (heap ${mb(m0.heap)})`);

  await driver.closedLoop(2000, 64);
  const m1 = await rss();
  console.log(`server RSS after 2,000-stream warm-up (after GC): ${mb(m1.rss)} (heap ${mb(m1.heap)})`);

  const c1 = clientCpu();
  const tp = await driver.closedLoop(STREAMS, CONCURRENCY);
  const m2 = await rss();
  const clientUs = (clientCpu() - c1) / STREAMS;
  console.log(`closed loop: ${STREAMS} streams at concurrency ${CONCURRENCY} in ${tp.seconds.toFixed(2)} s = ${(STREAMS / tp.seconds).toFixed(0)} streams/s; added latency ${summary(tp.latencies)}`);
  console.log(`  ${cpuPer(m1, m2, STREAMS)}; driver (Envoy stand-in, ${DRIVER}) CPU ${clientUs.toFixed(0)} µs/stream; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} cores`);
  console.log(`server RSS after ${STREAMS} more streams: ${mb(m2.rss)} (heap ${mb(m2.heap)}; growth since warm-up ${mb(m2.rss - m1.rss)})`);

  let prev = m2;
  for (const rate of RATES) {
    const ol = await driver.openLoop(rate, SECONDS);
    console.log(`open loop: ${rate} streams/s offered (${ol.achievedRate.toFixed(0)} achieved) for ${SECONDS} s, max in flight ${ol.maxInFlight}; added latency ${summary(ol.latencies)}`);
    const m = await rss();
    console.log(`  ${cpuPer(prev, m, ol.latencies.length)}`);
    prev = m;
  }
  const m3 = await rss();
  console.log(`server RSS at the end: ${mb(m3.rss)} (heap ${mb(m3.heap)})`);
  driver.close();
  child.send('stop');
  await new Promise((r) => child.once('exit', r));
}

if (process.argv.includes('--serve')) void serve();
else
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
