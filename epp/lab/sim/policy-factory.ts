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
import { KvroutePolicy, PrecisePolicy, type PreciseOptions } from './precise.js';

export const POLICY_NAMES = [
  'random',
  'round-robin',
  'least-loaded',
  'session',
  'chwbl',
  'approx-prefix',
  'precise',
  'kvroute',
  'oracle',
] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

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
    case 'oracle':
      return new OraclePolicy(ctx);
  }
}
