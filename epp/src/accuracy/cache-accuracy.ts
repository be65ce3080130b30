/**
 * Predicted versus actual prefix-cache hits, per request.
 *
 * At decision time the director remembers what the index said the picked pod holds (the request
 * keys of its consecutive prefix blocks). When the response completes with a usage report, vLLM's
 * `usage.prompt_tokens_details.cached_tokens` (vLLM sends it with `--enable-prompt-tokens-details`)
 * is compared with it:
 *
 * - predicted tokens = min(held blocks, ⌊(prompt tokens − 1) / block size⌋) × block size. vLLM always
 *   computes the last prompt token, so a block ending at the prompt's end is never reported as
 *   cached; the cap keeps a full hit from counting as a miss.
 * - metrics (epp/src/contract/metrics.ts, CachePredictionMetrics): predicted, actual and prompt
 *   tokens per pod, the (actual − predicted) ÷ prompt tokens histogram, and the
 *   predicted-hit/actual-miss and predicted-miss/actual-hit counters.
 * - self-healing: when the pod reported fewer cached blocks than predicted, the held keys past what
 *   it reported are "missed". A key missed `missesToDrop` times on the same pod is dropped from the
 *   index for that pod (`Index.forget`) and counted in `kvroute_index_self_heal_dropped_blocks_total`,
 *   so traffic stops going to a phantom cache (both backends have `forget`; one without it would only count misses).
 * - every comparison also goes to the {@link Diagnosis}.
 *
 * Responses without usage (a stream whose client did not ask for `stream_options.include_usage`,
 * an error, a server without prompt-token details) are not compared: the EPP does not add
 * `include_usage` to requests.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { CachePredictionMetrics, IndexMetrics, PredictionErrorBuckets, PredictionMismatchKinds } from '../contract/metrics.js';
import type { Usage } from '../extproc/director.js';
import type { BlockKey, Index } from '../kvindex/types.js';
import type { Logger } from '../util/logger.js';
import type { Diagnosis } from './diagnosis.js';

/** What the director remembered at decision time. */
export interface CachePrediction {
  /** Picked endpoint `ip:port`. */
  readonly pod: string;
  /** Prompt tokens as the EPP tokenized them. */
  readonly promptTokens: number;
  /** Request keys of the blocks the index said the pod holds (consecutive prefix). */
  readonly heldKeys: readonly BlockKey[];
}

/** The outcome of one comparison (for tests and logs). */
export interface CacheComparison {
  readonly pod: string;
  readonly promptTokens: number;
  readonly predictedTokens: number;
  readonly actualTokens: number;
  /** Keys this response showed missing on the pod. */
  readonly missedKeys: number;
  /** Keys dropped from the index because of this response. */
  readonly droppedKeys: number;
}

export interface CacheAccuracyOptions {
  /** The index's block size. */
  readonly blockSize: number;
  readonly logger: Logger;
  /** Index the self-healing drops entries from (`forget`). @default undefined (no self-healing) */
  readonly index?: Pick<Index, 'forget'>;
  /** Registry for the CachePredictionMetrics and the self-heal counter. @default undefined */
  readonly registry?: Registry;
  readonly diagnosis?: Diagnosis;
  /** Misses of a (pod, key) before it is dropped. @default 2 */
  readonly missesToDrop?: number;
  /** (pod, key) miss counts remembered; the table is cleared past it. @default 65536 */
  readonly maxTrackedMisses?: number;
}

export class CacheAccuracy {
  private readonly bs: number;
  private readonly missesToDrop: number;
  private readonly maxTracked: number;
  private readonly misses = new Map<string, Map<BlockKey, number>>();
  private tracked = 0;
  private readonly m?: {
    predicted: Counter<'pod'>;
    actual: Counter<'pod'>;
    prompt: Counter<'pod'>;
    error: Histogram<'pod'>;
    mismatch: Counter<'pod' | 'kind'>;
    dropped: Counter<'pod'>;
  };

