/**
 * The synthesized PrometheusRule against the prometheus-operator schema (the kubernetes-models
 * class the schema tests use for monitoring.coreos.com/v1), and broken variants that it must reject.
 */
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { findObject, synthObjects } from '../support/synth.js';
import { formatError, isKnownKind, validateObject } from '../schema/validate.js';

const rule = findObject(synthObjects(parseDeploymentConfig({})), 'PrometheusRule', 'kvroute-alerts');
type Spec = { groups: { name: unknown; rules: Record<string, unknown>[] }[] };
const broken = (edit: (spec: Spec) => void): unknown => {
  const copy = structuredClone(rule) as unknown as { spec: Spec };
  edit(copy.spec);
  return copy;
};
const paths = (obj: unknown): string[] => [...new Set(validateObject(obj).map((e) => e.path))].sort();

describe('PrometheusRule schema', () => {
  it('a schema covers monitoring.coreos.com/v1 PrometheusRule', () => {
    expect(isKnownKind('monitoring.coreos.com/v1', 'PrometheusRule')).toBe(true);
  });

  it('the synthesized rule validates', () => {
    expect(validateObject(rule).map(formatError)).toEqual([]);
  });

  it.each([
    ['a `for` that is not a Prometheus duration', (s: Spec) => (s.groups[0].rules[0].for = '15 minutes'), '/spec/groups/0/rules/0/for'],
    ['a rule without expr', (s: Spec) => delete s.groups[0].rules[1].expr, '/spec/groups/0/rules/1/expr'],
    ['a non-string label value', (s: Spec) => (s.groups[0].rules[2].labels = { severity: 3 }), '/spec/groups/0/rules/2/labels/severity'],
    ['a group without name', (s: Spec) => delete (s.groups[0] as { name?: unknown }).name, '/spec/groups/0/name'],
  ])('rejects %s', (_what, edit, path) => {
    expect(paths(broken(edit))).toContain(path);
  });
});
