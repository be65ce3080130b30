/**
 * NVIDIA Dynamo's KV router, re-implemented for the simulator from its specification (our own
 * code; none of Dynamo's is copied). Sources read: ai-dynamo/dynamo
 * lib/kv-router/src/scheduling/selector/default.rs @07a6c9ce (cost and selection),
 * lib/kv-router/src/scheduling/config.rs @0243c51b (defaults).
 *
 * For each worker w, with B the engine block size and ISL the prompt length:
 *   prefill(w) = (router-side active prefill tokens of w + ISL) ÷ B          (in blocks)
 *   credit(w)  = c·δ·(overlap blocks on device) + 0.75·(on host) + 0.25·(on disk) (+ shared·0)
 *   cost(w)    = prefill_load_scale · max(prefill(w) − credit(w), 0) + decode_blocks(w)
 * where overlap is the worker's run of consecutive leading blocks in the KV-event-fed index (the
 * EPP's own index, fed by the pods' events with the run's event lag, as for `kvroute`); δ = 1 since
 * the credit decay defaults to 0; decode_blocks(w) = blocks of the requests the router has active
 * on w plus this request's blocks, a block counted once per worker however many active requests
 * share it (assume_kv_reuse); the active-request term's weight is 0. With temperature 0 the worker
 * of least cost wins, ties broken uniformly.
 *
 * Router-side load, nothing scraped: at routing a request adds its uncached prompt tokens (ISL −
 * overlap·B on the chosen worker; Dynamo's "new tokens", an inference from its docs) to the
 * worker's active prefill tokens, released at the first streamed token; it adds its prompt blocks
 * to the worker's active blocks, released at completion (track_output_blocks is off, so output
 * blocks are not added).
 */
import { Indexer } from '../../../src/kvindex/indexer.js';
import { PrefixScorer } from '../../../src/kvindex/scorer.js';
import type { BlockKey } from '../../../src/kvindex/types.js';
import type { KvEventBatch } from '../../../src/kvevents/types.js';
import type { FleetView, PolicyContext, RoutingPolicy } from '../policy.js';
import { EppIndexView, type PreciseOptions } from '../precise.js';
import { promptTokens, type SimRequest } from '../request.js';

export interface DynamoOptions extends PreciseOptions {
  /** overlap_score_credit c (0..1). @default 1 */
  readonly overlapScoreCredit?: number;
  /** @default 1 */
  readonly prefillLoadScale?: number;
  /** Credit per block held in host memory. @default 0.75 */
  readonly hostWeight?: number;
  /** Credit per block held on disk. @default 0.25 */
  readonly diskWeight?: number;
  /** Count a block shared by active requests once per worker. @default true */
  readonly assumeKvReuse?: boolean;
}

export const DYNAMO_DEFAULTS = Object.freeze({ overlapScoreCredit: 1, prefillLoadScale: 1, hostWeight: 0.75, diskWeight: 0.25, assumeKvReuse: true, temperature: 0 });

/** Cost of one worker (exported for tests). */
export function dynamoCost(o: {
  readonly activePrefillTokens: number;
  readonly isl: number;
  readonly blockSize: number;
  /** Tier-weighted overlap credit in blocks (c·device + host·0.75 + disk·0.25). */
  readonly credit: number;
  readonly decodeBlocks: number;
  readonly prefillLoadScale: number;
}): number {
  const raw = (o.activePrefillTokens + o.isl) / o.blockSize;
  return o.prefillLoadScale * Math.max(raw - o.credit, 0) + o.decodeBlocks;
}

export class DynamoPolicy implements RoutingPolicy {
  readonly name = 'dynamo';
  readonly epp: EppIndexView;
  readonly o: Required<Omit<DynamoOptions, keyof PreciseOptions>>;
  /** Router-side active prefill tokens per worker. */
  readonly activePrefill: number[];
  /** Router-side active blocks per worker: block key → number of active requests holding it. */
  readonly activeBlocks: Map<BlockKey, number>[];
  /** Active block count per worker when not deduplicated. */
  private readonly activeBlockSum: number[];
  private readonly credits: Indexer;
  private readonly podIndex = new Map<string, number>();
  private readonly live = new Map<SimRequest, { pod: number; prefill: number; blocks: readonly BlockKey[] }>();

