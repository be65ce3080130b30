/** Config fields that switch objects on/off or flow into a single field, checked on the synthesized chart. */
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { toLabelValue } from '../../constructs/config/names.js';
import { findObject, type K8sObject, objectsOfKind, synthObjects } from '../support/synth.js';

const podSpec = (d: K8sObject) =>
  (d.spec as { template: { spec: { containers: { name: string; image: string }[]; initContainers?: { image: string }[]; affinity?: unknown; tolerations?: unknown } } }).template.spec;

describe('config toggles', () => {
  it('monitoring.dashboard=false drops only the dashboard', () => {
    const o = synthObjects(parseDeploymentConfig({ monitoring: { dashboard: false } }));
    expect(o.some((x) => x.metadata.name === 'kvroute-dashboard')).toBe(false);
    expect(objectsOfKind(o, 'PodMonitor')).toHaveLength(2);
  });

  it('images flow into the containers', () => {
    const o = synthObjects(
      parseDeploymentConfig({
        images: { vllm: 'registry.local/vllm-openai:v0.11.1', routingSidecar: 'registry.local/sidecar:v1', epp: 'registry.local/epp:2.0.0', redis: 'registry.local/redis:7.4.2' },
        redis: { enabled: true },
      }),
    );
    expect(podSpec(findObject(o, 'Deployment', 'kvroute-decode')).containers[0].image).toBe('registry.local/vllm-openai:v0.11.1');
    expect(podSpec(findObject(o, 'Deployment', 'kvroute-decode')).initContainers?.[0].image).toBe('registry.local/sidecar:v1');
    expect(podSpec(findObject(o, 'Deployment', 'kvroute-epp')).containers[0].image).toBe('registry.local/epp:2.0.0');
    expect(podSpec(findObject(o, 'Deployment', 'kvroute-redis')).containers[0].image).toBe('registry.local/redis:7.4.2');
  });

  it('accelerator settings flow into resources, affinity and tolerations of every model-server pod', () => {
    const o = synthObjects(
      parseDeploymentConfig({
        accelerator: {
          resourceName: 'amd.com/gpu',
          nodeLabelKey: 'amd.com/gpu.product',
          nodeLabelValues: ['MI300X'],
          tolerations: [{ key: 'amd.com/gpu', operator: 'Equal', value: 'present', effect: 'NoExecute' }],
        },
      }),
    );
    for (const name of ['kvroute-decode', 'kvroute-prefill']) {
      const d = findObject(o, 'Deployment', name);
      const spec = podSpec(d) as unknown as { containers: { resources: { limits: Record<string, number> } }[]; affinity: unknown; tolerations: unknown };
      expect(spec.containers[0].resources.limits['amd.com/gpu']).toBe(1);
      expect(spec.containers[0].resources.limits).not.toHaveProperty('nvidia.com/gpu');
      expect(JSON.stringify(spec.affinity)).toContain('"key":"amd.com/gpu.product","operator":"In","values":["MI300X"]');
      expect(spec.tolerations).toEqual([{ key: 'amd.com/gpu', operator: 'Equal', value: 'present', effect: 'NoExecute' }]);
    }
  });

  it('name and namespace prefix and place every object', () => {
    const o = synthObjects(parseDeploymentConfig({ name: 'chat', namespace: 'serving' }));
    for (const x of o) {
      expect(x.metadata.name.startsWith('chat')).toBe(true);
      expect(x.metadata.namespace).toBe(x.kind === 'Application' ? 'argocd' : 'serving');
    }
    const cfg = JSON.stringify(findObject(o, 'Deployment', 'chat-decode'));
    expect(cfg).toContain('tcp://chat-epp.serving.svc.cluster.local:5557');
  });

  it('block size, hash algo and seed reach vLLM and the EPP together', () => {
    const o = synthObjects(parseDeploymentConfig({ kvCache: { blockSize: 64, hashSeed: '1234' } }));
    const decode = JSON.stringify(findObject(o, 'Deployment', 'kvroute-decode'));
    expect(decode).toContain('--block-size=64');
    expect(decode).toContain('{"name":"PYTHONHASHSEED","value":"1234"}');
    const epp = (findObject(o, 'ConfigMap', 'kvroute-epp-config').data as Record<string, string>)['epp-config.yaml'];
    expect(epp).toMatch(/^blockSize: 64$/m);
    expect(epp).toMatch(/^hashSeed: "1234"$/m);
  });
});

describe('toLabelValue', () => {
  it('keeps valid characters, trims ends and length', () => {
    expect(toLabelValue('meta-llama/Llama-3.2-1B')).toBe('meta-llama-Llama-3.2-1B');
    expect(toLabelValue('-x-')).toBe('x');
    expect(toLabelValue('a'.repeat(80))).toHaveLength(63);
    expect(() => toLabelValue('///')).toThrow(/cannot derive a Kubernetes label value from "\/\/\/"/);
  });
});
