/**
 * The containers and volumes of one vLLM model-server pod (decode or prefill), in the neutral form
 * that both the Deployment and the ModelService renderers take.
 */
import { HfTokenEnv, Roles, VllmPorts, type HashAlgo } from '@kvroute/epp/contract';
import { k8s } from 'cdk8s-plus-28';
import type { Accelerator } from './accelerator.js';
import type { ContainerSpec, EnvVarSpec } from './container-spec.js';
import { kvEventsConfig, KvEventsWiring, PodIpEnv } from './kv-events.js';

/** Model weights cache inside the pod. */
export type ModelCache = { readonly type: 'emptyDir'; readonly sizeLimit: string } | { readonly type: 'pvc'; readonly claimName: string };

export const ModelCacheMountPath = '/model-cache';
export const ModelCacheVolume = 'model-cache';
export const ShmVolume = 'dshm';

/** Props of {@link vllmServer}. */
export interface VllmServerProps {
  readonly role: typeof Roles.decode | typeof Roles.prefill;
  /** Hugging Face repo id, also the served model name. */
  readonly model: string;
  readonly image: string;
  /** Image of the llm-d routing sidecar (decode pods with P/D). */
  readonly sidecarImage: string;
  readonly blockSize: number;
  readonly hashAlgo: HashAlgo;
  readonly hashSeed: string;
  readonly maxModelLen: number;
  readonly maxNumSeqs: number;
  readonly gpuMemoryUtilization: number;
  readonly accelerator: Accelerator;
  readonly hfTokenSecret: { readonly name: string; readonly key: string };
  readonly kvEvents: KvEventsWiring;
  /** P/D disaggregation: NIXL KV transfer on both roles, routing sidecar on decode. */
  readonly pd: boolean;
  readonly cpu: string;
  readonly memory: string;
  /**
   * Size of the /dev/shm memory volume.
   * @default '2Gi'
   */
  readonly shmSize?: string;
  /**
   * Model weights cache.
   * @default { type: 'emptyDir', sizeLimit: '50Gi' }
   */
  readonly modelCache?: ModelCache;
  /**
   * Seconds the startup probe waits for the model to download and load before the pod restarts.
   * @default 1800
   */
  readonly startupTimeoutSeconds?: number;
  /**
   * Extra vLLM flags, appended.
   * @default []
   */
  readonly extraArgs?: readonly string[];
  /**
   * Pod IPs are IPv6 (bracketed in the KV-event topic).
   * @default false
   */
  readonly ipv6?: boolean;
}

/** The rendered pod parts. */
export interface VllmServerParts {
  readonly containers: ContainerSpec[];
  /** Native sidecars (restartPolicy Always). */
  readonly initContainers: ContainerSpec[];
  readonly volumes: k8s.Volume[];
  /** Port the gateway sends traffic to (sidecar on decode with P/D, else vLLM). */
  readonly servingPort: number;
  /** Port vLLM itself listens on (metrics are scraped here). */
  readonly vllmPort: number;
}

/** Named container ports. */
export const VllmPortNames = {
  serving: 'http',
  vllm: 'vllm-http',
  replay: 'kv-replay',
  kvEvents: 'kv-events',
  nixl: 'nixl',
} as const;

