/**
 * The local demo, as a function (main.ts prints it; the e2e test asserts on it): N simulated vLLM
 * pods and `kvroute-epp serve` as child processes, KV events over real ZMQ, the gateway in this
 * process, and a seeded shared-prefix chat workload run once per policy (round-robin, then
 * kvroute) with the pods' prefix caches reset in between.
 *
 * `fault` injects a misconfiguration into the simulated pods, and the EPP's diagnosis
 * (`GET /v1/diagnosis`) is read at the end:
 * - `chat-template`: the pods render chats with another chat template (a newline before the BOS
 *   token), so their tokens differ from the EPP's from the first block;
 * - `hash-seed`: the pods hash blocks with another PYTHONHASHSEED (7; the EPP uses 42);
 * - `events-off`: the last pod publishes no KV events.
 *
 * `onStarted` and `onRunning` let a caller attach to the running stack (its ports in a
 * `DemoStack`): the Prometheus end-to-end test (test/monitoring/prometheus.e2e.test.ts at the repo
 * root) starts a Prometheus scraping it before the workload and queries it after.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../sim/rng.js';
import { DESTINATION_HEADER } from './extproc-client.js';
import { DemoGateway, type GatewayPolicy } from './gateway.js';
import { freePort, ProcessGroup } from './procs.js';

/** The epp package directory. */
export const EPP_DIR = fileURLToPath(new URL('../../', import.meta.url));
/** The tokenizer both the pods and the EPP use by default (the real Llama-3.1 tokenizer). */
export const DEFAULT_TOKENIZER_DIR = fileURLToPath(new URL('../../test/data/tokenizers/llama3_1', import.meta.url));

/** Faults the demo can inject into the simulated pods. */
export const DEMO_FAULTS = ['none', 'chat-template', 'hash-seed', 'events-off'] as const;
export type DemoFault = (typeof DEMO_FAULTS)[number];

/** One finding of the EPP's `GET /v1/diagnosis`. */
export interface DemoFinding {
  readonly cause: string;
  readonly pod: string;
  readonly message: string;
}

export interface DemoOptions {
  /** Misconfiguration injected into the simulated pods. @default 'none' */
  readonly fault?: DemoFault;
  /** Simulated pods. @default 4 */
  readonly pods?: number;
  /** Requests per policy. @default 64 */
  readonly requests?: number;
  /** Distinct system prompts (shared prefixes). @default 8 */
  readonly systemPrompts?: number;
  /** Words per system prompt (≈1.2 tokens each). @default 900 */
  readonly systemWords?: number;
  /** Concurrent clients. @default 4 */
  readonly concurrency?: number;
  /** `max_tokens` per request. @default 8 */
  readonly maxTokens?: number;
  /** KV blocks per pod (small, so a pod holds only a few system prompts). @default 320 */
  readonly numBlocks?: number;
  /** Pod step-cost profile. @default 'B' */
  readonly profile?: 'A' | 'B' | 'C';
  /** Workload seed. @default 1 */
  readonly seed?: number;
  /** Pod speedup (simulated ms per wall ms). @default 1 */
  readonly speedup?: number;
  /** Tokenizer directory of pods and EPP. @default DEFAULT_TOKENIZER_DIR */
  readonly tokenizerDir?: string;
  /** Policies, in order. @default ['round-robin', 'kvroute'] */
  readonly policies?: readonly GatewayPolicy[];
  /** Progress lines. @default none */
  readonly log?: (line: string) => void;
  /** The process group (so a caller can stop it on a signal). @default a new one */
  readonly group?: ProcessGroup;
  /**
   * EPP config file passed as `kvroute-epp serve --config` (the demo's flags override its fields),
   * e.g. to configure admission objectives.
   * @default none
   */
  readonly eppConfigFile?: string;
  /**
   * Called once every process is ready, before the workload (e.g. to start a Prometheus that
   * scrapes the stack). A rejection stops the demo like any other failure.
   * @default none
   */
  readonly onStarted?: (stack: DemoStack) => Promise<void>;
  /**
   * Called after the workload (and the diagnosis read) while every process still runs, before the
   * stack is stopped (e.g. to query that Prometheus). A rejection stops the demo like any other failure.
   * @default none
   */
  readonly onRunning?: (stack: DemoStack) => Promise<void>;
}

export interface PolicyResult {
  readonly policy: GatewayPolicy;
  readonly requests: number;
  readonly errors: number;
  /** Δ vllm:prefix_cache_hits_total / Δ vllm:prefix_cache_queries_total over all pods. */
  readonly hitRate: number;
  readonly hitTokens: number;
  readonly queriedTokens: number;
  /** Requests served per pod address. */
  readonly served: Readonly<Record<string, number>>;
  /** Client-side TTFT (first SSE chunk), ms. */
  readonly ttftP50: number;
  readonly ttftP90: number;
  /** TTFT inside the pods (simulated ms: queueing + prefill, no gateway/EPP/HTTP overhead). */
  readonly podTtftP50: number;
  readonly podTtftP90: number;
  readonly wallMs: number;
}

