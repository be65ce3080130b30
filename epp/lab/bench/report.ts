/**
 * `npm run bench:report [-- --seeds 1,2 --workloads w1,w2,w3 --policies random,kvroute --quick
 *   --out docs/benchmarks --trace <mooncake-conversation.jsonl> --no-weights --no-validate]`
 *
 * Runs every policy × workload × seed on the fleet simulator in-process, plus the validation
 * checks, the kvroute sensitivity sweeps and a small kvroute weight sweep, and writes
 * docs/benchmarks/README.md with SVG plots. See src/sim/report/.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { POLICY_NAMES, parsePolicyName, type PolicyName } from '../sim/policy-factory.js';
import { buildReport, displayCommand, writeReport } from '../sim/report/build.js';
import { Progress } from '../sim/report/progress.js';
import { DEFAULT_SIZES, QUICK_SIZES, REPORT_WORKLOADS, buildWorkload, planJobs, runJobs, type ReportWorkload, type Sizes } from '../sim/report/suite.js';
import { DEFAULT_WEIGHTS, type Weights } from '../sim/report/targets.js';
import { runValidation } from '../sim/report/validate.js';

const HELP = `usage: npm run bench:report -- [options]

  --seeds 1,2             seeds (default 1,2; --quick: 1)
  --workloads w1,w2,w3    any of ${REPORT_WORKLOADS.join(', ')} (default w1,w2,w3, plus mooncake with --trace)
  --policies a,b          any of ${POLICY_NAMES.join(', ')} (default all; --quick: random,least-loaded,precise,kvroute,oracle)
  --quick                 small workloads, one seed, five policies (~1–2 min)
  --out DIR               output directory (default <repo>/docs/benchmarks)
  --trace FILE            Mooncake conversation trace: adds the "mooncake" workload (first --trace-limit
                          requests) and the block-reuse validation check
  --trace-synthetic FILE  Mooncake synthetic trace: adds the "mooncake-synthetic" workload (first
                          --trace-limit requests)
  --small                 the --quick workload sizes, but the seeds and policies given (or the defaults)
  --trace-limit N         requests of the trace to replay (default ${DEFAULT_SIZES.traceLimit}; --quick ${QUICK_SIZES.traceLimit}; 0 = all)
  --no-weights            skip the kvroute weight sweep
  --no-sensitivity        skip the event-lag / metrics-staleness sweeps
  --no-validate           skip the simulator validation checks
`;

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** Weight settings of the sweep; the first is the EPP default. */
export const WEIGHT_GRID: readonly Weights[] = [
  DEFAULT_WEIGHTS,
  { prefix: 5, queue: 2, kvCacheUtilization: 2, activeRequests: 1 },
  { prefix: 8, queue: 2, kvCacheUtilization: 2, activeRequests: 1 },
  { prefix: 3, queue: 1, kvCacheUtilization: 1, activeRequests: 1 },
  { prefix: 6, queue: 1, kvCacheUtilization: 1, activeRequests: 1 },
  { prefix: 3, queue: 2, kvCacheUtilization: 0, activeRequests: 1 },
];

