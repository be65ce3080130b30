/**
 * The drill's stack, as real processes: N simulated vLLM pods (lab/sim/server, each on its own
 * loopback address 127.0.0.(11+i) so every pod has the same replay port, as in a cluster),
 * `kvroute-epp serve --config FILE` (restartable, memory or Redis index), a real redis-server when
 * the Redis index is used, and two local gateways in this process over real ext_proc: one
 * FailOpen (the chart's default; the drill's main traffic) and one FailClose (a probe during EPP
 * restarts).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { DemoGateway } from '../demo/gateway.js';
import { freePort, ProcessGroup, type ChildHandle } from '../demo/procs.js';
import { EPP_DIR } from '../demo/run.js';
import { startRedisServer, type RedisServer } from '../../testkit/redis-server.js';

export const DRILL_MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

export interface StackOptions {
  readonly pods: number;
  readonly tokenizerDir: string;
  readonly numBlocks: number;
  readonly speedup: number;
  /** Working directory (config file, snapshot). */
  readonly dir: string;
  /** Admission objectives of the EPP config. */
  readonly objectives: Readonly<Record<string, number>>;
  readonly log: (line: string) => void;
}

export type IndexKind = 'memory' | 'redis';

interface PodSlot {
  readonly host: string;
  readonly port: number;
  child: ChildHandle;
  /** The drill stopped it on purpose (its exit is no crash). */
  expectedExit: boolean;
}

/** Resident set size of a process, MiB (Linux /proc). */
export function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

export class DrillStack {
  readonly group = new ProcessGroup();
  readonly pods: PodSlot[] = [];
  readonly replayPort: number;
  readonly zmqPort: number;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly configFile: string;
  readonly snapshotFile: string;
  redis: RedisServer | undefined;
  epp: ChildHandle | undefined;
  private eppExpectedExit = false;
  index: IndexKind = 'memory';
  gatewayOpen!: DemoGateway;
  gatewayClosed!: DemoGateway;
  openPort = 0;
  closedPort = 0;
  /** Unexpected exits (crashes) of the EPP and the pods, with the time they happened. */
  readonly crashes: { name: string; exit: number | string; at: number }[] = [];
  eppRestarts = 0;

  private constructor(
    readonly o: StackOptions,
    ports: { replay: number; zmq: number; grpc: number; http: number },
  ) {
    this.replayPort = ports.replay;
    this.zmqPort = ports.zmq;
    this.grpcPort = ports.grpc;
    this.httpPort = ports.http;
    this.configFile = join(o.dir, 'epp.yaml');
    this.snapshotFile = join(o.dir, 'index.snapshot');
  }

  static async start(o: StackOptions): Promise<DrillStack> {
    const s = new DrillStack(o, { replay: await freePort(), zmq: await freePort(), grpc: await freePort(), http: await freePort() });
    const podPorts = await Promise.all(Array.from({ length: o.pods }, () => freePort()));
    s.plannedAddresses = podPorts.map((port, i) => `127.0.0.${11 + i}:${port}`);
    s.writeConfig(s.config('memory'));
    await Promise.all([s.startEpp(), ...podPorts.map((port, i) => s.startPod(`127.0.0.${11 + i}`, port, i))]);
    s.gatewayOpen = new DemoGateway({ policy: 'kvroute', pods: s.addresses, eppAddress: `127.0.0.1:${s.grpcPort}`, failureMode: 'FailOpen', extprocTimeoutMs: 5000 });
    s.gatewayClosed = new DemoGateway({ policy: 'kvroute', pods: s.addresses, eppAddress: `127.0.0.1:${s.grpcPort}`, failureMode: 'FailClose', extprocTimeoutMs: 5000 });
    s.openPort = await s.gatewayOpen.listen(0);
    s.closedPort = await s.gatewayClosed.listen(0);
    return s;
  }

  get addresses(): string[] {
    return [...this.plannedAddresses];
  }

  get eppMetricsUrl(): string {
    return `http://127.0.0.1:${this.httpPort}/metrics`;
  }

  /**
   * The EPP config for an index backend (objectives, snapshot and replay included; `warm: false`
   * leaves out the snapshot and the pods' replay port: an EPP restart then starts cold).
   */
  config(index: IndexKind, warm = true): Record<string, unknown> {
    return {
      model: DRILL_MODEL,
      logLevel: 'info',
      server: { grpcPort: this.grpcPort, healthPort: 0, httpPort: this.httpPort, host: '127.0.0.1' },
      events: { mode: 'bind', zmqBind: `tcp://127.0.0.1:${this.zmqPort}`, ...(warm ? { podReplayPort: this.replayPort } : {}) },
      discovery: { mode: 'static', endpoints: this.addressesFor().map((address, i) => ({ address, name: `pod-${i}` })) },
      tokenizer: { path: this.o.tokenizerDir, workers: 1 },
      index:
        index === 'memory'
          ? { backend: 'memory', memoryBudgetBytes: 64 * 1024 * 1024, ...(warm ? { snapshot: { path: this.snapshotFile, intervalMs: 5000 } } : {}) }
          : { backend: 'redis', url: this.redis?.url ?? 'redis://127.0.0.1:1', commandTimeoutMs: 50 },
      admission: { objectives: { ...this.o.objectives }, queueDepthThreshold: 4, kvCacheUtilThreshold: 0.8, watchObjectives: false },
    };
  }

  /** Pod addresses, known before the pods start. */
  private plannedAddresses: string[] = [];
  private addressesFor(): string[] {
    return this.plannedAddresses;
  }

  writeConfig(cfg: Record<string, unknown>): void {
    writeFileSync(this.configFile, stringify(cfg));
  }

