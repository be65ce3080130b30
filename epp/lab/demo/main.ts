/**
 * kvroute local demo.
 *
 *   cd epp && npm run demo                 # or, from the repo root: npm run demo
 *   npm run demo -- --pods 4 --requests 64 --policy both --seed 1
 *
 * Starts `kvroute-epp serve` (static endpoints, KV events over real ZMQ, the Llama-3.1 test
 * tokenizer) and N simulated vLLM pods (src/sim/server/main.ts: the step model in real time,
 * OpenAI HTTP, vLLM /metrics, KV events in vLLM's wire format) as child processes, and a local
 * gateway in this process that asks the EPP over real ext_proc gRPC where to send each request
 * (`--policy round-robin` bypasses the EPP). A seeded shared-prefix chat workload (a few long
 * system prompts × many users) runs once per policy, the pods' prefix caches reset in between,
 * and the table compares prefix-cache hit rate (from the pods' vllm:prefix_cache_* counters),
 * per-pod load share and TTFT p50/p90, both inside the pods (simulated: queueing + prefill) and at
 * the client (wall clock, including the gateway, the EPP's tokenization and scheduling, HTTP). Every child gets SIGTERM at the end, on
 * Ctrl-C and on errors; the demo waits until each has exited.
 *
 * Flags: --pods N [4]  --requests N [64]  --system-prompts N [8]  --concurrency N [4]
 *        --num-blocks N [320]  --profile A|B|C [B]  --seed N [1]  --speedup K [1]
 *        --policy both|kvroute|round-robin [both]  --tokenizer DIR [test/data/tokenizers/llama3_1]
 *        --fault none|chat-template|hash-seed|events-off [none]: misconfigure the simulated pods
 *          (another chat template; another PYTHONHASHSEED; the last pod publishes no KV events) and
 *          print the EPP's diagnosis (GET /v1/diagnosis)
 *        --json FILE: also write the summary as JSON, with "diagnosis": [{cause, pod, message}]
 *          (cause: tokenization | hash-seed | events-missing | block-size; empty when healthy)
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { GatewayPolicy } from './gateway.js';
import { ProcessGroup } from './procs.js';
import { DEMO_FAULTS, runDemo, type DemoFault, type DemoOptions, type DemoResult } from './run.js';

function intFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`--${name} "${v}" must be a positive integer`);
  return Number(v);
}

export interface DemoCli extends DemoOptions {
  /** `--json FILE`. */
  readonly json?: string;
}

export function parseDemoArgs(argv: readonly string[]): DemoCli {
  const f = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      pods: { type: 'string' },
      requests: { type: 'string' },
      'system-prompts': { type: 'string' },
      concurrency: { type: 'string' },
      'num-blocks': { type: 'string' },
      profile: { type: 'string' },
      seed: { type: 'string' },
      speedup: { type: 'string' },
      policy: { type: 'string' },
      tokenizer: { type: 'string' },
      fault: { type: 'string' },
      json: { type: 'string' },
    },
  }).values;
  const fault = f.fault ?? 'none';
  if (!(DEMO_FAULTS as readonly string[]).includes(fault)) throw new Error(`--fault "${fault}" must be one of ${DEMO_FAULTS.join(', ')}`);
  if (f.json === '') throw new Error('--json needs a file name, e.g. --json demo.json');
  const policy = f.policy ?? 'both';
  let policies: GatewayPolicy[];
  if (policy === 'both') policies = ['round-robin', 'kvroute'];
  else if (policy === 'kvroute' || policy === 'round-robin') policies = [policy];
  else throw new Error(`--policy "${policy}" must be both, kvroute or round-robin`);
  const profile = f.profile?.toUpperCase();
  if (profile !== undefined && profile !== 'A' && profile !== 'B' && profile !== 'C') throw new Error(`--profile "${f.profile}" must be A, B or C`);
  const speedup = f.speedup === undefined ? undefined : Number(f.speedup);
  if (speedup !== undefined && !(speedup > 0)) throw new Error(`--speedup "${f.speedup}" must be a number > 0`);
  return {
    pods: intFlag('pods', f.pods),
    requests: intFlag('requests', f.requests),
    systemPrompts: intFlag('system-prompts', f['system-prompts']),
    concurrency: intFlag('concurrency', f.concurrency),
    numBlocks: intFlag('num-blocks', f['num-blocks']),
    profile,
    seed: intFlag('seed', f.seed),
    speedup,
    policies,
    tokenizerDir: f.tokenizer,
    fault: fault as DemoFault,
    ...(f.json !== undefined ? { json: f.json } : {}),
  };
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const ms = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : '-');

