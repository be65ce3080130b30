import type { KvEventBatch } from '../../../../src/kvevents/types.js';
import { DYNAMO_DEFAULTS, DynamoPolicy, dynamoCost } from '../../../../lab/sim/peers/dynamo.js';
import { createPolicy } from '../../../../lab/sim/policy-factory.js';
import type { SimPod } from '../../../../lab/sim/pod.js';
import { blocks, ctx, fleet, req, serve, simPods } from './helpers.js';

describe('dynamo', () => {
  it('defaults: credit 1, prefill_load_scale 1, host 0.75, disk 0.25, kv reuse on, temperature 0', () => {
    const p = createPolicy('dynamo', ctx()) as DynamoPolicy;
    expect(p.o).toEqual({ overlapScoreCredit: 1, prefillLoadScale: 1, hostWeight: 0.75, diskWeight: 0.25, assumeKvReuse: true });
    expect(DYNAMO_DEFAULTS.temperature).toBe(0);
    expect(() => new DynamoPolicy(ctx(), { overlapScoreCredit: 1.5 })).toThrow(/overlapScoreCredit is 1.5/);
  });

  it('cost = scale·max((active prefill + ISL)/B − credit, 0) + decode blocks', () => {
    // 1,600-token prompt (100 blocks), 80 blocks of credit, 40 active decode blocks
    expect(dynamoCost({ activePrefillTokens: 0, isl: 1600, blockSize: 16, credit: 80, decodeBlocks: 140, prefillLoadScale: 1 })).toBe(20 + 140);
    // 320 tokens of prefill in flight add 20 blocks
    expect(dynamoCost({ activePrefillTokens: 320, isl: 1600, blockSize: 16, credit: 80, decodeBlocks: 140, prefillLoadScale: 1 })).toBe(40 + 140);
    // credit above the prefill does not go negative
    expect(dynamoCost({ activePrefillTokens: 0, isl: 160, blockSize: 16, credit: 50, decodeBlocks: 10, prefillLoadScale: 2 })).toBe(10);
  });

  it('argmin cost with overlap credit from KV events; decode blocks deduplicated per worker', async () => {
    const pods = simPods();
    const p = new DynamoPolicy(ctx(pods));
    const events: KvEventBatch[] = [];
    serve(pods[1] as SimPod, req(blocks(1, 100)), events);
    for (const b of events) await p.onKvEvents(1, b);
    // 100-block prompt fully cached on pod 1: cost 0 + 100 there vs 100 + 100 elsewhere
    const r1 = req(blocks(1, 100));
    expect(await p.pick(r1, fleet())).toBe(1);
    expect(p.activePrefill[1]).toBe(0); // fully cached: nothing to prefill
    expect(p.activeBlocks[1]?.size).toBe(100);
    // the same prompt again: its blocks are already active on pod 1, so decode blocks stay 100
    expect(p.decodeBlocks(1, [...(p.activeBlocks[1] as Map<bigint, number>).keys()])).toBe(100);
    const r2 = req(blocks(1, 100));
    expect(await p.pick(r2, fleet())).toBe(1);
    // a cold 100-block prompt: pod 1 costs 100 + (100 + 100), others 100 + 100 → not pod 1
    const r3 = req(blocks(5000, 100));
    const w3 = await p.pick(r3, fleet());
    expect(w3).not.toBe(1);
    expect(p.activePrefill[w3]).toBe(1600);
    // prefill released at the first token, blocks at completion
    p.onFirstToken(r3);
    expect(p.activePrefill[w3]).toBe(0);
    expect(p.activeBlocks[w3]?.size).toBe(100);
    p.onComplete(r3);
    expect(p.activeBlocks[w3]?.size).toBe(0);
    p.onComplete(r1);
    expect(p.activeBlocks[1]?.size).toBe(100); // r2 still holds them
    p.onComplete(r2);
    expect(p.activeBlocks[1]?.size).toBe(0);
  });

  it('ties are broken uniformly at random', async () => {
    const p = new DynamoPolicy(ctx([], 3));
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const r = req(blocks(10_000 * (i + 1), 4));
      seen.add(await p.pick(r, fleet()));
      p.onComplete(r);
    }
    expect(seen.size).toBe(4);
  });
});
