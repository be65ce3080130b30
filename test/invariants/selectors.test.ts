import { at, broken, clean } from './helpers.js';
import { labelSelectorSelects, mapSelects, modelServicePods, operatorModelLabel } from './model.js';
import { get, miniDeployment, NS } from './fixtures.js';
import { namedPortsExist, selectorsMatchPods, workloadSelectorsMatchTemplates } from './selectors.js';
import type { Manifest } from './model.js';

describe('label selector semantics', () => {
  const labels = { a: '1', b: '2' };
  it('matchLabels and every matchExpressions operator', () => {
    expect(labelSelectorSelects({ matchLabels: { a: '1' } }, labels)).toBe(true);
    expect(labelSelectorSelects({ matchLabels: { a: '2' } }, labels)).toBe(false);
    expect(labelSelectorSelects({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '3'] }] }, labels)).toBe(true);
    expect(labelSelectorSelects({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, labels)).toBe(false);
    expect(labelSelectorSelects({ matchExpressions: [{ key: 'c', operator: 'Exists' }] }, labels)).toBe(false);
    expect(labelSelectorSelects({ matchExpressions: [{ key: 'c', operator: 'DoesNotExist' }] }, labels)).toBe(true);
    expect(labelSelectorSelects({ matchExpressions: [{ key: 'a', operator: 'Bogus' }] }, labels)).toBe(false);
    expect(labelSelectorSelects({}, labels)).toBe(true);
  });
  it('a Service map selector needs every pair; an empty map selects nothing', () => {
    expect(mapSelects({ a: '1', b: '2' }, labels)).toBe(true);
    expect(mapSelects({ a: '1', b: '3' }, labels)).toBe(false);
    expect(mapSelects({}, labels)).toBe(false);
  });
});

describe('workloadSelectorsMatchTemplates', () => {
  it('holds for the fixture', () => expect(clean(workloadSelectorsMatchTemplates)).toEqual([]));
  it('fails when a Deployment selector does not select its template', () => {
    const m = broken(workloadSelectorsMatchTemplates, (_, find) => {
      at(find('Deployment', 'kv-epp'), 'spec', 'selector', 'matchLabels')['app.kubernetes.io/name'] = 'epp';
    });
    expect(m).toEqual([expect.stringMatching(/^Deployment llm-d\/kv-epp: spec.selector .*"epp".* does not select its own template labels/)]);
  });
});

describe('selectorsMatchPods', () => {
  it('holds for the fixture', () => expect(clean(selectorsMatchPods)).toEqual([]));

  it('fails for a Service whose selector has a typo', () => {
    const m = broken(selectorsMatchPods, (_, find) => {
      at(find('Service', 'kv-redis'), 'spec', 'selector')['app.kubernetes.io/name'] = 'redis-master';
    });
    expect(m).toEqual([expect.stringMatching(/^Service llm-d\/kv-redis: spec.selector .*redis-master.* selects no pod template in namespace llm-d; templates there: Deployment llm-d\/kv-decode/)]);
  });

  it('fails for a Service without selector', () => {
    const m = broken(selectorsMatchPods, (_, find) => {
      delete at(find('Service', 'kv-redis'), 'spec').selector;
    });
    expect(m).toEqual(['Service llm-d/kv-redis: Service has no selector: it would get no endpoints from any pod emitted here']);
  });

  it('fails when the pods live in another namespace', () => {
    const m = broken(selectorsMatchPods, (_, find) => {
      at(find('Service', 'kv-epp'), 'metadata').namespace = 'gateway';
    });
    expect(m).toEqual([
      expect.stringMatching(/^Service gateway\/kv-epp: .* selects no pod template in namespace gateway; templates there: none/),
      expect.stringMatching(/^ServiceMonitor llm-d\/kv-epp: .* selects no Service/),
    ]);
  });

  it('fails for NetworkPolicy, PDB and PodMonitor selectors that select nothing', () => {
    const m = broken(selectorsMatchPods, (_, find) => {
      at(find('NetworkPolicy', 'kv-redis'), 'spec', 'podSelector').matchLabels = { app: 'redis' };
      at(find('PodDisruptionBudget', 'kv-epp'), 'spec', 'selector').matchExpressions = [{ key: 'tier', operator: 'Exists' }];
      at(find('PodMonitor', 'kv-vllm'), 'spec', 'selector', 'matchLabels')['llm-d.ai/model'] = 'meta-llama/Llama-3.2-1B';
    });
    expect(m.map((x) => x.split(':')[0])).toEqual(['PodDisruptionBudget llm-d/kv-epp', 'NetworkPolicy llm-d/kv-redis', 'PodMonitor llm-d/kv-vllm']);
  });

  it('fails for an empty PDB selector', () => {
    const m = broken(selectorsMatchPods, (_, find) => {
      at(find('PodDisruptionBudget', 'kv-epp'), 'spec').selector = {};
    });
    expect(m).toEqual([expect.stringMatching(/empty selector/)]);
  });

  it('fails for a ServiceMonitor that selects no Service by labels', () => {
    const m = broken(selectorsMatchPods, (_, find) => {
      at(find('Service', 'kv-epp'), 'metadata').labels = {};
    });
    expect(m).toEqual([expect.stringMatching(/^ServiceMonitor llm-d\/kv-epp: spec.selector .* selects no Service by metadata.labels/)]);
  });
});