export interface DemoResult {
  readonly fault: DemoFault;
  readonly model: string;
  /** The EPP's findings (`GET /v1/diagnosis`) after the last policy ran. */
  readonly diagnosis: readonly DemoFinding[];
  /** The EPP's HTTP port while it ran (its /metrics and /v1/diagnosis). */
  readonly eppHttpPort: number;
  readonly pods: readonly string[];
  readonly results: readonly PolicyResult[];
  /** Exit of every child after the stop. */
  readonly exits: readonly { name: string; exit: number | string; killed: boolean }[];
  /** The EPP's own KV-event counters at the end (sums over labels), read from its /metrics. */
  readonly epp: { readonly applied: number; readonly dropped: number; readonly hashChecks: number; readonly hashMismatches: number };
  readonly startupMs: number;
  readonly totalMs: number;
}

/** Sum of a metric's samples (all label sets) in Prometheus text. */
export function sumMetric(text: string, name: string): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

/** The model the demo's pods serve. */
export const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

const WORDS = (
  'the service account owner must rotate keys every quarter and report incidents to security within one business day ' +
  'customers may request refunds for annual plans during the first thirty days while monthly plans renew automatically ' +
  'support engineers escalate outages affecting more than five percent of traffic to the on call lead with logs attached ' +
  'data retention follows regional law so backups in europe stay in europe and deletion requests complete within weeks ' +
  'pricing tiers include starter team business and enterprise with volume discounts negotiated by the sales department'
).split(' ');

function words(rng: Rng, n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(WORDS[rng.int(WORDS.length)] as string);
  return out.join(' ');
}

export interface DemoRequest {
  readonly system: number;
  readonly body: string;
}

/** The seeded workload: `systemPrompts` long system prompts, each request one of them + a unique user turn. */
export function buildWorkload(o: { requests: number; systemPrompts: number; systemWords: number; maxTokens: number; seed: number }): DemoRequest[] {
  const rng = new Rng(o.seed);
  const systems = Array.from({ length: o.systemPrompts }, (_, i) => `You are assistant #${i} of the policy desk. Policy manual follows. ${words(rng, o.systemWords)}`);
  return Array.from({ length: o.requests }, (_, i) => {
    const s = rng.int(o.systemPrompts);
    const messages = [
      { role: 'system', content: systems[s] },
      { role: 'user', content: `User ${i} asks: ${words(rng, 12)}?` },
    ];
    return { system: s, body: JSON.stringify({ model: MODEL, messages, max_tokens: o.maxTokens, stream: true, stream_options: { include_usage: true } }) };
  });
}

function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

async function podCounters(pods: readonly string[]): Promise<{ hits: number; queries: number }> {
  let hits = 0;
  let queries = 0;
  for (const p of pods) {
    const text = await (await fetch(`http://${p}/metrics`)).text();
    const val = (name: string): number => {
      const m = new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text);
      if (!m) throw new Error(`pod ${p} /metrics has no ${name}`);
      return Number(m[1]);
    };
    hits += val('vllm:prefix_cache_hits_total');
    queries += val('vllm:prefix_cache_queries_total');
  }
  return { hits, queries };
}

async function podTtfts(pods: readonly string[]): Promise<number[][]> {
  return Promise.all(pods.map(async (p) => ((await (await fetch(`http://${p}/sim/stats`)).json()) as { ttftMs: number[] }).ttftMs));
}

