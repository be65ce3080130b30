import type { BlockKey } from '../../../src/kvindex/types.js';
import type { KvEventBatch } from '../../../src/kvevents/types.js';
import { SimPod, type Seq } from '../../../lab/sim/pod.js';
import { PROFILE_A, PROFILE_B, PROFILE_C, stepCostMs, type PodProfile } from '../../../lab/sim/profiles.js';
import { BlockKeyer, type SimRequest } from '../../../lab/sim/request.js';
import { Rng } from '../../../lab/sim/rng.js';
import { VllmMetricNames, renderVllmMetrics } from '../../../lab/sim/vllm-metrics.js';

const tiny: PodProfile = {
  ...PROFILE_A,
  name: 'tiny',
  alphaMs: 4,
  betaPrefillMs: 0.01,
  betaDecodeMs: 0.5,
  gammaMs: 0.001,
  blockSize: 16,
  numBlocks: 64,
  maxBatchedTokens: 256,
  maxNumSeqs: 8,
};

let nextId = 0;
function tokReq(tokens: number[], output = 1, sessionId = 's'): SimRequest {
  return { id: nextId++, sessionId, arrivalMs: 0, inputLength: tokens.length, outputLength: output, stage: 0, warmup: false, content: { kind: 'tokens', tokens } };
}
function range(n: number, from = 0): number[] {
  return Array.from({ length: n }, (_, i) => from + i);
}

/** Drive the pod until idle; returns the finished sequences in order and the final time. */
function drain(pod: SimPod, start = 0): { finished: Seq[]; now: number; steps: number[] } {
  let now = start;
  const finished: Seq[] = [];
  const steps: number[] = [];
  for (let guard = 0; guard < 100_000; guard++) {
    const ms = pod.beginStep();
    if (ms === undefined) break;
    steps.push(ms);
    now += ms;
    finished.push(...pod.endStep(now).finished);
  }
  return { finished, now, steps };
}

describe('SimPod prefix cache', () => {
  it('hits only full blocks, never the whole prompt', () => {
    const pod = new SimPod({ id: 'p:1', profile: tiny });
    pod.enqueue(tokReq(range(40)), 0);
    drain(pod);
    // 40 tokens: 2 full blocks cached; the same prompt again hits 32 tokens
    const again = pod.enqueue(tokReq(range(40)), 100);
    drain(pod, 100);
    expect(again.hitTokens).toBe(32);
    expect(again.queriedTokens).toBe(40);
    // 48 tokens = 3 full blocks, but vLLM caps the hit at ⌊47/16⌋ = 2 blocks
    const first48 = pod.enqueue(tokReq(range(48)), 200);
    drain(pod, 200);
    expect(first48.hitTokens).toBe(32); // shares range(40)'s two full blocks
    const capped = pod.enqueue(tokReq(range(48)), 300);
    drain(pod, 300);
    expect(capped.hitTokens).toBe(32);
    // a prompt that differs in its first block hits nothing
    const other = pod.enqueue(tokReq([999, ...range(47, 1)]), 400);
    drain(pod, 400);
    expect(other.hitTokens).toBe(0);
    const m = pod.metrics();
    expect(m.prefixCacheQueries).toBe(40 + 40 + 48 + 48 + 48);
    expect(m.prefixCacheHits).toBe(32 + 32 + 32);
  });

  it('a shared prefix hits up to the first differing block', () => {
    const pod = new SimPod({ id: 'p:1', profile: tiny });
    pod.enqueue(tokReq(range(100)), 0);
    drain(pod);
    const tail = range(100);
    tail[50] = 12345; // block 3 (tokens 48..63) differs
    const s = pod.enqueue(tokReq(tail), 10);
    drain(pod, 10);
    expect(s.hitTokens).toBe(48);
  });
});

describe('SimPod known outputs', () => {
  it('caches the full blocks of a known output, so the next turn that repeats it hits them', () => {
    const pod = new SimPod({ id: 'p:1', profile: tiny });
    const ids = [1, 2, 3, 4, 5, 6, 7, 8];
    const turn = (L: number, O: number): SimRequest => ({
      id: nextId++,
      sessionId: 'chat',
      arrivalMs: 0,
      inputLength: L,
      outputLength: O,
      stage: 0,
      warmup: false,
      content: { kind: 'ids', ids, idBlockSize: 16, coveredTokens: L + O },
    });
    pod.enqueue(turn(40, 40), 0); // computes 40 + 39 tokens: blocks 0..3 full
    drain(pod);
    expect(pod.cachedKeys()).toHaveLength(4);
    const next = pod.enqueue(turn(100, 10), 1000); // prompt = turn 1's prompt + output + 20 new tokens
    drain(pod, 1000);
    expect(next.hitTokens).toBe(64);
  });
});

