import { HfTokenEnv } from '@kvroute/epp/contract';
import { parse } from 'yaml';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { operatorModelLabel } from '../../constructs/config/names.js';
import { findObject, objectsOfKind, synthObjects } from '../support/synth.js';

interface MsContainer {
  name: string;
  image: string;
  args: string[];
  env: { name: string; value?: string }[];
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  mountModelVolume: boolean;
}
interface MsRole {
  replicas: number;
  parallelism: { tensor: number };
  acceleratorTypes: { labelKey: string; labelValues: string[] };
  containers: MsContainer[];
  initContainers?: MsContainer[];
}
interface BaseTemplate {
  apiVersion: string;
  kind: string;
  spec: {
    template: {
      spec: {
        containers: { name: string; ports?: unknown[]; startupProbe?: unknown; volumeMounts?: unknown[] }[];
        volumes: unknown[];
        tolerations: unknown[];
      };
    };
  };
}
interface MsSpec {
  modelArtifacts: { uri: string; authSecretName: string };
  routing: { modelName: string; ports: { name: string; port: number }[] };
  decode: MsRole;
  prefill?: MsRole;
}

describe('ModelService mode', () => {
  const objects = synthObjects(parseDeploymentConfig({ workloadMode: 'modelservice' }));
  const ms = findObject(objects, 'ModelService', 'kvroute');
  const spec = ms.spec as MsSpec;

  it('replaces the model-server Deployments', () => {
    expect(ms.apiVersion).toBe('llm-d.ai/v1alpha1');
    expect(objectsOfKind(objects, 'Deployment').map((d) => d.metadata.name)).toEqual(['kvroute-epp']);
  });

  it('model artifacts from Hugging Face with the token Secret', () => {
    expect(spec.modelArtifacts).toEqual({ uri: 'hf://meta-llama/Llama-3.2-1B', authSecretName: 'llm-d-hf-token' });
    expect(spec.routing.modelName).toBe('meta-llama/Llama-3.2-1B');
    expect(spec.routing.ports).toEqual([
      { name: 'app_port', port: 8000 },
      { name: 'internal_port', port: 8200 },
    ]);
  });

  it('carries the same vLLM container (flags, env, GPUs) as Deployment mode; mountModelVolume false keeps the env intact', () => {
    const deploymentObjects = synthObjects(parseDeploymentConfig({}));
    const dep = findObject(deploymentObjects, 'Deployment', 'kvroute-decode');
    const depArgs = (dep.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0].args;
    const c = spec.decode.containers[0];
    expect(c.args).toEqual(depArgs);
    expect(c.resources.limits['nvidia.com/gpu']).toBe('1');
    expect(c.resources.requests['nvidia.com/gpu']).toBe('1');
    expect(c.mountModelVolume).toBe(false);
    expect(c.env.map((e) => e.name)).toEqual(expect.arrayContaining(['POD_IP', 'PYTHONHASHSEED', HfTokenEnv, 'HF_HOME']));
    expect(c.env).toContainEqual({ name: 'PYTHONHASHSEED', value: '42' });
  });

  it('decode 3 with the routing sidecar, prefill 2, accelerator types and TP', () => {
    expect(spec.decode.replicas).toBe(3);
    // The CRD's init containers cannot be native sidecars, so the routing proxy is a regular container.
    expect(spec.decode.containers.map((c) => c.name)).toEqual(['vllm', 'routing-proxy']);
    expect(spec.decode.initContainers).toBeUndefined();
    expect(spec.decode.containers[1].mountModelVolume).toBe(false);
    expect(spec.prefill?.replicas).toBe(2);
    expect(spec.decode.parallelism).toEqual({ tensor: 1 });
    expect(spec.decode.acceleratorTypes).toEqual({ labelKey: 'nvidia.com/gpu.present', labelValues: ['true'] });
  });

  it('pool, decode Service and PodMonitors select the labels the operator gives its pods', () => {
    const pool = findObject(objects, 'InferencePool', 'kvroute-pool').spec as { selector: { matchLabels: Record<string, string> } };
    expect(pool.selector.matchLabels).toEqual({ 'llm-d.ai/inferenceServing': 'true', 'llm-d.ai/model': 'meta-llama-llama-3-2-1b' });
    const svc = findObject(objects, 'Service', 'kvroute-decode').spec as { selector: Record<string, string> };
    expect(svc.selector).toEqual({ 'llm-d.ai/inferenceServing': 'true', 'llm-d.ai/model': 'meta-llama-llama-3-2-1b', 'llm-d.ai/role': 'decode' });
    const pm = findObject(objects, 'PodMonitor', 'kvroute-prefill').spec as { selector: { matchLabels: Record<string, string> } };
    expect(pm.selector.matchLabels['llm-d.ai/role']).toBe('prefill');
  });

  it('operatorModelLabel sanitizes like the operator', () => {
    expect(operatorModelLabel(' Qwen/Qwen3-32B ')).toBe('qwen-qwen3-32b');
    expect(operatorModelLabel('a'.repeat(70))).toHaveLength(63);
  });

  it('references a BaseConfig whose Deployment templates add ports, probes, /dev/shm, model cache and tolerations', () => {
    expect((ms.spec as { baseConfigMapRef: { name: string } }).baseConfigMapRef).toEqual({ name: 'kvroute-base-config' });
    const cm = findObject(objects, 'ConfigMap', 'kvroute-base-config');
    const data = cm.data as Record<string, string>;
    expect(Object.keys(data).sort()).toEqual(['decodeDeployment', 'prefillDeployment']);
    const decodeTpl = parse(data.decodeDeployment) as BaseTemplate;
    expect(decodeTpl.apiVersion).toBe('apps/v1');
    expect(decodeTpl.kind).toBe('Deployment');
    const pod = decodeTpl.spec.template.spec;
    // Same container names as the ModelService, so the operator merges them.
    expect(pod.containers.map((c) => c.name)).toEqual(spec.decode.containers.map((c) => c.name));
    const vllm = pod.containers[0];
    expect(vllm.ports).toContainEqual({ name: 'vllm-http', containerPort: 8200, protocol: 'TCP' });
    expect(vllm.startupProbe).toMatchObject({ httpGet: { path: '/health', port: 8200 }, failureThreshold: 180 });
    expect(vllm.volumeMounts).toEqual([
      { name: 'dshm', mountPath: '/dev/shm' },
      { name: 'model-cache', mountPath: '/model-cache' },
    ]);
    expect(vllm).not.toHaveProperty('args');
    expect(vllm).not.toHaveProperty('env');
    expect(pod.containers[1].ports).toEqual([{ name: 'http', containerPort: 8000, protocol: 'TCP' }]);
    expect(pod.volumes).toContainEqual({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '2Gi' } });
    expect(pod.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(data.decodeDeployment).not.toContain('{{');
    const prefillTpl = parse(data.prefillDeployment) as BaseTemplate;
    expect(prefillTpl.spec.template.spec.containers.map((c) => c.name)).toEqual(['vllm']);
  });

  it('a PVC model cache reaches the BaseConfig volumes', () => {
    const o = synthObjects(parseDeploymentConfig({ workloadMode: 'modelservice', model: { cache: { type: 'pvc', claimName: 'models' } } }));
    const tpl = parse((findObject(o, 'ConfigMap', 'kvroute-base-config').data as Record<string, string>).decodeDeployment) as BaseTemplate;
    expect(tpl.spec.template.spec.volumes).toContainEqual({ name: 'model-cache', persistentVolumeClaim: { claimName: 'models' } });
  });
});
