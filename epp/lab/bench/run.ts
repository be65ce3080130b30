/**
 * `npm run bench -- --workload <w0|w1|w2|w3|file> --policy <name> --seed N --json out.json`
 * `npm run bench -- --validate [--trace <mooncake-conversation.jsonl>]`
 *
 * Runs the fleet simulator (src/sim) and prints a one-screen summary; `--json` writes the full
 * RunSummary. See bench/README.md.
 */
import { writeFile } from 'node:fs/promises';
import { POLICY_NAMES, parsePolicyName } from '../sim/policy-factory.js';
import { PROFILES } from '../sim/profiles.js';
import { runValidation } from '../sim/report/validate.js';
import { runBenchmark } from '../sim/run.js';
import type { RunSummary } from '../sim/summary.js';
import { readWorkloadFile, toWorkloadJsonl } from '../sim/workload-file.js';
import { WORKLOAD_NAMES, generateW2, generateWorkload, type Workload, type WorkloadName } from '../sim/workloads.js';

const HELP = `usage: npm run bench -- --workload <${WORKLOAD_NAMES.join('|')}|path.jsonl> --policy <name> [options]
       npm run bench -- --validate [--trace path/to/mooncake-conversation.jsonl] [--skip-w2]

  --workload W            w0 (seed replay), w1 (seed fleet), w2 (b2b-saas), w3 (multi-turn chat),
                          or a JSONL/JSON workload file / Mooncake trace
  --policy P              ${POLICY_NAMES.join(', ')}
  --seed N                workload and policy seed (default 1)
  --json FILE             write the JSON summary
  --event-lag-ms X        KV events reach the router X ms after the step (default 50)
  --metrics-interval-ms Y router scrapes pod metrics every Y ms; 0 = live (default 50)
  --knee-slo-ms S         TTFT p90 SLO defining the knee (default 2000)
  --output-tokens N       w2 only: output tokens per request (default 1000; 245 = llm-d's effective mean)
  file workloads only:
  --profile A|B|C         pod profile (default B)
  --pods N                pods (default 8)
  --hash-block-size N     tokens per hash id when a line has no hash_block_size (default 512, Mooncake)
  --speed X               replay X times faster (default 1)
  --limit N               first N requests only
  --emit-workload FILE    write the (generated) workload as JSONL in the workload-file format;
                          without --policy nothing is simulated
  --quiet                 no progress output
`;