describe('SimPod step cost and scheduling', () => {
  it('charges α + β_p·P for a prefill step and α + β_d·D + γ·K for decode steps', () => {
    const pod = new SimPod({ id: 'p:1', profile: tiny });
    pod.enqueue(tokReq(range(100), 3), 0);
    const { steps, finished } = drain(pod);
    expect(steps).toHaveLength(3); // prefill (+ first token), then 2 decodes
    expect(steps[0]).toBeCloseTo(4 + 0.01 * 100, 10);
    expect(steps[1]).toBeCloseTo(4 + 0.5 * 1 + 0.001 * 100, 10);
    expect(steps[2]).toBeCloseTo(4 + 0.5 * 1 + 0.001 * 101, 10);
    expect(stepCostMs(tiny, 100, 0, 0)).toBeCloseTo(steps[0] as number, 10);
    const s = finished[0] as Seq;
    expect(s.firstTokenMs).toBeCloseTo(steps[0] as number, 10);
    expect(s.generated).toBe(3);
  });

  it('chunks a long prompt by the token budget and emits the first token after the last chunk', () => {
    const pod = new SimPod({ id: 'p:1', profile: { ...tiny, numBlocks: 100 } });
    const seq = pod.enqueue(tokReq(range(600), 1), 0);
    const { steps } = drain(pod);
    // 256 + 256 + 88 tokens
    expect(steps.map((x) => Math.round((x - 4) / 0.01))).toEqual([256, 256, 88]);
    expect(seq.firstTokenMs).toBeCloseTo(steps.reduce((a, b) => a + b, 0), 10);
  });

  it('runs at most maxNumSeqs sequences; the rest wait', () => {
    const pod = new SimPod({ id: 'p:1', profile: { ...tiny, maxNumSeqs: 2 } });
    for (let i = 0; i < 3; i++) pod.enqueue(tokReq(range(16, 1000 * (i + 1)), 5), 0);
    pod.beginStep();
    expect(pod.metrics().numRequestsRunning).toBe(2);
    expect(pod.metrics().numRequestsWaiting).toBe(1);
    pod.endStep(10);
    const { finished } = drain(pod, 10);
    expect(finished).toHaveLength(3);
  });

  it('rejects what vLLM rejects', () => {
    const pod = new SimPod({ id: 'p:1', profile: tiny });
    expect(pod.rejectReason(tokReq(range(5000), 1))).toMatch(/max_model_len|KV blocks/);
    expect(pod.rejectReason(tokReq(range(10), 0))).toMatch(/max_tokens/);
    expect(pod.rejectReason(tokReq(range(10), 1))).toBeUndefined();
    expect(() => pod.enqueue(tokReq(range(5000), 1), 0)).toThrow(/cannot take request/);
  });
});