/** Builds the vLLM container (and the routing sidecar on P/D decode pods). */
export function vllmServer(p: VllmServerProps): VllmServerParts {
  const startupTimeout = p.startupTimeoutSeconds ?? 1800;
  if (!Number.isInteger(startupTimeout) || startupTimeout < 60) {
    throw new Error(`vllmServer: startupTimeoutSeconds ${startupTimeout} is too short to download and load a model; use at least 60 (default 1800)`);
  }
  const sidecar = p.pd && p.role === Roles.decode;
  const servingPort = VllmPorts.serving;
  const vllmPort = sidecar ? VllmPorts.vllmBehindSidecar : VllmPorts.serving;
  const tp = p.accelerator.count;

  const args = [
    p.model,
    `--served-model-name=${p.model}`,
    `--port=${vllmPort}`,
    '--enable-prefix-caching',
    // usage.prompt_tokens_details.cached_tokens in every response: the EPP compares it with its prediction.
    '--enable-prompt-tokens-details',
    `--block-size=${p.blockSize}`,
    `--prefix-caching-hash-algo=${p.hashAlgo}`,
    `--gpu-memory-utilization=${p.gpuMemoryUtilization}`,
    `--max-model-len=${p.maxModelLen}`,
    `--max-num-seqs=${p.maxNumSeqs}`,
    `--tensor-parallel-size=${tp}`,
    `--kv-events-config=${JSON.stringify(kvEventsConfig({ model: p.model, servingPort, wiring: p.kvEvents, ipv6: p.ipv6 ?? false }))}`,
    ...(p.pd ? [`--kv-transfer-config=${JSON.stringify({ kv_connector: 'NixlConnector', kv_role: 'kv_both' })}`] : []),
    ...(p.extraArgs ?? []),
  ];

  const env: EnvVarSpec[] = [
    { name: PodIpEnv, fieldPath: 'status.podIP' },
    { name: 'PYTHONHASHSEED', value: p.hashSeed },
    { name: HfTokenEnv, secret: p.hfTokenSecret },
    { name: 'HF_HOME', value: ModelCacheMountPath },
    ...(p.pd
      ? [
          { name: 'VLLM_NIXL_SIDE_CHANNEL_HOST', fieldPath: 'status.podIP' },
          { name: 'VLLM_NIXL_SIDE_CHANNEL_PORT', value: String(VllmPorts.nixlSideChannel) },
        ]
      : []),
    ...(p.role === Roles.prefill ? [{ name: 'VLLM_HTTP_TIMEOUT_KEEP_ALIVE', value: '120' }] : []),
  ];

  const ports = [
    { name: sidecar ? VllmPortNames.vllm : VllmPortNames.serving, port: vllmPort },
    { name: VllmPortNames.replay, port: VllmPorts.kvEventsReplay },
    ...(p.kvEvents.podPort !== undefined ? [{ name: VllmPortNames.kvEvents, port: p.kvEvents.podPort }] : []),
    ...(p.pd ? [{ name: VllmPortNames.nixl, port: VllmPorts.nixlSideChannel }] : []),
  ];

  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({ path, port: vllmPort, periodSeconds, failureThreshold, timeoutSeconds: 5 });
  const vllm: ContainerSpec = {
    name: 'vllm',
    image: p.image,
    command: ['vllm', 'serve'],
    args,
    env,
    ports,
    cpu: p.cpu,
    memory: p.memory,
    accelerator: p.accelerator,
    startupProbe: probe('/health', 10, Math.ceil(startupTimeout / 10)),
    readinessProbe: probe('/v1/models', 5, 3),
    livenessProbe: probe('/health', 10, 3),
    volumeMounts: [
      { name: ShmVolume, mountPath: '/dev/shm' },
      { name: ModelCacheVolume, mountPath: ModelCacheMountPath },
    ],
    // The pod brings its own model cache volume and HF_TOKEN; with mountModelVolume the ModelService
    // operator would replace the container's env (dropping PYTHONHASHSEED and POD_IP).
    mountModelVolume: false,
  };

  const initContainers: ContainerSpec[] = sidecar
    ? [
        {
          name: 'routing-proxy',
          image: p.sidecarImage,
          args: [`--port=${servingPort}`, `--vllm-port=${vllmPort}`, '--connector=nixlv2', '--secure-proxy=false'],
          env: [],
          ports: [{ name: VllmPortNames.serving, port: servingPort }],
          cpu: '250m',
          memory: '256Mi',
          volumeMounts: [],
          mountModelVolume: false,
          restartPolicy: 'Always',
        },
      ]
    : [];

  const cache = p.modelCache ?? { type: 'emptyDir', sizeLimit: '50Gi' };
  const volumes: k8s.Volume[] = [
    { name: ShmVolume, emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString(p.shmSize ?? '2Gi') } },
    cache.type === 'pvc'
      ? { name: ModelCacheVolume, persistentVolumeClaim: { claimName: cache.claimName } }
      : { name: ModelCacheVolume, emptyDir: { sizeLimit: k8s.Quantity.fromString(cache.sizeLimit) } },
  ];

  return { containers: [vllm], initContainers, volumes, servingPort, vllmPort };
}
