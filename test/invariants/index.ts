/** Every invariant of a synthesized kvroute deployment, runnable as one check. */
import type { Invariant, Manifest, Violation } from './model.js';
import { envoyFilterRoutesToPick, eppServiceConsistency, extProcBodyModeNeverNone, httpRouteRefsExist, inferencePoolMatchesPods } from './routing.js';
import { eppAndRedisRestricted, noSecretLiterals } from './security.js';
import { namedPortsExist, networkPolicyPeersExist, selectorsMatchPods, workloadSelectorsMatchTemplates } from './selectors.js';
import { gpuRequestsEqualLimits, kvEventsReachEpp, modelServiceEnvSurvivesOperator, modelServiceInitContainersExit, vllmMatchesEppConfig } from './vllm.js';
import { networkPoliciesAllowRequiredTraffic } from './network.js';
import { eppWiring } from './epp.js';
import { eppReplicasSeeAllEvents, pdbAllowsDrain } from './availability.js';

export type { Invariant, Manifest, Violation } from './model.js';

/** Name → invariant. */
export const INVARIANTS: Readonly<Record<string, Invariant>> = {
  workloadSelectorsMatchTemplates,
  selectorsMatchPods,
  namedPortsExist,
  networkPolicyPeersExist,
  inferencePoolMatchesPods,
  eppServiceConsistency,
  httpRouteRefsExist,
  extProcBodyModeNeverNone,
  envoyFilterRoutesToPick,
  vllmMatchesEppConfig,
  kvEventsReachEpp,
  gpuRequestsEqualLimits,
  modelServiceInitContainersExit,
  modelServiceEnvSurvivesOperator,
  networkPoliciesAllowRequiredTraffic,
  noSecretLiterals,
  eppAndRedisRestricted,
  eppWiring,
  eppReplicasSeeAllEvents,
  pdbAllowsDrain,
};

/** Run every invariant; [] when all hold. */
export function checkInvariants(objs: readonly Manifest[]): Violation[] {
  return Object.values(INVARIANTS).flatMap((f) => f(objs));
}

/** One line per violation. */
export function formatViolation(v: Violation): string {
  return `[${v.invariant}] ${v.object}: ${v.message}`;
}
