/**
 * The KV-event-driven policies, running the EPP's own code:
 *
 * - write path: each simulated pod's KV events, `eventLagMs` after the step that produced them, go
 *   through the EPP's `EventApplier` (kvevents/applier.ts, the function the ZMQ pool applies
 *   decoded batches with) into a real `MemoryIndex` (kvblock/memory-index.ts);
 * - read path: the EPP's `Indexer.scoreTokens` (kvcache/indexer.ts: prompt tokens → `fast`
 *   request keys → index lookup → `PrefixScorer`).
 *
 * `precise` (B6): argmax of the prefix score, ties broken with the seeded RNG; no load term.
 *
 * `kvroute` (B7a): weighted sum of [0,1] scores with the EPP's default weights
 * (`ScorerWeightsSchema`: prefix 3, queue 2, kvCacheUtilization 2, activeRequests 1,
 * sessionAffinity 0), max-score picker with seeded random tie-break.
 * TO BE REPLACED by the EPP scheduler (epp/src/scheduling, issue 4) once it lands: only the small
 * score combination in `KvroutePolicy.pick` is simulator code; index, event application and prefix
 * scoring are already the EPP's.
 *
 * The simulated pods publish the simulator's own 64-bit engine keys (not vLLM's SHA-256 chain), so
 * the applier's hash-mismatch check is turned off here; request keys are the EPP's `fast` keys
 * computed from the token ids in the events, exactly as in production.
 */
import { ScorerWeightsSchema } from '../contract/config.js';
import { Indexer } from '../kvcache/indexer.js';
import { MemoryIndex } from '../kvblock/memory-index.js';
import { PrefixScorer } from '../kvblock/scorer.js';
import { createTokenProcessor } from '../kvblock/token-processor.js';
import { EventApplier } from '../kvevents/applier.js';
import type { KvEventBatch } from '../kvevents/types.js';
import { queueScores } from './policies.js';
import { argmaxRandomTie, type FleetView, type PolicyContext, type RoutingPolicy } from './policy.js';
import { promptTokens, type SimRequest } from './request.js';

export interface PreciseOptions {
  /** PYTHONHASHSEED / EPP hashSeed of the key space. @default '42' */
  readonly hashSeed?: string;
  /** Memory budget of the EPP index. @default 512 MiB (the EPP default) */
  readonly memoryBudgetBytes?: number;
}

/** Shared machinery of `precise` and `kvroute`: the EPP index fed by the pods' events. */
export class EppIndexView {
  readonly index: MemoryIndex;
  readonly indexer: Indexer;
  readonly applier: EventApplier;
  private readonly podIndex = new Map<string, number>();

  constructor(
    private readonly ctx: PolicyContext,
    opts: PreciseOptions = {},
  ) {
    const hashSeed = opts.hashSeed ?? '42';
    this.index = new MemoryIndex({ memoryBudgetBytes: opts.memoryBudgetBytes });
    this.indexer = new Indexer({
      index: this.index,
      blockSize: ctx.blockSize,
      hashSeed,
      engineAlgo: 'sha256_cbor_64bit',
      scorer: new PrefixScorer(),
    });
    this.applier = new EventApplier({
      index: this.index,
      blockSize: ctx.blockSize,
      hashSeed,
      createTokenProcessor,
      hashCheck: { enabled: false },
    });
    ctx.podIds.forEach((id, i) => this.podIndex.set(id, i));
  }

  apply(podIndex: number, batch: KvEventBatch): Promise<void> {
    const id = this.ctx.podIds[podIndex];
    if (id === undefined) throw new RangeError(`KV events from unknown pod index ${podIndex}`);
    return this.applier.applyBatch(id, this.ctx.model, batch);
  }

  /** Prefix score in [0,1] per pod index (0 for pods holding nothing of the prompt). */
  async prefixScores(req: SimRequest): Promise<number[]> {
    const out = new Array<number>(this.ctx.podIds.length).fill(0);
    const res = await this.indexer.scoreTokens(promptTokens(req), this.ctx.model);
    for (const p of res.pods) {
      const i = this.podIndex.get(p.pod);
      if (i !== undefined) out[i] = p.score;
    }
    return out;
  }
}

export class PrecisePolicy implements RoutingPolicy {
  readonly name = 'precise';
  readonly epp: EppIndexView;
  constructor(
    private readonly ctx: PolicyContext,
    opts: PreciseOptions = {},
  ) {
    this.epp = new EppIndexView(ctx, opts);
  }
  onKvEvents(podIndex: number, batch: KvEventBatch): Promise<void> {
    return this.epp.apply(podIndex, batch);
  }
  async pick(req: SimRequest, fleet: FleetView): Promise<number> {
    const scores = await this.epp.prefixScores(req);
    return argmaxRandomTie(fleet.pods.length, (i) => scores[i] as number, this.ctx.rng);
  }
}

export interface KvrouteWeights {
  readonly prefix: number;
  readonly queue: number;
  readonly kvCacheUtilization: number;
  readonly activeRequests: number;
}

/** The EPP config's default scorer weights (ScorerWeightsSchema). */
export function defaultKvrouteWeights(): KvrouteWeights {
  const w = ScorerWeightsSchema.parse({});
  return { prefix: w.prefix, queue: w.queue, kvCacheUtilization: w.kvCacheUtilization, activeRequests: w.activeRequests };
}

/** Min–max score of the router's own in-flight counts: (max − a)/(max − min), 1 when all equal. */
export function activeRequestScores(fleet: FleetView): number[] {
  let min = Infinity;
  let max = -Infinity;
  for (const p of fleet.pods) {
    min = Math.min(min, p.inFlight);
    max = Math.max(max, p.inFlight);
  }
  return fleet.pods.map((p) => (max === min ? 1 : (max - p.inFlight) / (max - min)));
}

export interface KvrouteOptions extends PreciseOptions {
  /** @default defaultKvrouteWeights() (prefix 3, queue 2, kvCacheUtilization 2, activeRequests 1) */
  readonly weights?: KvrouteWeights;
}

export class KvroutePolicy implements RoutingPolicy {
  readonly name = 'kvroute';
  readonly epp: EppIndexView;
  readonly weights: KvrouteWeights;
  constructor(
    private readonly ctx: PolicyContext,
    opts: KvrouteOptions = {},
  ) {
    this.epp = new EppIndexView(ctx, opts);
    this.weights = opts.weights ?? defaultKvrouteWeights();
  }
  onKvEvents(podIndex: number, batch: KvEventBatch): Promise<void> {
    return this.epp.apply(podIndex, batch);
  }
  async pick(req: SimRequest, fleet: FleetView): Promise<number> {
    const prefix = await this.epp.prefixScores(req);
    const queue = queueScores(fleet);
    const active = activeRequestScores(fleet);
    const w = this.weights;
    return argmaxRandomTie(
      fleet.pods.length,
      (i) =>
        w.prefix * (prefix[i] as number) +
        w.queue * (queue[i] as number) +
        w.kvCacheUtilization * (1 - (fleet.pods[i]?.kvUsage ?? 0)) +
        w.activeRequests * (active[i] as number),
      this.ctx.rng,
    );
  }
}