  constructor(private readonly opts: CacheAccuracyOptions) {
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 1) throw new RangeError(`CacheAccuracy blockSize: ${opts.blockSize} must be a positive integer (the index block size)`);
    this.bs = opts.blockSize;
    this.missesToDrop = Math.max(1, opts.missesToDrop ?? 2);
    this.maxTracked = Math.max(1, opts.maxTrackedMisses ?? 65_536);
    const r = opts.registry;
    if (r) {
      const c = CachePredictionMetrics;
      const counter = <L extends string>(s: { name: string; help: string; labels: readonly string[] }): Counter<L> =>
        new Counter({ name: s.name, help: s.help, labelNames: [...s.labels] as L[], registers: [r] });
      this.m = {
        predicted: counter<'pod'>(c.predictedTokens),
        actual: counter<'pod'>(c.actualTokens),
        prompt: counter<'pod'>(c.promptTokens),
        error: new Histogram({
          name: c.predictionErrorRatio.name,
          help: c.predictionErrorRatio.help,
          labelNames: ['pod'],
          buckets: [...PredictionErrorBuckets],
          registers: [r],
        }),
        mismatch: counter<'pod' | 'kind'>(c.predictionMismatch),
        dropped: counter<'pod'>(IndexMetrics.selfHealDroppedBlocks),
      };
    }
  }

  /**
   * Compares a completed response with its prediction. Undefined (nothing recorded) when the
   * response carried no `cached_tokens` or failed.
   */
  async observe(p: CachePrediction, usage: Usage | undefined, status: number | undefined): Promise<CacheComparison | undefined> {
    if (usage?.cachedTokens === undefined || (status !== undefined && status >= 400)) return undefined;
    const prompt = usage.promptTokens ?? p.promptTokens;
    if (!(prompt > 0)) return undefined;
    const bs = this.bs;
    const reachable = Math.max(0, Math.floor((prompt - 1) / bs));
    const predictedBlocks = Math.min(p.heldKeys.length, reachable);
    const predicted = predictedBlocks * bs;
    const actual = Math.max(0, Math.min(usage.cachedTokens, prompt));
    const pod = p.pod;
    if (this.m) {
      this.m.predicted.inc({ pod }, predicted);
      this.m.actual.inc({ pod }, actual);
      this.m.prompt.inc({ pod }, prompt);
      this.m.error.observe({ pod }, (actual - predicted) / prompt);
      if (predicted > 0 && actual === 0) this.m.mismatch.inc({ pod, kind: PredictionMismatchKinds.predictedHitActualMiss });
      if (predicted === 0 && actual > 0) this.m.mismatch.inc({ pod, kind: PredictionMismatchKinds.predictedMissActualHit });
    }
    this.opts.diagnosis?.record(pod, { predictedBlocks, actualTokens: actual, promptTokens: prompt });
    const actualBlocks = Math.floor(actual / bs);
    let missed = 0;
    let dropped = 0;
    if (actualBlocks < predictedBlocks) {
      const gone: BlockKey[] = [];
      let perPod = this.misses.get(pod);
      if (!perPod) {
        perPod = new Map();
        this.misses.set(pod, perPod);
      }
      for (let i = actualBlocks; i < predictedBlocks; i++) {
        const key = p.heldKeys[i] as BlockKey;
        missed++;
        const n = (perPod.get(key) ?? 0) + 1;
        if (n >= this.missesToDrop) {
          perPod.delete(key);
          this.tracked--;
          gone.push(key);
        } else {
          if (n === 1) this.tracked++;
          perPod.set(key, n);
        }
      }
      if (this.tracked > this.maxTracked) {
        this.misses.clear();
        this.tracked = 0;
      }
      const forget = this.opts.index?.forget;
      if (gone.length > 0 && forget) {
        try {
          dropped = await forget.call(this.opts.index, gone, pod);
        } catch (err) {
          this.opts.logger.warn({ err, pod, keys: gone.length }, 'self-healing could not drop index entries');
        }
        if (dropped > 0) {
          this.m?.dropped.inc({ pod }, dropped);
          this.opts.logger.info({ pod, dropped }, 'self-healing: dropped index entries the pod repeatedly did not hold');
        }
      }
    } else if (actualBlocks > 0) {
      // The pod held what was predicted: earlier misses of these keys were transient.
      const perPod = this.misses.get(pod);
      if (perPod) {
        for (let i = 0; i < Math.min(actualBlocks, p.heldKeys.length); i++) {
          if (perPod.delete(p.heldKeys[i] as BlockKey)) this.tracked--;
        }
      }
    }
    return { pod, promptTokens: prompt, predictedTokens: predicted, actualTokens: actual, missedKeys: missed, droppedKeys: dropped };
  }

  /** The pod is gone: forget its miss counts. */
  forgetPod(pod: string): void {
    const perPod = this.misses.get(pod);
    if (perPod) {
      this.tracked -= perPod.size;
      this.misses.delete(pod);
    }
    this.opts.diagnosis?.forgetPod(pod);
  }
}
