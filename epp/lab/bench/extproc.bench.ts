/**
 * ext_proc load test: the EPP's gRPC server (real ExtProcServer, real protos, a trivial
 * round-robin director over 16 endpoints) in a child process, driven over loopback h2c by this
 * process playing Envoy in FULL_DUPLEX_STREAMED mode. Each stream is a whole exchange:
 *   request headers → 8 KB completions body (end_of_stream) → [EPP: headers response + body]
 *   → response headers → JSON response body with usage → [EPP: response replies] → half-close.
 *
 * A second child, the floor (lab/bench/support/null-extproc.ts), serves the same exchange with zero
 * work: it replays the EPP's recorded reply bytes. By default it runs on the EPP's own transport
 * (@grpc/grpc-js's Server, same options), so EPP − floor is the EPP's own work; `--floor h2` serves
 * it on bare node:http2 instead, which shows what grpc-js costs on top of HTTP/2. Run side by side
 * with the EPP (open-loop runs interleaved, order swapped each round), it shows what this machine,
 * loopback, the transport and the driver cost by themselves, so the EPP's own share can be read off.
 *
 * Reported:
 *   - closed-loop throughput (streams/s) at a fixed concurrency, EPP and floor;
 *   - open-loop latency at fixed arrival rates, pooled over `--rounds` runs per target: the added
 *     latency = time from sending the final request-body frame to receiving the headers response
 *     (includes both HTTP/2 stacks and loopback; the client shares the machine), for the EPP, the
 *     floor, and their difference per percentile; server CPU per stream; the EPP's own decision
 *     time (body complete → reply, from its histogram); GC pauses of each server and of the driver;
 *   - the server's RSS at start, after warm-up and after the throughput run.
 *
 *   npx tsx bench/extproc.bench.ts [--streams 20000] [--concurrency 128] [--rates 250,1000] [--seconds 5]
 *                                  [--rounds 3] [--prompt-bytes 8192] [--endpoints 16] [--driver h2|grpc-js]
 *                                  [--floor grpc-js|h2] [--h2load]
 *
 * The driver plays Envoy. `h2` (default, bench/support/h2-driver.ts) speaks gRPC over node:http2
 * with the fixed messages serialized once, like Envoy's C++ client it costs little CPU per stream;
 * `grpc-js` uses @grpc/grpc-js's client (≈ 330–400 µs CPU per stream, competing with the EPP for
 * the same 2 cores). Both check every reply. The driver re-runs itself with
 * `--max-semi-space-size=1 --no-allocation-site-pretenuring` (KVROUTE_BENCH_DRIVER_FLAGS): Envoy has
 * no GC, and with V8's defaults the driver's own 4–16 ms scavenges would land in the measured
 * latency. Both servers are started with the node flags of `kvroute-epp serve` (the contract's
 * EppServingV8Flags, on the node command line as in the image).
 * KVROUTE_BENCH_SERVER_FLAGS passes node flags to the EPP's process, KVROUTE_BENCH_CPU_PROF=<dir>
 * writes its CPU profile.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadProtos, ServiceNames } from '../../src/extproc/proto.js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/extproc/types.js';
import type { InferenceRequest, PickResult, RequestDirector } from '../../src/extproc/director.js';
import { ExtProcServer } from '../../src/extproc/grpc-server.js';
import { benchExchange, frame, H2Driver } from './support/h2-driver.js';
import { recordReplies, startGrpcNullExtProc, startNullExtProc } from './support/null-extproc.js';
import { Registry } from 'prom-client';
import { combineObservers, ExtProcLogging, ExtProcMetrics } from '../../src/extproc/observer.js';
import { ExtProcStream } from '../../src/extproc/stream.js';
import { silentLogger } from '../../src/util/logger.js';
import { EppServingV8Flags } from '../../src/contract/names.js';

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
/** Open-loop runs per rate and target (EPP and floor alternate). */
const ROUNDS = arg('rounds', 3);
/** Also drive both targets with nghttp2's h2load (see nativeClientRuns). */
const H2LOAD = process.argv.includes('--h2load');
const PROMPT_BYTES = arg('prompt-bytes', 8192);
const ENDPOINTS = arg('endpoints', 16);
const DRIVER = (() => {
  const i = process.argv.indexOf('--driver');
  const d = i >= 0 ? process.argv[i + 1] : 'h2';
  if (d !== 'h2' && d !== 'grpc-js') throw new Error(`--driver ${d}: expected h2 or grpc-js`);
  return d;
})();
/** The floor's transport: `grpc-js` (default, the EPP's) or `h2` (bare node:http2). */
const FLOOR = (() => {
  const i = process.argv.indexOf('--floor');
  const f = i >= 0 ? process.argv[i + 1] : 'grpc-js';
  if (f !== 'h2' && f !== 'grpc-js') throw new Error(`--floor ${f}: expected grpc-js or h2`);
  return f;
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
  /** GC pauses since the previous sample. */
  gc: GcStats;
}

/** Stop-the-world GC pauses seen by a PerformanceObserver: count, sum and longest (ms). */
interface GcStats {
  n: number;
  totalMs: number;
  maxMs: number;
}

/**
 * Collects this process's GC pauses; `take()` returns and resets them. `forced(fn)` runs a GC the
 * bench asked for (to read retained memory) and leaves its pause out: entries arrive
 * asynchronously, so it is recognised by its start time.
 */
function gcRecorder(): { take(): GcStats; forced(fn: () => void): void } {
  let st: GcStats = { n: 0, totalMs: 0, maxMs: 0 };
  const skip: [number, number][] = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (skip.some(([a, b]) => e.startTime >= a && e.startTime <= b)) continue;
      st.n++;
      st.totalMs += e.duration;
      if (e.duration > st.maxMs) st.maxMs = e.duration;
    }
  }).observe({ entryTypes: ['gc'] });
  return {
    take(): GcStats {
      const r = st;
      st = { n: 0, totalMs: 0, maxMs: 0 };
      return r;
    },
    forced(fn: () => void): void {
      const a = performance.now();
      fn();
      skip.push([a, performance.now()]);
    },
  };
}

