/**
 * Selector and named-port invariants: every selector selects something that exists, and every port
 * referenced by name exists on what is selected.
 */
import {
  containerPorts,
  labelSelectorSelects,
  mapSelects,
  podPorts,
  podTemplates,
  rec,
  recs,
  ref,
  selectedPods,
  spec,
  strMap,
  ns,
  violation,
  type Manifest,
  type PodTemplate,
  type Violation,
} from './model.js';

function podNames(pods: readonly PodTemplate[]): string {
  return pods.map((p) => p.owner).join(', ') || 'none';
}

function templatesIn(objs: readonly Manifest[], namespace: string): string {
  return podTemplates(objs)
    .filter((p) => p.namespace === namespace)
    .map((p) => `${p.owner} ${JSON.stringify(p.labels)}`)
    .join('; ') || 'none';
}

/** Workload selector must select its own template (the API server rejects it otherwise). */
export function workloadSelectorsMatchTemplates(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  for (const pod of podTemplates(objs)) {
    if (['Pod', 'CronJob', 'Job', 'ModelService'].includes(pod.ownerObj.kind)) continue;
    const sel = spec(pod.ownerObj).selector;
    if (!labelSelectorSelects(sel, pod.labels) || Object.keys(rec(sel)).length === 0) {
      out.push(violation('workloadSelectorsMatchTemplates', pod.owner, `spec.selector ${JSON.stringify(sel)} does not select its own template labels ${JSON.stringify(pod.labels)}`));
    }
  }
  return out;
}

/**
 * Service selectors, NetworkPolicy podSelectors, PDB selectors and PodMonitor selectors each select at
 * least one pod template in their namespace; ServiceMonitor selectors select at least one Service.
 */
export function selectorsMatchPods(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'selectorsMatchPods';
  for (const o of objs) {
    const s = spec(o);
    const namespace = ns(o);
    let what: string | undefined;
    let pods: PodTemplate[] = [];
    switch (o.kind) {
      case 'Service': {
        const sel = strMap(s.selector);
        if (Object.keys(sel).length === 0) {
          if (s.type !== 'ExternalName') out.push(violation(inv, ref(o), 'Service has no selector: it would get no endpoints from any pod emitted here'));
          continue;
        }
        what = `spec.selector ${JSON.stringify(sel)}`;
        pods = selectedPods(objs, namespace, (l) => mapSelects(sel, l));
        break;
      }
      case 'NetworkPolicy':
        what = `spec.podSelector ${JSON.stringify(s.podSelector)}`;
        pods = selectedPods(objs, namespace, (l) => labelSelectorSelects(s.podSelector, l));
        break;
      case 'PodDisruptionBudget':
        if (Object.keys(rec(s.selector)).length === 0) {
          out.push(violation(inv, ref(o), 'PodDisruptionBudget has an empty selector (it would cover every pod in the namespace)'));
          continue;
        }
        what = `spec.selector ${JSON.stringify(s.selector)}`;
        pods = selectedPods(objs, namespace, (l) => labelSelectorSelects(s.selector, l));
        break;
      case 'PodMonitor':
        what = `spec.selector ${JSON.stringify(s.selector)}`;
        pods = selectedPods(objs, monitorNamespace(o), (l) => labelSelectorSelects(s.selector, l));
        break;
      case 'ServiceMonitor': {
        const svcs = monitoredServices(objs, o);
        if (svcs.length === 0) {
          out.push(violation(inv, ref(o), `spec.selector ${JSON.stringify(s.selector)} selects no Service by metadata.labels in namespace ${monitorNamespace(o)}`));
        }
        continue;
      }
      default:
        continue;
    }
    if (pods.length === 0) {
      out.push(violation(inv, ref(o), `${what} selects no pod template in namespace ${namespace}; templates there: ${templatesIn(objs, namespace)}`));
    }
  }
  return out;
}

