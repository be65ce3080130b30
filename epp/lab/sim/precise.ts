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
 * `kvroute` (B7a): the EPP's own scheduler (`buildScheduler` in scheduling/build.ts with the EPP
 * config's defaults: today the predicted-TTFT scorer), fed with the same index and with
 * `EndpointState`s built from the router's view of the fleet: scraped metrics older than the
 * config's `metricsStalenessMs` count as unknown, exactly as the EPP's endpoint store reports them.
 * What the scheduler books per request is released at the request's first token (the EPP's first
 * response chunk) and at completion. Tie-breaks use the run's seeded RNG.
 *
 * `kvroute-llmd`: the same with `scheduling.preset: llmd-suite` (the previous default: precise
 * prefix 3, queue 2, kv-cache utilization 2, in-flight 1).
 *
 * The simulated pods publish the simulator's own 64-bit engine keys (not vLLM's SHA-256 chain), so
 * the applier's hash-mismatch check is turned off here; request keys are the EPP's `fast` keys
 * computed from the token ids in the events, exactly as in production.
 */
import { parseEppConfig, type EppConfig } from '../../src/contract/config.js';
import type { EndpointState } from '../../src/datalayer/endpoint-store.js';
import { Indexer } from '../../src/kvindex/indexer.js';
import { MemoryIndex } from '../../src/kvindex/backends/memory-index.js';
import { PrefixScorer } from '../../src/kvindex/scorer.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import { EventApplier } from '../../src/kvevents/applier.js';
import { noopMetrics } from '../../src/kvevents/observe.js';
import type { KvEventBatch } from '../../src/kvevents/types.js';
import { buildScheduler } from '../../src/scheduling/build.js';
import type { Scheduler } from '../../src/scheduling/scheduler.js';
import type { Reservation } from '../../src/scheduling/types.js';
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
  /** Events the applier dropped, by reason (e.g. `parent_unknown`). */
  readonly drops: Record<string, number> = {};
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
      metrics: {
        ...noopMetrics,
        dropped: (reason, n = 1) => {
          this.drops[reason] = (this.drops[reason] ?? 0) + n;
        },
      },
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

export interface KvrouteOptions extends PreciseOptions {
  /**
   * EPP config fields merged over `{ model, blockSize }` before parsing (e.g. other
   * `scheduling.weights`).
   * @default {} (the EPP's defaults)
   */
  readonly config?: Readonly<Record<string, unknown>>;
}

export class KvroutePolicy implements RoutingPolicy {
  readonly name: string;
  readonly epp: EppIndexView;
  readonly config: EppConfig;
  readonly scheduler: Scheduler;
  /** What the scheduler booked per routed request, released at the first token and at completion. */
  private readonly reservations = new Map<SimRequest, Reservation>();
  private nowMs = 0;

  constructor(
    private readonly ctx: PolicyContext,
    opts: KvrouteOptions = {},
    name = 'kvroute',
  ) {
    this.name = name;
    this.epp = new EppIndexView(ctx, opts);
    this.config = parseEppConfig({ model: ctx.model, blockSize: ctx.blockSize, ...opts.config }, 'kvroute policy config');
    this.scheduler = buildScheduler({ config: this.config, indexer: this.epp.indexer, random: () => ctx.rng.next(), now: () => this.nowMs }).scheduler;
  }

  onKvEvents(podIndex: number, batch: KvEventBatch): Promise<void> {
    return this.epp.apply(podIndex, batch);
  }

  /** The first response chunk: as the EPP's director reports it to the scheduler. */
  onFirstToken(req: SimRequest): void {
    this.reservations.get(req)?.started();
  }

  onComplete(req: SimRequest): void {
    this.reservations.get(req)?.finished();
    this.reservations.delete(req);
  }

  /** The fleet as the EPP's endpoint store would report it (stale metrics → undefined). */
  candidates(fleet: FleetView): EndpointState[] {
    const staleMs = this.config.scheduling.metricsStalenessMs;
    return fleet.pods.map((p) => ({
      endpoint: { address: p.id, name: `sim-pod-${p.index}`, role: 'both', metricsUrl: `http://${p.id}/metrics` },
      metrics:
        p.metricsAgeMs > staleMs
          ? undefined
          : {
              waiting: p.waiting,
              running: p.running,
              kvCacheUsage: p.kvUsage,
              blockSize: this.ctx.blockSize,
              // the pod's vllm:cache_config_info num_gpu_blocks label (a static engine setting it exports)
              numGpuBlocks: this.ctx.pods[p.index]?.profile.numBlocks,
              scrapedAt: fleet.nowMs - p.metricsAgeMs,
            },
      inFlight: p.inFlight,
    }));
  }

  async pick(req: SimRequest, fleet: FleetView): Promise<number> {
    this.nowMs = fleet.nowMs;
    const res = await this.scheduler.schedule({ model: this.ctx.model, tokens: promptTokens(req), sessionId: req.sessionId }, this.candidates(fleet));
    if (res.reservation) this.reservations.set(req, res.reservation);
    const addr = res.primary.picked[0]?.state.endpoint.address;
    const i = addr === undefined ? -1 : this.ctx.podIds.indexOf(addr);
    if (i < 0) throw new Error(`kvroute: the scheduler picked ${String(addr)}, which is not a simulated pod`);
    return i;
  }
}
