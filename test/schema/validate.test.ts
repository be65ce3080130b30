import { miniDeployment, type Obj } from '../invariants/fixtures.js';
import { quantityValue } from './apiserver-rules.js';
import { CrdSchemaSet } from './crd.js';
import { assertAllValid, formatError, isKnownKind, validateAll, validateObject, type SchemaError } from './validate.js';

/** A fresh known-good object of `kind` (first one in the fixture). */
function good(kind: string): Obj {
  const o = miniDeployment().find((x) => x.kind === kind);
  if (o === undefined) throw new Error(`fixture has no ${kind}`);
  return o;
}

/** Mutable view of a nested field path, for breaking fixtures. */
function at(obj: unknown, ...path: (string | number)[]): Record<string, unknown> {
  let cur = obj as Record<string | number, unknown>;
  for (const k of path) cur = cur[k] as Record<string | number, unknown>;
  return cur as Record<string, unknown>;
}

/** Distinct error paths, sorted (several validators may report the same field). */
function paths(errors: readonly SchemaError[]): string[] {
  return [...new Set(errors.map((e) => e.path))].sort();
}

const KINDS = [
  'Deployment', 'StatefulSet', 'Service', 'ConfigMap', 'ServiceAccount', 'Role', 'RoleBinding', 'PodDisruptionBudget',
  'NetworkPolicy', 'InferencePool', 'Gateway', 'HTTPRoute', 'EnvoyFilter', 'DestinationRule', 'PodMonitor',
  'ServiceMonitor', 'Application', 'ModelService',
];

describe('validateObject: known-good objects', () => {
  it('the fixture holds one object of every kind the chart emits', () => {
    expect(new Set(miniDeployment().map((o) => o.kind))).toEqual(new Set(KINDS));
  });

  it.each(KINDS)('a valid %s passes every validator', (kind) => {
    const errors = validateObject(good(kind));
    expect(errors.map(formatError)).toEqual([]);
  });

  it('assertAllValid accepts the whole fixture', () => {
    expect(() => assertAllValid(miniDeployment())).not.toThrow();
  });
});

describe('validateObject: unknown kinds fail', () => {
  it('an apiVersion/kind with no schema is an error, not a pass', () => {
    const errors = validateObject({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } });
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toMatch(/no schema for apiVersion example.com\/v1 kind Widget/);
  });

  it('a known kind at an unknown version fails', () => {
    const o = good('InferencePool');
    o.apiVersion = 'inference.networking.k8s.io/v9';
    expect(validateObject(o)[0].source).toBe('registry');
  });

  it('non-objects and missing apiVersion/kind fail', () => {
    expect(validateObject('hello')[0].message).toMatch(/must be a JSON object/);
    expect(validateObject({ kind: 'Service', metadata: { name: 'x' } })[0].path).toBe('/apiVersion');
  });

  it('isKnownKind covers the packages and the generated CRD schemas', () => {
    expect(isKnownKind('apps/v1', 'Deployment')).toBe(true);
    expect(isKnownKind('inference.networking.k8s.io/v1', 'InferencePool')).toBe(true);
    expect(isKnownKind('llm-d.ai/v1alpha1', 'ModelService')).toBe(true);
    expect(isKnownKind('networking.istio.io/v1', 'DestinationRule')).toBe(true);
    expect(isKnownKind('example.com/v1', 'Widget')).toBe(false);
  });
});