interface Args {
  readonly [k: string]: string | boolean | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const out: Record<string, string | boolean> = {};
  const flags = new Set(['validate', 'quiet', 'help', 'skip-w2']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"; flags start with --\n\n${HELP}`);
    const [k, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (flags.has(k)) {
      out[k] = true;
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new Error(`--${k} needs a value\n\n${HELP}`);
    out[k] = v;
  }
  return out;
}

function num(args: Args, k: string, def: number, check: (n: number) => boolean, fix: string): number {
  const v = args[k];
  if (v === undefined) return def;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isFinite(n) || !check(n)) throw new Error(`--${k} is ${String(v)}; ${fix}`);
  return n;
}

async function loadWorkload(args: Args, seed: number): Promise<Workload> {
  const w = args.workload;
  if (typeof w !== 'string') throw new Error(`--workload is required\n\n${HELP}`);
  if (w === 'w2' && args['output-tokens'] !== undefined) {
    return generateW2(seed, { outputTokens: num(args, 'output-tokens', 1000, (n) => Number.isInteger(n) && n >= 1, 'use an integer ≥ 1') });
  }
  if (args['output-tokens'] !== undefined) throw new Error('--output-tokens applies to --workload w2 only');
  if ((WORKLOAD_NAMES as readonly string[]).includes(w)) return generateWorkload(w as WorkloadName, seed);
  const profileName = String(args.profile ?? 'B').toUpperCase();
  const profile = PROFILES[profileName as 'A' | 'B' | 'C'];
  if (!profile) throw new Error(`--profile is ${String(args.profile)}; use A, B or C`);
  const pods = num(args, 'pods', 8, (n) => Number.isInteger(n) && n >= 1, 'use an integer ≥ 1');
  const requests = await readWorkloadFile(w, {
    hashBlockSize: num(args, 'hash-block-size', 512, (n) => Number.isInteger(n) && n >= 1, 'use a positive integer'),
    speed: num(args, 'speed', 1, (n) => n > 0, 'use a positive number'),
    ...(args.limit !== undefined ? { limit: num(args, 'limit', 0, (n) => Number.isInteger(n) && n >= 1, 'use an integer ≥ 1') } : {}),
  });
  const maxStage = requests.reduce((m, r) => Math.max(m, r.stage), 0);
  return {
    name: w,
    description: `file ${w}: ${requests.length} requests, ${pods} pods profile ${profile.name}`,
    profile,
    pods,
    stages: Array.from({ length: maxStage + 1 }, (_, index) => ({ index, rate: 0, unit: 'trace' as const, startMs: 0, endMs: 0, warmup: false })),
    requests,
  };
}

const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;
const ms = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(x < 100 ? 1 : 0)} ms` : 'n/a');

function printSummary(s: RunSummary): void {
  const lines = [
    `workload ${s.workload}  policy ${s.policy}  seed ${s.seed}  requests ${s.requests} (measured ${s.measuredRequests}, rejected ${s.rejected})`,
    `token hit rate ${pct(s.tokenHitRate)}   H* ${pct(s.oracleTokenHitRate)}   ÷H* ${s.hitRateOverOracle.toFixed(3)}`,
    `load max/mean ${s.loadMaxOverMean.toFixed(3)}   uncached max/mean ${s.uncachedMaxOverMean.toFixed(3)}`,
    `TTFT p50 ${ms(s.ttftMs.p50)}  p90 ${ms(s.ttftMs.p90)}  p99 ${ms(s.ttftMs.p99)}  mean ${ms(s.ttftMs.mean)}`,
    `output ${s.outputTokensPerSec.toFixed(0)} tok/s   knee ${s.kneeLoad === null ? 'n/a' : `${s.kneeLoad} ${s.kneeUnit}`} (TTFT p90 ≤ ${s.kneeSloMs} ms)`,
    `sim: ${s.sim.pods} pods profile ${s.sim.profile}, event lag ${s.sim.eventLagMs} ms, metrics every ${s.sim.metricsIntervalMs} ms, ${s.sim.simulatedSeconds.toFixed(1)} s simulated in ${(s.sim.wallSeconds ?? 0).toFixed(1)} s, preemptions ${s.sim.preemptions}`,
    ...(s.sim.kvEventDrops ? [`KV events dropped by the EPP applier: ${JSON.stringify(s.sim.kvEventDrops)}`] : []),
    'stage  rate        reqs  hit      TTFT p50   p90        p99        out tok/s  max/mean',
  ];
  for (const st of s.stages) {
    lines.push(
      `${String(st.index).padEnd(6)} ${`${st.rate} ${st.unit === 'req/s' ? 'r/s' : st.unit === 'sessions/s' ? 's/s' : ''}`.padEnd(11)} ${String(st.requests).padEnd(5)} ${pct(st.tokenHitRate).padEnd(8)} ${ms(st.ttftMs.p50).padEnd(10)} ${ms(st.ttftMs.p90).padEnd(10)} ${ms(st.ttftMs.p99).padEnd(10)} ${st.outputTokensPerSec.toFixed(0).padEnd(10)} ${st.loadMaxOverMean.toFixed(2)}${st.warmup ? '  (warm-up)' : ''}`,
    );
  }
  console.log(lines.join('\n'));
}

async function validate(args: Args): Promise<boolean> {
  const checks = await runValidation({
    w2Knee: args['skip-w2'] !== true,
    ...(typeof args.trace === 'string' ? { tracePath: args.trace } : {}),
  });
  console.log('check'.padEnd(46) + 'measured'.padEnd(40) + 'expected'.padEnd(22) + 'result');
  for (const c of checks) {
    console.log(`${c.name.padEnd(46)}${c.measured.padEnd(40)}${c.expected.padEnd(22)}${c.pass === undefined ? 'SKIP' : c.pass ? 'PASS' : 'FAIL'}`);
  }
  return checks.every((c) => c.pass !== false);
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log(HELP);
    return 0;
  }
  if (args.validate) return (await validate(args)) ? 0 : 1;
  const seed = num(args, 'seed', 1, (n) => Number.isInteger(n) && n >= 0, 'use an integer ≥ 0');
  const emit = args['emit-workload'];
  if (typeof args.policy !== 'string' && typeof emit !== 'string') throw new Error(`--policy is required (one of ${POLICY_NAMES.join(', ')})`);
  const workload = await loadWorkload(args, seed);
  if (typeof emit === 'string') {
    await writeFile(emit, toWorkloadJsonl(workload.requests));
    console.error(`wrote ${workload.requests.length} requests to ${emit}`);
    if (typeof args.policy !== 'string') return 0;
  }
  const policy = parsePolicyName(args.policy as string);
  const quiet = args.quiet === true;
  if (!quiet) console.error(`${workload.description}; policy ${policy}, seed ${seed}`);
  const { summary } = await runBenchmark({
    workload,
    policy,
    seed,
    eventLagMs: num(args, 'event-lag-ms', 50, (n) => n >= 0, 'use a number of ms ≥ 0'),
    metricsIntervalMs: num(args, 'metrics-interval-ms', 50, (n) => n >= 0, 'use a number of ms ≥ 0 (0 = live metrics)'),
    kneeSloMs: num(args, 'knee-slo-ms', 2000, (n) => n > 0, 'use a number of ms > 0'),
    onProgress: quiet ? undefined : (done, total) => process.stderr.write(`\r${done}/${total} requests`),
  });
  if (!quiet) process.stderr.write('\n');
  printSummary(summary);
  if (typeof args.json === 'string') {
    await writeFile(args.json, JSON.stringify(summary, null, 2) + '\n');
    if (!quiet) console.error(`wrote ${args.json}`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(2);
  },
);
