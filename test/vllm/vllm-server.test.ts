import { HfTokenEnv, KvEventsTopic, Labels, VllmPorts } from '@kvroute/epp/contract';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { Accelerator } from '../../constructs/vllm/accelerator.js';
import { toK8sContainer } from '../../constructs/vllm/container-spec.js';
import { parseTopic } from '../../epp/src/kvevents/topic.js';
import { kvEventsConfig, KvEventsWiring, topicPodId } from '../../constructs/vllm/kv-events.js';
import { vllmServer, type VllmServerProps } from '../../constructs/vllm/vllm-server.js';
import { findObject, type K8sObject, synthObjects } from '../support/synth.js';

interface Container {
  name: string;
  args?: string[];
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } } }[];
  ports?: { name: string; containerPort: number }[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  startupProbe?: { httpGet: { path: string; port: number }; periodSeconds: number; failureThreshold: number };
  readinessProbe?: { httpGet: { path: string; port: number } };
  livenessProbe?: { httpGet: { path: string; port: number } };
  volumeMounts?: { name: string; mountPath: string }[];
  restartPolicy?: string;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes: { name: string; emptyDir?: { medium?: string; sizeLimit?: string }; persistentVolumeClaim?: { claimName: string } }[];
  affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: { matchExpressions: { key: string; operator: string; values: string[] }[] }[] } } };
  tolerations: { key: string; operator: string; effect: string }[];
}
const podSpec = (o: K8sObject) => (o.spec as { template: { spec: PodSpec } }).template.spec;
const podLabels = (o: K8sObject) => (o.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
const vllm = (o: K8sObject) => {
  const c = podSpec(o).containers.find((x) => x.name === 'vllm');
  if (!c) throw new Error('no vllm container');
  return c;
};
/** Value of `--flag=value` in args. */
const flag = (args: string[] | undefined, name: string): string | undefined => args?.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const env = (c: Container, name: string) => c.env?.find((e) => e.name === name);

describe('decode and prefill Deployments (seed defaults)', () => {
  const objects = synthObjects(parseDeploymentConfig({}));
  const decode = findObject(objects, 'Deployment', 'kvroute-decode');
  const prefill = findObject(objects, 'Deployment', 'kvroute-prefill');

  it('3 decode and 2 prefill replicas', () => {
    expect((decode.spec as { replicas: number }).replicas).toBe(3);
    expect((prefill.spec as { replicas: number }).replicas).toBe(2);
  });

  it.each([
    ['decode', decode],
    ['prefill', prefill],
  ])('%s requests nvidia.com/gpu = limits', (_r, d) => {
    const r = vllm(d).resources;
    expect(r?.requests?.['nvidia.com/gpu']).toBe(1);
    expect(r?.limits?.['nvidia.com/gpu']).toBe(1);
  });

  it('vLLM flags: prefix caching, block size, hash algo, memory, lengths, NIXL', () => {
    const args = vllm(decode).args;
    expect(args?.[0]).toBe('meta-llama/Llama-3.2-1B');
    expect(args).toContain('--enable-prefix-caching');
    expect(args).toContain('--enable-prompt-tokens-details');
    expect(flag(args, 'block-size')).toBe('16');
    expect(flag(args, 'prefix-caching-hash-algo')).toBe('sha256_cbor');
    expect(flag(args, 'gpu-memory-utilization')).toBe('0.9');
    expect(flag(args, 'max-model-len')).toBe('8192');
    expect(flag(args, 'max-num-seqs')).toBe('256');
    expect(flag(args, 'served-model-name')).toBe('meta-llama/Llama-3.2-1B');
    expect(JSON.parse(flag(args, 'kv-transfer-config') ?? 'null')).toEqual({ kv_connector: 'NixlConnector', kv_role: 'kv_both' });
  });

  it('--kv-events-config publishes over ZMQ to the EPP Service with topic kv@$(POD_IP):8000@<model>', () => {
    for (const d of [decode, prefill]) {
      const cfg = JSON.parse(flag(vllm(d).args, 'kv-events-config') ?? 'null') as Record<string, unknown>;
      expect(cfg).toEqual({
        enable_kv_cache_events: true,
        publisher: 'zmq',
        endpoint: 'tcp://kvroute-epp.llm-d.svc.cluster.local:5557',
        replay_endpoint: 'tcp://*:5556',
        topic: 'kv@$(POD_IP):8000@meta-llama/Llama-3.2-1B',
      });
      expect(env(vllm(d), 'POD_IP')?.valueFrom?.fieldRef?.fieldPath).toBe('status.podIP');
    }
  });

  it('the topic endpoint is the port the gateway routes to (the InferencePool target port)', () => {
    const pool = findObject(objects, 'InferencePool', 'kvroute-pool');
    const target = (pool.spec as { targetPorts: { number: number }[] }).targetPorts[0].number;
    const cfg = JSON.parse(flag(vllm(decode).args, 'kv-events-config') ?? '{}') as { topic: string };
    expect(cfg.topic).toBe(KvEventsTopic.format(`$(POD_IP):${target}`, 'meta-llama/Llama-3.2-1B'));
  });

  it('PYTHONHASHSEED = hash seed, HF token from the Secret', () => {
    expect(env(vllm(decode), 'PYTHONHASHSEED')?.value).toBe('42');
    expect(env(vllm(decode), HfTokenEnv)?.valueFrom?.secretKeyRef).toEqual({ name: 'llm-d-hf-token', key: 'HF_TOKEN' });
    expect(env(vllm(decode), 'VLLM_NIXL_SIDE_CHANNEL_HOST')?.valueFrom?.fieldRef?.fieldPath).toBe('status.podIP');
  });

  it('decode: vLLM on 8200 behind the routing sidecar on 8000 (native sidecar)', () => {
    expect(flag(vllm(decode).args, 'port')).toBe(String(VllmPorts.vllmBehindSidecar));
    const sidecar = podSpec(decode).initContainers?.[0];
    expect(sidecar?.name).toBe('routing-proxy');
    expect(sidecar?.restartPolicy).toBe('Always');
    expect(sidecar?.args).toEqual(['--port=8000', '--vllm-port=8200', '--connector=nixlv2', '--secure-proxy=false']);
    expect(sidecar?.ports).toEqual([{ name: 'http', containerPort: 8000, protocol: 'TCP' }]);
  });

  it('prefill: vLLM on 8000, no sidecar', () => {
    expect(flag(vllm(prefill).args, 'port')).toBe('8000');
    expect(podSpec(prefill).initContainers).toBeUndefined();
    expect(env(vllm(prefill), 'VLLM_HTTP_TIMEOUT_KEEP_ALIVE')?.value).toBe('120');
  });

  it('probes sized for model loading: startup allows 1800 s, on the vLLM port', () => {
    const c = vllm(decode);
    expect(c.startupProbe).toMatchObject({ httpGet: { path: '/health', port: 8200 }, periodSeconds: 10, failureThreshold: 180 });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/v1/models', port: 8200 });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/health', port: 8200 });
  });

  it('node affinity and GPU toleration', () => {
    const s = podSpec(decode);
    expect(s.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions).toEqual([
      { key: 'nvidia.com/gpu.present', operator: 'In', values: ['true'] },
    ]);
    expect(s.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
  });

  it('/dev/shm is a Memory emptyDir and the model cache is mounted', () => {
    const s = podSpec(decode);
    expect(s.volumes.find((v) => v.name === 'dshm')?.emptyDir).toEqual({ medium: 'Memory', sizeLimit: '2Gi' });
    expect(s.volumes.find((v) => v.name === 'model-cache')?.emptyDir).toEqual({ sizeLimit: '50Gi' });
    expect(vllm(decode).volumeMounts).toEqual([
      { name: 'dshm', mountPath: '/dev/shm' },
      { name: 'model-cache', mountPath: '/model-cache' },
    ]);
    expect(env(vllm(decode), 'HF_HOME')?.value).toBe('/model-cache');
  });

  it('pods carry the llm-d labels and their role', () => {
    expect(podLabels(decode)).toMatchObject({ [Labels.inferenceServing]: 'true', [Labels.role]: 'decode', [Labels.model]: 'meta-llama-Llama-3.2-1B' });
    expect(podLabels(prefill)).toMatchObject({ [Labels.role]: 'prefill' });
  });
});

