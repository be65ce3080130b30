/**
 * Read-side helpers over a list of synthesized objects: pod templates, label selectors, ports,
 * container command lines, the EPP config. Shared by every invariant module.
 */
import { parse as parseYaml } from 'yaml';
import { EppPorts, parseEppConfig, type EppConfig } from '@kvroute/epp/contract';

/** A Kubernetes object as plain JSON: the one object type of the root tests (test/support/synth.ts). */
export type { K8sObject as Manifest } from '../support/synth.js';
import type { K8sObject as Manifest } from '../support/synth.js';

/** One broken rule. */
export interface Violation {
  /** Invariant name (the function that found it). */
  invariant: string;
  /** `Kind namespace/name` of the object at fault. */
  object: string;
  /** What is wrong: expected vs actual, and what it refers to. */
  message: string;
}

/** An invariant over the whole object list. */
export type Invariant = (objs: readonly Manifest[]) => Violation[];

export type Json = Record<string, unknown>;

export function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
export function rec(v: unknown): Json {
  return isRecord(v) ? v : {};
}
export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
export function recs(v: unknown): Json[] {
  return arr(v).filter(isRecord);
}
export function strMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(rec(v))) if (typeof x === 'string') out[k] = x;
  return out;
}

export function ns(o: Manifest): string {
  return o.metadata.namespace ?? 'default';
}
export function ref(o: Manifest): string {
  return `${o.kind} ${ns(o)}/${o.metadata.name}`;
}
export function spec(o: Manifest): Json {
  return rec(o.spec);
}

/** A container with the pod it runs in. */
export interface ContainerRef {
  /** Owner object (`Deployment ns/name` or `ModelService ns/name`). */
  owner: string;
  ownerObj: Manifest;
  /** JSON path of the container, for messages. */
  path: string;
  container: Json;
  /** Pod template (for a ModelService: the pod the operator builds); undefined for its endpointPicker. */
  pod: PodTemplate | undefined;
  /** True for init containers that are not native sidecars (they exit before the pod serves). */
  initOnly: boolean;
}

/**
 * A pod template of a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod),
 * or the pods an llm-d ModelService operator will create (see modelServicePods).
 */
export interface PodTemplate {
  owner: string;
  ownerObj: Manifest;
  namespace: string;
  labels: Record<string, string>;
  spec: Json;
  path: string;
  /**
   * False for ModelService pods: the CRD's containers carry no ports, the operator's BaseConfig adds
   * them, so declared-port checks cannot be made from the emitted objects.
   */
  portsKnown: boolean;
}

/** The operator's label sanitizer for the model name (llm-d-model-service internal/controller/utils.go sanitizeName). */
export function operatorModelLabel(modelName: string): string {
  return modelName
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^[-._]+|[-._]+$/g, '')
    .slice(0, 63);
}

/**
 * Pods the llm-d ModelService operator creates for spec.decode / spec.prefill. Labels as the operator
 * sets them (llm-d-model-service internal/controller/child_resources.go getPodLabels):
 * `llm-d.ai/inferenceServing: "true"`, `llm-d.ai/model: sanitize(routing.modelName)`,
 * `llm-d.ai/role: decode|prefill`. Containers: the CR's, merged by name over the
 * `<role>Deployment` pod template of the BaseConfig ConfigMap (spec.baseConfigMapRef) when that is
 * emitted as plain YAML (then ports are known); without one the pods declare no ports.
 */
export function modelServicePods(o: Manifest, objs: readonly Manifest[] = []): PodTemplate[] {
  const s = rec(o.spec);
  const model = String(rec(s.routing).modelName ?? '');
  const baseName = rec(s.baseConfigMapRef).name;
  const baseNs = typeof rec(s.baseConfigMapRef).namespace === 'string' ? String(rec(s.baseConfigMapRef).namespace) : ns(o);
  const base = objs.find((x) => x.kind === 'ConfigMap' && x.metadata.name === baseName && ns(x) === baseNs);
  const out: PodTemplate[] = [];
  for (const role of ['decode', 'prefill']) {
    const r = s[role];
    if (!isRecord(r)) continue;
    const template = baseTemplate(base, `${role}Deployment`);
    const labels = { ...strMap(rec(template?.metadata).labels), 'llm-d.ai/inferenceServing': 'true', 'llm-d.ai/model': operatorModelLabel(model), 'llm-d.ai/role': role };
    const baseSpec = rec(template?.spec);
    out.push({
      owner: `${ref(o)} (${role} pods)`,
      ownerObj: o,
      namespace: ns(o),
      labels,
      spec: {
        ...baseSpec,
        containers: mergeByName(baseSpec.containers, r.containers),
        initContainers: mergeByName(baseSpec.initContainers, r.initContainers),
      },
      path: `/spec/${role}`,
      portsKnown: template !== undefined,
    });
  }
  return out;
}