/** Namespace a monitor looks in (namespaceSelector.matchNames[0], else its own). */
function monitorNamespace(o: Manifest): string {
  const matchNames = rec(spec(o).namespaceSelector).matchNames;
  const names = Array.isArray(matchNames) ? matchNames.map(String) : [];
  return names[0] ?? ns(o);
}

function monitoredServices(objs: readonly Manifest[], sm: Manifest): Manifest[] {
  const namespace = monitorNamespace(sm);
  return objs.filter((x) => x.kind === 'Service' && ns(x) === namespace && labelSelectorSelects(spec(sm).selector, x.metadata.labels ?? {}));
}

function podsOfService(objs: readonly Manifest[], svc: Manifest): PodTemplate[] {
  const sel = strMap(spec(svc).selector);
  return selectedPods(objs, ns(svc), (l) => mapSelects(sel, l));
}

/**
 * Ports referenced by name exist: Service targetPorts (named: on every selected pod; numeric: declared
 * on every selected pod), probe ports (named: in the same container), PodMonitor `port` (on every
 * selected pod), ServiceMonitor `port` (on a selected Service) and `targetPort`, NetworkPolicy ports
 * (named: on every pod the policy selects).
 */
export function namedPortsExist(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'namedPortsExist';
  for (const o of objs) {
    const s = spec(o);
    if (o.kind === 'Service') {
      const pods = podsOfService(objs, o);
      for (const p of recs(s.ports)) {
        const tp = p.targetPort ?? p.port;
        for (const pod of pods.filter((x) => x.portsKnown)) {
          const ports = podPorts(pod);
          const ok = typeof tp === 'string' ? ports.some((x) => x.name === tp) : ports.some((x) => x.number === tp);
          if (!ok) {
            out.push(violation(inv, ref(o), `port ${JSON.stringify(p.name ?? p.port)} targetPort ${JSON.stringify(tp)} is not a container port of ${pod.owner} (has ${JSON.stringify(ports)})`));
          }
        }
      }
    } else if (o.kind === 'PodMonitor') {
      const pods = selectedPods(objs, monitorNamespace(o), (l) => labelSelectorSelects(s.selector, l));
      for (const ep of recs(s.podMetricsEndpoints)) {
        for (const pod of pods.filter((x) => x.portsKnown)) {
          const ports = podPorts(pod);
          if (typeof ep.port === 'string' && !ports.some((x) => x.name === ep.port)) {
            out.push(violation(inv, ref(o), `podMetricsEndpoints port ${JSON.stringify(ep.port)} is not a named container port of selected ${pod.owner} (has ${JSON.stringify(ports)}); Prometheus would not scrape it`));
          }
          if (typeof ep.portNumber === 'number' && !ports.some((x) => x.number === ep.portNumber)) {
            out.push(violation(inv, ref(o), `podMetricsEndpoints portNumber ${ep.portNumber} is not a container port of ${pod.owner}`));
          }
        }
        if (ep.port === undefined && ep.portNumber === undefined && ep.targetPort === undefined) {
          out.push(violation(inv, ref(o), 'a podMetricsEndpoint names no port'));
        }
      }
    } else if (o.kind === 'ServiceMonitor') {
      const svcs = monitoredServices(objs, o);
      for (const ep of recs(s.endpoints)) {
        for (const svc of svcs) {
          const ports = recs(spec(svc).ports);
          if (typeof ep.port === 'string' && !ports.some((x) => x.name === ep.port)) {
            out.push(violation(inv, ref(o), `endpoints port ${JSON.stringify(ep.port)} is not a port name of selected ${ref(svc)} (has ${JSON.stringify(ports.map((x) => x.name))})`));
          }
          if (ep.targetPort !== undefined) {
            for (const pod of podsOfService(objs, svc).filter((x) => x.portsKnown)) {
              const pp = podPorts(pod);
              if (!pp.some((x) => x.name === ep.targetPort || x.number === ep.targetPort)) {
                out.push(violation(inv, ref(o), `endpoints targetPort ${JSON.stringify(ep.targetPort)} is not a container port of ${pod.owner}`));
              }
            }
          }
        }
        if (ep.port === undefined && ep.targetPort === undefined) out.push(violation(inv, ref(o), 'a ServiceMonitor endpoint names no port'));
      }
    } else if (o.kind === 'NetworkPolicy') {
      const pods = selectedPods(objs, ns(o), (l) => labelSelectorSelects(s.podSelector, l));
      for (const rule of recs(s.ingress)) {
        for (const p of recs(rule.ports)) {
          if (typeof p.port !== 'string') continue;
          for (const pod of pods.filter((x) => x.portsKnown)) {
            if (!podPorts(pod).some((x) => x.name === p.port)) {
              out.push(violation(inv, ref(o), `ingress port ${JSON.stringify(p.port)} is not a named container port of selected ${pod.owner}; the rule would open nothing there`));
            }
          }
        }
      }
    }
  }
  for (const pod of podTemplates(objs)) {
    for (const part of ['initContainers', 'containers']) {
      for (const c of recs(pod.spec[part])) {
        const own = containerPorts(c);
        for (const probeName of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
          const probe = rec(c[probeName]);
          for (const handler of ['httpGet', 'tcpSocket', 'grpc']) {
            const port = rec(probe[handler]).port;
            if (port === undefined) continue;
            if (typeof port === 'string' && !own.some((x) => x.name === port)) {
              out.push(violation(inv, pod.owner, `container ${JSON.stringify(c.name)} ${probeName}.${handler}.port ${JSON.stringify(port)} is not a named port of that container (has ${JSON.stringify(own)})`));
            }
            if (typeof port === 'number' && !podPorts(pod).some((x) => x.number === port) && !own.some((x) => x.number === port)) {
              out.push(violation(inv, pod.owner, `container ${JSON.stringify(c.name)} ${probeName}.${handler}.port ${port} is not declared by any container of the pod (${podNames([pod])})`));
            }
          }
        }
      }
    }
  }
  return out;
}