async function resetCaches(pods: readonly string[]): Promise<void> {
  for (const p of pods) {
    for (let i = 0; ; i++) {
      const r = await fetch(`http://${p}/reset_prefix_cache`, { method: 'POST' });
      await r.arrayBuffer();
      if (r.ok) break;
      if (i > 100) throw new Error(`pod ${p} refused reset_prefix_cache (${r.status}) for 5 s`);
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}

async function runPolicy(policy: GatewayPolicy, pods: readonly string[], eppGrpc: string, work: readonly DemoRequest[], concurrency: number): Promise<PolicyResult> {
  await resetCaches(pods);
  await new Promise((r) => setTimeout(r, 300)); // the EPP applies AllBlocksCleared
  const before = await podCounters(pods);
  const ttftBefore = await podTtfts(pods);
  const gw = new DemoGateway({ policy, pods, eppAddress: eppGrpc });
  const port = await gw.listen(0);
  const ttfts: number[] = [];
  const served: Record<string, number> = {};
  let errors = 0;
  let next = 0;
  const t0 = Date.now();
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let i = next++; i < work.length; i = next++) {
          const start = performance.now();
          try {
            const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: (work[i] as DemoRequest).body,
            });
            if (!res.ok || !res.body) {
              errors++;
              await res.arrayBuffer();
              continue;
            }
            const reader = res.body.getReader();
            let first = true;
            for (;;) {
              const { done } = await reader.read();
              if (first) {
                ttfts.push(performance.now() - start);
                first = false;
              }
              if (done) break;
            }
            const dest = res.headers.get(DESTINATION_HEADER) ?? '?';
            served[dest] = (served[dest] ?? 0) + 1;
          } catch {
            errors++;
          }
        }
      }),
    );
  } finally {
    await gw.close();
  }
  const wallMs = Date.now() - t0;
  const after = await podCounters(pods);
  const podTtft = (await podTtfts(pods)).flatMap((xs, i) => xs.slice(ttftBefore[i]?.length ?? 0));
  const hitTokens = after.hits - before.hits;
  const queriedTokens = after.queries - before.queries;
  return {
    policy,
    requests: work.length,
    errors: errors + gw.errors,
    hitRate: queriedTokens > 0 ? hitTokens / queriedTokens : 0,
    hitTokens,
    queriedTokens,
    served,
    ttftP50: quantile(ttfts, 0.5),
    ttftP90: quantile(ttfts, 0.9),
    podTtftP50: quantile(podTtft, 0.5),
    podTtftP90: quantile(podTtft, 0.9),
    wallMs,
  };
}

/**
 * A tokenizer directory like `dir` whose chat template starts with a newline before everything
 * else (the `chat-template` fault). Removed by the caller.
 */
export function faultyTemplateDir(dir: string): string {
  const out = mkdtempSync(join(tmpdir(), 'kvroute-demo-template-'));
  symlinkSync(resolve(dir, 'tokenizer.json'), join(out, 'tokenizer.json'));
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  if (typeof config.chat_template !== 'string') throw new Error(`${dir}/tokenizer_config.json has no chat_template string to alter for the chat-template fault`);
  config.chat_template = `{{- '\n' }}${config.chat_template}`;
  writeFileSync(join(out, 'tokenizer_config.json'), JSON.stringify(config));
  return out;
}

/** The name the EPP knows simulated pod `i` by (its `pod` label in the EPP's per-pod metrics). */
export function demoPodName(i: number): string {
  return `sim-pod-${i}`;
}

/** Ports and addresses of a demo stack (EPP + simulated pods) on 127.0.0.1. */
export interface DemoStack {
  /** Pod addresses `127.0.0.1:port`. */
  readonly pods: readonly string[];
  readonly podPorts: readonly number[];
  /** The EPP's ext_proc address `127.0.0.1:port`. */
  readonly grpc: string;
  readonly grpcPort: number;
  readonly health: number;
  /** The EPP's HTTP port (/metrics, /v1/diagnosis). */
  readonly http: number;
  readonly zmq: number;
}

/** Free ports for a stack of `n` pods. */
export async function demoStackPorts(n: number): Promise<DemoStack> {
  const [zmq, grpcPort, health, http] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const podPorts: number[] = [];
  for (let i = 0; i < n; i++) podPorts.push(await freePort());
  return { pods: podPorts.map((p) => `127.0.0.1:${p}`), podPorts, grpc: `127.0.0.1:${grpcPort}`, grpcPort, health, http, zmq };
}

/**
 * Starts `kvroute-epp serve` and the simulated pods of `stack` in `group` (the caller stops the
 * group) and waits until all are ready. Resolves to the pods' tokenizer directory (a temporary one
 * for the chat-template fault, which the caller removes).
 */