/** The pod template of a BaseConfig key (plain YAML Deployment); undefined if absent or templated. */
function baseTemplate(base: Manifest | undefined, key: string): Json | undefined {
  const text = strMap(base?.data)[key];
  if (text === undefined) return undefined;
  try {
    const d: unknown = parseYaml(text);
    return isRecord(d) ? rec(rec(d.spec).template) : undefined;
  } catch {
    return undefined;
  }
}

/** The operator's container merge: CR containers override BaseConfig containers of the same name, others are appended. */
function mergeByName(baseList: unknown, crList: unknown): Json[] {
  const out = recs(baseList).map((c) => ({ ...c }));
  for (const c of recs(crList)) {
    const { mountModelVolume: _ignored, ...fields } = c;
    const i = out.findIndex((b) => b.name === c.name);
    if (i >= 0) out[i] = { ...out[i], ...fields };
    else out.push(fields);
  }
  return out;
}

const TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

export function podTemplates(objs: readonly Manifest[]): PodTemplate[] {
  const out: PodTemplate[] = [];
  for (const o of objs) {
    let t: Json | undefined;
    let path = '';
    if (TEMPLATE_KINDS.has(o.kind)) {
      t = rec(spec(o).template);
      path = '/spec/template';
    } else if (o.kind === 'CronJob') {
      t = rec(rec(rec(spec(o).jobTemplate).spec).template);
      path = '/spec/jobTemplate/spec/template';
    } else if (o.kind === 'Pod') {
      t = { metadata: o.metadata, spec: o.spec };
    } else if (o.kind === 'ModelService') {
      out.push(...modelServicePods(o, objs));
    }
    if (t === undefined) continue;
    out.push({ owner: ref(o), ownerObj: o, namespace: ns(o), labels: strMap(rec(t.metadata).labels), spec: rec(t.spec), path: `${path}/spec`, portsKnown: true });
  }
  return out;
}

/** Containers of a pod that run while it serves: containers plus native-sidecar init containers. */
export function servingContainers(pod: PodTemplate): Json[] {
  return [...recs(pod.spec.initContainers).filter((c) => c.restartPolicy === 'Always'), ...recs(pod.spec.containers)];
}

/** Every container of every pod template and every ModelService. */
export function allContainers(objs: readonly Manifest[]): ContainerRef[] {
  const out: ContainerRef[] = [];
  for (const pod of podTemplates(objs)) {
    if (pod.ownerObj.kind === 'ModelService') continue; // listed below with CR paths
    for (const part of ['initContainers', 'containers'] as const) {
      recs(pod.spec[part]).forEach((c, i) =>
        out.push({ owner: pod.owner, ownerObj: pod.ownerObj, path: `${pod.path}/${part}/${i}`, container: c, pod, initOnly: part === 'initContainers' && c.restartPolicy !== 'Always' }),
      );
    }
  }
  for (const o of objs) {
    if (o.kind !== 'ModelService') continue;
    const pods = modelServicePods(o, objs);
    for (const role of ['decode', 'prefill', 'endpointPicker']) {
      const pod = pods.find((p) => p.path === `/spec/${role}`);
      for (const part of ['initContainers', 'containers'] as const) {
        recs(rec(spec(o)[role])[part]).forEach((c, i) =>
          out.push({ owner: ref(o), ownerObj: o, path: `/spec/${role}/${part}/${i}`, container: c, pod, initOnly: part === 'initContainers' }),
        );
      }
    }
  }
  return out;
}

/** Container ports as {name, number}. */
export function containerPorts(c: Json): { name?: string; number: number }[] {
  return recs(c.ports)
    .filter((p) => typeof p.containerPort === 'number')
    .map((p) => ({ ...(typeof p.name === 'string' ? { name: p.name } : {}), number: p.containerPort as number }));
}

export function podPorts(pod: PodTemplate): { name?: string; number: number }[] {
  return servingContainers(pod).flatMap(containerPorts);
}

/** Map-equality selector (Service.spec.selector). An empty map selects nothing here. */
export function mapSelects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  const entries = Object.entries(selector);
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

