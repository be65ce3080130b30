/** Policy names accepted by the bench (`--policy`) and their constructors. */
import {
  ApproxPrefixPolicy,
  ChwblPolicy,
  LeastLoadedPolicy,
  OraclePolicy,
  RandomPolicy,
  RoundRobinPolicy,
  SessionPolicy,
} from './policies.js';
import type { PolicyContext, RoutingPolicy } from './policy.js';
import { KvroutePolicy, PrecisePolicy, type KvrouteOptions, type PreciseOptions } from './precise.js';
import { AibrixPolicy } from './peers/aibrix.js';
import { DynamoPolicy } from './peers/dynamo.js';
import { GieDefaultPolicy, LlmdEstimatePolicy, LlmdPrecisePolicy } from './peers/llm-d.js';
import { SglangPolicy } from './peers/sglang.js';

export const POLICY_NAMES = [
  'random',
  'round-robin',
  'least-loaded',
  'session',
  'chwbl',
  'approx-prefix',
  'precise',
  'kvroute',
  'kvroute-llmd',
  'oracle',
  // peer routers (lab/sim/peers/)
  'llmd-precise',
  'llmd-precise-2025',
  'llmd-estimate',
  'gie-default',
  'dynamo',
  'sglang',
  'aibrix',
] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

/** The peer routers' policies (lab/sim/peers/README.md). */
export const PEER_POLICY_NAMES = ['llmd-precise', 'llmd-precise-2025', 'llmd-estimate', 'gie-default', 'dynamo', 'sglang', 'aibrix'] as const satisfies readonly PolicyName[];

/** Accepted alternative spellings. */
const ALIASES: Readonly<Record<string, PolicyName>> = { 'session-sticky': 'session', rr: 'round-robin' };

export function parsePolicyName(name: string): PolicyName {
  const n = ALIASES[name] ?? name;
  if ((POLICY_NAMES as readonly string[]).includes(n)) return n as PolicyName;
  throw new Error(`unknown policy "${name}"; use one of: ${POLICY_NAMES.join(', ')}`);
}

export function createPolicy(name: PolicyName, ctx: PolicyContext, opts: PreciseOptions = {}): RoutingPolicy {
  switch (name) {
    case 'random':
      return new RandomPolicy(ctx);
    case 'round-robin':
      return new RoundRobinPolicy();
    case 'least-loaded':
      return new LeastLoadedPolicy(ctx);
    case 'session':
      return new SessionPolicy(ctx);
    case 'chwbl':
      return new ChwblPolicy(ctx);
    case 'approx-prefix':
      return new ApproxPrefixPolicy(ctx);
    case 'precise':
      return new PrecisePolicy(ctx, opts);
    case 'kvroute':
      return new KvroutePolicy(ctx, opts);
    case 'kvroute-llmd':
      return new KvroutePolicy(ctx, withPreset(opts, 'llmd-suite'), 'kvroute-llmd');
    case 'oracle':
      return new OraclePolicy(ctx);
    case 'llmd-precise':
      return new LlmdPrecisePolicy(ctx, { ...opts, normalisation: 'blocks' });
    case 'llmd-precise-2025':
      return new LlmdPrecisePolicy(ctx, { ...opts, normalisation: 'min-max' });
    case 'llmd-estimate':
      return new LlmdEstimatePolicy(ctx);
    case 'gie-default':
      return new GieDefaultPolicy(ctx);
    case 'dynamo':
      return new DynamoPolicy(ctx, opts);
    case 'sglang':
      return new SglangPolicy(ctx);
    case 'aibrix':
      return new AibrixPolicy(ctx);
  }
}

/** `opts` with `scheduling.preset` set (other config fields kept). */
function withPreset(opts: KvrouteOptions, preset: string): KvrouteOptions {
  const config = opts.config ?? {};
  const scheduling = (config.scheduling ?? {}) as Readonly<Record<string, unknown>>;
  return { ...opts, config: { ...config, scheduling: { ...scheduling, preset } } };
}