  constructor(
    private readonly ctx: PolicyContext,
    opts: DynamoOptions = {},
  ) {
    const d = DYNAMO_DEFAULTS;
    const c = opts.overlapScoreCredit ?? d.overlapScoreCredit;
    if (!(c >= 0 && c <= 1)) throw new RangeError(`dynamo overlapScoreCredit is ${c}; use a number in [0, 1]`);
    this.o = {
      overlapScoreCredit: c,
      prefillLoadScale: opts.prefillLoadScale ?? d.prefillLoadScale,
      hostWeight: opts.hostWeight ?? d.hostWeight,
      diskWeight: opts.diskWeight ?? d.diskWeight,
      assumeKvReuse: opts.assumeKvReuse ?? d.assumeKvReuse,
    };
    this.epp = new EppIndexView(ctx, opts);
    // Same index, a scorer whose tier weights are Dynamo's credits: its raw sum is the credit.
    this.credits = new Indexer({
      index: this.epp.index,
      blockSize: ctx.blockSize,
      hashSeed: opts.hashSeed ?? '42',
      engineAlgo: 'sha256_cbor_64bit',
      scorer: new PrefixScorer({ tierWeights: { gpu: c, cpu: this.o.hostWeight, disk: this.o.diskWeight }, defaultTierWeight: c }),
    });
    const n = ctx.podIds.length;
    this.activePrefill = new Array<number>(n).fill(0);
    this.activeBlocks = Array.from({ length: n }, () => new Map<BlockKey, number>());
    this.activeBlockSum = new Array<number>(n).fill(0);
    ctx.podIds.forEach((id, i) => this.podIndex.set(id, i));
  }

  onKvEvents(podIndex: number, batch: KvEventBatch): Promise<void> {
    return this.epp.apply(podIndex, batch);
  }

  /** Decode blocks of worker `w` if `blocks` were added. */
  decodeBlocks(w: number, blocks: readonly BlockKey[]): number {
    if (!this.o.assumeKvReuse) return (this.activeBlockSum[w] as number) + blocks.length;
    const act = this.activeBlocks[w] as Map<BlockKey, number>;
    let fresh = 0;
    for (const b of blocks) if (!act.has(b)) fresh++;
    return act.size + fresh;
  }

  async pick(req: SimRequest, fleet: FleetView): Promise<number> {
    const n = fleet.pods.length;
    const bs = this.ctx.blockSize;
    const res = await this.credits.scoreTokens(promptTokens(req), this.ctx.model);
    const credit = new Array<number>(n).fill(0);
    const overlap = new Array<number>(n).fill(0);
    for (const p of res.pods) {
      const i = this.podIndex.get(p.pod);
      if (i === undefined) continue;
      credit[i] = p.raw;
      overlap[i] = p.consecutiveBlocks;
    }
    const blocks = this.ctx.keyer.keys(req, bs).slice(0, Math.floor(req.inputLength / bs));
    const cost = (w: number): number =>
      dynamoCost({
        activePrefillTokens: this.activePrefill[w] as number,
        isl: req.inputLength,
        blockSize: bs,
        credit: credit[w] as number,
        decodeBlocks: this.decodeBlocks(w, blocks),
        prefillLoadScale: this.o.prefillLoadScale,
      });
    // temperature 0: argmin, ties uniformly (reservoir sampling)
    let best = Infinity;
    let pick = 0;
    let ties = 0;
    for (let w = 0; w < n; w++) {
      const c = cost(w);
      if (c < best - 1e-9) {
        best = c;
        pick = w;
        ties = 1;
      } else if (Math.abs(c - best) <= 1e-9) {
        ties++;
        if (this.ctx.rng.int(ties) === 0) pick = w;
      }
    }
    const prefill = Math.max(0, req.inputLength - (overlap[pick] as number) * bs);
    this.activePrefill[pick] = (this.activePrefill[pick] as number) + prefill;
    const act = this.activeBlocks[pick] as Map<BlockKey, number>;
    for (const b of blocks) act.set(b, (act.get(b) ?? 0) + 1);
    this.activeBlockSum[pick] = (this.activeBlockSum[pick] as number) + blocks.length;
    this.live.set(req, { pod: pick, prefill, blocks });
    return pick;
  }

  onFirstToken(req: SimRequest): void {
    const l = this.live.get(req);
    if (!l || l.prefill === 0) return;
    this.activePrefill[l.pod] = (this.activePrefill[l.pod] as number) - l.prefill;
    this.live.set(req, { ...l, prefill: 0 });
  }

  onComplete(req: SimRequest): void {
    this.onFirstToken(req);
    const l = this.live.get(req);
    if (!l) return;
    this.live.delete(req);
    const act = this.activeBlocks[l.pod] as Map<BlockKey, number>;
    for (const b of l.blocks) {
      const c = (act.get(b) ?? 0) - 1;
      if (c <= 0) act.delete(b);
      else act.set(b, c);
    }
    this.activeBlockSum[l.pod] = (this.activeBlockSum[l.pod] as number) - l.blocks.length;
  }
}