describe('SimPod eviction', () => {
  it('evicts least recently released unreferenced blocks, tail first, and never a running sequence', () => {
    const events: KvEventBatch[] = [];
    const profile = { ...tiny, numBlocks: 8 };
    const pod = new SimPod({ id: 'p:1', profile, onKvEvents: (b) => events.push(b) });
    const keyer = new BlockKeyer();
    const a = tokReq(range(64, 0), 1); // 4 blocks
    pod.enqueue(a, 0);
    drain(pod);
    const aKeys = keyer.keys(a, 16);
    expect(aKeys.every((k) => pod.isCached(k))).toBe(true);
    expect(pod.stats().evictableBlocks).toBe(4);
    // B holds 6 blocks while running (long output keeps it running); needs 2 of A's blocks
    const b = tokReq(range(96, 5000), 30);
    pod.enqueue(b, 1);
    pod.beginStep();
    pod.endStep(2);
    const removed = events.flatMap((e) => e.events).filter((e) => e.type === 'BlockRemoved');
    const removedKeys = removed.flatMap((e) => (e.type === 'BlockRemoved' ? [...e.blockHashes] : []));
    // A's tail blocks (3, then 2) go first; its prefix blocks 0 and 1 stay
    expect(removedKeys).toEqual([aKeys[3], aKeys[2]]);
    expect(pod.isCached(aKeys[0] as BlockKey)).toBe(true);
    // C needs 4 blocks: only A's 2 remaining evictable blocks exist, B's are referenced → C waits
    const c = pod.enqueue(tokReq(range(64, 9000), 1), 3);
    const ms = pod.beginStep();
    expect(ms).toBeDefined();
    expect(pod.metrics().numRequestsWaiting).toBe(1);
    expect(c.queriedTokens).toBe(0);
    pod.endStep(4);
    const { finished } = drain(pod, 4);
    expect(finished.map((s) => s.req.id)).toEqual([b.id, c.req.id]);
    expect(pod.stats().usedBlocks).toBe(0);
  });

  it('preempts the newest running sequence when a decode needs a block and none is free', () => {
    const profile = { ...tiny, numBlocks: 6, maxBatchedTokens: 512 };
    const pod = new SimPod({ id: 'p:1', profile });
    // two requests of 2 blocks each that grow by 2 blocks of output each: 8 > 6 blocks
    pod.enqueue(tokReq(range(32, 0), 40), 0);
    pod.enqueue(tokReq(range(32, 100), 40), 0);
    const { finished } = drain(pod);
    expect(finished).toHaveLength(2);
    expect(pod.stats().preemptions).toBeGreaterThan(0);
    expect(finished.every((s) => s.generated === 40)).toBe(true);
    expect(pod.stats().usedBlocks).toBe(0);
  });
});

describe('SimPod block accounting', () => {
  it('keeps used + empty + evictable = capacity and kv usage = referenced blocks / capacity under sharing and preemption', () => {
    const profile = { ...tiny, numBlocks: 30, maxBatchedTokens: 128 };
    const pod = new SimPod({ id: 'p:1', profile });
    const rng = new Rng(3);
    const shared = range(64, 0); // 4 blocks shared by concurrent sequences
    let now = 0;
    let maxUsage = 0;
    const problems: string[] = [];
    for (let i = 0; i < 40; i++) {
      pod.enqueue(tokReq(shared.concat(range(8 + rng.int(40), 1000 + 100 * i)), 1 + rng.int(60)), now);
      for (let k = 0; k < 3; k++) {
        const ms = pod.beginStep();
        if (ms === undefined) break;
        now += ms;
        pod.endStep(now);
        problems.push(...pod.checkInvariants());
        const u = pod.metrics().kvCacheUsagePerc;
        if (u < 0 || u > 1) problems.push(`usage ${u}`);
        maxUsage = Math.max(maxUsage, u);
      }
    }
    drain(pod, now);
    expect(problems).toEqual([]);
    expect(pod.checkInvariants()).toEqual([]);
    expect(maxUsage).toBeGreaterThan(0.5);
    expect(pod.stats().preemptions).toBeGreaterThan(0);
    expect(pod.metrics().kvCacheUsagePerc).toBe(0);
  });
});

