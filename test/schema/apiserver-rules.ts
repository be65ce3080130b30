/**
 * Checks the API server applies that OpenAPI schemas do not express: name syntax, label and
 * annotation syntax (values such as "meta-llama/Llama-3.2-1B" are NOT valid label values),
 * container and port names, resource quantities. Applied to every object, including custom
 * resources, wherever such fields appear (pod templates nested in Deployments or ModelServices).
 */
import { isRecord, ptr, show, type SchemaError } from './errors.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?\d+))?$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** Kinds whose metadata.name must be a DNS-1035 label (the API server rejects anything else). */
const DNS1035_NAMED = new Set(['Service']);
/** Kinds whose metadata.name must be a DNS-1123 label. */
const DNS1123_LABEL_NAMED = new Set(['Namespace']);

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}
export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}
/** Label/annotation key: `[prefix/]name`, prefix a DNS subdomain, name ≤ 63 chars. */
export function isQualifiedName(s: string): boolean {
  const i = s.lastIndexOf('/');
  const prefix = i >= 0 ? s.slice(0, i) : undefined;
  const name = i >= 0 ? s.slice(i + 1) : s;
  if (prefix !== undefined && !isDns1123Subdomain(prefix)) return false;
  return name.length <= 63 && QUALIFIED_NAME_PART.test(name);
}
export function isLabelValue(s: string): boolean {
  return s.length <= 63 && LABEL_VALUE.test(s);
}
/** IANA_SVC_NAME: container port names (≤ 15, lowercase alphanumerics and '-', at least one letter, no '--'). */
export function isIanaSvcName(s: string): boolean {
  return s.length >= 1 && s.length <= 15 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s) && /[a-z]/.test(s) && !s.includes('--');
}
export function isQuantity(v: unknown): boolean {
  return (typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && QUANTITY.test(v));
}

const SUFFIX: Readonly<Record<string, number>> = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** Numeric value of a Kubernetes quantity ("500m" → 0.5, "2Gi" → 2147483648); undefined if invalid. */
export function quantityValue(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v !== 'string' || !QUANTITY.test(v)) return undefined;
  const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$/.exec(v);
  if (!m) return undefined;
  const suffix = m[2] ?? '';
  if (/^[eE]/.test(suffix)) return Number(m[1] + suffix);
  return Number(m[1]) * (SUFFIX[suffix] ?? NaN);
}

const PROBE_HANDLERS = ['exec', 'httpGet', 'tcpSocket', 'grpc'];

function checkLabels(labels: unknown, path: string, object: string, out: SchemaError[], what: string): void {
  if (!isRecord(labels)) return;
  for (const [k, v] of Object.entries(labels)) {
    if (!isQualifiedName(k)) {
      out.push({ object, path: ptr(path, k), message: `${what} key ${show(k)} is not a qualified name ([dns-subdomain/]name, name ≤ 63 of [A-Za-z0-9-_.])`, source: 'apiserver-rules' });
    }
    if (typeof v !== 'string') {
      out.push({ object, path: ptr(path, k), message: `${what} value must be a string (got ${show(v)}); quote it in YAML`, source: 'apiserver-rules' });
    } else if (!isLabelValue(v)) {
      out.push({
        object,
        path: ptr(path, k),
        message: `${what} value ${show(v)} is invalid: ≤ 63 chars of [A-Za-z0-9-_.], starting and ending alphanumeric (e.g. replace '/' with '-')`,
        source: 'apiserver-rules',
      });
    }
  }
}

function checkMetadata(md: unknown, path: string, object: string, out: SchemaError[]): void {
  if (!isRecord(md)) return;
  checkLabels(md.labels, ptr(path, 'labels'), object, out, 'label');
  if (isRecord(md.annotations)) {
    for (const [k, v] of Object.entries(md.annotations)) {
      if (!isQualifiedName(k)) out.push({ object, path: ptr(ptr(path, 'annotations'), k), message: `annotation key ${show(k)} is not a qualified name`, source: 'apiserver-rules' });
      if (typeof v !== 'string') out.push({ object, path: ptr(ptr(path, 'annotations'), k), message: `annotation value must be a string (got ${show(v)})`, source: 'apiserver-rules' });
    }
  }
}