const gcText = (g: GcStats, seconds: number): string => `${g.n} pauses, ${g.totalMs.toFixed(0)} ms in all (${((100 * g.totalMs) / (seconds * 1000)).toFixed(1)} %), longest ${g.maxMs.toFixed(1)} ms`;

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

/** Child process: the EPP's ext_proc server (`--serve`), or the do-nothing floor server (`--serve-floor`). */
async function serve(floor: boolean): Promise<void> {
  const gc = gcRecorder();
  const endpoints = Array.from({ length: ENDPOINTS }, (_, k) => `10.0.${k >> 8}.${k & 255}:8000`);
  let port: number;
  let stop: () => Promise<unknown>;
  let decisionsOf: () => Promise<Pick<Sample, 'decisions' | 'decisionsLe1ms' | 'decisionsLe2ms'>>;
  if (floor) {
    const replies = await recordReplies(benchExchange(PROMPT_BYTES, 0), endpoints[0]!);
    const server = FLOOR === 'grpc-js' ? await startGrpcNullExtProc(replies) : await startNullExtProc(replies);
    port = server.port;
    stop = () => server.close();
    decisionsOf = () => Promise.resolve({ decisions: 0, decisionsLe1ms: 0, decisionsLe2ms: 0 });
  } else {
    const server = new ExtProcServer({ director: new RoundRobin(endpoints) });
    port = (await server.start({ grpcPort: 0, healthPort: null, host: '127.0.0.1' })).grpcPort;
    stop = () => server.stop(1000);
    decisionsOf = async () => {
      const values = (await server.metrics.decision.get()).values as { value: number; labels: Record<string, string | number>; metricName?: string }[];
      const bucket = (le: number): number => values.find((v) => v.metricName?.endsWith('_bucket') && v.labels.le === le)?.value ?? 0;
      return { decisions: values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0, decisionsLe1ms: bucket(0.001), decisionsLe2ms: bucket(0.002) };
    };
  }
  process.send!({ port } satisfies ToParent);
  process.on('message', (m: string) => {
    if (m === 'rss') {
      void sample();
    } else if (m === 'stop') {
      void stop().then(() => process.exit(0));
    }
  });
  async function sample(): Promise<void> {
    const decisions = await decisionsOf();
    // GC entries arrive asynchronously: let the last ones in before taking them.
    await new Promise((r) => setImmediate(r));
    const pauses = gc.take();
    // CPU before the forced GC below, which is the bench's, not the server's.
    const cpu = process.cpuUsage();
    // Retained memory, not garbage waiting for the next GC (the child runs with --expose-gc).
    gc.forced(() => (globalThis as { gc?: () => void }).gc?.());
    const mu = process.memoryUsage();
    process.send!({ rss: mu.rss, heap: mu.heapUsed, cpuUs: cpu.user + cpu.system, ...decisions, gc: pauses } satisfies ToParent);
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

/**
 * Node flags for the driver (this process). The driver stands in for Envoy, which has no GC; with
 * V8's default young generation (16 MiB semi-spaces) its own scavenges pause it for 4–16 ms on this
 * machine, and every pause lands in the measured latency. 1 MiB semi-spaces keep its pauses short;
 * no allocation-site pretenuring for the reason in src/util/v8-tuning.ts.
 * KVROUTE_BENCH_DRIVER_FLAGS overrides them ('' = none).
 */
const DRIVER_FLAGS = (process.env.KVROUTE_BENCH_DRIVER_FLAGS ?? '--max-semi-space-size=1 --no-allocation-site-pretenuring').split(' ').filter((f) => f !== '');

/** Re-runs this script with DRIVER_FLAGS when they are not in effect yet; returns false when it did. */
function withDriverFlags(): boolean {
  if (DRIVER_FLAGS.length === 0 || process.env.KVROUTE_BENCH_DRIVER === '1') return true;
  const r = spawnSync(process.execPath, [...DRIVER_FLAGS, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, KVROUTE_BENCH_DRIVER: '1' },
  });
  process.exitCode = r.status ?? 1;
  return false;
}

interface Target {
  readonly name: string;
  readonly port: number;
  readonly child: ChildProcess;
  readonly driver: Pick<Driver, 'closedLoop' | 'openLoop' | 'close'>;
  sample(): Promise<Sample>;
}

async function startTarget(name: string, floor: boolean): Promise<Target> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [floor ? '--serve-floor' : '--serve', ...process.argv.slice(2)], {
    // KVROUTE_BENCH_CPU_PROF=<dir> writes a V8 CPU profile of the server process.
    execArgv: [
      // the driver's own flags are not the server's
      ...process.execArgv.filter((f) => !DRIVER_FLAGS.includes(f)),
      // the flags of `kvroute-epp serve`, for the floor too (same process conditions)
      ...EppServingV8Flags,
      '--expose-gc',
      ...(process.env.KVROUTE_BENCH_CPU_PROF && !floor ? ['--cpu-prof', `--cpu-prof-dir=${process.env.KVROUTE_BENCH_CPU_PROF}`] : []),
      // KVROUTE_BENCH_SERVER_FLAGS="--trace-gc ..." passes node flags to the EPP's process (not the floor's).
      ...(process.env.KVROUTE_BENCH_SERVER_FLAGS && !floor ? process.env.KVROUTE_BENCH_SERVER_FLAGS.split(' ').filter((f) => f !== '') : []),
    ],
  });
  const next = (): Promise<ToParent> => new Promise((r) => child.once('message', (m: ToParent) => r(m)));
  const { port } = (await next()) as { port: number };
  const driver = DRIVER === 'h2' ? new LoopDriver(new H2Driver({ port, connections: 4, promptBytes: PROMPT_BYTES })) : new Driver(port, 4);
  return {
    name,
    port,
    child,
    driver,
    sample: async () => {
      const p = next();
      child.send('rss');
      return (await p) as Sample;
    },
  };
}