  /** Writes raw text as the config file (the invalid-reload fault). */
  writeConfigText(text: string): void {
    writeFileSync(this.configFile, text);
  }

  private watch(child: ChildHandle, expected: () => boolean): void {
    void child.exited.then((exit) => {
      if (!expected() && !this.stopping) {
        this.crashes.push({ name: child.name, exit, at: Date.now() });
        this.o.log(`CRASH: ${child.name} exited (${exit}) unexpectedly; output:\n${child.output().slice(-1500)}`);
      }
    });
  }

  private stopping = false;

  async startEpp(): Promise<void> {
    const { child } = await this.group.start({
      name: `epp-${this.eppRestarts}`,
      script: 'src/cli/run.ts',
      cwd: EPP_DIR,
      ready: /kvroute-epp started/,
      readyTimeoutMs: 60_000,
      args: ['serve', '--config', this.configFile],
    });
    this.eppExpectedExit = false;
    this.epp = child;
    this.watch(child, () => this.eppExpectedExit);
  }

  /** Graceful restart (SIGTERM, wait, start again with the current config file); ms until ready. */
  async restartEpp(): Promise<{ downMs: number; stopMs: number }> {
    const t0 = Date.now();
    const old = this.epp;
    if (old) {
      this.eppExpectedExit = true;
      old.proc.kill('SIGTERM');
      const t = setTimeout(() => old.proc.kill('SIGKILL'), 15_000);
      await old.exited;
      clearTimeout(t);
    }
    const stopMs = Date.now() - t0;
    this.eppRestarts++;
    await this.startEpp();
    return { downMs: Date.now() - t0, stopMs };
  }

  /** Switches the EPP's index backend (a restart with a new config). */
  async switchIndex(index: IndexKind): Promise<void> {
    if (index === 'redis' && !this.redis) this.redis = await startRedisServer();
    this.index = index;
    this.writeConfig(this.config(index));
    await this.restartEpp();
  }

  private async startPod(host: string, port: number, i: number): Promise<void> {
    const { child } = await this.group.start({
      name: `pod-${i}`,
      script: 'lab/sim/server/main.ts',
      cwd: EPP_DIR,
      ready: /"ready":true/,
      readyTimeoutMs: 60_000,
      args: [
        '--host', host,
        '--port', String(port),
        '--tokenizer', this.o.tokenizerDir,
        '--model', DRILL_MODEL,
        '--profile', 'B',
        '--num-blocks', String(this.o.numBlocks),
        '--zmq-endpoint', `tcp://127.0.0.1:${this.zmqPort}`,
        '--topic-pod', `${host}:${port}`,
        '--replay-port', String(this.replayPort),
        '--encoding', i % 2 === 0 ? 'map' : 'array',
        '--speedup', String(this.o.speedup),
      ],
    });
    const slot: PodSlot = { host, port, child, expectedExit: false };
    this.pods[i] = slot;
    this.watch(child, () => slot.expectedExit);
  }

  /** kill -9 a pod (a crash the drill causes: not counted as one). */
  async killPod(i: number): Promise<void> {
    const p = this.pods[i] as PodSlot;
    p.expectedExit = true;
    p.child.proc.kill('SIGKILL');
    await p.child.exited;
  }

  /** Starts pod i again on the same address (its KV-event sequence restarts at 0). */
  async restartPod(i: number): Promise<void> {
    const p = this.pods[i] as PodSlot;
    await this.startPod(p.host, p.port, i);
  }

  /**
   * Sends one completion straight to pod i (no gateway, no EPP): the pod stores the prompt's blocks
   * and publishes a KV-event batch. Returns the HTTP status.
   */
  async completeOnPod(i: number, prompt: string): Promise<number> {
    const p = this.pods[i] as PodSlot;
    const r = await fetch(`http://${p.host}:${p.port}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: DRILL_MODEL, prompt, max_tokens: 1 }),
      signal: AbortSignal.timeout(30_000),
    });
    await r.arrayBuffer();
    return r.status;
  }

  async podFault(i: number, patch: { stall?: boolean; metricsHang?: boolean }): Promise<void> {
    const p = this.pods[i] as PodSlot;
    const r = await fetch(`http://${p.host}:${p.port}/sim/fault`, { method: 'POST', body: JSON.stringify(patch) });
    if (!r.ok) throw new Error(`pod-${i} refused fault ${JSON.stringify(patch)}: ${r.status} ${await r.text()}`);
  }

  async eppMetrics(): Promise<string> {
    const r = await fetch(this.eppMetricsUrl, { signal: AbortSignal.timeout(5000) });
    return r.text();
  }

  eppRssMiB(): number {
    return rssMiB(this.epp?.proc.pid);
  }

  /** Resets every pod's prefix cache (pods must be idle); used when the index backend changes. */
  async resetPodCaches(): Promise<void> {
    for (const p of this.pods) {
      for (let i = 0; ; i++) {
        const r = await fetch(`http://${p.host}:${p.port}/reset_prefix_cache`, { method: 'POST' });
        await r.arrayBuffer();
        if (r.ok) break;
        if (i > 200) throw new Error(`pod ${p.host}:${p.port} refused reset_prefix_cache (${r.status}) for 10 s`);
        await new Promise((res) => setTimeout(res, 50));
      }
    }
  }

  async stop(): Promise<{ name: string; exit: number | string; killed: boolean }[]> {
    this.stopping = true;
    await this.gatewayOpen?.close();
    await this.gatewayClosed?.close();
    const exits = await this.group.stopAll(15_000);
    await this.redis?.dispose();
    return exits;
  }
}
