import { aggregateRuns, type ReportRun } from '../../../lab/sim/report/aggregate.js';
import { W2_ORDER, ratioToBestPeer, renderPeerSection, w2OrderCheck } from '../../../lab/sim/report/peers.js';
import { displayCommand } from '../../../lab/sim/report/build.js';
import { PEERS, evaluatePeerTargets, topStageP90 } from '../../../lab/sim/report/targets.js';
import { stat } from '../../../lab/sim/report/aggregate.js';
import type { RunSummary } from '../../../lab/sim/summary.js';

interface Fake {
  workload?: string;
  policy: string;
  seed?: number;
  hit?: number;
  load?: number;
  p90?: number;
  tput?: number;
  stages?: { rate: number; p90: number }[];
}

function run(f: Fake): ReportRun {
  const p90 = f.p90 ?? 100;
  const summary: RunSummary = {
    workload: f.workload ?? 'w1',
    policy: f.policy,
    seed: f.seed ?? 1,
    requests: 100,
    measuredRequests: 100,
    rejected: 0,
    tokenHitRate: f.hit ?? 0.5,
    oracleTokenHitRate: 0.9,
    hitRateOverOracle: (f.hit ?? 0.5) / 0.9,
    loadMaxOverMean: f.load ?? 1,
    uncachedMaxOverMean: 1,
    podRequestShare: [0.5, 0.5],
    podUncachedShare: [0.5, 0.5],
    ttftMs: { p50: p90 / 2, p90, p99: p90 * 2, mean: p90 / 2 },
    outputTokensPerSec: f.tput ?? 1000,
    kneeLoad: null,
    kneeUnit: null,
    kneeSloMs: 2000,
    stages: (f.stages ?? []).map((s, index) => ({
      index,
      rate: s.rate,
      unit: 'req/s' as const,
      warmup: false,
      requests: 10,
      rejected: 0,
      tokenHitRate: f.hit ?? 0.5,
      ttftMs: { p50: s.p90 / 2, p90: s.p90, p99: s.p90 * 3, mean: s.p90 / 2 },
      outputTokensPerSec: 100 * s.rate,
      loadMaxOverMean: f.load ?? 1,
      uncachedMaxOverMean: 1,
      preemptions: 0,
    })),
    sim: { pods: 2, profile: 'A', blockSize: 16, eventLagMs: 50, metricsIntervalMs: 50, simulatedSeconds: 10, kvEventBatches: 5, preemptions: 0 },
  };
  return { workload: summary.workload, policy: summary.policy, variant: '', seed: summary.seed, summary };
}

describe('kvroute vs peers: targets', () => {
  it('TTFT p90 ≤ 0.9 × the best peer; per seed; worst seed shown', () => {
    const runs = [
      run({ policy: 'kvroute', seed: 1, p90: 80, stages: [{ rate: 10, p90: 50 }, { rate: 20, p90: 89 }] }),
      run({ policy: 'kvroute', seed: 2, p90: 95 }),
      run({ policy: 'dynamo', seed: 1, p90: 100, stages: [{ rate: 10, p90: 60 }, { rate: 20, p90: 100 }] }),
      run({ policy: 'sglang', seed: 1, p90: 300, stages: [{ rate: 20, p90: 50 }] }),
      run({ policy: 'dynamo', seed: 2, p90: 100 }),
      run({ policy: 'oracle', seed: 1, p90: 10 }),
      run({ policy: 'oracle', seed: 2, p90: 10 }),
    ];
    const t = evaluatePeerTargets(runs);
    const whole = t.find((x) => x.target.startsWith('TTFT p90 (run)'));
    expect(whole?.pass).toBe(false); // seed 2: 95 > 0.9 × 100
    expect(whole?.failedSeeds).toEqual([2]);
    expect(whole?.measured).toContain('seed 2: 95 ms = 0.95× best peer dynamo 100 ms');
    const top = t.find((x) => x.target.startsWith('TTFT p90 (top stage)'));
    // seed 1 top stage: kvroute 89 vs best peer sglang 50 → fail; seed 2 has no stages → not evaluated
    expect(top?.seeds).toEqual([1]);
    expect(top?.pass).toBe(false);
    expect(topStageP90(runs[0]?.summary as RunSummary)).toBe(89);
  });

  it('near the oracle the TTFT target becomes ≤ 1.05 × oracle; hit −1 pp, tok/s −1 %, load ≤ 1.15', () => {
    const runs = [
      run({ policy: 'kvroute', p90: 104, hit: 0.791, tput: 990, load: 1.15 }),
      run({ policy: 'llmd-precise', p90: 102, hit: 0.8, tput: 1000 }),
      run({ policy: 'oracle', p90: 100 }),
    ];
    const t = evaluatePeerTargets(runs);
    const get = (p: string) => t.find((x) => x.target.startsWith(p));
    expect(get('TTFT p90 (run)')?.pass).toBe(true); // 104 ≤ 105 although > 0.9 × 102
    expect(get('TTFT p90 (run)')?.measured).toContain('within 5 % of the oracle');
    expect(get('token hit')?.pass).toBe(true); // −0.9 pp
    expect(get('output tok/s')?.pass).toBe(true); // 0.99×
    expect(get('load max/mean')?.pass).toBe(true);
    const worse = evaluatePeerTargets([run({ policy: 'kvroute', p90: 106, hit: 0.789, tput: 989, load: 1.16 }), ...runs.slice(1)]);
    for (const name of ['TTFT p90 (run)', 'token hit', 'output tok/s', 'load max/mean']) expect(worse.find((x) => x.target.startsWith(name))?.pass).toBe(false);
  });

  it('mooncake conversation: TTFT p90 ≤ the oracle; missing inputs are n/a', () => {
    const t = evaluatePeerTargets([run({ workload: 'mooncake', policy: 'kvroute', p90: 90 }), run({ workload: 'mooncake', policy: 'oracle', p90: 89 }), run({ workload: 'mooncake', policy: 'aibrix', p90: 500 })]);
    expect(t.find((x) => x.target === 'TTFT p90 ≤ oracle')?.pass).toBe(false);
    expect(t.find((x) => x.target.startsWith('TTFT p90 (top stage)'))?.pass).toBeUndefined();
    expect(PEERS).toEqual(['llmd-precise', 'llmd-precise-2025', 'llmd-estimate', 'gie-default', 'dynamo', 'sglang', 'aibrix']);
  });
});

