import { MultiTenantTree, SGLANG_DEFAULTS, SglangPolicy } from '../../../../lab/sim/peers/sglang.js';
import { createPolicy } from '../../../../lab/sim/policy-factory.js';
import { ctx, fleet } from './helpers.js';

const text = (...parts: number[][]): number[] => parts.flat();
const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

describe('sglang cache_aware', () => {
  it('defaults: the CLI values (0.3, 64, 1.5, 60 s, 2^26 chars), 4 chars per derived token', () => {
    const p = createPolicy('sglang', ctx()) as SglangPolicy;
    expect(p.o).toEqual({ cacheThreshold: 0.3, balanceAbsThreshold: 64, balanceRelThreshold: 1.5, evictionIntervalMs: 60_000, maxTreeChars: 67_108_864 });
    expect(SGLANG_DEFAULTS.charsPerToken).toBe(4);
  });

  it('switches to the least-loaded worker only when max − min > 64 AND max > 1.5 × min', () => {
    const p = new SglangPolicy(ctx());
    p.tree.insert(range(1, 100), 2, 0);
    const t = range(1, 100);
    // cached on worker 2; loads 100 vs 36: diff 64 (not > 64) → cache wins
    expect(p.decide(t, [36, 50, 100, 60])).toEqual({ pod: 2, reason: 'cache-hit' });
    // diff 65 and 101 > 1.5·36 → least-loaded (worker 0)
    expect(p.decide(t, [36, 50, 101, 60])).toEqual({ pod: 0, reason: 'imbalanced' });
    // diff 70 but 270 ≤ 1.5·200 → balanced → cache
    expect(p.decide(t, [200, 210, 270, 260])).toEqual({ pod: 2, reason: 'cache-hit' });
  });

  it('cache hit needs matched/total > 0.3; a miss goes to the least-loaded worker (ties → fewer routed)', () => {
    const p = new SglangPolicy(ctx());
    p.tree.insert(range(1, 30), 3, 0);
    // 30 of 100 = 0.30, not > 0.3 → least loaded
    expect(p.decide(text(range(1, 30), range(500, 70)), [5, 2, 9, 1])).toEqual({ pod: 3, reason: 'cache-miss' });
    expect(p.decide(text(range(1, 30), range(500, 70)), [5, 2, 9, 9])).toEqual({ pod: 1, reason: 'cache-miss' });
    // 31 of 100 > 0.3 → worker 3 despite its load
    p.tree.insert(range(1, 31), 3, 0);
    expect(p.decide(text(range(1, 31), range(500, 69)), [0, 0, 0, 9])).toEqual({ pod: 3, reason: 'cache-hit' });
    // ties on load: fewer requests processed wins, then the lower index
    const q = new SglangPolicy(ctx());
    const picks = [0, 1, 2, 3, 4].map((i) => q.pick({ id: i, sessionId: 's', arrivalMs: 0, inputLength: 16, outputLength: 1, stage: 0, warmup: false, content: { kind: 'tokens', tokens: range(1000 * (i + 1), 16) } }, fleet()));
    expect(picks).toEqual([0, 1, 2, 3, 0]);
  });

  it('shared multi-tenant tree: deepest node’s last tenant, edge splits, per-tenant LRU eviction', () => {
    const t = new MultiTenantTree();
    t.insert(range(1, 10), 0, 1);
    t.insert(text(range(1, 5), range(100, 5)), 1, 2); // splits the edge at 5
    expect(t.prefixMatch(range(1, 10))).toEqual({ matched: 10, tenant: 0 });
    expect(t.prefixMatch(text(range(1, 5), [999]))).toEqual({ matched: 5, tenant: 1 }); // last tenant of the shared node
    expect(t.tokensOf.get(0)).toBe(10);
    expect(t.tokensOf.get(1)).toBe(10);
    // tenant 0 adds a newer branch; evicting to 12 tokens drops its older leaf first
    t.insert(text(range(1, 5), range(300, 7)), 0, 3);
    expect(t.tokensOf.get(0)).toBe(17);
    t.evict(12);
    expect(t.tokensOf.get(0)).toBe(12);
    // tenant 0's old tail is gone: the match ends at the shared node, whose last tenant is 0
    expect(t.prefixMatch(range(1, 10))).toEqual({ matched: 5, tenant: 0 });
    expect(t.prefixMatch(text(range(1, 5), range(300, 7)))).toEqual({ matched: 12, tenant: 0 });
    expect(t.tokensOf.get(1)).toBe(10); // tenant 1 untouched
  });

  it('evicts on the 60 s interval of simulated time', () => {
    const p = new SglangPolicy(ctx(), { maxTreeChars: 40 }); // 10 tokens per tenant
    const r = (i: number, tokens: number[]) => ({ id: i, sessionId: 's', arrivalMs: 0, inputLength: tokens.length, outputLength: 1, stage: 0, warmup: false, content: { kind: 'tokens' as const, tokens } });
    const w = p.pick(r(0, range(1, 30)), fleet([], 0));
    expect(p.tree.tokensOf.get(w)).toBe(30);
    p.pick(r(1, range(500, 3)), fleet([{ inFlight: 1 }, { inFlight: 1 }, { inFlight: 1 }, { inFlight: 1 }], 59_999));
    expect(p.tree.tokensOf.get(w)).toBeGreaterThan(10);
    p.pick(r(2, range(900, 3)), fleet([{ inFlight: 1 }, { inFlight: 1 }, { inFlight: 1 }, { inFlight: 1 }], 60_000));
    expect(p.tree.tokensOf.get(w)).toBeLessThanOrEqual(10);
  });
});
