/**
 * Unknown-field detection for core Kubernetes kinds (what `kubectl apply --validate=strict` rejects).
 * The kubernetes-models schemas allow extra properties, so a typo such as `readinesProbe` would pass
 * them and be dropped silently by the API server. The field lists come from the attribute type maps
 * of `@kubernetes/client-node`'s generated models (V1Deployment, V1Container, ...).
 */
import * as clientModels from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';
import { isRecord, ptr, type SchemaError } from './errors.js';

interface Attribute {
  baseName: string;
  type: string;
}
type Models = Record<string, unknown>;
const models = clientModels as unknown as Models;

function attributes(typeName: string): Attribute[] | undefined {
  const cls = models[typeName];
  if (typeof cls !== 'function') return undefined;
  const map = (cls as unknown as { attributeTypeMap?: unknown }).attributeTypeMap;
  return Array.isArray(map) ? (map as Attribute[]) : undefined;
}

/** client-node model name of a top-level kind: `apps/v1` Deployment → V1Deployment, `autoscaling/v2` → V2... */
export function modelTypeName(apiVersion: string, kind: string): string | undefined {
  const version = apiVersion.includes('/') ? apiVersion.slice(apiVersion.indexOf('/') + 1) : apiVersion;
  const name = `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
  return attributes(name) === undefined ? undefined : name;
}

function walk(value: unknown, type: string, path: string, object: string, out: SchemaError[]): void {
  if (value === null || value === undefined) return;
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, arr[1], ptr(path, i), object, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (isRecord(value)) for (const [k, v] of Object.entries(value)) walk(v, map[1], ptr(path, k), object, out);
    return;
  }
  const attrs = attributes(type);
  if (attrs === undefined || !isRecord(value)) return; // primitives, IntOrString, any: the schema checks their types
  const known = new Map(attrs.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const t = known.get(k);
    if (t === undefined) {
      out.push({
        object,
        path: ptr(path, k),
        message: `unknown field "${k}" in ${type} (known: ${[...known.keys()].join(', ')})`,
        source: 'strict-fields',
      });
    } else {
      walk(v, t, ptr(path, k), object, out);
    }
  }
}

/** Unknown fields of a core object; undefined when @kubernetes/client-node has no model for the kind. */
export function unknownCoreFields(obj: Record<string, unknown>, apiVersion: string, kind: string, object: string): SchemaError[] | undefined {
  const type = modelTypeName(apiVersion, kind);
  if (type === undefined) return undefined;
  const out: SchemaError[] = [];
  walk(obj, type, '', object, out);
  return out;
}

/** Unknown fields of `metadata` (ObjectMeta) for any kind, custom resources included (their schemas leave metadata open). */
export function unknownMetadataFields(obj: Record<string, unknown>, object: string): SchemaError[] {
  const out: SchemaError[] = [];
  walk(obj.metadata, 'V1ObjectMeta', '/metadata', object, out);
  return out;
}