describe('fleet without P/D, TP 2, PVC cache, connect mode', () => {
  const objects = synthObjects(
    parseDeploymentConfig({
      model: { name: 'Qwen/Qwen3-32B', tensorParallelSize: 2, cache: { type: 'pvc', claimName: 'models' }, extraArgs: ['--enforce-eager'] },
      decode: { replicas: 8, gpusPerPod: 2 },
      prefill: { replicas: 0 },
      pd: { enabled: false },
      epp: { eventsMode: 'connect' },
    }),
  );
  const decode = findObject(objects, 'Deployment', 'kvroute-decode');

  it('no prefill Deployment, 2 GPUs per decode pod, TP 2', () => {
    expect(objects.some((o) => o.kind === 'Deployment' && o.metadata.name === 'kvroute-prefill')).toBe(false);
    expect(vllm(decode).resources?.limits?.['nvidia.com/gpu']).toBe(2);
    expect(flag(vllm(decode).args, 'tensor-parallel-size')).toBe('2');
  });

  it('vLLM serves on 8000 without the sidecar or NIXL', () => {
    expect(flag(vllm(decode).args, 'port')).toBe('8000');
    expect(podSpec(decode).initContainers).toBeUndefined();
    expect(flag(vllm(decode).args, 'kv-transfer-config')).toBeUndefined();
  });

  it('connect mode: vLLM binds its publisher and exposes it', () => {
    const cfg = JSON.parse(flag(vllm(decode).args, 'kv-events-config') ?? '{}') as { endpoint: string };
    expect(cfg.endpoint).toBe('tcp://*:5557');
    expect(vllm(decode).ports).toContainEqual({ name: 'kv-events', containerPort: 5557, protocol: 'TCP' });
  });

  it('PVC model cache and extra args appended', () => {
    expect(podSpec(decode).volumes.find((v) => v.name === 'model-cache')?.persistentVolumeClaim).toEqual({ claimName: 'models' });
    expect(vllm(decode).args?.at(-1)).toBe('--enforce-eager');
  });
});