describe('namedPortsExist', () => {
  it('holds for the fixture', () => expect(clean(namedPortsExist)).toEqual([]));

  it('fails for a Service targetPort name that no selected container has', () => {
    const m = broken(namedPortsExist, (_, find) => {
      at(find('Service', 'kv-epp'), 'spec', 'ports', 0).targetPort = 'grpc';
    });
    expect(m).toEqual([expect.stringMatching(/^Service llm-d\/kv-epp: port "grpc" targetPort "grpc" is not a container port of Deployment llm-d\/kv-epp/)]);
  });

  it('fails for a numeric targetPort not declared by the pods', () => {
    const m = broken(namedPortsExist, (_, find) => {
      at(find('Service', 'kv-redis'), 'spec', 'ports', 0).targetPort = 6380;
    });
    expect(m).toEqual([expect.stringMatching(/targetPort 6380 is not a container port of StatefulSet llm-d\/kv-redis/)]);
  });

  it('fails for a probe on a port name the container does not have', () => {
    const m = broken(namedPortsExist, (_, find) => {
      at(find('Deployment', 'kv-epp'), 'spec', 'template', 'spec', 'containers', 0, 'livenessProbe', 'httpGet').port = 'metrics';
    });
    expect(m).toEqual([expect.stringMatching(/container "epp" livenessProbe.httpGet.port "metrics" is not a named port of that container/)]);
  });

  it('fails for a probe on an undeclared port number', () => {
    const m = broken(namedPortsExist, (_, find) => {
      at(find('Deployment', 'kv-epp'), 'spec', 'template', 'spec', 'containers', 0, 'readinessProbe', 'grpc').port = 9999;
    });
    expect(m).toEqual([expect.stringMatching(/readinessProbe.grpc.port 9999 is not declared/)]);
  });

  it('fails when a PodMonitor port is missing on one of the selected pods', () => {
    const m = broken(namedPortsExist, (_, find) => {
      at(find('Deployment', 'kv-prefill'), 'spec', 'template', 'spec', 'containers', 0, 'ports', 0).name = 'http';
      // keep the prefill readiness probe consistent so only the monitor breaks
      at(find('Deployment', 'kv-prefill'), 'spec', 'template', 'spec', 'containers', 0, 'readinessProbe', 'httpGet').port = 'http';
    });
    expect(m).toEqual([expect.stringMatching(/^PodMonitor llm-d\/kv-vllm: podMetricsEndpoints port "vllm" is not a named container port of selected Deployment llm-d\/kv-prefill/)]);
  });

  it('fails for a ServiceMonitor port name the Service lacks, and a bad targetPort', () => {
    const m = broken(namedPortsExist, (_, find) => {
      at(find('ServiceMonitor', 'kv-epp'), 'spec', 'endpoints', 0).port = 'http-metrics';
      at(find('ServiceMonitor', 'kv-epp'), 'spec', 'endpoints', 0).targetPort = 'prom';
    });
    expect(m).toEqual([
      expect.stringMatching(/endpoints port "http-metrics" is not a port name of selected Service llm-d\/kv-epp/),
      expect.stringMatching(/endpoints targetPort "prom" is not a container port of Deployment llm-d\/kv-epp/),
    ]);
  });

  it('fails for a NetworkPolicy named port the selected pods lack', () => {
    const m = broken(namedPortsExist, (_, find) => {
      at(find('NetworkPolicy', 'kv-epp'), 'spec', 'ingress', 0, 'ports', 0).port = 'zmq';
    });
    expect(m).toEqual([expect.stringMatching(/^NetworkPolicy llm-d\/kv-epp: ingress port "zmq" is not a named container port of selected Deployment llm-d\/kv-epp/)]);
  });

  it('a monitor with no port at all is reported', () => {
    const m = broken(namedPortsExist, (_, find) => {
      delete at(find('PodMonitor', 'kv-vllm'), 'spec', 'podMetricsEndpoints', 0).port;
    });
    expect(m).toEqual(['PodMonitor llm-d/kv-vllm: a podMetricsEndpoint names no port']);
  });
});

