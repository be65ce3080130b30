/**
 * The scheduler behind the ext_proc protocol layer: turns an InferenceRequest into tokens,
 * schedules it over the current endpoints (subset hint applied), and tracks in-flight requests.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ApiError } from '../contract/errors.js';
import type { PromptTokenizer, ScheduleExplanation } from '../http/score.js';
import { Headers } from '../contract/names.js';
import type { EndpointState, EndpointStore } from '../datalayer/endpoint-store.js';
import type { InferenceRequest, PickResult, RequestDirector, ResponseInfo } from '../extproc/director.js';
import type { Logger } from '../util/logger.js';
import type { CacheAccuracy, CachePrediction } from '../accuracy/cache-accuracy.js';
import { poolSaturation, type UtilizationThresholds } from './saturation.js';
import type { Scheduler } from './scheduler.js';
import type { SessionAffinityScorer } from './scorers.js';
import type { Reservation } from './types.js';
import { canonicalHost } from '../util/host-port.js';
import { PoolMetrics, SchedulerMetrics } from '../contract/metrics.js';

export interface SchedulingDirectorOptions {
  readonly scheduler: Scheduler;
  readonly store: EndpointStore;
  readonly logger: Logger;
  /** Base model the pool serves. */
  readonly model: string;
  /**
   * Other accepted model names (LoRA adapters). Empty accepts any model name.
   * @default [] (any)
   */
  readonly allowedModels?: readonly string[];
  /**
   * Tokenizer for prompts and chats; without one only `prompt: [token ids]` requests get prefix scores.
   * @default undefined
   */
  readonly tokenizer?: PromptTokenizer;
  readonly sessions?: SessionAffinityScorer;
  /**
   * Registry for scheduler metrics.
   * @default undefined (no metrics)
   */
  readonly registry?: Registry;
  /** Name of the InferencePool, for `inference_pool_*` metrics. @default "kvroute" */
  readonly poolName?: string;
  /**
   * Admission: objective priorities and the saturation thresholds (`admission` in the EPP config).
   * @default no objectives (every request has priority 0 and is admitted), thresholds 5 / 0.8
   */
  readonly admission?: AdmissionOptions;
  /**
   * Priorities from the cluster's InferenceObjective objects, consulted before
   * `admission.objectives` (undefined = the cluster has no such objective).
   * @default undefined (config objectives only)
   */
  readonly objectivePriority?: (name: string) => number | undefined;
  /**
   * Predicted versus actual cache hits: the pick's held prefix is remembered and compared with the
   * response's `cached_tokens` (accuracy/cache-accuracy.ts).
   * @default undefined (no comparison)
   */
  readonly accuracy?: CacheAccuracy;
}

export interface AdmissionOptions extends UtilizationThresholds {
  /** InferenceObjective name (header `x-gateway-inference-objective`) → priority; < 0 is sheddable. */
  readonly objectives: Readonly<Record<string, number>>;
}

const DEFAULT_ADMISSION: AdmissionOptions = { objectives: {}, queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8 };


/** The prompt as text: a completion's prompt, or the JSON of a chat's messages. */
export function promptText(req: Pick<InferenceRequest, 'prompt' | 'messages'>): string | undefined {
  if (req.messages) return JSON.stringify(req.messages);
  if (typeof req.prompt === 'string') return req.prompt;
  if (Array.isArray(req.prompt) && typeof req.prompt[0] === 'string') return req.prompt[0];
  return undefined;
}

export class SchedulingDirector implements RequestDirector {
  private readonly releases = new Map<InferenceRequest, () => void>();
  /** What the scheduler booked per request (predicted-TTFT load), released at the first chunk and at the end. */
  private readonly reservations = new Map<InferenceRequest, Reservation>();
  private readonly predictions = new Map<InferenceRequest, CachePrediction>();
  private readonly metrics?: {
    e2e: Histogram;
    attempts: Counter<'status'>;
    tokenizeFailures: Counter<'reason'>;
    shed: Counter<'objective'>;
    prefixBlocks: Histogram;
    cachedRatio: Histogram;
  };

