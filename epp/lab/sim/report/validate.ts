/**
 * The simulator's validation checks (docs/benchmarks/method.md, "Validation"; the same checks as
 * `npm run bench -- --validate`), returned as data for the report.
 */
import { blockReuse, infiniteCacheHitRate } from '../bounds.js';
import { runBenchmark } from '../run.js';
import { readWorkloadFile } from '../workload-file.js';
import { generateW0, generateW2, generateWorkload, type Workload } from '../workloads.js';
import type { PolicyName } from '../policy-factory.js';
import { aggregateRuns } from './aggregate.js';
import { W2_APPROXIMATES, w2Order, w2OrderCheck } from './peers.js';

export interface ValidationCheck {
  readonly name: string;
  readonly measured: string;
  readonly expected: string;
  /** undefined = not run (SKIP). */
  readonly pass: boolean | undefined;
}

export interface ValidateOptions {
  /** Run the W2 (output 245) random-knee check (~20–40 s). @default true */
  readonly w2Knee?: boolean;
  /**
   * Run the W2 published-order checks (llmd-precise-2025 ≫ approximate ≫ least-loaded ≈ random, once
   * with gie-default and once with approx-prefix, the blog's own estimated config, as the
   * approximate) on the same full W2 as the knee (seed 1; four more runs). @default the value of `w2Knee`
   */
  readonly w2Order?: boolean;
  /** Mooncake conversation trace for the block-reuse check. @default none (SKIP) */
  readonly tracePath?: string;
  /** @default none */
  readonly onStep?: (name: string) => void;
}

const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;

export async function runValidation(opts: ValidateOptions = {}): Promise<ValidationCheck[]> {
  const checks: ValidationCheck[] = [];
  const run = async (w: Workload, policy: PolicyName) => (await runBenchmark({ workload: w, policy, seed: 1 })).summary;
  opts.onStep?.('W0');
  const w0 = generateW0(1);
  const ceiling = 176 / 191;
  for (const policy of ['session', 'kvroute', 'precise'] as const) {
    const s = await run(w0, policy);
    checks.push({ name: `W0 ${policy} token hit (ceiling)`, measured: pct(s.tokenHitRate), expected: '92.1 % (176/191)', pass: Math.abs(s.tokenHitRate - ceiling) < 0.005 });
  }
  const rr = await run(w0, 'round-robin');
  checks.push({ name: 'W0 round-robin token hit', measured: pct(rr.tokenHitRate), expected: '81–85 %', pass: rr.tokenHitRate >= 0.81 && rr.tokenHitRate <= 0.85 });
  checks.push({ name: 'W0 H* (infinite cache)', measured: pct(rr.oracleTokenHitRate), expected: '92.1 %', pass: Math.abs(rr.oracleTokenHitRate - ceiling) < 0.005 });

  opts.onStep?.('H*');
  const hStar = (w: Workload): number => infiniteCacheHitRate(w.requests, w.profile.blockSize).rate;
  const h1 = hStar(generateWorkload('w1', 1));
  checks.push({ name: 'W1 H* (seed 1)', measured: pct(h1), expected: '85.5 % ± 0.5 pp', pass: Math.abs(h1 - 0.855) <= 0.005 });
  const h2 = hStar(generateWorkload('w2', 1));
  checks.push({ name: 'W2 H* (seed 1, all requests)', measured: pct(h2), expected: '98.1 % ± 0.5 pp', pass: Math.abs(h2 - 0.981) <= 0.005 });
  const h3 = hStar(generateWorkload('w3', 11));
  checks.push({ name: 'W3 H* (seed 11)', measured: pct(h3), expected: '81.8 % ± 1.5 pp', pass: Math.abs(h3 - 0.818) <= 0.015 });

  if (opts.w2Knee ?? true) {
    opts.onStep?.('W2 random knee');
    const w2 = generateW2(1, { outputTokens: 245 });
    const s = await run(w2, 'random');
    checks.push({
      name: 'W2 (output 245, full stages) random knee, TTFT p90 ≤ 2 s',
      measured: s.kneeLoad === null ? 'n/a' : `${s.kneeLoad} QPS`,
      expected: '15 ≤ knee < 20 QPS',
      pass: s.kneeLoad !== null && s.kneeLoad >= 15 && s.kneeLoad < 20,
    });
    if (opts.w2Order ?? true) {
      const runs = [{ workload: 'w2', policy: 'random', variant: '', seed: 1, summary: s }];
      const policies = new Set<PolicyName>();
      for (const a of W2_APPROXIMATES) for (const p of w2Order(a)) if (p !== 'random') policies.add(p as PolicyName);
      for (const p of policies) {
        opts.onStep?.(`W2 order: ${p}`);
        runs.push({ workload: 'w2', policy: p, variant: '', seed: 1, summary: await run(w2, p) });
      }
      const cells = aggregateRuns(runs);
      for (const a of W2_APPROXIMATES) {
        const c = w2OrderCheck(cells, 'w2', a);
        checks.push({ ...c, name: `${c.name}, full W2 (output 245), seed 1` });
      }
    }
  } else {
    checks.push({ name: 'W2 (output 245) random knee', measured: 'not run (--quick or --skip-w2)', expected: '15 ≤ knee < 20 QPS', pass: undefined });
  }

  if (opts.tracePath !== undefined) {
    opts.onStep?.('Mooncake block reuse');
    const r = blockReuse(await readWorkloadFile(opts.tracePath, { hashBlockSize: 512 }));
    checks.push({ name: 'Mooncake conversation block reuse', measured: `${pct(r.rate)} of ${r.blocks} blocks`, expected: '36.6 % ± 1 pp', pass: Math.abs(r.rate - 0.366) <= 0.01 });
  } else {
    checks.push({ name: 'Mooncake conversation block reuse', measured: 'not run (pass --trace)', expected: '36.6 % ± 1 pp', pass: undefined });
  }
  return checks;
}