describe('kvroute vs peers: section and W2 order', () => {
  it('ratio to the best peer per metric', () => {
    const row = (hit: number, p90: number) => ({ hit: stat([hit]), p50: stat([p90 / 2]), p90: stat([p90]), p99: stat([p90 * 2]), tput: stat([1000]), load: stat([1.1]) });
    const q = ratioToBestPeer(row(0.9, 50), [
      { name: 'a', row: row(0.8, 100) },
      { name: 'b', row: row(0.6, 80) },
    ]);
    expect(q.hit).toEqual({ ratio: 0.9 / 0.8, best: 'a' });
    expect(q.p90).toEqual({ ratio: 50 / 80, best: 'b' });
  });

  it('renders whole-run and per-stage rows with kvroute ÷ best peer', () => {
    const cells = aggregateRuns([
      run({ policy: 'kvroute', p90: 50, stages: [{ rate: 10, p90: 40 }] }),
      run({ policy: 'dynamo', p90: 100, stages: [{ rate: 10, p90: 80 }] }),
      run({ policy: 'least-loaded', p90: 10 }),
    ]);
    const md = renderPeerSection({ cells, workloads: ['w1'], charts: new Map([['w1', 'w1-peers.svg']]) }).join('\n');
    expect(md).toContain('## kvroute vs peers');
    expect(md).toMatch(/\| whole run \| \*\*kvroute ÷ best peer\*\* \| 1\.00× \(dynamo\) \| 0\.50× \(dynamo\) \| 0\.50× \(dynamo\)/);
    expect(md).toMatch(/\| 10 req\/s \| \*\*kvroute ÷ best peer\*\* \|[^\n]*0\.50× \(dynamo\)/);
    expect(md).not.toContain('least-loaded'); // not a peer, not a reference
    expect(md).toContain('![w1: TTFT p90 vs offered load, kvroute and every peer](w1-peers.svg)');
    expect(renderPeerSection({ cells: aggregateRuns([run({ policy: 'kvroute' })]), workloads: ['w1'] })).toEqual([]);
  });

  it('W2 order: precise ≫ approximate ≫ load-only ≈ random', () => {
    const mk = (p90s: number[]) => aggregateRuns(W2_ORDER.map((policy, i) => run({ workload: 'w2', policy, p90: p90s[i] as number })));
    expect(w2OrderCheck(mk([500, 31_000, 95_000, 92_000])).pass).toBe(true); // the blog's numbers
    expect(w2OrderCheck(mk([500, 900, 95_000, 92_000])).pass).toBe(false); // approximate not ≫ precise
    expect(w2OrderCheck(mk([500, 31_000, 40_000, 92_000])).pass).toBe(false); // load-only not ≫ approximate
    expect(w2OrderCheck(mk([500, 31_000, 95_000, 200_000])).pass).toBe(false); // load-only ≉ random
    expect(w2OrderCheck(aggregateRuns([run({ workload: 'w2', policy: 'random' })])).pass).toBeUndefined();
  });

  it('W2 order with the blog\'s estimated config (approx-prefix) reads the approx-prefix cell, not gie-default', () => {
    const cells = aggregateRuns(
      (['llmd-precise-2025', 'gie-default', 'approx-prefix', 'least-loaded', 'random'] as const).map((policy, i) =>
        run({ workload: 'w2', policy, p90: [500, 520, 31_000, 95_000, 92_000][i] as number }),
      ),
    );
    expect(w2OrderCheck(cells, 'w2', 'gie-default').pass).toBe(false);
    const c = w2OrderCheck(cells, 'w2', 'approx-prefix');
    expect(c.pass).toBe(true);
    expect(c.name).toContain('llmd-precise-2025 ≫ approx-prefix ≫ least-loaded ≈ random');
    expect(c.measured).toContain('31.00 s');
    expect(w2OrderCheck(aggregateRuns([run({ workload: 'w2', policy: 'gie-default' })]), 'w2', 'approx-prefix').measured).toContain('needs llmd-precise-2025, approx-prefix');
  });

  it('the shown command hides both trace paths', () => {
    expect(displayCommand(['--seeds', '1', '--trace', '/x/a.jsonl', '--trace-synthetic=/x/b.jsonl', '--out', '/tmp/o'])).toBe(
      'npm run bench:report -- --seeds 1 --trace <mooncake-conversation.jsonl> --trace-synthetic <mooncake-synthetic.jsonl>',
    );
  });
});
