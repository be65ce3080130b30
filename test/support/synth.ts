/**
 * Test helpers shared by every cdk8s test (also used by test/schema and test/invariants):
 * synthesize a KvrouteChart for a config, find objects by kind and name, and load the example configs.
 */
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Testing } from 'cdk8s';
import { type DeploymentConfig, loadDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { KvrouteChart } from '../../constructs/kvroute-chart.js';

/** A synthesized Kubernetes object (fields beyond the header are untyped JSON). */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** Synthesize one KvrouteChart for `config` (in a temporary Testing app) and return its objects. */
export function synthObjects(config: DeploymentConfig): K8sObject[] {
  const app = Testing.app();
  const chart = new KvrouteChart(app, 'kvroute', { config });
  return Testing.synth(chart) as K8sObject[];
}

/** The object of `kind` named `name`; throws (listing what exists) when absent. */
export function findObject(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const hit = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!hit) {
    const have = objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ');
    throw new Error(`no ${kind} named "${name}" in the synthesized objects; have: ${have}`);
  }
  return hit;
}

/** Every object of `kind`. */
export function objectsOfKind(objects: readonly K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

/** Absolute path of the repository's examples/ folder. */
export const examplesDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../examples');

/** Every examples/*.yaml, parsed and validated with the deployment config schema. */
export function exampleConfigs(): { name: string; config: DeploymentConfig }[] {
  return readdirSync(examplesDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => ({ name: f.replace(/\.yaml$/, ''), config: loadDeploymentConfig(join(examplesDir, f)) }));
}
