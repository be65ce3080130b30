/**
 * Builds the scheduler from the EPP config's `scheduling` section. Default weights (prefix 3,
 * queue 2, kv-cache utilization 2, in-flight 1, session 0) follow llm-d's precise-routing guide
 * (prefix 3 / kv 2 / queue 2) plus the EPP's own in-flight counts, which react between scrapes.
 */
import type { EppConfig } from '../contract/config.js';
import type { Indexer } from '../kvcache/indexer.js';
import { DecodeFilter, PrefillFilter } from './filters.js';
import { MaxScorePicker, type Random } from './picker.js';
import { Scheduler, type Profile } from './scheduler.js';
import { ActiveRequestScorer, KvCacheUtilizationScorer, PrecisePrefixScorer, QueueScorer, SessionAffinityScorer } from './scorers.js';
import type { WeightedScorer } from './types.js';

export interface BuiltScheduler {
  readonly scheduler: Scheduler;
  /** Present when session affinity has a weight > 0; the director records picks into it. */
  readonly sessions: SessionAffinityScorer | undefined;
}

export interface BuildSchedulerOptions {
  readonly config: Pick<EppConfig, 'scheduling' | 'blockSize'>;
  readonly indexer: Indexer;
  /**
   * Tie-break randomness.
   * @default Math.random
   */
  readonly random?: Random;
}

export function buildScheduler(opts: BuildSchedulerOptions): BuiltScheduler {
  const { weights, pd } = opts.config.scheduling;
  const prefix = new PrecisePrefixScorer(opts.indexer);
  const sessions = weights.sessionAffinity > 0 ? new SessionAffinityScorer() : undefined;
  const all: WeightedScorer[] = [
    { scorer: prefix, weight: weights.prefix },
    { scorer: new QueueScorer(), weight: weights.queue },
    { scorer: new KvCacheUtilizationScorer(), weight: weights.kvCacheUtilization },
    { scorer: new ActiveRequestScorer(), weight: weights.activeRequests },
    ...(sessions ? [{ scorer: sessions, weight: weights.sessionAffinity }] : []),
  ];
  const scorers = all.filter((s) => s.weight > 0);
  const picker = new MaxScorePicker(1, opts.random);
  const decode: Profile = { name: 'decode', filters: [new DecodeFilter()], scorers, picker };
  if (!pd.enabled) return { scheduler: new Scheduler({ blockSize: opts.config.blockSize, decode }), sessions };
  const prefill: Profile = {
    name: 'prefill',
    filters: [new PrefillFilter()],
    scorers: scorers.filter((s) => s.scorer !== sessions),
    picker,
  };
  return {
    scheduler: new Scheduler({
      blockSize: opts.config.blockSize,
      decode,
      prefill: { profile: prefill, pd: { nonCachedTokensThreshold: pd.nonCachedTokensThreshold } },
    }),
    sessions,
  };
}