function checkContainers(list: unknown, path: string, object: string, out: SchemaError[], names: Set<string>, requireImage: boolean): void {
  if (!Array.isArray(list)) return;
  list.forEach((c, i) => {
    if (!isRecord(c)) return;
    const cp = ptr(path, i);
    if (typeof c.name === 'string') {
      if (!isDns1123Label(c.name)) out.push({ object, path: ptr(cp, 'name'), message: `container name ${show(c.name)} is not a DNS-1123 label`, source: 'apiserver-rules' });
      if (names.has(c.name)) out.push({ object, path: ptr(cp, 'name'), message: `duplicate container name ${show(c.name)} in the pod`, source: 'apiserver-rules' });
      names.add(c.name);
    }
    if (Array.isArray(c.ports)) {
      const portNames = new Set<string>();
      c.ports.forEach((p, j) => {
        if (!isRecord(p) || p.name === undefined) return;
        const pp = ptr(ptr(ptr(cp, 'ports'), j), 'name');
        if (typeof p.name !== 'string' || !isIanaSvcName(p.name)) {
          out.push({ object, path: pp, message: `container port name ${show(p.name)} is not an IANA_SVC_NAME (≤ 15 chars, lowercase, at least one letter, no '--')`, source: 'apiserver-rules' });
        } else if (portNames.has(p.name)) {
          out.push({ object, path: pp, message: `duplicate port name ${show(p.name)} in container ${show(c.name)}`, source: 'apiserver-rules' });
        }
        if (typeof p.name === 'string') portNames.add(p.name);
      });
    }
    if (Array.isArray(c.env)) {
      c.env.forEach((e, j) => {
        if (isRecord(e) && typeof e.name === 'string' && !ENV_NAME.test(e.name)) {
          out.push({ object, path: ptr(ptr(ptr(cp, 'env'), j), 'name'), message: `env var name ${show(e.name)} is invalid`, source: 'apiserver-rules' });
        }
      });
    }
    if (requireImage && (typeof c.image !== 'string' || c.image === '')) {
      out.push({ object, path: ptr(cp, 'image'), message: `container ${show(c.name)} has no image (required in pod templates)`, source: 'apiserver-rules' });
    }
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      const p = c[probe];
      if (!isRecord(p)) continue;
      const handlers = PROBE_HANDLERS.filter((h) => p[h] !== undefined);
      if (handlers.length !== 1) {
        out.push({ object, path: ptr(cp, probe), message: `${probe} must have exactly one handler of ${PROBE_HANDLERS.join('/')} (has ${handlers.length === 0 ? 'none' : handlers.join(', ')})`, source: 'apiserver-rules' });
      }
    }
    if (isRecord(c.resources) && isRecord(c.resources.requests) && isRecord(c.resources.limits)) {
      const lim = c.resources.limits;
      for (const [r, v] of Object.entries(c.resources.requests)) {
        const req = quantityValue(v);
        const l = quantityValue(lim[r]);
        if (req !== undefined && l !== undefined && req > l) {
          out.push({ object, path: ptr(ptr(ptr(cp, 'resources'), 'requests'), r), message: `request ${show(v)} exceeds limit ${show(lim[r])} for ${r}`, source: 'apiserver-rules' });
        }
      }
    }
    if (isRecord(c.resources)) {
      for (const part of ['requests', 'limits']) {
        const q = c.resources[part];
        if (!isRecord(q)) continue;
        for (const [r, v] of Object.entries(q)) {
          if (!isQuantity(v)) {
            out.push({ object, path: ptr(ptr(ptr(cp, 'resources'), part), r), message: `resource quantity ${show(v)} is not a Kubernetes quantity (e.g. "500m", "2Gi", 1)`, source: 'apiserver-rules' });
          }
        }
      }
    }
  });
}

/** Walk the whole object: every nested metadata, matchLabels, pod spec (containers) found anywhere. */
function walk(v: unknown, path: string, object: string, out: SchemaError[], requireImage: boolean): void {
  if (Array.isArray(v)) {
    v.forEach((x, i) => walk(x, ptr(path, i), object, out, requireImage));
    return;
  }
  if (!isRecord(v)) return;
  if (path !== '' && isRecord(v.metadata)) checkMetadata(v.metadata, ptr(path, 'metadata'), object, out);
  if (isRecord(v.matchLabels)) checkLabels(v.matchLabels, ptr(path, 'matchLabels'), object, out, 'selector');
  if (Array.isArray(v.containers) || Array.isArray(v.initContainers)) {
    const names = new Set<string>();
    checkContainers(v.initContainers, ptr(path, 'initContainers'), object, out, names, requireImage);
    checkContainers(v.containers, ptr(path, 'containers'), object, out, names, requireImage);
  }
  for (const [k, x] of Object.entries(v)) {
    if (k === 'metadata' && path === '') continue;
    walk(x, ptr(path, k), object, out, requireImage);
  }
}