  constructor(private readonly opts: SchedulingDirectorOptions) {
    const r = opts.registry;
    if (r) {
      const poolName = opts.poolName ?? 'kvroute';
      const store = opts.store;
      this.metrics = {
        e2e: new Histogram({
          name: 'inference_extension_scheduler_e2e_duration_seconds',
          help: 'End-to-end scheduling latency: tokenization, index lookup, scoring and picking.',
          buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
          registers: [r],
        }),
        attempts: new Counter({
          name: SchedulerMetrics.attempts.name,
          help: 'Scheduling attempts by status (success, failure).',
          labelNames: ['status'],
          registers: [r],
        }),
        shed: new Counter({
          name: SchedulerMetrics.admissionShed.name,
          help: 'Sheddable requests (objective priority < 0) dropped with 429 because the pool was saturated.',
          labelNames: ['objective'],
          registers: [r],
        }),
        tokenizeFailures: new Counter({
          name: SchedulerMetrics.tokenizeFailures.name,
          help: 'Requests scheduled without prefix scores because their prompt could not be tokenized.',
          labelNames: ['reason'],
          registers: [r],
        }),
        prefixBlocks: new Histogram({
          name: SchedulerMetrics.promptBlocks.name,
          help: 'Full KV blocks in scheduled prompts.',
          buckets: [0, 1, 4, 16, 64, 256, 1024, 4096],
          registers: [r],
        }),
        cachedRatio: new Histogram({
          name: SchedulerMetrics.cachedPrefixRatio.name,
          help: 'Share of the prompt blocks the picked pod already holds, per scheduled request.',
          buckets: [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1],
          registers: [r],
        }),
      };
      // The configured sheddable objectives are exported at 0 from the start, so rate() sees the
      // first shed request and the dashboard shows 0 rather than no data.
      for (const [objective, priority] of Object.entries((opts.admission ?? DEFAULT_ADMISSION).objectives)) {
        if (priority < 0) this.metrics.shed.inc({ objective }, 0);
      }
      new Gauge({
        name: PoolMetrics.readyPods.name,
        help: 'Pods of the pool with fresh metrics.',
        labelNames: ['name'],
        registers: [r],
        collect() {
          this.set({ name: poolName }, store.countFresh());
        },
      });
      new Gauge({
        name: PoolMetrics.averageQueueSize.name,
        help: 'Average waiting-queue size over pods with fresh metrics.',
        labelNames: ['name'],
        registers: [r],
        collect() {
          const s = store.snapshot().filter((e) => e.metrics);
          this.set({ name: poolName }, s.length ? s.reduce((a, e) => a + (e.metrics?.waiting ?? 0), 0) / s.length : 0);
        },
      });
      new Gauge({
        name: PoolMetrics.averageKvCacheUtilization.name,
        help: 'Average KV-cache utilization over pods with fresh metrics.',
        labelNames: ['name'],
        registers: [r],
        collect() {
          const s = store.snapshot().filter((e) => e.metrics?.kvCacheUsage !== undefined);
          this.set({ name: poolName }, s.length ? s.reduce((a, e) => a + (e.metrics?.kvCacheUsage ?? 0), 0) / s.length : 0);
        },
      });
      new Gauge({
        name: SchedulerMetrics.endpointInFlight.name,
        help: 'Requests the EPP sent to each endpoint that have not finished.',
        labelNames: ['endpoint'],
        registers: [r],
        collect() {
          this.reset();
          for (const e of store.list()) this.set({ endpoint: e.address }, store.inFlightOf(e.address));
        },
      });
    }
  }

  private checkModel(model: string | undefined): string {
    if (model === undefined) return this.opts.model;
    const allowed = this.opts.allowedModels ?? [];
    if (model !== this.opts.model && allowed.length > 0 && !allowed.includes(model)) {
      throw new ApiError('unknown_model', `model "${model}" is not served by this pool; known models: ${[this.opts.model, ...allowed].join(', ')}`);
    }
    return model;
  }

  private async tokens(req: InferenceRequest, model: string): Promise<ArrayLike<number> | undefined> {
    if (req.tokenIds) return req.tokenIds;
    const tk = this.opts.tokenizer;
    if (!tk) return undefined;
    try {
      if (req.messages) return await tk.tokenizeChat(model, req.messages);
      if (typeof req.prompt === 'string') return await tk.tokenizeCompletion(model, req.prompt);
      if (Array.isArray(req.prompt) && req.prompt.length > 0) return await tk.tokenizeCompletion(model, req.prompt[0] as string);
    } catch (err) {
      this.metrics?.tokenizeFailures.inc({ reason: 'error' });
      this.opts.logger.warn({ err, requestId: req.requestId }, 'tokenization failed; scheduling by load only');
    }
    return undefined;
  }

  private candidates(req: InferenceRequest): EndpointState[] {
    const all = this.opts.store.snapshot();
    if (!req.subsetCandidates) return all;
    const hosts = new Set(req.subsetCandidates.map(canonicalHost));
    return all.filter((c) => hosts.has(canonicalHost(c.endpoint.address)));
  }