describe('validateObject: broken objects fail with the path named', () => {
  it('core kind, wrong type (kubernetes-models)', () => {
    const o = good('Deployment');
    at(o, 'spec', 'template', 'spec', 'containers', 0, 'ports', 0).containerPort = '8200';
    const errors = validateObject(o);
    expect(paths(errors)).toContain('/spec/template/spec/containers/0/ports/0/containerPort');
    expect(errors.find((e) => e.source === 'kubernetes-models')?.message).toMatch(/must be integer \(got "8200"\)/);
  });

  it('core kind, missing required field', () => {
    const o = good('Deployment');
    delete at(o, 'spec').selector;
    expect(paths(validateObject(o))).toContain('/spec/selector');
  });

  it('core kind, unknown (misspelled) field', () => {
    const o = good('Deployment');
    const c = at(o, 'spec', 'template', 'spec', 'containers', 0);
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    const errors = validateObject(o);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path: '/spec/template/spec/containers/0/readinesProbe', source: 'strict-fields' });
    expect(errors[0].message).toMatch(/unknown field "readinesProbe" in V1Container/);
  });

  it('unknown fields inside maps of objects (Service port) are found too', () => {
    const o = good('Service');
    at(o, 'spec', 'ports', 0).target_port = 9002;
    expect(paths(validateObject(o))).toEqual(['/spec/ports/0/target_port']);
  });

  it('InferencePool (CRD schema): wrong type, missing required, unknown field', () => {
    const o = good('InferencePool');
    at(o, 'spec', 'targetPorts', 0).number = 'http';
    delete at(o, 'spec').selector;
    at(o, 'spec', 'endpointPickerRef').portNumber = 9002;
    const errors = validateObject(o);
    expect(paths(errors)).toEqual(['/spec/endpointPickerRef/portNumber', '/spec/selector', '/spec/targetPorts/0/number']);
    expect(errors.every((e) => e.source === 'crd-schema inference.networking.k8s.io_v1_InferencePool.json')).toBe(true);
  });

  it('InferencePool enum (failureMode) is enforced', () => {
    const o = good('InferencePool');
    at(o, 'spec', 'endpointPickerRef').failureMode = 'FailOpenPlease';
    expect(validateObject(o)[0].message).toMatch(/allowed values.*FailOpen.*got "FailOpenPlease"/);
  });

  it('ModelService: fields the CRD does not have (ports, probes) are rejected', () => {
    const o = good('ModelService');
    at(o, 'spec', 'decode', 'containers', 0).ports = [{ name: 'http', containerPort: 8000 }];
    at(o, 'spec', 'routing').servicePort = 8000;
    expect(paths(validateObject(o))).toEqual(['/spec/decode/containers/0/ports', '/spec/routing/servicePort']);
  });

  it('ModelService: x-kubernetes-int-or-string rejects a float', () => {
    const o = good('ModelService');
    at(o, 'spec', 'modelArtifacts').size = 1.5;
    const errors = validateObject(o);
    expect(errors.some((e) => e.path === '/spec/modelArtifacts/size' && /integer or a string/.test(e.message))).toBe(true);
  });

  it('HTTPRoute: both kubernetes-models and the CRD schema run', () => {
    const o = good('HTTPRoute');
    at(o, 'spec', 'parentRefs', 0).name = 42;
    at(o, 'spec', 'rules', 0, 'backendRefs', 0).weight_ = 1;
    const errors = validateObject(o);
    const sources = new Set(errors.map((e) => e.source));
    expect(sources).toEqual(new Set(['@kubernetes-models/gateway-api', 'crd-schema gateway.networking.k8s.io_v1_HTTPRoute.json']));
    expect(paths(errors)).toContain('/spec/parentRefs/0/name');
    expect(paths(errors)).toContain('/spec/rules/0/backendRefs/0/weight_');
  });

  it('EnvoyFilter: bad enum fails in the Istio package', () => {
    const o = good('EnvoyFilter');
    at(o, 'spec', 'configPatches', 0).applyTo = 'HTTP_FILTERS';
    const errors = validateObject(o);
    expect(errors.find((e) => e.source === '@kubernetes-models/istio')?.path).toBe('/spec/configPatches/0/applyTo');
  });

  it('EnvoyFilter: free-form patch value is not over-checked', () => {
    const o = good('EnvoyFilter');
    at(o, 'spec', 'configPatches', 0, 'patch', 'value').anything_goes = { deeply: ['nested'] };
    expect(validateObject(o)).toEqual([]);
  });

  it('DestinationRule v1 (CRD only) rejects a bad tls mode', () => {
    const o = good('DestinationRule');
    at(o, 'spec', 'trafficPolicy', 'tls').mode = 'TLS';
    expect(paths(validateObject(o))).toEqual(['/spec/trafficPolicy/tls/mode']);
  });

  it('PodMonitor / ServiceMonitor: unknown fields and wrong types fail', () => {
    const pm = good('PodMonitor');
    at(pm, 'spec', 'podMetricsEndpoints', 0).portName = 'vllm';
    expect(paths(validateObject(pm))).toEqual(['/spec/podMetricsEndpoints/0/portName']);
    const sm = good('ServiceMonitor');
    at(sm, 'spec', 'endpoints', 0).interval = 15;
    expect(paths(validateObject(sm))).toContain('/spec/endpoints/0/interval');
  });

  it('Argo CD Application: missing destination fails', () => {
    const o = good('Application');
    delete at(o, 'spec').destination;
    expect(paths(validateObject(o))).toContain('/spec/destination');
  });

  it('list-type map: duplicate keys are rejected (Gateway listeners)', () => {
    const o = good('Gateway');
    const l = at(o, 'spec').listeners as unknown[];
    l.push(structuredClone(l[0]));
    expect(validateObject(o).some((e) => e.path === '/spec/listeners' && /duplicate key/.test(e.message))).toBe(true);
  });
});