describe('ModelService pods (as the llm-d operator labels them)', () => {
  it('sanitizes the model name like the operator (lower case, [^a-z0-9-] → -)', () => {
    expect(operatorModelLabel('meta-llama/Llama-3.2-1B')).toBe('meta-llama-llama-3-2-1b');
    expect(operatorModelLabel(' Qwen/Qwen3-32B ')).toBe('qwen-qwen3-32b');
  });

  it('derives one pod template per role with the operator labels and the CR containers', () => {
    const pods = modelServicePods(get(miniDeployment(), 'ModelService', 'kv-ms'));
    expect(pods.map((p) => [p.owner, p.labels, p.portsKnown])).toEqual([
      ['ModelService llm-d/kv-ms (decode pods)', { 'llm-d.ai/inferenceServing': 'true', 'llm-d.ai/model': 'meta-llama-llama-3-2-1b', 'llm-d.ai/role': 'decode' }, false],
    ]);
  });

  it('a Service selecting the operator labels passes; one using the chart labels (inference-serving) fails', () => {
    const svc = (selector: Record<string, string>): Manifest => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ms-decode', namespace: NS }, spec: { selector, ports: [{ port: 8000 }] } });
    const base = miniDeployment().filter((o) => o.kind === 'ModelService');
    expect(selectorsMatchPods([...base, svc({ 'llm-d.ai/inferenceServing': 'true', 'llm-d.ai/role': 'decode' })])).toEqual([]);
    expect(selectorsMatchPods([...base, svc({ 'llm-d.ai/inference-serving': 'true' })]).map((v) => v.object)).toEqual(['Service llm-d/ms-decode']);
    // ports of operator-built pods are unknown: no declared-port verdict
    expect(namedPortsExist([...base, svc({ 'llm-d.ai/inferenceServing': 'true' })])).toEqual([]);
  });

  it('merges a plain-YAML BaseConfig pod template by container name, so ports and probes become checkable', () => {
    const objs: Manifest[] = miniDeployment().filter((o) => o.kind === 'ModelService');
    at(objs[0], 'spec').baseConfigMapRef = { name: 'base' };
    const decodeDeployment = [
      'apiVersion: apps/v1',
      'kind: Deployment',
      'spec:',
      '  template:',
      '    metadata: { labels: { tier: gpu } }',
      '    spec:',
      '      containers:',
      '        - name: vllm',
      '          ports: [{ name: http, containerPort: 8000 }]',
      '          readinessProbe: { httpGet: { path: /health, port: metrics } }',
      '',
    ].join('\n');
    objs.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'base', namespace: NS }, data: { decodeDeployment } });
    const [pod] = modelServicePods(objs[0], objs);
    expect(pod.portsKnown).toBe(true);
    expect(pod.labels.tier).toBe('gpu');
    const c = (pod.spec.containers as Record<string, unknown>[])[0];
    expect([c.image, c.ports, 'mountModelVolume' in c]).toEqual(['vllm/vllm-openai:v0.11.0', [{ name: 'http', containerPort: 8000 }], false]);
    const svc = (targetPort: string): Manifest => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ms', namespace: NS }, spec: { selector: { 'llm-d.ai/role': 'decode' }, ports: [{ port: 80, targetPort }] } });
    expect(namedPortsExist([...objs, svc('http')]).map((v) => v.message)).toEqual([
      expect.stringMatching(/container "vllm" readinessProbe.httpGet.port "metrics" is not a named port of that container/),
    ]);
    expect(namedPortsExist([...objs, svc('grpc')]).map((v) => v.message)).toEqual([
      expect.stringMatching(/targetPort "grpc" is not a container port of ModelService llm-d\/kv-ms \(decode pods\)/),
      expect.stringMatching(/readinessProbe/),
    ]);
  });
});
