/** `kvroute-epp verify` pieces without processes: flags and their defaults, the workload, the ceiling, the report. */
import { buildReport, buildVerifyWorkload, estimateCeilings, metricSum, parseVerifyArgs, type CounterSnapshot, type TurnResult, type VerifyOptions } from '../../src/cli/verify.js';

const base = ['--gateway', 'http://gw:80/', '--model', 'm', '--pods', '10.0.0.1:8000,10.0.0.2:8000'];

describe('verify flags', () => {
  it('defaults: 24 sessions × 3 turns, 6 groups, 400 words, concurrency 4, 16 tokens, block 16, seed 1, settle 1 s, 120 s, thresholds 0.7 / 2 / 0.8 / 0.25 / 0', () => {
    const o = parseVerifyArgs(base) as VerifyOptions;
    expect(o).toMatchObject({ gateway: 'http://gw:80', model: 'm', pods: ['10.0.0.1:8000', '10.0.0.2:8000'], sessions: 24, turns: 3, groups: 6, systemWords: 400, concurrency: 4, maxTokens: 16, blockSize: 16, seed: 1, settleSeconds: 1, timeoutSeconds: 120 });
    expect(o.thresholds).toEqual({ minHitRatio: 0.7, maxImbalance: 2, minStickiness: 0.8, maxPredictionError: 0.25, maxErrorRate: 0 });
    expect(o.prometheus).toBeUndefined();
    expect(o.epp).toBeUndefined();
    expect(o.json).toBeUndefined();
    // with Prometheus the last read waits a scrape interval
    expect((parseVerifyArgs(['--gateway', 'http://gw', '--model', 'm', '--prometheus', 'http://p:9090']) as VerifyOptions).settleSeconds).toBe(30);
    // groups follow the sessions, at least 2
    expect((parseVerifyArgs([...base, '--sessions', '3']) as VerifyOptions).groups).toBe(2);
    expect(parseVerifyArgs(['--help'])).toBe('help');
  });

  it.each([
    [['--sessions', '0'], /--sessions "0" must be an integer ≥ 1/],
    [['--turns', 'x'], /--turns "x" must be an integer ≥ 1/],
    [['--min-hit-ratio=-1'], /--min-hit-ratio "-1" must be a number ≥ 0/],
    [['--max-imbalance', '0.5'], /--max-imbalance "0.5" must be a number ≥ 1/],
    [['--bogus', '1'], /Unknown option '--bogus'/],
  ])('%j is rejected naming the flag', (extra, msg) => {
    expect(() => parseVerifyArgs([...base, ...extra])).toThrow(msg);
  });

  it('rejects bad URLs and pod lists, naming the value', () => {
    expect(() => parseVerifyArgs(['--gateway', 'gw:80', '--model', 'm'])).toThrow(/--gateway "gw:80" is not an http\(s\) URL/);
    expect(() => parseVerifyArgs(['--gateway', 'http://gw', '--model', 'm', '--pods', '10.0.0.1'])).toThrow(/--pods "10.0.0.1" must be ip:port/);
  });
});

describe('verify workload and report', () => {
  it('builds the same structure for a seed, with a fresh run id in every system prompt', () => {
    const o = { sessions: 5, turns: 2, groups: 2, systemWords: 10, seed: 3 };
    const a = buildVerifyWorkload(o, 'r1');
    expect(a.map((s) => s.group)).toEqual([0, 1, 0, 1, 0]);
    expect(a[0]!.system).toBe(a[2]!.system);
    expect(a[0]!.system).not.toBe(a[1]!.system);
    expect(a[0]!.system.startsWith('Verify run r1.')).toBe(true);
    expect(a.every((s) => s.users.length === 2)).toBe(true);
    expect(buildVerifyWorkload(o, 'r1')).toEqual(a);
    expect(buildVerifyWorkload(o, 'r2')[0]!.system).not.toBe(a[0]!.system);
    expect(buildVerifyWorkload(o)[0]!.system).not.toBe(buildVerifyWorkload(o)[0]!.system);
  });

  const turn = (session: string, n: number, text: string, prompt: number, cached: number, pod: string): TurnResult => ({
    session, turn: n, ok: true, ttftMs: cached > 0 ? 10 : 50, promptTokens: prompt, cachedTokens: cached, pod, reply: '', ceilingTokens: 0, promptChars: text.length, promptText: text,
  });

  it('estimates the ceiling from the prefix shared with earlier requests, in whole blocks, never the last token', () => {
    const sys = 'S'.repeat(64);
    const t = [turn('a', 0, `${sys}u1`, 66, 0, 'p'), turn('b', 0, `${sys}u2`, 66, 48, 'p'), turn('c', 0, 'X'.repeat(64), 64, 0, 'q'), turn('d', 0, 'X'.repeat(64), 64, 48, 'q')];
    estimateCeilings(t, 16);
    // first request: nothing earlier; second: 64 shared chars of 66 → 64 tokens → 4 blocks; a repeat: 63 tokens reachable → 3 blocks
    expect(t.map((x) => x.ceilingTokens)).toEqual([0, 64, 0, 48]);
  });

  it('reports hit rate, share, stickiness and the checks; a failed check fails the run', () => {
    const o = parseVerifyArgs(base) as VerifyOptions;
    const turns = [turn('a', 0, 'x', 100, 0, 'p1'), turn('a', 1, 'x', 120, 96, 'p1'), turn('b', 0, 'y', 100, 0, 'p2'), turn('b', 1, 'y', 120, 0, 'p1')];
    turns[1]!.ceilingTokens = 96;
    turns[3]!.ceilingTokens = 96;
    const snap = (h: number, q: number, predicted: number, actual: number): CounterSnapshot => ({
      hits: new Map([['p1', h], ['p2', 0]]), queries: new Map([['p1', q], ['p2', 0]]), requests: undefined, predicted, actual,
    });
    const r = buildReport(o, turns, snap(0, 0, 0, 0), snap(96, 440, 192, 96));
    expect(r.tokenHitRate).toBeCloseTo(96 / 440);
    expect(r.ceiling).toBeCloseTo(192 / 440);
    expect(r.shareSource).toBe('gateway-header');
    expect(r.share).toEqual({ p1: 0.75, p2: 0.25 });
    expect(r.imbalance).toBeCloseTo(1.5);
    expect(r.stickiness).toBe(0.5);
    expect([r.hits, r.misses]).toEqual([1, 3]);
    expect(r.predictedTokens).toBe(192);
    expect(r.actualTokens).toBe(96);
    expect(r.checks.map((c) => [c.name, c.pass])).toEqual([
      ['request errors (share)', true],
      ['token hit rate ÷ ceiling', false],
      ['request share max/mean', true],
      ['session stickiness', false],
      ['EPP prediction error |actual − predicted| ÷ predicted', false],
    ]);
    expect(r.pass).toBe(false);
  });

  it('sums a metric over its label sets, undefined when absent', () => {
    const text = 'vllm:prefix_cache_hits_total{model_name="m"} 5\nvllm:prefix_cache_hits_total{model_name="n"} 2.5\nvllm:prefix_cache_hits_totalx 9\n';
    expect(metricSum(text, 'vllm:prefix_cache_hits_total')).toBe(7.5);
    expect(metricSum(text, 'vllm:prefix_cache_queries_total')).toBeUndefined();
  });
});
