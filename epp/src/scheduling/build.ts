/**
 * Builds the scheduler from the EPP config's `scheduling` section. Without `plugins`/`profiles`
 * the `preset` decides: `predicted-ttft` (the default: one scorer, lowest predicted time to first
 * token, see predicted-ttft.ts) or `llmd-suite` (weights prefix 3, queue 2, kv-cache utilization
 * 2, in-flight 1, session 0: llm-d's precise-routing guide plus the EPP's own in-flight counts).
 */
import type { EppConfig } from '../contract/config.js';
import type { Indexer } from '../kvindex/indexer.js';
import { DecodeFilter, PrefillFilter } from './filters.js';
import { MaxScorePicker, type Random } from './picker.js';
import { PredictedTtftScorer } from './predicted-ttft.js';
import { Scheduler, type Profile } from './scheduler.js';
import { ActiveRequestScorer, KvCacheUtilizationScorer, PrecisePrefixScorer, QueueScorer, SessionAffinityScorer } from './scorers.js';
import type { Filter, Picker, Scorer, WeightedScorer } from './types.js';
import { LoadAwareScorer } from './load-aware-scorer.js';
import { NoHitLruScorer } from './no-hit-lru-scorer.js';
import { PrefixCacheScorer } from './prefix-cache-scorer.js';
import { RandomPicker } from './random-picker.js';
import { WeightedRandomPicker } from './weighted-random-picker.js';
import { pluginIssues, pluginType, type PluginKind, type PluginSpec, type ProfileSpec } from '../contract/scheduling-plugins.js';

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
  /**
   * Clock in ms (expiry of the predicted-TTFT scorer's speculative entries).
   * @default Date.now
   */
  readonly now?: () => number;
}

function predictedTtft(opts: BuildSchedulerOptions): PredictedTtftScorer {
  return new PredictedTtftScorer(opts.indexer, opts.config.blockSize, opts.config.scheduling.predictedTtft, opts.now);
}

export function buildScheduler(opts: BuildSchedulerOptions): BuiltScheduler {
  const { plugins, profiles } = opts.config.scheduling;
  if (plugins !== undefined && profiles !== undefined) return buildFromPlugins(opts, plugins, profiles);
  return buildFromWeights(opts);
}

