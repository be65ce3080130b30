/**
 * Gateway wiring invariants: InferencePool ↔ pods ↔ EPP Service, EnvoyFilter ext_proc ↔ EPP Service,
 * HTTPRoute ↔ Gateway/backends, ext_proc body modes, the ORIGINAL_DST cluster.
 */
import { EppPorts, Headers, Labels, Roles } from '@kvroute/epp/contract';
import {
  isEppPod,
  labelSelectorSelects,
  mapSelects,
  ns,
  podPorts,
  rec,
  recs,
  ref,
  resolveTargetPort,
  selectedPods,
  serviceForHost,
  spec,
  strMap,
  violation,
  type Json,
  type Manifest,
  type Violation,
} from './model.js';

const EXT_PROC = 'envoy.filters.http.ext_proc';

/** The ext_proc filters of an EnvoyFilter (HTTP_FILTER patch values named envoy.filters.http.ext_proc). */
export function extProcFilters(ef: Manifest): Json[] {
  return recs(spec(ef).configPatches)
    .map((p) => rec(rec(p.patch).value))
    .filter((v) => v.name === EXT_PROC || rec(v.typed_config)['@type'] === 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor');
}

/** Where an ext_proc filter sends gRPC: Service host and port, parsed from the cluster or target URI. */
export function extProcTarget(ef: Manifest, filter: Json): { host: string; port: number } | string {
  const grpc = rec(rec(filter.typed_config).grpc_service);
  const envoyGrpc = rec(grpc.envoy_grpc);
  const googleGrpc = rec(grpc.google_grpc);
  if (typeof envoyGrpc.cluster_name === 'string') {
    const name = envoyGrpc.cluster_name;
    const m = /^outbound\|(\d+)\|[^|]*\|(.+)$/.exec(name);
    if (m) return { host: m[2], port: Number(m[1]) };
    // A cluster added by the same EnvoyFilter: read its endpoint address.
    const cluster = recs(spec(ef).configPatches)
      .filter((p) => p.applyTo === 'CLUSTER')
      .map((p) => rec(rec(p.patch).value))
      .find((c) => c.name === name);
    if (cluster === undefined) return `ext_proc cluster_name ${JSON.stringify(name)} is neither an Istio outbound cluster (outbound|<port>||<host>) nor a CLUSTER added by this EnvoyFilter`;
    const endpoints = recs(rec(cluster.load_assignment).endpoints);
    const lbEndpoints = recs(endpoints[0]?.lb_endpoints);
    const addr = rec(rec(rec(rec(lbEndpoints[0]).endpoint).address).socket_address);
    if (typeof addr.address === 'string' && typeof addr.port_value === 'number') return { host: addr.address, port: addr.port_value };
    return `ext_proc cluster ${JSON.stringify(name)} has no load_assignment socket_address`;
  }
  if (typeof googleGrpc.target_uri === 'string') {
    const m = /^(?:dns:\/\/\/)?([^:]+):(\d+)$/.exec(googleGrpc.target_uri);
    if (m) return { host: m[1], port: Number(m[2]) };
    return `google_grpc target_uri ${JSON.stringify(googleGrpc.target_uri)} is not host:port`;
  }
  return 'ext_proc grpc_service has neither envoy_grpc.cluster_name nor google_grpc.target_uri';
}

/** Services that front the EPP pods (select a pod exposing the ext_proc port). */
export function eppServices(objs: readonly Manifest[]): Manifest[] {
  return objs.filter(
    (o) => o.kind === 'Service' && selectedPods(objs, ns(o), (l) => mapSelects(strMap(spec(o).selector), l)).some(isEppPod),
  );
}

/** The EPP port a Service port resolves to, checked against the EPP pods it selects. */
function servicePortReaches(objs: readonly Manifest[], svc: Manifest, port: number, containerPort: number): boolean {
  const sp = recs(spec(svc).ports).find((p) => p.port === port);
  if (sp === undefined) return false;
  const pods = selectedPods(objs, ns(svc), (l) => mapSelects(strMap(spec(svc).selector), l));
  return pods.length > 0 && pods.every((pod) => resolveTargetPort(sp, pod) === containerPort);
}

/**
 * InferencePool: selector selects at least one decode pod (role decode/both), every selected pod
 * declares every targetPort, and endpointPickerRef names an existing Service whose port reaches the
 * EPP's ext_proc container port.
 */
export function inferencePoolMatchesPods(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'inferencePoolMatchesPods';
  for (const pool of objs.filter((o) => o.kind === 'InferencePool')) {
    const s = spec(pool);
    const sel = rec(s.selector);
    const pods = selectedPods(objs, ns(pool), (l) => Object.keys(sel).length > 0 && labelSelectorSelects(sel, l));
    const decode = pods.filter((p) => p.labels[Labels.role] === Roles.decode || p.labels[Labels.role] === Roles.both);
    if (decode.length === 0) {
      out.push(violation(inv, ref(pool), `spec.selector ${JSON.stringify(sel)} selects no decode pod (label ${Labels.role}=${Roles.decode}); selected: ${pods.map((p) => p.owner).join(', ') || 'none'}`));
    }
    const eppSelected = pods.filter(isEppPod);
    if (eppSelected.length > 0) out.push(violation(inv, ref(pool), `spec.selector also selects EPP pods (${eppSelected.map((p) => p.owner).join(', ')})`));
    const targetPorts = recs(s.targetPorts).map((t) => t.number);
    for (const pod of pods.filter((x) => x.portsKnown)) {
      for (const tp of targetPorts) {
        if (!podPorts(pod).some((p) => p.number === tp)) {
          out.push(violation(inv, ref(pool), `targetPort ${String(tp)} is not a container port of selected ${pod.owner} (has ${JSON.stringify(podPorts(pod))})`));
        }
      }
    }
    const epr = rec(s.endpointPickerRef);
    const kind = typeof epr.kind === 'string' ? epr.kind : 'Service';
    const name = String(epr.name);
    const svc = objs.find((o) => o.kind === 'Service' && o.metadata.name === name && ns(o) === ns(pool));
    if (kind !== 'Service' || svc === undefined) {
      out.push(violation(inv, ref(pool), `endpointPickerRef ${kind}/${name} does not name a Service emitted in namespace ${ns(pool)}`));
      continue;
    }
    const port = rec(epr.port).number;
    if (typeof port !== 'number' || !servicePortReaches(objs, svc, port, EppPorts.grpc)) {
      out.push(violation(inv, ref(pool), `endpointPickerRef.port.number ${JSON.stringify(port)} is not a port of ${ref(svc)} that reaches the EPP container port ${EppPorts.grpc}`));
    }
  }
  return out;
}

/**
 * One EPP Service name everywhere: the Service fronting the EPP pods = every InferencePool's
 * endpointPickerRef.name = every EnvoyFilter ext_proc cluster's service host (whose port reaches 9002).
 */
export function eppServiceConsistency(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'eppServiceConsistency';
  const svcs = eppServices(objs);
  const pools = objs.filter((o) => o.kind === 'InferencePool');
  const efs = objs.filter((o) => o.kind === 'EnvoyFilter');
  if (svcs.length === 0) {
    if (pools.length > 0 || efs.length > 0) out.push(violation(inv, 'EPP Service', 'no Service selects the EPP pods (pods exposing container port 9002), yet an InferencePool or EnvoyFilter refers to one'));
    return out;
  }
  const names = new Set(svcs.map((s) => `${ns(s)}/${s.metadata.name}`));
  for (const pool of pools) {
    const n = `${ns(pool)}/${String(rec(spec(pool).endpointPickerRef).name)}`;
    if (!names.has(n)) out.push(violation(inv, ref(pool), `endpointPickerRef.name is ${n}, but the EPP Service is ${[...names].join(', ')}`));
  }
  for (const ef of efs) {
    const filters = extProcFilters(ef);
    for (const f of filters) {
      const target = extProcTarget(ef, f);
      if (typeof target === 'string') {
        out.push(violation(inv, ref(ef), target));
        continue;
      }
      const svc = serviceForHost(objs, target.host, ns(ef));
      if (svc === undefined || !names.has(`${ns(svc)}/${svc.metadata.name}`)) {
        out.push(violation(inv, ref(ef), `ext_proc cluster host ${target.host} is not the EPP Service (${[...names].join(', ')})`));
      } else if (!servicePortReaches(objs, svc, target.port, EppPorts.grpc)) {
        out.push(violation(inv, ref(ef), `ext_proc cluster port ${target.port} is not a port of ${ref(svc)} that reaches the EPP container port ${EppPorts.grpc}`));
      }
    }
  }
  return out;
}

/** ext_proc processing_mode request/response body modes are set and never NONE. */
export function extProcBodyModeNeverNone(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'extProcBodyModeNeverNone';
  for (const ef of objs.filter((o) => o.kind === 'EnvoyFilter')) {
    for (const f of extProcFilters(ef)) {
      const mode = rec(rec(f.typed_config).processing_mode);
      for (const field of ['request_body_mode', 'response_body_mode']) {
        const v = mode[field];
        if (v === undefined || v === 'NONE') {
          out.push(violation(inv, ref(ef), `ext_proc processing_mode.${field} is ${v === undefined ? 'unset (Envoy default NONE)' : 'NONE'}; the EPP must see bodies: use FULL_DUPLEX_STREAMED or BUFFERED`));
        }
      }
    }
  }
  return out;
}

/**
 * An EnvoyFilter that installs ext_proc also adds an ORIGINAL_DST cluster keyed on
 * x-gateway-destination-endpoint and routes to it (else the EPP's pick is ignored).
 */
export function envoyFilterRoutesToPick(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'envoyFilterRoutesToPick';
  for (const ef of objs.filter((o) => o.kind === 'EnvoyFilter')) {
    if (extProcFilters(ef).length === 0) {
      out.push(violation(inv, ref(ef), 'EnvoyFilter installs no envoy.filters.http.ext_proc filter'));
      continue;
    }
    const patches = recs(spec(ef).configPatches);
    const clusters = patches
      .filter((p) => p.applyTo === 'CLUSTER')
      .map((p) => rec(rec(p.patch).value))
      .filter((c) => c.type === 'ORIGINAL_DST' && rec(c.original_dst_lb_config).use_http_header === true && rec(c.original_dst_lb_config).http_header_name === Headers.destinationEndpoint);
    if (clusters.length === 0) {
      out.push(violation(inv, ref(ef), `no ORIGINAL_DST CLUSTER patch with original_dst_lb_config {use_http_header: true, http_header_name: ${Headers.destinationEndpoint}}`));
      continue;
    }
    const clusterNames = new Set(clusters.map((c) => c.name));
    const routed = patches
      .filter((p) => p.applyTo === 'HTTP_ROUTE')
      .some((p) => clusterNames.has(rec(rec(rec(p.patch).value).route).cluster));
    if (!routed) out.push(violation(inv, ref(ef), `no route patch sends traffic to the ORIGINAL_DST cluster ${[...clusterNames].join(', ')}`));
  }
  return out;
}

/**
 * HTTPRoute parentRefs name an emitted Gateway (when any Gateway is emitted) and backendRefs name an
 * emitted Service (with that port) or InferencePool.
 */
export function httpRouteRefsExist(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  const inv = 'httpRouteRefsExist';
  const gateways = objs.filter((o) => o.kind === 'Gateway');
  for (const route of objs.filter((o) => o.kind === 'HTTPRoute')) {
    const s = spec(route);
    const parents = recs(s.parentRefs);
    if (parents.length === 0) out.push(violation(inv, ref(route), 'HTTPRoute has no parentRefs: no Gateway would serve it'));
    for (const p of parents) {
      const kind = typeof p.kind === 'string' ? p.kind : 'Gateway';
      const namespace = typeof p.namespace === 'string' ? p.namespace : ns(route);
      if (kind !== 'Gateway' || gateways.length === 0) continue;
      const gw = gateways.find((g) => g.metadata.name === p.name && ns(g) === namespace);
      if (gw === undefined) {
        out.push(violation(inv, ref(route), `parentRef Gateway ${namespace}/${String(p.name)} is not emitted (Gateways: ${gateways.map((g) => `${ns(g)}/${g.metadata.name}`).join(', ')})`));
        continue;
      }
      if (typeof p.sectionName === 'string' && !recs(spec(gw).listeners).some((l) => l.name === p.sectionName)) {
        out.push(violation(inv, ref(route), `parentRef sectionName ${p.sectionName} is not a listener of ${ref(gw)}`));
      }
      if (typeof p.port === 'number' && !recs(spec(gw).listeners).some((l) => l.port === p.port)) {
        out.push(violation(inv, ref(route), `parentRef port ${p.port} is not a listener port of ${ref(gw)}`));
      }
    }
    const rules = recs(s.rules);
    if (rules.length === 0) out.push(violation(inv, ref(route), 'HTTPRoute has no rules'));
    rules.forEach((rule, i) => {
      const backends = recs(rule.backendRefs);
      if (backends.length === 0) out.push(violation(inv, ref(route), `rules[${i}] has no backendRefs`));
      for (const b of backends) {
        const group = typeof b.group === 'string' ? b.group : '';
        const kind = typeof b.kind === 'string' ? b.kind : 'Service';
        const namespace = typeof b.namespace === 'string' ? b.namespace : ns(route);
        if (group === '' && kind === 'Service') {
          const svc = objs.find((o) => o.kind === 'Service' && o.metadata.name === b.name && ns(o) === namespace);
          if (svc === undefined) out.push(violation(inv, ref(route), `backendRef Service ${namespace}/${String(b.name)} is not emitted`));
          else if (!recs(spec(svc).ports).some((p) => p.port === b.port)) out.push(violation(inv, ref(route), `backendRef port ${JSON.stringify(b.port)} is not a port of ${ref(svc)}`));
        } else if (kind === 'InferencePool') {
          const pool = objs.find((o) => o.kind === 'InferencePool' && o.metadata.name === b.name && ns(o) === namespace && o.apiVersion.startsWith(`${group}/`));
          if (pool === undefined) out.push(violation(inv, ref(route), `backendRef InferencePool ${group}/${namespace}/${String(b.name)} is not emitted`));
        } else {
          out.push(violation(inv, ref(route), `backendRef ${group}/${kind} ${String(b.name)} is neither a Service nor an InferencePool`));
        }
      }
    });
  }
  return out;
}