/** metav1.LabelSelector semantics: matchLabels AND matchExpressions; `{}` selects everything. */
export function labelSelectorSelects(selector: unknown, labels: Record<string, string>): boolean {
  const s = rec(selector);
  for (const [k, v] of Object.entries(strMap(s.matchLabels))) if (labels[k] !== v) return false;
  for (const e of recs(s.matchExpressions)) {
    const key = String(e.key);
    const values = arr(e.values).map(String);
    const has = Object.prototype.hasOwnProperty.call(labels, key);
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(labels[key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** Pod templates in `namespace` that a selector function picks. */
export function selectedPods(objs: readonly Manifest[], namespace: string, pick: (labels: Record<string, string>) => boolean): PodTemplate[] {
  return podTemplates(objs).filter((p) => p.namespace === namespace && pick(p.labels));
}

/** Command line of a container as tokens (command + args; `sh -c "<script>"` is split shell-style). */
export function commandLine(c: Json): string[] {
  const parts = [...arr(c.command), ...arr(c.args)].map(String);
  const shell = parts.length >= 3 && /(^|\/)(ba)?sh$/.test(parts[0]) && parts[1] === '-c';
  if (!shell) return parts;
  return [parts[0], parts[1], ...shellSplit(parts.slice(2).join(' '))];
}

/** Minimal shell word splitting (quotes and backslashes; no expansion). */
export function shellSplit(script: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < script.length; i++) {
    const ch = script[i];
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === '\\' && quote === '"' && i + 1 < script.length) cur += script[++i];
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < script.length) {
      cur += script[++i];
      inWord = true;
    } else if (/\s/.test(ch) || ch === ';' || ch === '&' || ch === '|') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/**
 * Values of a `--flag` in a token list (`--flag=v` or `--flag v`); underscores and dashes in flag
 * names are equivalent, as in vLLM's argument parser. A bare boolean flag yields ''.
 */
export function flagValues(tokens: readonly string[], flag: string): string[] {
  const norm = (s: string): string => s.replace(/_/g, '-');
  const want = norm(flag);
  const out: string[] = [];
  tokens.forEach((t, i) => {
    if (!t.startsWith('-')) return;
    const eq = t.indexOf('=');
    const name = norm(eq >= 0 ? t.slice(0, eq) : t);
    if (name !== want) return;
    if (eq >= 0) out.push(t.slice(eq + 1));
    else if (i + 1 < tokens.length && !tokens[i + 1].startsWith('-')) out.push(tokens[i + 1]);
    else out.push('');
  });
  return out;
}

/** True for a vLLM server container (by its command line or a vllm image that is not a sidecar). */
export function isVllmContainer(c: Json): boolean {
  const tokens = commandLine(c);
  const serve = tokens.some((t, i) => /(^|\/)vllm$/.test(t) && tokens[i + 1] === 'serve') || tokens.some((t) => t.includes('vllm.entrypoints.openai.api_server'));
  const image = typeof c.image === 'string' ? c.image : '';
  return serve || (/vllm/i.test(image) && !/sidecar|router|routing|epp|scheduler/i.test(image));
}

/** Env var entry by name. */
export function envVar(c: Json, name: string): Json | undefined {
  return recs(c.env).find((e) => e.name === name);
}

/** EPP pods: pods with a container that exposes the EPP's ext_proc port. */
export function isEppPod(pod: PodTemplate): boolean {
  return servingContainers(pod).some((c) => containerPorts(c).some((p) => p.number === EppPorts.grpc));
}

/** Redis/Valkey pods (by image or the Redis port). */
export function isRedisPod(pod: PodTemplate): boolean {
  return servingContainers(pod).some((c) => /(^|\/)(redis|valkey)[:@/-]|(^|\/)(redis|valkey)$/.test(String(c.image ?? '')) || containerPorts(c).some((p) => p.number === 6379));
}

/** An EPP config found in a ConfigMap. */
export interface FoundEppConfig {
  configMap: Manifest;
  key: string;
  config: EppConfig;
}

/**
 * EPP configs carried by ConfigMaps: every data value that parses as YAML with
 * `kind: EppConfig`. Invalid ones are returned as violations by the caller via `errors`.
 */
export function eppConfigs(objs: readonly Manifest[]): { found: FoundEppConfig[]; errors: Violation[] } {
  const found: FoundEppConfig[] = [];
  const errors: Violation[] = [];
  for (const o of objs) {
    if (o.kind !== 'ConfigMap') continue;
    for (const [key, text] of Object.entries(strMap(o.data))) {
      let doc: unknown;
      try {
        doc = parseYaml(text);
      } catch {
        continue;
      }
      if (!isRecord(doc) || doc.kind !== 'EppConfig') continue;
      try {
        found.push({ configMap: o, key, config: parseEppConfig(doc, `${ref(o)} key ${key}`) });
      } catch (e) {
        errors.push({ invariant: 'eppConfig', object: ref(o), message: (e as Error).message });
      }
    }
  }
  return { found, errors };
}

/** Services whose name (or FQDN) a host string refers to: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`. */
export function serviceForHost(objs: readonly Manifest[], host: string, defaultNs: string): Manifest | undefined {
  const m = /^([a-z0-9-]+)(?:\.([a-z0-9-]+)(?:\.svc(?:\.cluster\.local)?)?)?$/.exec(host);
  if (!m) return undefined;
  const namespace = m[2] ?? defaultNs;
  return objs.find((o) => o.kind === 'Service' && o.metadata.name === m[1] && ns(o) === namespace);
}

/** Container port (number) a Service port resolves to on a pod: numeric targetPort, named targetPort, or port. */
export function resolveTargetPort(servicePort: Json, pod: PodTemplate): number | undefined {
  const tp = servicePort.targetPort ?? servicePort.port;
  if (typeof tp === 'number') return tp;
  if (typeof tp === 'string') return podPorts(pod).find((p) => p.name === tp)?.number;
  return undefined;
}

export function violation(invariant: string, object: string, message: string): Violation {
  return { invariant, object, message };
}
