/** Scale-out invariants: every EPP replica sees every KV event; PodDisruptionBudgets leave room to drain. */
import {
  eppConfigs,
  isEppPod,
  labelSelectorSelects,
  ns,
  podTemplates,
  ref,
  spec,
  violation,
  type Manifest,
  type Violation,
} from './model.js';

function replicas(o: Manifest): number {
  const r = spec(o).replicas;
  return typeof r === 'number' ? r : 1;
}

/**
 * With events.mode `bind`, each vLLM pod connects its PUB socket to the EPP Service, i.e. to ONE EPP
 * replica (a TCP connection lands on one endpoint). That is only correct when the replicas share the
 * index (Redis); with an in-memory index, several replicas each see a fraction of the events.
 */
export function eppReplicasSeeAllEvents(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const cfg = eppConfigs(objs).found[0]?.config;
  if (cfg === undefined) return out;
  for (const pod of podTemplates(objs).filter(isEppPod)) {
    const n = replicas(pod.ownerObj);
    if (n > 1 && cfg.events.mode === 'bind' && cfg.index.backend === 'memory') {
      out.push(
        violation(
          'eppReplicasSeeAllEvents',
          pod.owner,
          `${n} EPP replicas with an in-memory index and events.mode bind: each vLLM pod publishes to one replica through the Service, so every replica misses most KV events; use the Redis index, events.mode connect (the EPP subscribes to every pod), or 1 replica`,
        ),
      );
    }
  }
  return out;
}

/** A PodDisruptionBudget must allow at least one voluntary eviction of the workloads it covers. */
export function pdbAllowsDrain(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  for (const pdb of objs.filter((o) => o.kind === 'PodDisruptionBudget')) {
    const s = spec(pdb);
    const pods = podTemplates(objs).filter((p) => p.namespace === ns(pdb) && labelSelectorSelects(s.selector, p.labels));
    const total = pods.reduce((sum, p) => sum + replicas(p.ownerObj), 0);
    if (pods.length === 0) continue; // selectorsMatchPods reports it
    const pct = (v: string): number => Number(v.replace('%', '')) / 100;
    let allowed: number | undefined;
    if (typeof s.maxUnavailable === 'number') allowed = s.maxUnavailable;
    else if (typeof s.maxUnavailable === 'string') allowed = Math.ceil(total * pct(s.maxUnavailable));
    else if (typeof s.minAvailable === 'number') allowed = total - s.minAvailable;
    else if (typeof s.minAvailable === 'string') allowed = total - Math.ceil(total * pct(s.minAvailable));
    if (allowed !== undefined && allowed < 1) {
      out.push(
        violation(
          'pdbAllowsDrain',
          ref(pdb),
          `allows ${allowed} disruptions for ${total} pod(s) of ${pods.map((p) => p.owner).join(', ')} (minAvailable ${JSON.stringify(s.minAvailable)}, maxUnavailable ${JSON.stringify(s.maxUnavailable)}): node drains would block forever`,
        ),
      );
    }
  }
  return out;
}
