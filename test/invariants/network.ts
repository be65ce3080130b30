/**
 * NetworkPolicies must not cut the traffic kvroute needs: KV events between vLLM and the EPP, the
 * EPP's metrics scraping of the model servers, and the EPP's Redis connection.
 */
import {
  eppConfigs,
  isEppPod,
  isRedisPod,
  labelSelectorSelects,
  ns,
  podPorts,
  podTemplates,
  rec,
  recs,
  ref,
  spec,
  strMap,
  violation,
  type Json,
  type Manifest,
  type PodTemplate,
  type Violation,
} from './model.js';
import { vllmContainers } from './vllm.js';

function policyTypes(p: Manifest): string[] {
  const s = spec(p);
  if (Array.isArray(s.policyTypes)) return s.policyTypes.map(String);
  return s.egress !== undefined ? ['Ingress', 'Egress'] : ['Ingress'];
}

/** Whether a peer (from/to entry) covers a pod; unknown namespace selectors count as covering. */
function peerCovers(peer: Json, policyNs: string, pod: PodTemplate): boolean {
  if (peer.ipBlock !== undefined) return false;
  if (peer.namespaceSelector === undefined) {
    if (pod.namespace !== policyNs) return false;
  } else {
    const nsSel = rec(peer.namespaceSelector);
    const byName = strMap(nsSel.matchLabels)['kubernetes.io/metadata.name'];
    if (byName !== undefined && byName !== pod.namespace) return false;
  }
  return peer.podSelector === undefined || labelSelectorSelects(peer.podSelector, pod.labels);
}

/** Whether a rule's ports cover `port` on the destination pod (named ports resolve on it). */
function portsCover(ports: unknown, port: number, dst: PodTemplate): boolean {
  const list = recs(ports);
  if (list.length === 0) return true;
  return list.some((p) => {
    if (p.protocol !== undefined && p.protocol !== 'TCP') return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'number') return typeof p.endPort === 'number' ? port >= p.port && port <= p.endPort : p.port === port;
    if (!dst.portsKnown) return true;
    return podPorts(dst).some((x) => x.name === p.port && x.number === port);
  });
}

/** Why traffic src → dst:port is blocked, or undefined when the policies allow it. */
export function blockedBy(objs: readonly Manifest[], src: PodTemplate, dst: PodTemplate, port: number): string | undefined {
  const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
  const ingress = policies.filter((p) => ns(p) === dst.namespace && policyTypes(p).includes('Ingress') && labelSelectorSelects(spec(p).podSelector, dst.labels));
  if (ingress.length > 0) {
    const ok = ingress.some((p) => recs(spec(p).ingress).some((r) => (recs(r.from).length === 0 || recs(r.from).some((peer) => peerCovers(peer, ns(p), src))) && portsCover(r.ports, port, dst)));
    if (!ok) return `ingress of ${dst.owner} is restricted by ${ingress.map(ref).join(', ')} and no rule admits ${src.owner} on port ${port}`;
  }
  const egress = policies.filter((p) => ns(p) === src.namespace && policyTypes(p).includes('Egress') && labelSelectorSelects(spec(p).podSelector, src.labels));
  if (egress.length > 0) {
    const ok = egress.some((p) => recs(spec(p).egress).some((r) => (recs(r.to).length === 0 || recs(r.to).some((peer) => peerCovers(peer, ns(p), dst))) && portsCover(r.ports, port, dst)));
    if (!ok) return `egress of ${src.owner} is restricted by ${egress.map(ref).join(', ')} and no rule lets it reach ${dst.owner} on port ${port}`;
  }
  return undefined;
}

function tcpPort(endpoint: string): number | undefined {
  const m = /:(\d+)(\/\d+)?$/.exec(endpoint);
  return m ? Number(m[1]) : undefined;
}

/**
 * Required flows are allowed by the NetworkPolicies: vLLM → EPP ZMQ (bind mode) or EPP → vLLM
 * publisher (connect mode); EPP → every pooled model server on each pool targetPort (metrics
 * scraping); EPP → Redis (when the index is in Redis).
 */
export function networkPoliciesAllowRequiredTraffic(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'networkPoliciesAllowRequiredTraffic';
  const pods = podTemplates(objs);
  const epp = pods.filter(isEppPod);
  const cfg = eppConfigs(objs).found[0]?.config;
  const vllmPods = [...new Set(vllmContainers(objs).flatMap((c) => (c.pod ? [c.pod] : [])))];
  const check = (src: PodTemplate, dst: PodTemplate, port: number, what: string): void => {
    const why = blockedBy(objs, src, dst, port);
    if (why !== undefined) out.push(violation(inv, dst.owner, `${what} is blocked: ${why}`));
  };
  if (cfg !== undefined) {
    for (const v of vllmPods) {
      for (const e of epp) {
        if (cfg.events.mode === 'bind') {
          const port = tcpPort(cfg.events.zmqBind);
          if (port !== undefined) check(v, e, port, `KV events ${v.owner} → ${e.owner}:${port}`);
        } else {
          check(e, v, cfg.events.podPublisherPort, `KV events (EPP connects) ${e.owner} → ${v.owner}:${cfg.events.podPublisherPort}`);
        }
      }
    }
    if (cfg.index.backend === 'redis') {
      const port = tcpPort(cfg.index.url.replace(/\/\d+$/, '')) ?? 6379;
      const svcHost = /^rediss?:\/\/([^:/]+)/.exec(cfg.index.url)?.[1] ?? '';
      const svc = objs.find((o) => o.kind === 'Service' && svcHost.split('.')[0] === o.metadata.name);
      const sp = svc ? recs(spec(svc).ports).find((p) => p.port === port) : undefined;
      for (const r of pods.filter(isRedisPod)) {
        const target = sp === undefined ? port : typeof sp.targetPort === 'number' ? sp.targetPort : (podPorts(r).find((x) => x.name === (sp.targetPort ?? '')) ?? { number: port }).number;
        for (const e of epp) check(e, r, target, `Redis ${e.owner} → ${r.owner}:${target}`);
      }
    }
  }
  for (const pool of objs.filter((o) => o.kind === 'InferencePool')) {
    const ports = recs(spec(pool).targetPorts).map((t) => t.number).filter((n): n is number => typeof n === 'number');
    for (const v of pods.filter((p) => p.namespace === ns(pool) && labelSelectorSelects(spec(pool).selector, p.labels) && Object.keys(rec(spec(pool).selector)).length > 0)) {
      for (const e of epp) for (const port of ports) check(e, v, port, `metrics scraping ${e.owner} → ${v.owner}:${port}`);
    }
  }
  return out;
}
