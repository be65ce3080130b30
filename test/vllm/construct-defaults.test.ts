import { Testing } from 'cdk8s';
import { Accelerator } from '../../constructs/vllm/accelerator.js';
import { KvEventsWiring } from '../../constructs/vllm/kv-events.js';
import { ModelServerDeployment } from '../../constructs/vllm/model-server-deployment.js';
import { ModelService } from '../../constructs/vllm/model-service.js';
import { ModelServiceBaseConfig } from '../../constructs/vllm/model-service-base-config.js';
import { vllmServer, type VllmServerProps } from '../../constructs/vllm/vllm-server.js';
import type { K8sObject } from '../support/synth.js';

const server: VllmServerProps = {
  role: 'decode',
  model: 'org/m',
  image: 'vllm/vllm-openai:v0.11.0',
  sidecarImage: 'ghcr.io/llm-d/llm-d-routing-sidecar:v0.3.0',
  blockSize: 16,
  hashAlgo: 'sha256_cbor',
  hashSeed: '42',
  maxModelLen: 1024,
  maxNumSeqs: 8,
  gpuMemoryUtilization: 0.9,
  accelerator: Accelerator.nvidia(1),
  hfTokenSecret: { name: 's', key: 'HF_TOKEN' },
  kvEvents: KvEventsWiring.podBinds(),
  pd: true,
  cpu: '1',
  memory: '1Gi',
};

describe('ModelServerDeployment defaults', () => {
  it('terminationGracePeriodSeconds 120, no extra labels, no surge', () => {
    const chart = Testing.chart();
    new ModelServerDeployment(chart, 'd', { name: 'd', replicas: 2, podLabels: { r: 'x' }, server: vllmServer(server), accelerator: Accelerator.nvidia(1), serviceAccountName: 'sa' });
    const d = (Testing.synth(chart) as K8sObject[])[0];
    expect(d.metadata.labels).toEqual({ r: 'x' });
    const spec = d.spec as { strategy: unknown; template: { spec: { terminationGracePeriodSeconds: number; automountServiceAccountToken: boolean } } };
    expect(spec.template.spec.terminationGracePeriodSeconds).toBe(120);
    expect(spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
  });
  it('rejects negative replicas', () => {
    expect(
      () => new ModelServerDeployment(Testing.chart(), 'd', { name: 'd', replicas: -1, podLabels: {}, server: vllmServer(server), accelerator: Accelerator.nvidia(1), serviceAccountName: 'sa' }),
    ).toThrow(/replicas -1/);
  });
});

describe('ModelServiceBaseConfig defaults', () => {
  it('grace period 120 s, no prefill template, no labels', () => {
    const chart = Testing.chart();
    new ModelServiceBaseConfig(chart, 'b', { name: 'b', decode: { server: vllmServer(server), accelerator: Accelerator.nvidia(1) } });
    const cm = (Testing.synth(chart) as K8sObject[])[0];
    const data = cm.data as Record<string, string>;
    expect(Object.keys(data)).toEqual(['decodeDeployment']);
    expect(data.decodeDeployment).toContain('terminationGracePeriodSeconds: 120');
    expect(cm.metadata.labels ?? {}).toEqual({});
  });
});

describe('ModelService defaults', () => {
  it('no prefill, no gatewayRefs, no labels; decode replicas ≥ 1', () => {
    const chart = Testing.chart();
    new ModelService(chart, 'm', {
      name: 'm',
      modelName: 'org/m',
      huggingFaceRepo: 'org/m',
      authSecretName: 's',
      decode: { replicas: 1, server: vllmServer({ ...server, pd: false }), accelerator: Accelerator.nvidia(1) },
    });
    const o = (Testing.synth(chart) as K8sObject[])[0];
    const spec = o.spec as Record<string, unknown> & { routing: Record<string, unknown> };
    expect(spec).not.toHaveProperty('prefill');
    expect(spec).not.toHaveProperty('baseConfigMapRef');
    expect(spec.routing).not.toHaveProperty('gatewayRefs');
    expect(o.metadata.labels ?? {}).toEqual({});
    expect(
      () =>
        new ModelService(Testing.chart(), 'n', {
          name: 'n',
          modelName: 'm',
          huggingFaceRepo: 'm',
          authSecretName: 's',
          decode: { replicas: 0, server: vllmServer(server), accelerator: Accelerator.nvidia(1) },
        }),
    ).toThrow(/decode\.replicas 0 must be ≥ 1/);
  });
  it('gatewayRef when given', () => {
    const chart = Testing.chart();
    new ModelService(chart, 'm', {
      name: 'm',
      modelName: 'org/m',
      huggingFaceRepo: 'org/m',
      authSecretName: 's',
      gatewayRef: { name: 'gw', namespace: 'ns' },
      decode: { replicas: 1, server: vllmServer(server), accelerator: Accelerator.nvidia(1) },
    });
    const spec = (Testing.synth(chart) as K8sObject[])[0].spec as { routing: { gatewayRefs: unknown[] } };
    expect(spec.routing.gatewayRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw', namespace: 'ns' }]);
  });
});
