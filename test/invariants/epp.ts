/**
 * The EPP's own wiring: it reads the config it is given, listens on the ports the config names, can
 * watch what discovery needs (RBAC), finds its InferencePool, and reaches Redis with a password from
 * the same Secret Redis uses.
 */
import { EppConfigPath, EppPorts } from '@kvroute/epp/contract';
import {
  commandLine,
  containerPorts,
  eppConfigs,
  envVar,
  flagValues,
  isEppPod,
  isRedisPod,
  mapSelects,
  ns,
  podTemplates,
  rec,
  recs,
  selectedPods,
  serviceForHost,
  spec,
  strMap,
  violation,
  type FoundEppConfig,
  type Json,
  type Manifest,
  type PodTemplate,
  type Violation,
} from './model.js';

const INV = 'eppWiring';

/** The ConfigMap key an EPP container reads as its config, following `--config`, volumeMounts and volumes. */
export function mountedEppConfig(objs: readonly Manifest[], pod: PodTemplate, c: Json): FoundEppConfig | string {
  const path = flagValues(commandLine(c), '--config')[0] ?? EppConfigPath;
  const mounts = recs(c.volumeMounts).filter((m) => typeof m.mountPath === 'string');
  const mount = mounts.find((m) => (typeof m.subPath === 'string' ? m.mountPath === path : path.startsWith(`${String(m.mountPath).replace(/\/$/, '')}/`)));
  if (mount === undefined) return `config file ${path} is not under any volumeMount (${mounts.map((m) => String(m.mountPath)).join(', ') || 'none'})`;
  const volume = recs(pod.spec.volumes).find((v) => v.name === mount.name);
  const cmName = rec(volume?.configMap).name;
  if (typeof cmName !== 'string') return `volume ${JSON.stringify(mount.name)} mounted at ${String(mount.mountPath)} is not a ConfigMap volume`;
  const rest = typeof mount.subPath === 'string' ? mount.subPath : path.slice(String(mount.mountPath).replace(/\/$/, '').length + 1);
  const items = recs(rec(volume?.configMap).items);
  const key = items.length > 0 ? items.find((it) => it.path === rest)?.key : rest;
  if (typeof key !== 'string') return `ConfigMap volume ${cmName} projects no item to ${rest}`;
  const found = eppConfigs(objs).found.find((f) => f.configMap.metadata.name === cmName && ns(f.configMap) === pod.namespace && f.key === key);
  if (found === undefined) return `${path} resolves to ConfigMap ${pod.namespace}/${cmName} key ${JSON.stringify(key)}, which is not an emitted, valid EPP config`;
  return found;
}

function grants(rules: Json[], group: string, resource: string, verbs: readonly string[]): boolean {
  return verbs.every((verb) =>
    rules.some((r) => {
      const has = (field: string, v: string): boolean => Array.isArray(r[field]) && (r[field] as unknown[]).some((x) => x === v || x === '*');
      return has('apiGroups', group) && has('resources', resource) && has('verbs', verb);
    }),
  );
}

/** Rules bound to a ServiceAccount in a namespace (Roles and ClusterRoles that are emitted). */
function boundRules(objs: readonly Manifest[], namespace: string, sa: string): Json[] {
  const rules: Json[] = [];
  for (const rb of objs.filter((o) => (o.kind === 'RoleBinding' && ns(o) === namespace) || o.kind === 'ClusterRoleBinding')) {
    const bound = recs(rb.subjects).some((s) => s.kind === 'ServiceAccount' && s.name === sa && (s.namespace ?? (rb.kind === 'RoleBinding' ? ns(rb) : undefined)) === namespace);
    if (!bound) continue;
    const roleRef = rec(rb.roleRef);
    const role = objs.find((o) => o.kind === roleRef.kind && o.metadata.name === roleRef.name && (o.kind === 'ClusterRole' || ns(o) === ns(rb)));
    if (role !== undefined) rules.push(...recs(role.rules));
  }
  return rules;
}

/**
 * For every EPP pod: the `--config` file is an emitted EPP config (through its volume); the container
 * declares the config's server ports; with kubernetes discovery, the named InferencePool exists and
 * the pod's ServiceAccount may get/list/watch pods and inferencepools (and inferenceobjectives unless
 * admission.watchObjectives is off); with a Redis index, the URL
 * names an emitted Redis Service port, and the password env comes from the Secret the Redis pods use.
 */