function parseArgs(argv: readonly string[]): Map<string, string | true> {
  const flags = new Set(['quick', 'small', 'help', 'no-weights', 'no-sensitivity', 'no-validate']);
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"; flags start with --\n\n${HELP}`);
    const [k, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (flags.has(k)) {
      out.set(k, true);
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new Error(`--${k} needs a value\n\n${HELP}`);
    out.set(k, v);
  }
  const known = new Set([...flags, 'seeds', 'workloads', 'policies', 'out', 'trace', 'trace-synthetic', 'trace-limit']);
  for (const k of out.keys()) if (!known.has(k)) throw new Error(`unknown option --${k}\n\n${HELP}`);
  return out;
}

function list(v: string | true | undefined, name: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (v === true) throw new Error(`--${name} needs a comma-separated value`);
  const xs = v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (xs.length === 0) throw new Error(`--${name} is "${v}"; give a comma-separated list`);
  return xs;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.has('help')) {
    console.log(HELP);
    return 0;
  }
  const quick = args.has('quick');
  const base = process.env.INIT_CWD ?? process.cwd();
  const tracePath = typeof args.get('trace') === 'string' ? resolve(base, args.get('trace') as string) : undefined;
  const syntheticTracePath = typeof args.get('trace-synthetic') === 'string' ? resolve(base, args.get('trace-synthetic') as string) : undefined;
  const seeds = (list(args.get('seeds'), 'seeds') ?? (quick ? ['1'] : ['1', '2'])).map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--seeds contains "${s}"; use integers ≥ 0, e.g. --seeds 1,2,3`);
    return n;
  });
  const workloads = (list(args.get('workloads'), 'workloads') ?? ['w1', 'w2', 'w3', ...(tracePath ? ['mooncake'] : []), ...(syntheticTracePath ? ['mooncake-synthetic'] : [])]).map((w) => {
    if (!(REPORT_WORKLOADS as readonly string[]).includes(w)) throw new Error(`--workloads contains "${w}"; use any of ${REPORT_WORKLOADS.join(', ')}`);
    if (w === 'mooncake' && !tracePath) throw new Error('--workloads contains "mooncake"; pass --trace <path to mooncake-conversation.jsonl>');
    if (w === 'mooncake-synthetic' && !syntheticTracePath) throw new Error('--workloads contains "mooncake-synthetic"; pass --trace-synthetic <path to mooncake-synthetic.jsonl>');
    return w as ReportWorkload;
  });
  const policies: PolicyName[] = (list(args.get('policies'), 'policies') ?? (quick ? ['random', 'least-loaded', 'precise', 'kvroute', 'oracle'] : [...POLICY_NAMES])).map(parsePolicyName);
  const tl = args.get('trace-limit');
  const traceLimit = tl === undefined ? undefined : Number(tl);
  if (traceLimit !== undefined && (!Number.isInteger(traceLimit) || traceLimit < 0)) throw new Error(`--trace-limit is ${String(tl)}; use an integer ≥ 0 (0 = the whole trace)`);
  const sizes: Sizes = { ...(quick || args.has('small') ? QUICK_SIZES : DEFAULT_SIZES), ...(traceLimit !== undefined ? { traceLimit } : {}) };
  const out = resolve(typeof args.get('out') === 'string' ? resolve(base, args.get('out') as string) : resolve(REPO_ROOT, 'docs/benchmarks'));

  const weightWorkloads = args.has('no-weights') ? [] : workloads.filter((w) => w === 'w3' || w === 'mooncake' || (quick && w === 'w1'));
  const jobs = planJobs({
    workloads,
    policies,
    seeds,
    sensitivity: !args.has('no-sensitivity'),
    weightGrid: quick ? WEIGHT_GRID.slice(0, 3) : WEIGHT_GRID,
    weightWorkloads,
  });
  const progress = new Progress({ isTTY: process.stderr.isTTY === true, write: (s) => process.stderr.write(s) }, jobs.length);
  const t0 = performance.now();
  const validation = args.has('no-validate')
    ? []
    : await runValidation({ w2Knee: !quick, ...(tracePath ? { tracePath } : {}), onStep: (s) => progress.step(`validation: ${s}`) });
  const results = await runJobs(jobs, {
    sizes,
    ...(tracePath ? { tracePath } : {}),
    ...(syntheticTracePath ? { syntheticTracePath } : {}),
    onProgress: (i, job, done, total) => progress.update(i, `${job.workload} ${job.policy}${job.variant ? ` [${job.variant}]` : ''} seed ${job.seed}`, done, total),
  });
  progress.end();

  const descriptions = [];
  for (const w of workloads) descriptions.push({ name: w, description: (await buildWorkload(w, seeds[0] ?? 1, sizes, tracePath, syntheticTracePath)).description });
  const notes = [
    `Sizes: W1 ${sizes.w1Sessions} sessions × ${sizes.w1PerSession}${sizes.w1Sessions === 398 && sizes.w1PerSession === 12 ? ' (the method size)' : ' (method: 398 × 12)'}; W2 output ${sizes.w2OutputTokens} tokens (llm-d's effective mean; nominal 1000), ${sizes.w2StageScale === 1 ? 'the method stages' : `every stage's duration × ${sizes.w2StageScale} (same rates, fewer requests)`}; W3 ${sizes.w3SessionsPerStage} sessions per stage${sizes.w3SessionsPerStage === 480 ? ' (the method size)' : ' (method: 480)'}${workloads.some((w) => w.startsWith('mooncake')) ? `; Mooncake traces ${sizes.traceLimit > 0 ? `first ${sizes.traceLimit} requests` : 'whole'}` : ''}. H* and the targets are evaluated on these sizes.`,
    'Sensitivity and weight sweeps use the first seed only.',
    'Simulations are deterministic given the seeds: rerunning the command reproduces every number (only the generated line changes).',
  ];
  const report = buildReport({
    results,
    validation,
    generated: new Date().toISOString(),
    command: displayCommand(process.argv.slice(2)),
    quick,
    notes,
    seeds,
    workloads: descriptions,
    policies,
  });
  const files = await writeReport(out, report);
  console.error(`wrote ${files.length} files to ${out} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  for (const t of report.data.targets) console.log(`${t.pass === undefined ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'}  ${t.workload} ${t.target}: ${t.measured}`);
  for (const t of report.data.peerTargets ?? []) console.log(`${t.pass === undefined ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'}  ${t.workload} vs peers: ${t.target}: ${t.measured}`);
  for (const b of report.data.beats) console.log(`${b.workload} kvroute vs ${b.baseline}: ${b.beats === undefined ? 'n/a' : b.beats ? 'beats' : 'does NOT beat'}`);
  for (const b of report.data.bestWeights) console.log(`best weights on ${b.workload}: ${b.variant} (÷H* ${b.hitRateOverOracle.mean.toFixed(3)}, max/mean ${b.loadMaxOverMean.mean.toFixed(2)}, TTFT p90 ${b.ttftP90Ms.mean.toFixed(0)} ms)`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(2);
  },
);