  async pick(req: InferenceRequest): Promise<PickResult> {
    const started = performance.now();
    try {
      const model = this.checkModel(req.targetModel ?? req.model);
      const candidates = this.candidates(req);
      if (candidates.length === 0) {
        throw new ApiError('no_endpoint', req.subsetCandidates ? 'no pool endpoint matches the gateway subset hint' : 'the pool has no endpoints');
      }
      this.admit(req, candidates);
      const tokens = req.apiKind === 'none' ? undefined : await this.tokens(req, model);
      const result = await this.opts.scheduler.schedule(
        {
          model,
          tokens,
          sessionId: req.sessionId,
          // computed only when a scorer reads it (the approximate prefix-cache scorer)
          get prompt(): string | undefined {
            return promptText(req);
          },
        },
        candidates,
      );
      const endpoints = result.primary.picked.map((p) => p.state.endpoint.address);
      const headers: Record<string, string> = {};
      if (result.prefill) headers[Headers.prefillerHostPort] = result.prefill.picked[0].state.endpoint.address;
      this.releases.set(req, this.opts.store.acquire(endpoints[0]));
      if (result.reservation) this.reservations.set(req, result.reservation);
      if (req.sessionId !== undefined) this.opts.sessions?.record(req.sessionId, endpoints[0]);
      if (this.opts.accuracy && tokens && tokens.length > 0) this.predictions.set(req, { pod: endpoints[0], promptTokens: tokens.length, heldKeys: result.heldKeys });
      if (this.metrics) {
        this.metrics.attempts.inc({ status: 'success' });
        this.metrics.e2e.observe((performance.now() - started) / 1000);
        this.metrics.prefixBlocks.observe(result.totalBlocks);
        if (result.totalBlocks > 0) {
          this.metrics.cachedRatio.observe(Math.min(1, result.cachedTokens / Math.max(1, tokens?.length ?? 1)));
        }
      }
      this.opts.logger.debug(
        { requestId: req.requestId, model, endpoint: endpoints[0], prefill: headers[Headers.prefillerHostPort], blocks: result.totalBlocks, scores: result.primary.picked[0].parts,
          ...(result.ttft ? { predicted: Object.fromEntries(result.ttft) } : {}) },
        'scheduled',
      );
      return Object.keys(headers).length > 0 ? { endpoints, headers } : { endpoints };
    } catch (err) {
      this.metrics?.attempts.inc({ status: 'failure' });
      throw err;
    }
  }

  /**
   * GIE's legacy admission: only sheddable requests (objective priority < 0) are checked, and they
   * are dropped with 429 while the candidates' mean saturation is ≥ 1.0.
   */
  private admit(req: InferenceRequest, candidates: readonly EndpointState[]): void {
    const a = this.opts.admission ?? DEFAULT_ADMISSION;
    const objective = req.headers[Headers.inferenceObjective];
    // own properties only: a header such as "constructor" must not find Object.prototype's
    const configured = objective !== undefined && Object.hasOwn(a.objectives, objective) ? a.objectives[objective] : undefined;
    const priority = objective === undefined ? 0 : (this.opts.objectivePriority?.(objective) ?? configured ?? 0);
    if (priority >= 0) return;
    const saturation = poolSaturation(candidates, a);
    if (saturation < 1) return;
    this.metrics?.shed.inc({ objective: objective ?? '' });
    throw new ApiError(
      'shed',
      `system saturated, sheddable request dropped: objective "${objective}" has priority ${priority} and the pool's saturation is ${saturation.toFixed(2)} ` +
        `(≥ 1: waiting ≥ ${a.queueDepthThreshold} or KV cache ≥ ${a.kvCacheUtilThreshold} on average, or no fresh metrics); retry later or send it with a non-negative objective`,
    );
  }

  onResponse(req: InferenceRequest, info: ResponseInfo): void {
    const prediction = this.predictions.get(req);
    if (prediction === undefined || !this.opts.accuracy) return;
    this.predictions.delete(req);
    this.opts.accuracy.observe(prediction, info.usage, info.status).catch((err: unknown) => this.opts.logger.warn({ err, requestId: req.requestId }, 'cache-accuracy check failed'));
  }

  /**
   * Dry run for `/v1/score`: where the scheduler would send these tokens now and the per-pod
   * predicted-TTFT terms; nothing is booked. Undefined when no endpoint can take it.
   */
  async explain(model: string, tokens: ArrayLike<number>): Promise<ScheduleExplanation | undefined> {
    const candidates = this.opts.store.snapshot();
    if (candidates.length === 0) return undefined;
    try {
      const r = await this.opts.scheduler.schedule({ model, tokens }, candidates, { dryRun: true });
      return { pick: r.primary.picked[0].state.endpoint.address, ...(r.ttft ? { ttft: r.ttft } : {}) };
    } catch (err) {
      if (err instanceof ApiError) return undefined;
      throw err;
    }
  }

  /** The pod produced the first token: its prefill no longer queues there. */
  onFirstChunk(req: InferenceRequest): void {
    this.reservations.get(req)?.started();
  }

  onDone(req: InferenceRequest): void {
    const booked = this.reservations.get(req);
    if (booked) {
      booked.finished();
      this.reservations.delete(req);
    }
    this.predictions.delete(req);
    const release = this.releases.get(req);
    if (release) {
      release();
      this.releases.delete(req);
    }
  }
}