export function eppWiring(objs: readonly Manifest[]): Violation[] {
  const out: Violation[] = [];
  for (const pod of podTemplates(objs).filter(isEppPod)) {
    const c = recs(pod.spec.containers).find((x) => containerPorts(x).some((p) => p.number === EppPorts.grpc));
    if (c === undefined) continue;
    const found = mountedEppConfig(objs, pod, c);
    if (typeof found === 'string') {
      out.push(violation(INV, pod.owner, `container ${JSON.stringify(c.name)}: ${found}`));
      continue;
    }
    const cfg = found.config;
    const ports = containerPorts(c).map((p) => p.number);
    for (const [field, port] of [['grpcPort', cfg.server.grpcPort], ['healthPort', cfg.server.healthPort], ['httpPort', cfg.server.httpPort]] as const) {
      if (!ports.includes(port)) out.push(violation(INV, pod.owner, `EPP config server.${field} ${port} is not a container port of ${JSON.stringify(c.name)} (${JSON.stringify(ports)})`));
    }
    const sa = typeof pod.spec.serviceAccountName === 'string' ? pod.spec.serviceAccountName : 'default';
    if (sa !== 'default' && !objs.some((o) => o.kind === 'ServiceAccount' && o.metadata.name === sa && ns(o) === pod.namespace)) {
      out.push(violation(INV, pod.owner, `serviceAccountName ${sa} is not an emitted ServiceAccount in ${pod.namespace}`));
    }
    const discovery = cfg.discovery;
    if (discovery.mode === 'kubernetes') {
      const poolNs = discovery.poolNamespace ?? pod.namespace;
      if (!objs.some((o) => o.kind === 'InferencePool' && o.metadata.name === discovery.poolName && ns(o) === poolNs)) {
        out.push(violation(INV, pod.owner, `EPP config discovery.poolName ${poolNs}/${discovery.poolName} is not an emitted InferencePool: the EPP would discover no endpoints`));
      }
      const rules = boundRules(objs, pod.namespace, sa);
      if (!grants(rules, '', 'pods', ['get', 'list', 'watch'])) out.push(violation(INV, pod.owner, `ServiceAccount ${sa} is not bound to get/list/watch pods (kubernetes discovery)`));
      if (!grants(rules, 'inference.networking.k8s.io', 'inferencepools', ['get', 'list', 'watch'])) {
        out.push(violation(INV, pod.owner, `ServiceAccount ${sa} is not bound to get/list/watch inferencepools.inference.networking.k8s.io (kubernetes discovery)`));
      }
      if (cfg.admission.watchObjectives && !grants(rules, 'inference.networking.x-k8s.io', 'inferenceobjectives', ['get', 'list', 'watch'])) {
        out.push(
          violation(INV, pod.owner, `ServiceAccount ${sa} is not bound to get/list/watch inferenceobjectives.inference.networking.x-k8s.io (admission.watchObjectives); grant it or set admission.watchObjectives: false`),
        );
      }
    }
    if (cfg.index.backend === 'redis') {
      const m = /^rediss?:\/\/([^:/]+)(?::(\d+))?/.exec(cfg.index.url);
      const host = m?.[1] ?? '';
      const port = Number(m?.[2] ?? 6379);
      const svc = serviceForHost(objs, host, pod.namespace);
      const redisPods = svc === undefined ? [] : selectedPods(objs, ns(svc), (l) => mapSelects(strMap(spec(svc).selector), l)).filter(isRedisPod);
      if (svc === undefined || !recs(spec(svc).ports).some((p) => p.port === port) || redisPods.length === 0) {
        out.push(violation(INV, pod.owner, `EPP config index.url ${cfg.index.url} does not name an emitted Service port in front of Redis pods`));
      }
      const pw = envVar(c, cfg.index.passwordEnv);
      const ref1 = rec(rec(pw?.valueFrom).secretKeyRef);
      if (pw === undefined || typeof ref1.name !== 'string') {
        out.push(violation(INV, pod.owner, `EPP config index.passwordEnv ${cfg.index.passwordEnv} is not an env var of ${JSON.stringify(c.name)} from a secretKeyRef`));
        continue;
      }
      for (const rp of redisPods) {
        const redisRefs = recs(rp.spec.containers)
          .flatMap((rc) => recs(rc.env))
          .map((e) => rec(rec(e.valueFrom).secretKeyRef))
          .filter((r) => typeof r.name === 'string');
        if (redisRefs.length > 0 && !redisRefs.some((r) => r.name === ref1.name && r.key === ref1.key)) {
          out.push(violation(INV, pod.owner, `EPP Redis password comes from Secret ${String(ref1.name)}/${String(ref1.key)} but ${rp.owner} uses ${redisRefs.map((r) => `${String(r.name)}/${String(r.key)}`).join(', ')}`));
        }
      }
    }
  }
  return out;
}
