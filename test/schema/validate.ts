/**
 * Schema validation of synthesized Kubernetes objects.
 *
 * For each object, every applicable validator runs:
 * 1. `kubernetes-models` family classes (core, Istio, Gateway API, Argo CD, prometheus-operator),
 * 2. the CRD schema generated into imports/schemas (scripts/crd-schemas.ts) when there is one — for
 *    kinds the packages lack (InferencePool, ModelService, DestinationRule v1) and, as a second
 *    opinion with unknown-field rejection, for the CRD kinds the packages also cover,
 * 3. unknown-field rejection for core kinds (strict-fields.ts),
 * 4. API-server rules the schemas cannot express (apiserver-rules.ts).
 * A kind that neither (1) nor (2) covers FAILS: there is no silent pass.
 */
import { CrdSchemaSet } from './crd.js';
import { describeObject, formatError, isRecord, type SchemaError } from './errors.js';
import { hasModel, validateWithModel } from './models.js';
import { unknownCoreFields, unknownMetadataFields } from './strict-fields.js';
import { apiserverRules } from './apiserver-rules.js';

export type { SchemaError } from './errors.js';
export { formatError } from './errors.js';

let defaultCrds: CrdSchemaSet | undefined;
function crds(): CrdSchemaSet {
  defaultCrds ??= new CrdSchemaSet();
  return defaultCrds;
}

/** API groups whose kinds are built into Kubernetes (kubernetes-models covers them; no CRD schema). */
function isCoreGroup(apiVersion: string): boolean {
  if (!apiVersion.includes('/')) return true;
  const group = apiVersion.slice(0, apiVersion.indexOf('/'));
  return !group.includes(".") || (group.endsWith(".k8s.io") && !group.startsWith("gateway.") && !group.startsWith("inference."));
}

/** True when some validator covers this apiVersion + kind. */
export function isKnownKind(apiVersion: string, kind: string, schemas: CrdSchemaSet = crds()): boolean {
  return hasModel(apiVersion, kind) || schemas.has(apiVersion, kind);
}

/** Validate one object. Returns [] when it is valid; otherwise every problem found, each naming its path. */
export function validateObject(obj: unknown, schemas: CrdSchemaSet = crds()): SchemaError[] {
  const object = describeObject(obj);
  if (!isRecord(obj)) return [{ object, path: '', message: 'a Kubernetes object must be a JSON object', source: 'registry' }];
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    return [{ object, path: typeof apiVersion !== 'string' ? '/apiVersion' : '/kind', message: `apiVersion and kind must be strings (got ${JSON.stringify(apiVersion)}, ${JSON.stringify(kind)})`, source: 'registry' }];
  }
  const modelled = hasModel(apiVersion, kind);
  const crd = schemas.has(apiVersion, kind);
  if (!modelled && !crd) {
    return [{
      object,
      path: '',
      message: `no schema for apiVersion ${apiVersion} kind ${kind}: add its CRD to the directory scripts/crd-schemas.ts reads and regenerate imports/schemas, or register a kubernetes-models class in test/schema/models.ts`,
      source: 'registry',
    }];
  }
  const errors: SchemaError[] = [];
  if (modelled) errors.push(...validateWithModel(obj, apiVersion, kind, object));
  if (crd) errors.push(...schemas.validate(obj, apiVersion, kind, object));
  const core = isCoreGroup(apiVersion) ? unknownCoreFields(obj, apiVersion, kind, object) : undefined;
  errors.push(...(core ?? unknownMetadataFields(obj, object)));
  errors.push(...apiserverRules(obj, kind, object));
  return errors;
}

/** Validate a list; returns all errors of all objects (plus duplicate kind/namespace/name). */
export function validateAll(objs: readonly unknown[], schemas: CrdSchemaSet = crds()): SchemaError[] {
  const errors: SchemaError[] = [];
  const seen = new Set<string>();
  for (const obj of objs) {
    errors.push(...validateObject(obj, schemas));
    if (isRecord(obj)) {
      const id = `${String(obj.apiVersion)}|${describeObject(obj)}`;
      if (seen.has(id)) errors.push({ object: describeObject(obj), path: '', message: 'duplicate object (same apiVersion, kind, namespace and name)', source: 'registry' });
      seen.add(id);
    }
  }
  return errors;
}

/** Throw one error listing every problem (one line each) if any object is invalid. */
export function assertAllValid(objs: readonly unknown[], schemas: CrdSchemaSet = crds()): void {
  const errors = validateAll(objs, schemas);
  if (errors.length > 0) {
    throw new Error(`${errors.length} schema error(s) in ${objs.length} object(s):\n  ${errors.map(formatError).join('\n  ')}`);
  }
}