/**
 * `--h2load`: the same targets driven by nghttp2's h2load (C, no GC; Debian package nghttp2-client),
 * open loop at each rate (`--rps` per connection, 4 connections), EPP and floor interleaved. h2load
 * cannot wait for a reply before sending the next message, so each stream carries the whole
 * exchange up front (headers, body, response headers, response body, half-close); the latency is
 * its own: stream opened → trailers received.
 */
async function nativeClientRuns(epp: Target, floor: Target): Promise<void> {
  const which = spawnSync('h2load', ['--version'], { encoding: 'utf8' });
  if (which.status !== 0) {
    console.log('--h2load: h2load not found (apt-get install nghttp2-client); skipped');
    return;
  }
  const ser = loadProtos().extProcService.Process!.requestSerialize as (m: ProcessingRequest) => Buffer;
  const dir = mkdtempSync(join(tmpdir(), 'kvroute-h2load-'));
  try {
    const data = join(dir, 'exchange.bin');
    writeFileSync(
      data,
      Buffer.concat(benchExchange(PROMPT_BYTES, 0).map((m) => frame(ser(m)))),
    );
    for (const rate of RATES) {
      const lat = new Map<Target, number[]>([
        [epp, []],
        [floor, []],
      ]);
      let failed = 0;
      for (let round = 0; round < ROUNDS; round++) {
        for (const t of round % 2 === 0 ? [epp, floor] : [floor, epp]) {
          const log = join(dir, `log-${round}-${t.name}.tsv`);
          const r = spawnSync(
            'h2load',
            [
              ...['-n', String(rate * SECONDS), '-c', '4', '-m', '100', '--rps', String(rate / 4), '-d', data, `--log-file=${log}`],
              ...['-H', 'content-type: application/grpc', '-H', 'te: trailers', `http://127.0.0.1:${t.port}/${ServiceNames.extProc}/Process`],
            ],
            { encoding: 'utf8' },
          );
          const m = /(\d+) succeeded, (\d+) failed, (\d+) errored/.exec(r.stdout);
          if (r.status !== 0 || !m) throw new Error(`h2load failed (exit ${r.status}): ${r.stderr || r.stdout}`);
          failed += Number(m[2]) + Number(m[3]);
          // columns: start (µs since epoch), HTTP status (-1 = failed stream), µs until the end of the response
          for (const line of readFileSync(log, 'utf8').split('\n')) {
            const [, status, us] = line.split('\t');
            if (status === '200') lat.get(t)!.push(Number(us) / 1000);
          }
        }
      }
      console.log(`h2load (C client, no GC): ${rate} streams/s for ${ROUNDS} × ${SECONDS} s per target, whole exchange (stream opened → trailers)${failed > 0 ? `, ${failed} streams failed` : ''}`);
      for (const t of [epp, floor]) console.log(`  ${t.name.padEnd(5)} latency ${summary(lat.get(t)!)}`);
      const se = [...lat.get(epp)!].sort((a, b) => a - b);
      const sf = [...lat.get(floor)!].sort((a, b) => a - b);
      console.log(`  EPP − floor: p50 ${(pct(se, 50) - pct(sf, 50)).toFixed(3)} ms, p90 ${(pct(se, 90) - pct(sf, 90)).toFixed(3)} ms, p99 ${(pct(se, 99) - pct(sf, 99)).toFixed(3)} ms`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const driverGc = gcRecorder();
  await layerOnly(2000);
  const layerUs = await layerOnly(10_000);
  console.log(`protocol layer alone (ExtProcStream, no gRPC, same exchange): ${layerUs.toFixed(0)} µs CPU/stream`);
  const epp = await startTarget('EPP', false);
  const floor = await startTarget('floor', true);
  const cpuPer = (a: Sample, b: Sample, n: number): string => {
    const us = (b.cpuUs - a.cpuUs) / n;
    const d = b.decisions - a.decisions;
    const share = (x: number): string => `${((100 * x) / Math.max(1, d)).toFixed(1)}%`;
    return (
      `server CPU ${us.toFixed(0)} µs/stream (≈ ${(1e6 / us).toFixed(0)} streams/s per fully available core)` +
      (d > 0 ? `; server-side decision (body complete → reply) ≤ 1 ms: ${share(b.decisionsLe1ms - a.decisionsLe1ms)}, ≤ 2 ms: ${share(b.decisionsLe2ms - a.decisionsLe2ms)}` : '')
    );
  };
  const clientCpu = (): number => {
    const c = process.cpuUsage();
    return c.user + c.system;
  };
  console.log(`driver: ${DRIVER} (node flags: ${DRIVER_FLAGS.join(' ') || 'none'}); floor: a do-nothing ext_proc server on ${FLOOR === 'grpc-js' ? 'grpc-js (the EPP\'s transport)' : 'bare node:http2'} sending the EPP's recorded replies (lab/bench/support/null-extproc.ts)`);
  const m0 = await epp.sample();
  console.log(`ext_proc bench: ${PROMPT_BYTES}-byte prompts, ${ENDPOINTS} endpoints, EPP pid ${epp.child.pid}, floor pid ${floor.child.pid}`);
  console.log(`server RSS at start: ${mb(m0.rss)} (heap ${mb(m0.heap)})`);

  await epp.driver.closedLoop(2000, 64);
  await floor.driver.closedLoop(2000, 64);
  const m1 = await epp.sample();
  await floor.sample();
  console.log(`server RSS after 2,000-stream warm-up (after GC): ${mb(m1.rss)} (heap ${mb(m1.heap)})`);

  const c1 = clientCpu();
  const tp = await epp.driver.closedLoop(STREAMS, CONCURRENCY);
  const m2 = await epp.sample();
  const clientUs = (clientCpu() - c1) / STREAMS;
  console.log(`closed loop: ${STREAMS} streams at concurrency ${CONCURRENCY} in ${tp.seconds.toFixed(2)} s = ${(STREAMS / tp.seconds).toFixed(0)} streams/s; added latency ${summary(tp.latencies)}`);
  console.log(`  ${cpuPer(m1, m2, STREAMS)}; driver (Envoy stand-in, ${DRIVER}) CPU ${clientUs.toFixed(0)} µs/stream; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} cores`);
  console.log(`server RSS after ${STREAMS} more streams: ${mb(m2.rss)} (heap ${mb(m2.heap)}; growth since warm-up ${mb(m2.rss - m1.rss)})`);
  const ftp = await floor.driver.closedLoop(STREAMS, CONCURRENCY);
  console.log(`  floor, same closed loop: ${(STREAMS / ftp.seconds).toFixed(0)} streams/s`);

  // Open loop: EPP and floor runs interleaved (order swapped every round), latencies pooled per target.
  const samples = new Map<Target, Sample>([
    [epp, m2],
    [floor, await floor.sample()],
  ]);
  for (const rate of RATES) {
    const pooled = new Map<Target, { lat: number[]; achieved: number[]; maxInFlight: number; cpuUs: number; streams: number; dec: [number, number, number]; serverGc: GcStats; driverGc: GcStats }>();
    for (const t of [epp, floor]) pooled.set(t, { lat: [], achieved: [], maxInFlight: 0, cpuUs: 0, streams: 0, dec: [0, 0, 0], serverGc: { n: 0, totalMs: 0, maxMs: 0 }, driverGc: { n: 0, totalMs: 0, maxMs: 0 } });
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of round % 2 === 0 ? [epp, floor] : [floor, epp]) {
        driverGc.take();
        const ol = await t.driver.openLoop(rate, SECONDS);
        await new Promise((r) => setImmediate(r)); // GC entries arrive asynchronously
        const dg = driverGc.take();
        const m = await t.sample();
        const prev = samples.get(t)!;
        samples.set(t, m);
        const p = pooled.get(t)!;
        for (const l of ol.latencies) p.lat.push(l);
        p.achieved.push(ol.achievedRate);
        p.maxInFlight = Math.max(p.maxInFlight, ol.maxInFlight);
        p.cpuUs += m.cpuUs - prev.cpuUs;
        p.streams += ol.latencies.length;
        p.dec[0] += m.decisions - prev.decisions;
        p.dec[1] += m.decisionsLe1ms - prev.decisionsLe1ms;
        p.dec[2] += m.decisionsLe2ms - prev.decisionsLe2ms;
        for (const [acc, g] of [
          [p.serverGc, m.gc],
          [p.driverGc, dg],
        ] as const) {
          acc.n += g.n;
          acc.totalMs += g.totalMs;
          acc.maxMs = Math.max(acc.maxMs, g.maxMs);
        }
      }
    }
    const seconds = ROUNDS * SECONDS;
    console.log(`open loop: ${rate} streams/s offered for ${ROUNDS} × ${SECONDS} s per target, EPP and floor interleaved`);
    for (const t of [epp, floor]) {
      const p = pooled.get(t)!;
      const us = p.cpuUs / p.streams;
      const decisions = p.dec[0] > 0 ? `; decision (body complete → reply) ≤ 1 ms: ${((100 * p.dec[1]) / p.dec[0]).toFixed(1)}%, ≤ 2 ms: ${((100 * p.dec[2]) / p.dec[0]).toFixed(1)}%` : '';
      console.log(`  ${t.name.padEnd(5)} latency ${summary(p.lat)} (achieved ${Math.min(...p.achieved).toFixed(0)}–${Math.max(...p.achieved).toFixed(0)}/s, max in flight ${p.maxInFlight})`);
      console.log(`        server CPU ${us.toFixed(0)} µs/stream${decisions}; server GC ${gcText(p.serverGc, seconds)}; driver GC ${gcText(p.driverGc, seconds)}`);
    }
    const se = [...pooled.get(epp)!.lat].sort((a, b) => a - b);
    const sf = [...pooled.get(floor)!.lat].sort((a, b) => a - b);
    console.log(`  EPP − floor: p50 ${(pct(se, 50) - pct(sf, 50)).toFixed(3)} ms, p90 ${(pct(se, 90) - pct(sf, 90)).toFixed(3)} ms, p99 ${(pct(se, 99) - pct(sf, 99)).toFixed(3)} ms`);
  }
  if (H2LOAD) await nativeClientRuns(epp, floor);
  const m3 = await epp.sample();
  console.log(`server RSS at the end: ${mb(m3.rss)} (heap ${mb(m3.heap)})`);
  for (const t of [epp, floor]) {
    t.driver.close();
    t.child.send('stop');
  }
  await Promise.all([epp, floor].map((t) => new Promise((r) => (t.child.exitCode !== null ? r(null) : t.child.once('exit', r)))));
}

if (process.argv.includes('--serve')) void serve(false);
else if (process.argv.includes('--serve-floor')) void serve(true);
else if (withDriverFlags())
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