export function formatDemo(r: DemoResult): string {
  const cols = r.results;
  const rows: [string, ...string[]][] = [
    ['', ...cols.map((c) => c.policy)],
    ['prefix-cache hit rate', ...cols.map((c) => pct(c.hitRate))],
    ['hit / queried tokens', ...cols.map((c) => `${c.hitTokens} / ${c.queriedTokens}`)],
    ['TTFT p50 in pods (simulated)', ...cols.map((c) => ms(c.podTtftP50))],
    ['TTFT p90 in pods (simulated)', ...cols.map((c) => ms(c.podTtftP90))],
    ['TTFT p50 at client (wall)', ...cols.map((c) => ms(c.ttftP50))],
    ['TTFT p90 at client (wall)', ...cols.map((c) => ms(c.ttftP90))],
    ...r.pods.map((p, i): [string, ...string[]] => [`load share pod-${i} (${p})`, ...cols.map((c) => pct((c.served[p] ?? 0) / Math.max(1, c.requests)))]),
    ['errors', ...cols.map((c) => String(c.errors))],
    ['wall time', ...cols.map((c) => ms(c.wallMs))],
  ];
  const w = rows.map((row) => row.map((c) => c.length));
  const widths = rows[0].map((_, j) => Math.max(...w.map((x) => x[j] ?? 0)));
  const lines = rows.map((row) => row.map((c, j) => (j === 0 ? c.padEnd(widths[j] as number) : c.padStart(widths[j] as number))).join('   '));
  const exits = r.exits.map((e) => `${e.name}=${e.exit}${e.killed ? ' (killed)' : ''}`).join(' ');
  const e = r.epp;
  const events = `EPP KV events: ${e.applied} applied, ${e.dropped} dropped, ${e.hashChecks} hash checks, ${e.hashMismatches} mismatches`;
  const diagnosis =
    r.diagnosis.length === 0
      ? `EPP diagnosis (fault ${r.fault}): no findings`
      : `EPP diagnosis (fault ${r.fault}):\n${r.diagnosis.map((d) => `  ${d.cause} on ${d.pod}: ${d.message}`).join('\n')}`;
  return `${lines.join('\n')}\n\n${events}\n${diagnosis}\nstartup ${r.startupMs} ms, total ${r.totalMs} ms; child exits: ${exits}\n`;
}

/** The `--json` summary. */
export function demoSummary(r: DemoResult): Record<string, unknown> {
  return {
    fault: r.fault,
    model: r.model,
    pods: r.pods,
    results: r.results,
    epp: r.epp,
    diagnosis: r.diagnosis.map((d) => ({ cause: d.cause, pod: d.pod, message: d.message })),
    exits: r.exits,
    startupMs: r.startupMs,
    totalMs: r.totalMs,
  };
}

async function main(): Promise<number> {
  let opts: DemoCli;
  try {
    opts = parseDemoArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`demo: ${(e as Error).message}\n`);
    return 2;
  }
  const group = new ProcessGroup();
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${sig}: stopping ${group.alive().length} child processes ...\n`);
    void group.stopAll().then((exits) => {
      process.stderr.write(`stopped: ${exits.map((e) => `${e.name}=${e.exit}`).join(' ')}\n`);
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const r = await runDemo({ ...opts, group, log: (l) => process.stderr.write(`[demo] ${l}\n`) });
  process.stdout.write(`\nkvroute local demo: ${r.pods.length} simulated pods, model ${r.model}\n\n${formatDemo(r)}`);
  if (opts.json !== undefined) writeFileSync(opts.json, `${JSON.stringify(demoSummary(r), null, 2)}\n`);
  return r.results.some((c) => c.errors > 0) ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`demo failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