describe('vllmServer', () => {
  const base: VllmServerProps = {
    role: 'decode',
    model: 'm/x',
    image: 'vllm/vllm-openai:v0.11.0',
    sidecarImage: 'ghcr.io/llm-d/llm-d-routing-sidecar:v0.3.0',
    blockSize: 16,
    hashAlgo: 'sha256_cbor',
    hashSeed: '7',
    maxModelLen: 4096,
    maxNumSeqs: 64,
    gpuMemoryUtilization: 0.8,
    accelerator: Accelerator.nvidia(1),
    hfTokenSecret: { name: 's', key: 'k' },
    kvEvents: KvEventsWiring.toEppService('e.ns.svc.cluster.local'),
    pd: false,
    cpu: '1',
    memory: '1Gi',
  };
  it('defaults: shm 2Gi, emptyDir cache 50Gi, startup 1800 s, no extra args', () => {
    const p = vllmServer(base);
    expect(p.volumes).toEqual([
      { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: expect.anything() } },
      { name: 'model-cache', emptyDir: { sizeLimit: expect.anything() } },
    ]);
    const c = toK8sContainer(p.containers[0]);
    expect(c.startupProbe?.failureThreshold).toBe(180);
    expect(c.args?.at(-1)).toMatch(/^--kv-events-config=/);
  });
  it('rejects a startup timeout too short for model loading', () => {
    expect(() => vllmServer({ ...base, startupTimeoutSeconds: 30 })).toThrow(/startupTimeoutSeconds 30 .* at least 60/);
  });
  it('memory requests = limits, CPU only requested', () => {
    const c = toK8sContainer(vllmServer(base).containers[0]);
    expect(c.resources?.requests?.memory?.value).toBe('1Gi');
    expect(c.resources?.limits?.memory?.value).toBe('1Gi');
    expect(c.resources?.limits?.cpu).toBeUndefined();
  });
});

describe('kvEventsConfig', () => {
  it('default replay port 5556, explicit undefined disables replay', () => {
    const w = KvEventsWiring.toEppService('epp.ns.svc.cluster.local', 5557);
    expect(kvEventsConfig({ model: 'm', servingPort: 8000, wiring: w }).replay_endpoint).toBe('tcp://*:5556');
    expect(kvEventsConfig({ model: 'm', servingPort: 8000, wiring: w, replayPort: undefined })).not.toHaveProperty('replay_endpoint');
  });
  it('rejects a host that is not a DNS name', () => {
    expect(() => KvEventsWiring.toEppService('tcp://x:1')).toThrow(/not a DNS name/);
  });
});

describe('Accelerator', () => {
  it('nvidia defaults', () => {
    const a = Accelerator.nvidia(2);
    expect(a.resourceName).toBe('nvidia.com/gpu');
    expect(a.nodeLabelKey).toBe('nvidia.com/gpu.present');
    expect(a.nodeLabelValues).toEqual(['true']);
    expect(a.toTolerations()).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(a.toResourceQuantities()['nvidia.com/gpu'].value).toBe(2);
  });
  it('rejects 0 or fractional GPUs and empty label values', () => {
    expect(() => Accelerator.nvidia(0)).toThrow(/count 0 is invalid.*Accelerator\.nvidia\(1\)/);
    expect(() => Accelerator.nvidia(1.5)).toThrow(/count 1\.5/);
    expect(() => Accelerator.nvidia(1, { nodeLabelValues: [] })).toThrow(/nodeLabelValues is empty/);
  });
});

describe('KV-event topic as the EPP parses it', () => {
  /** The topic vLLM publishes once the kubelet has expanded $(POD_IP). */
  const published = (ipFamily: 'IPv4' | 'IPv6', podIp: string): string => {
    const o = synthObjects(parseDeploymentConfig({ ipFamily }));
    const cfg = JSON.parse(flag(vllm(findObject(o, 'Deployment', 'kvroute-decode')).args, 'kv-events-config') ?? '{}') as { topic: string };
    return cfg.topic.replace('$(POD_IP)', podIp);
  };

  it('IPv4 (default): kv@10.0.0.7:8000@model → pod 10.0.0.7:8000', () => {
    expect(parseTopic(published('IPv4', '10.0.0.7'))).toEqual({ pod: '10.0.0.7:8000', model: 'meta-llama/Llama-3.2-1B' });
  });

  it('IPv6: the address is bracketed so the EPP can split off the port', () => {
    expect(parseTopic(published('IPv6', 'fd00::7'))).toEqual({ pod: '[fd00::7]:8000', model: 'meta-llama/Llama-3.2-1B' });
    // Unbracketed, the EPP would reject it: this is why ipFamily exists.
    expect(() => parseTopic('kv@fd00::7:8000@m')).toThrow(/unbracketed IPv6/);
  });

  it('topicPodId defaults to IPv4', () => {
    expect(topicPodId(8000)).toBe('$(POD_IP):8000');
  });
});