/** Pod labels set by gateway controllers (Istio/Gateway API) on pods they create from a Gateway. */
const CONTROLLER_MANAGED_KEYS = ['gateway.networking.k8s.io/gateway-name', 'istio.io/gateway-name'];

/** Namespace a NetworkPolicy peer refers to: its own, a `kubernetes.io/metadata.name` match, or unknown. */
export function peerNamespace(peer: Record<string, unknown>, own: string): string | undefined {
  if (peer.namespaceSelector === undefined) return own;
  const m = strMap(rec(peer.namespaceSelector).matchLabels)['kubernetes.io/metadata.name'];
  return m;
}

/**
 * NetworkPolicy ingress/egress peers with a podSelector select at least one emitted pod template in
 * their namespace (a typo would silently allow nothing). Peers selecting pods that controllers create
 * from a Gateway, and peers in namespaces not named by `kubernetes.io/metadata.name`, are not judged.
 */
export function networkPolicyPeersExist(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  for (const o of objs.filter((x) => x.kind === 'NetworkPolicy')) {
    const s = spec(o);
    for (const [dir, field] of [['ingress', 'from'], ['egress', 'to']] as const) {
      recs(s[dir]).forEach((rule, i) => {
        recs(rule[field]).forEach((peer, j) => {
          if (peer.podSelector === undefined) return;
          const labels = strMap(rec(peer.podSelector).matchLabels);
          if (CONTROLLER_MANAGED_KEYS.some((k) => k in labels)) return;
          const namespace = peerNamespace(peer, ns(o));
          if (namespace === undefined) return;
          if (selectedPods(objs, namespace, (l) => labelSelectorSelects(peer.podSelector, l)).length === 0) {
            out.push(violation('networkPolicyPeersExist', ref(o), `${dir}[${i}].${field}[${j}].podSelector ${JSON.stringify(peer.podSelector)} selects no pod template in namespace ${namespace}; templates there: ${templatesIn(objs, namespace)}`));
          }
        });
      });
    }
  }
  return out;
}
