/**
 * Registry of `kubernetes-models` classes by `apiVersion` + `kind`. Each class validates its data
 * against the upstream OpenAPI schema (`new Deployment(obj).validate()` throws an ajv
 * ValidationError whose `errors` carry instance paths).
 */
import type { ErrorObject } from 'ajv';
import * as coreV1 from 'kubernetes-models/v1';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as batchV1 from 'kubernetes-models/batch/v1';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as rbacV1 from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as schedulingV1 from 'kubernetes-models/scheduling.k8s.io/v1';
import * as istioV1alpha3 from '@kubernetes-models/istio/networking.istio.io/v1alpha3';
import * as istioV1beta1 from '@kubernetes-models/istio/networking.istio.io/v1beta1';
import * as gatewayV1 from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1';
import * as gatewayV1beta1 from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1beta1';
import * as argoV1alpha1 from '@kubernetes-models/argo-cd/argoproj.io/v1alpha1';
import * as promV1 from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { ajvErrors } from './crd.js';
import { isRecord, type SchemaError } from './errors.js';

/** What we need of a kubernetes-models class. */
interface ModelClass {
  readonly apiVersion: string;
  readonly kind: string;
  new (data: never): { validate(): void };
}

/** Package each module comes from, for error messages. */
const modules: ReadonlyArray<readonly [string, Record<string, unknown>]> = [
  ['kubernetes-models', coreV1],
  ['kubernetes-models', appsV1],
  ['kubernetes-models', batchV1],
  ['kubernetes-models', policyV1],
  ['kubernetes-models', rbacV1],
  ['kubernetes-models', networkingV1],
  ['kubernetes-models', autoscalingV2],
  ['kubernetes-models', schedulingV1],
  ['@kubernetes-models/istio', istioV1alpha3],
  ['@kubernetes-models/istio', istioV1beta1],
  ['@kubernetes-models/gateway-api', gatewayV1],
  ['@kubernetes-models/gateway-api', gatewayV1beta1],
  ['@kubernetes-models/argo-cd', argoV1alpha1],
  ['@kubernetes-models/prometheus-operator', promV1],
];

function isModelClass(v: unknown): v is ModelClass {
  if (typeof v !== 'function') return false;
  const c = v as unknown as Record<string, unknown>;
  return typeof c.apiVersion === 'string' && typeof c.kind === 'string' && typeof (v.prototype as { validate?: unknown }).validate === 'function';
}

const registry = new Map<string, { cls: ModelClass; pkg: string }>();
for (const [pkg, mod] of modules) {
  for (const v of Object.values(mod)) {
    if (isModelClass(v)) registry.set(`${v.apiVersion}/${v.kind}`, { cls: v, pkg });
  }
}

/** True when a kubernetes-models class covers this apiVersion and kind. */
export function hasModel(apiVersion: string, kind: string): boolean {
  return registry.has(`${apiVersion}/${kind}`);
}

/** `apiVersion/kind` keys covered (for tests). */
export function modelKeys(): string[] {
  return [...registry.keys()].sort();
}

/** Validate with the kubernetes-models class; [] when valid. */
export function validateWithModel(obj: Record<string, unknown>, apiVersion: string, kind: string, object: string): SchemaError[] {
  const entry = registry.get(`${apiVersion}/${kind}`);
  if (entry === undefined) throw new Error(`no kubernetes-models class for ${apiVersion} ${kind}`);
  // Copy the data: the model constructor drops undefined values and must not alias our object.
  const model = new entry.cls(structuredClone(obj) as never);
  try {
    model.validate();
    return [];
  } catch (e) {
    const errs = isRecord(e) && Array.isArray(e.errors) ? (e.errors as ErrorObject[]) : undefined;
    if (errs === undefined) {
      return [{ object, path: '', message: `validator threw: ${(e as Error).message}`, source: entry.pkg }];
    }
    return ajvErrors(errs, obj, object, entry.pkg);
  }
}