export async function startDemoStack(
  stack: DemoStack,
  o: Pick<DemoOptions, 'fault' | 'tokenizerDir' | 'profile' | 'numBlocks' | 'speedup' | 'eppConfigFile'>,
  group: ProcessGroup,
  log: (line: string) => void = () => undefined,
): Promise<string> {
  const { pods, podPorts, zmq, health, http } = stack;
  const grpc = stack.grpcPort;
  const n = podPorts.length;
  const fault = o.fault ?? 'none';
  const tokenizer = o.tokenizerDir ?? DEFAULT_TOKENIZER_DIR;
  const podTokenizer = fault === 'chat-template' ? faultyTemplateDir(tokenizer) : tokenizer;
  log(`starting kvroute-epp serve (ext_proc :${grpc}, ZMQ bind :${zmq}) and ${n} simulated pods (profile ${o.profile ?? 'B'}, fault ${fault})`);
  const epp = group.start({
    name: 'epp',
    script: 'src/cli/run.ts',
    cwd: EPP_DIR,
    ready: /kvroute-epp started/,
    // Five processes load the tokenizer at once; on a busy machine that takes a while.
    readyTimeoutMs: 90_000,
    args: [
      'serve',
      '--model', MODEL,
      '--block-size', '16',
      '--hash-seed', '42',
      '--endpoints', pods.map((p, i) => `${p}=${demoPodName(i)}`).join(','),
      '--grpc-port', String(grpc),
      '--health-port', String(health),
      '--http-port', String(http),
      '--host', '127.0.0.1',
      '--zmq-bind', `tcp://127.0.0.1:${zmq}`,
      '--tokenizer', tokenizer,
      ...(o.eppConfigFile !== undefined ? ['--config', o.eppConfigFile] : []),
    ],
  });
  // ZMQ connects retry until the EPP binds, so the pods start alongside the EPP.
  await Promise.all([
    epp,
    ...podPorts.map((port, i) =>
      group.start({
        name: `pod-${i}`,
        script: 'lab/sim/server/main.ts',
        cwd: EPP_DIR,
        ready: /"ready":true/,
        readyTimeoutMs: 90_000,
        args: [
          '--port', String(port),
          '--tokenizer', podTokenizer,
          '--model', MODEL,
          '--profile', o.profile ?? 'B',
          '--num-blocks', String(o.numBlocks ?? 320),
          ...(fault === 'events-off' && i === n - 1 ? [] : ['--zmq-endpoint', `tcp://127.0.0.1:${zmq}`]),
          ...(fault === 'hash-seed' ? ['--hash-seed', '7'] : []),
          '--topic-pod', `127.0.0.1:${port}`,
          '--encoding', i % 2 === 0 ? 'map' : 'array',
          '--speedup', String(o.speedup ?? 1),
        ],
      }),
    ),
  ]);
  await new Promise((r) => setTimeout(r, 300)); // ZMQ connect + subscription
  return podTokenizer;
}

/** Runs the demo; always stops every child before returning or throwing. */
export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const log = o.log ?? (() => undefined);
  const group = o.group ?? new ProcessGroup();
  const n = o.pods ?? 4;
  const tokenizer = o.tokenizerDir ?? DEFAULT_TOKENIZER_DIR;
  const fault = o.fault ?? 'none';
  if (!DEMO_FAULTS.includes(fault)) throw new Error(`fault "${String(fault)}" must be one of ${DEMO_FAULTS.join(', ')}`);
  let diagnosis: DemoFinding[] = [];
  const t0 = Date.now();
  const stack = await demoStackPorts(n);
  const { pods, grpc, http } = stack;
  const results: PolicyResult[] = [];
  let startupMs = 0;
  let failure: unknown;
  let eppCounters: DemoResult['epp'] = { applied: 0, dropped: 0, hashChecks: 0, hashMismatches: 0 };
  let podTokenizer: string | undefined;
  try {
    podTokenizer = await startDemoStack(stack, { ...o, fault, tokenizerDir: tokenizer }, group, log);
    startupMs = Date.now() - t0;
    log(`all up in ${startupMs} ms`);
    if (o.onStarted !== undefined) await o.onStarted(stack);
    const work = buildWorkload({
      requests: o.requests ?? 64,
      systemPrompts: o.systemPrompts ?? 8,
      systemWords: o.systemWords ?? 900,
      maxTokens: o.maxTokens ?? 8,
      seed: o.seed ?? 1,
    });
    for (const policy of o.policies ?? (['round-robin', 'kvroute'] as const)) {
      log(`running ${work.length} requests with ${policy} ...`);
      results.push(await runPolicy(policy, pods, grpc, work, o.concurrency ?? 4));
    }
    const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
    eppCounters = {
      applied: sumMetric(text, 'kvroute_kv_events_applied_total'),
      dropped: sumMetric(text, 'kvroute_kv_events_dropped_total'),
      hashChecks: sumMetric(text, 'kvroute_kv_events_hash_checks_total'),
      hashMismatches: sumMetric(text, 'kvroute_kv_events_hash_mismatch_total'),
    };
    const d = (await (await fetch(`http://127.0.0.1:${http}/v1/diagnosis`)).json()) as { findings: DemoFinding[] };
    diagnosis = d.findings.map((f) => ({ cause: f.cause, pod: f.pod, message: f.message }));
    if (o.onRunning !== undefined) await o.onRunning(stack);
  } catch (e) {
    failure = e;
  }
  log('stopping');
  const exits = await group.stopAll();
  if (podTokenizer !== undefined && podTokenizer !== tokenizer) rmSync(podTokenizer, { recursive: true, force: true });
  if (failure !== undefined) throw failure;
  return { fault, model: MODEL, pods, results, exits, epp: eppCounters, diagnosis, eppHttpPort: http, startupMs, totalMs: Date.now() - t0 };
}