describe('SimPod KV events', () => {
  it('emits BlockStored/BlockRemoved that replay to exactly the cache contents', () => {
    const events: KvEventBatch[] = [];
    const profile = { ...tiny, numBlocks: 40 };
    const pod = new SimPod({ id: 'p:1', profile, onKvEvents: (b) => events.push(b) });
    const rng = new Rng(7);
    const prefixes = [range(64, 0), range(64, 10_000), range(32, 20_000)];
    let now = 0;
    for (let i = 0; i < 60; i++) {
      const p = prefixes[i === 0 ? 0 : rng.int(prefixes.length)] as number[];
      const tokens = p.concat(range(16 + rng.int(40), 100_000 + i * 100));
      pod.enqueue(tokReq(tokens, 1 + rng.int(20)), now);
      if (rng.next() < 0.5) now = drain(pod, now).now;
    }
    drain(pod, now);
    const replica = new Set<BlockKey>();
    const stored = new Map<BlockKey, { parent?: BlockKey; tokens: number[] }>();
    const problems: string[] = [];
    let storedEvents = 0;
    let removedEvents = 0;
    for (const b of events) {
      for (const e of b.events) {
        if (e.type === 'BlockStored') {
          storedEvents++;
          if (e.blockSize !== 16 || e.medium !== 'gpu') problems.push(`stored: block size ${e.blockSize}, medium ${e.medium}`);
          if (e.tokenIds.length !== 16 * e.blockHashes.length) problems.push(`stored: ${e.tokenIds.length} tokens for ${e.blockHashes.length} blocks`);
          e.blockHashes.forEach((h, j) => {
            if (replica.has(h)) problems.push(`stored twice while cached: ${h}`);
            replica.add(h);
            stored.set(h, { parent: j === 0 ? e.parentBlockHash : e.blockHashes[j - 1], tokens: e.tokenIds.slice(16 * j, 16 * j + 16) });
          });
        } else if (e.type === 'BlockRemoved') {
          removedEvents++;
          for (const h of e.blockHashes) {
            if (!replica.delete(h)) problems.push(`removed but not cached: ${h}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(storedEvents).toBeGreaterThan(10);
    expect(removedEvents).toBeGreaterThan(0); // 40 blocks are too few for the 60 requests: evictions happened
    expect([...replica].sort()).toEqual(pod.cachedKeys().sort());
    expect(pod.stats().evictableBlocks).toBe(pod.stats().cachedBlocks);
    // parent hashes chain block to block; a chain root has none
    const keyer = new BlockKeyer();
    const prefixKeys = keyer.keys(tokReq(range(64, 0)), 16);
    expect(stored.get(prefixKeys[1] as BlockKey)?.parent).toBe(prefixKeys[0]);
    expect(stored.get(prefixKeys[0] as BlockKey)?.parent).toBeUndefined();
    expect(stored.get(prefixKeys[0] as BlockKey)?.tokens).toEqual(range(16, 0));
  });

  it('AllBlocksCleared: refused while blocks are in use, emitted when idle', () => {
    const events: KvEventBatch[] = [];
    const pod = new SimPod({ id: 'p:1', profile: tiny, onKvEvents: (b) => events.push(b) });
    pod.enqueue(tokReq(range(40), 5), 0);
    pod.beginStep();
    pod.endStep(5);
    expect(pod.resetPrefixCache(6)).toBe(false);
    drain(pod, 6);
    expect(pod.cachedKeys().length).toBe(2);
    expect(pod.resetPrefixCache(100)).toBe(true);
    expect(events[events.length - 1]?.events).toEqual([{ type: 'AllBlocksCleared' }]);
    expect(pod.cachedKeys()).toEqual([]);
    const again = pod.enqueue(tokReq(range(40)), 200);
    drain(pod, 200);
    expect(again.hitTokens).toBe(0);
  });
});

describe('vLLM metrics', () => {
  it('renders vLLM names with model_name labels and the cache config', () => {
    const pod = new SimPod({ id: 'p:1', profile: PROFILE_B });
    pod.enqueue(tokReq(range(100)), 0);
    drain(pod);
    pod.enqueue(tokReq(range(100)), 10);
    pod.enqueue(tokReq(range(100, 7)), 10);
    pod.beginStep();
    const text = renderVllmMetrics(pod.metrics(), { modelName: PROFILE_B.model, profile: PROFILE_B });
    const value = (name: string): number => {
      const m = text.match(new RegExp(`^${name.replace(/[:]/g, '\\:')}\\{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"\\} (\\S+)$`, 'm'));
      if (!m) throw new Error(`${name} missing in\n${text}`);
      return Number(m[1]);
    };
    expect(value(VllmMetricNames.prefixCacheQueries)).toBe(300);
    expect(value(VllmMetricNames.prefixCacheHits)).toBe(96);
    expect(value(VllmMetricNames.numRequestsRunning)).toBe(2);
    expect(value(VllmMetricNames.numRequestsWaiting)).toBe(0);
    expect(value(VllmMetricNames.kvCacheUsagePerc)).toBeCloseTo(14 / 28000, 12);
    expect(text).toContain('# TYPE vllm:prefix_cache_queries_total counter');
    expect(text).toMatch(/^vllm:cache_config_info\{block_size="16",.*num_gpu_blocks="28000".*\} 1\.0$/m);
  });

  it('profiles carry the note’s numbers', () => {
    expect([PROFILE_A.betaPrefillMs, PROFILE_B.betaPrefillMs, PROFILE_C.betaPrefillMs]).toEqual([0.014, 0.025, 0.0488]);
    expect(PROFILE_A.numBlocks * PROFILE_A.blockSize).toBe(800_000);
    expect(PROFILE_C.numBlocks * PROFILE_C.blockSize).toBe(307_328);
    expect(() => new SimPod({ id: 'x', profile: { ...tiny, numBlocks: 0 } })).toThrow(/numBlocks is 0/);
  });
});
