/** Shared fixtures of the peer-policy tests: a small fleet, requests by chained block ids, a pod run. */
import type { KvEventBatch } from '../../../../src/kvevents/types.js';
import { defaultPodId } from '../../../../lab/sim/engine.js';
import { SimPod } from '../../../../lab/sim/pod.js';
import type { FleetView, PodView, PolicyContext } from '../../../../lab/sim/policy.js';
import { PROFILE_A } from '../../../../lab/sim/profiles.js';
import { BlockKeyer, type SimRequest } from '../../../../lab/sim/request.js';
import { Rng } from '../../../../lab/sim/rng.js';

export const N = 4;
export const podIds = Array.from({ length: N }, (_, i) => defaultPodId(i));

export function ctx(pods: SimPod[] = [], seed = 1, n = N): PolicyContext {
  return { podIds: podIds.slice(0, n), model: PROFILE_A.model, blockSize: 16, rng: new Rng(seed), keyer: new BlockKeyer(), pods };
}

export function fleet(load: Partial<PodView>[] = [], nowMs = 0, n = N): FleetView {
  return {
    nowMs,
    pods: podIds.slice(0, n).map((id, index) => ({ index, id, waiting: 0, running: 0, kvUsage: 0, inFlight: 0, metricsAgeMs: 0, ...load[index] })),
  };
}

let nextId = 0;
/** A request whose prompt is the chained 16-token blocks `prefixIds`. */
export function req(prefixIds: number[], inputLength = prefixIds.length * 16, sessionId = 's'): SimRequest {
  return { id: nextId++, sessionId, arrivalMs: 0, inputLength, outputLength: 2, stage: 0, warmup: false, content: { kind: 'ids', ids: prefixIds, idBlockSize: 16, coveredTokens: inputLength } };
}
export const blocks = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

/** Runs `r` to completion on `pod`, collecting its KV events. */
export function serve(pod: SimPod, r: SimRequest, events: KvEventBatch[]): void {
  pod.enqueue(r, 0);
  let now = 0;
  for (let ms = pod.beginStep(); ms !== undefined; ms = pod.beginStep()) {
    now += ms;
    const res = pod.endStep(now);
    if (res.events) events.push(res.events);
  }
}

/** Simulated pods (profile A), one per pod id. */
export function simPods(n = N): SimPod[] {
  return podIds.slice(0, n).map((id) => new SimPod({ id, profile: PROFILE_A }));
}