/** The scheduler from `scheduling.preset` (+ `weights`): the default composition. */
function buildFromWeights(opts: BuildSchedulerOptions): BuiltScheduler {
  const { weights, pd, preset } = opts.config.scheduling;
  const sessions = weights.sessionAffinity > 0 ? new SessionAffinityScorer() : undefined;
  const sessionScorer = sessions ? [{ scorer: sessions, weight: weights.sessionAffinity }] : [];
  const all: WeightedScorer[] =
    preset === 'predicted-ttft'
      ? [{ scorer: predictedTtft(opts), weight: 1 }, ...sessionScorer]
      : [
          { scorer: new PrecisePrefixScorer(opts.indexer), weight: weights.prefix },
          { scorer: new QueueScorer(), weight: weights.queue },
          { scorer: new KvCacheUtilizationScorer(), weight: weights.kvCacheUtilization },
          { scorer: new ActiveRequestScorer(), weight: weights.activeRequests },
          ...sessionScorer,
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

/**
 * The scheduler from llm-d style `scheduling.plugins` + `scheduling.profiles` (validated by the
 * config schema, see contract/scheduling-plugins.ts): one plugin instance per declared plugin,
 * shared by the profiles that reference it; filters run in the order listed.
 */
function buildFromPlugins(opts: BuildSchedulerOptions, plugins: readonly PluginSpec[], profiles: readonly ProfileSpec[]): BuiltScheduler {
  const problems = pluginIssues(plugins, profiles);
  if (problems.length > 0) {
    throw new Error(`scheduling plugins: ${problems.map((p) => `scheduling.${p.path.join('.')}: ${p.message}`).join('; ')}`);
  }
  let sessions: SessionAffinityScorer | undefined;
  let threshold = opts.config.scheduling.pd.nonCachedTokensThreshold;
  const instances = new Map<string, Scorer | Filter | Picker>();
  const kinds = new Map<string, PluginKind | undefined>();
  for (const p of plugins) {
    const param = (key: string): number | undefined => p.parameters?.[key] as number | undefined;
    const name = p.name ?? p.type;
    kinds.set(name, pluginType(p.type)?.kind);
    switch (p.type) {
      case 'precise-prefix-cache-scorer':
        instances.set(name, new PrecisePrefixScorer(opts.indexer));
        break;
      case 'prefix-cache-scorer': {
        const blockSizeTokens = param('blockSizeTokens');
        const maxTokens = param('maxPrefixTokensToMatch');
        const maxBlocks = param('maxPrefixBlocksToMatch') ?? (maxTokens === undefined ? undefined : Math.max(1, Math.floor(maxTokens / (blockSizeTokens ?? 16))));
        instances.set(
          name,
          new PrefixCacheScorer({
            blockSizeTokens,
            blockSizeChars: param('blockSize'),
            autoTune: p.parameters?.autoTune as boolean | undefined,
            maxPrefixBlocksToMatch: maxBlocks,
            lruCapacityPerServer: param('lruCapacityPerServer'),
          }),
        );
        break;
      }
      case 'load-aware-scorer':
        instances.set(name, new LoadAwareScorer(param('threshold')));
        break;
      case 'no-hit-lru-scorer':
        instances.set(name, new NoHitLruScorer(param('lruSize')));
        break;
      case 'random-picker':
        instances.set(name, new RandomPicker(param('maxNumOfEndpoints'), opts.random));
        break;
      case 'weighted-random-picker':
        instances.set(name, new WeightedRandomPicker(param('maxNumOfEndpoints'), opts.random));
        break;
      case 'predicted-ttft-scorer':
        instances.set(name, predictedTtft(opts));
        break;
      case 'queue-scorer':
        instances.set(name, new QueueScorer());
        break;
      case 'kv-cache-utilization-scorer':
        instances.set(name, new KvCacheUtilizationScorer());
        break;
      case 'active-request-scorer':
        instances.set(name, new ActiveRequestScorer(param('idleThreshold'), param('maxBusyScore')));
        break;
      case 'session-affinity-scorer':
        sessions = new SessionAffinityScorer(param('capacity'));
        instances.set(name, sessions);
        break;
      case 'decode-filter':
        instances.set(name, new DecodeFilter());
        break;
      case 'prefill-filter':
        instances.set(name, new PrefillFilter());
        break;
      case 'max-score-picker':
        instances.set(name, new MaxScorePicker(param('maxNumOfEndpoints'), opts.random));
        break;
      case 'prefix-based-pd-decider':
        threshold = param('nonCachedTokens') ?? threshold;
        break;
      default:
        break; // profile handlers: the profile names say what they would
    }
  }
  const profile = (spec: ProfileSpec): Profile => {
    const filters: Filter[] = [];
    const scorers: WeightedScorer[] = [];
    let picker: Picker | undefined;
    for (const ref of spec.plugins) {
      const kind = kinds.get(ref.pluginRef);
      const inst = instances.get(ref.pluginRef);
      if (kind === 'filter') filters.push(inst as Filter);
      else if (kind === 'scorer') scorers.push({ scorer: inst as Scorer, weight: ref.weight ?? 1 });
      else if (kind === 'picker') picker = inst as Picker;
    }
    return { name: spec.name, filters, scorers, picker: picker ?? new MaxScorePicker(1, opts.random) };
  };
  const decodeSpec = profiles.length === 1 ? (profiles[0] as ProfileSpec) : (profiles.find((p) => p.name === 'decode') as ProfileSpec);
  const prefillSpec = profiles.length === 2 ? profiles.find((p) => p.name === 'prefill') : undefined;
  const decode = profile(decodeSpec);
  const scheduler = new Scheduler({
    blockSize: opts.config.blockSize,
    decode,
    ...(prefillSpec !== undefined ? { prefill: { profile: profile(prefillSpec), pd: { nonCachedTokensThreshold: threshold } } } : {}),
  });
  return { scheduler, sessions };
}