/** API-server rules for one object. */
export function apiserverRules(obj: Record<string, unknown>, kind: string, object: string): SchemaError[] {
  const out: SchemaError[] = [];
  const md = isRecord(obj.metadata) ? obj.metadata : undefined;
  if (md === undefined || typeof md.name !== 'string' || md.name === '') {
    out.push({ object, path: '/metadata/name', message: 'metadata.name is required', source: 'apiserver-rules' });
  } else if (DNS1035_NAMED.has(kind) ? !(md.name.length <= 63 && DNS1035_LABEL.test(md.name)) : DNS1123_LABEL_NAMED.has(kind) ? !isDns1123Label(md.name) : !isDns1123Subdomain(md.name)) {
    const rule = DNS1035_NAMED.has(kind) ? 'a DNS-1035 label (≤ 63, lowercase, starts with a letter)' : DNS1123_LABEL_NAMED.has(kind) ? 'a DNS-1123 label' : 'a DNS-1123 subdomain (lowercase alphanumerics, - and .)';
    out.push({ object, path: '/metadata/name', message: `${kind} name ${show(md.name)} must be ${rule}`, source: 'apiserver-rules' });
  }
  if (md !== undefined && md.namespace !== undefined && (typeof md.namespace !== 'string' || !isDns1123Label(md.namespace))) {
    out.push({ object, path: '/metadata/namespace', message: `namespace ${show(md.namespace)} is not a DNS-1123 label`, source: 'apiserver-rules' });
  }
  checkMetadata(md, '/metadata', object, out);
  if (kind === 'Service' && isRecord(obj.spec)) {
    checkLabels(obj.spec.selector, '/spec/selector', object, out, 'selector');
    const ports = Array.isArray(obj.spec.ports) ? obj.spec.ports : [];
    const seen = new Set<string>();
    ports.forEach((p, i) => {
      if (!isRecord(p)) return;
      const pp = `/spec/ports/${i}/name`;
      if (p.name === undefined) {
        if (ports.length > 1) out.push({ object, path: pp, message: 'a Service with several ports must name every port', source: 'apiserver-rules' });
        return;
      }
      if (typeof p.name !== 'string' || !isDns1123Label(p.name)) out.push({ object, path: pp, message: `Service port name ${show(p.name)} is not a DNS-1123 label`, source: 'apiserver-rules' });
      else if (seen.has(p.name)) out.push({ object, path: pp, message: `duplicate Service port name ${show(p.name)}`, source: 'apiserver-rules' });
      if (typeof p.name === 'string') seen.add(p.name);
      if (typeof p.targetPort === 'string' && !isIanaSvcName(p.targetPort)) {
        out.push({ object, path: `/spec/ports/${i}/targetPort`, message: `targetPort name ${show(p.targetPort)} is not an IANA_SVC_NAME`, source: 'apiserver-rules' });
      }
    });
  }
  if (kind === 'ConfigMap' || kind === 'Secret') {
    for (const part of ['data', 'binaryData', 'stringData']) {
      const d = obj[part];
      if (!isRecord(d)) continue;
      for (const [k, v] of Object.entries(d)) {
        if (!/^[-._a-zA-Z0-9]+$/.test(k) || k.length > 253) out.push({ object, path: `/${part}/${k}`, message: `${kind} key ${show(k)} must consist of [-._a-zA-Z0-9]`, source: 'apiserver-rules' });
        if (typeof v !== 'string') out.push({ object, path: `/${part}/${k}`, message: `${kind} value must be a string (got ${show(v)})`, source: 'apiserver-rules' });
      }
    }
  }
  // Pod templates of built-in workloads need images; custom resources (ModelService) may leave them to an operator.
  const apiVersion = typeof obj.apiVersion === 'string' ? obj.apiVersion : '';
  const builtIn = !apiVersion.includes('/') || !apiVersion.slice(0, apiVersion.indexOf('/')).includes('.') || apiVersion.includes('.k8s.io/');
  walk(obj, '', object, out, builtIn && !apiVersion.startsWith('gateway.') && !apiVersion.startsWith('inference.'));
  return out;
}