describe('validateObject: API-server rules', () => {
  it('label values with "/" (a raw model name) are rejected', () => {
    const o = good('Deployment');
    at(o, 'spec', 'template', 'metadata', 'labels')['llm-d.ai/model'] = 'meta-llama/Llama-3.2-1B';
    const errors = validateObject(o);
    expect(errors.map((e) => e.path)).toEqual(['/spec/template/metadata/labels/llm-d.ai~1model']);
    expect(errors[0].message).toMatch(/label value "meta-llama\/Llama-3.2-1B" is invalid/);
  });

  it('a non-string label value and a too-long port name are rejected', () => {
    const o = good('StatefulSet');
    at(o, 'metadata').labels = { tier: true };
    at(o, 'spec', 'template', 'spec', 'containers', 0, 'ports', 0).name = 'redis-primary-port';
    expect(paths(validateObject(o))).toEqual(['/metadata/labels/tier', '/spec/template/spec/containers/0/ports/0/name']);
  });

  it('Service names must be DNS-1035 labels; multi-port Services must name ports', () => {
    const o = good('Service');
    at(o, 'metadata').name = '1-epp';
    delete at(o, 'spec', 'ports', 1).name;
    expect(paths(validateObject(o))).toEqual(['/metadata/name', '/spec/ports/1/name']);
  });

  it('unknown metadata fields are rejected for custom resources too', () => {
    const o = good('InferencePool');
    at(o, 'metadata').label = { a: 'b' };
    const errors = validateObject(o);
    expect(errors.map((e) => [e.path, e.source])).toEqual([['/metadata/label', 'strict-fields']]);
    expect(errors[0].message).toMatch(/unknown field "label" in V1ObjectMeta/);
  });

  it('metadata.name is required for every kind, CRDs included', () => {
    const o = good('InferencePool');
    at(o, 'metadata').name = '';
    expect(validateObject(o).some((e) => e.path === '/metadata/name' && e.source === 'apiserver-rules')).toBe(true);
  });

  it('duplicate containers and bad quantities are rejected', () => {
    const o = good('Deployment');
    const spec = at(o, 'spec', 'template', 'spec');
    at(spec, 'initContainers', 0).name = 'vllm';
    at(spec, 'containers', 0, 'resources', 'limits').memory = '16 GB';
    expect(paths(validateObject(o))).toEqual(['/spec/template/spec/containers/0/name', '/spec/template/spec/containers/0/resources/limits/memory']);
  });

  it('pod template containers need an image; probes need exactly one handler; requests may not exceed limits', () => {
    const o = good('Deployment');
    const c = at(o, 'spec', 'template', 'spec', 'containers', 0);
    delete c.image;
    at(c, 'readinessProbe').tcpSocket = { port: 8200 };
    at(c, 'resources', 'requests').memory = '17Gi';
    const errors = validateObject(o);
    expect(paths(errors)).toEqual([
      '/spec/template/spec/containers/0/image',
      '/spec/template/spec/containers/0/readinessProbe',
      '/spec/template/spec/containers/0/resources/requests/memory',
    ]);
    expect(errors.map((e) => e.message)).toEqual(expect.arrayContaining([
      'readinessProbe must have exactly one handler of exec/httpGet/tcpSocket/grpc (has httpGet, tcpSocket)',
      'request "17Gi" exceeds limit "16Gi" for memory',
    ]));
  });

  it('quantities compare by value (1Gi < 1100M, 500m < 1)', () => {
    expect(quantityValue('500m')).toBe(0.5);
    expect(quantityValue('2Gi')).toBe(2 * 2 ** 30);
    expect(quantityValue('1e3')).toBe(1000);
    expect(quantityValue('1.5k')).toBe(1500);
    expect(quantityValue('16 GB')).toBeUndefined();
    const o = good('Deployment');
    const r = at(o, 'spec', 'template', 'spec', 'containers', 0, 'resources');
    at(r, 'requests').memory = '1Gi';
    at(r, 'limits').memory = '1100M';
    expect(validateObject(o)).toEqual([]);
  });

  it('ModelService containers may omit the image (an operator or BaseConfig supplies it)', () => {
    const o = good('ModelService');
    delete at(o, 'spec', 'decode', 'containers', 0).image;
    expect(validateObject(o)).toEqual([]);
  });

  it('ConfigMap values must be strings', () => {
    const o = good('ConfigMap');
    at(o, 'data').blockSize = 16;
    expect(paths(validateObject(o))).toContain('/data/blockSize');
  });
});

describe('validateAll / assertAllValid', () => {
  it('reports duplicates (same apiVersion, kind, namespace, name)', () => {
    const objs = miniDeployment();
    objs.push(structuredClone(objs[0]));
    expect(validateAll(objs).map((e) => e.message)).toEqual(['duplicate object (same apiVersion, kind, namespace and name)']);
  });

  it('assertAllValid lists every error with object and path', () => {
    const objs = miniDeployment();
    at(objs.find((o) => o.kind === 'InferencePool'), 'spec').targetPorts = [];
    objs.push({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } });
    expect(() => assertAllValid(objs)).toThrow(/2 schema error\(s\) in 23 object\(s\):\n {2}InferencePool llm-d\/kv-pool: \/spec\/targetPorts: .*\n {2}Widget w: \(root\): no schema/);
  });

  it('takes another schema directory (no schemas: every CRD kind is unknown)', () => {
    const empty = new CrdSchemaSet(process.cwd() + '/test');
    expect(validateObject(good('InferencePool'), empty)[0].source).toBe('registry');
    expect(validateObject(good('Deployment'), empty)).toEqual([]);
  });
});
