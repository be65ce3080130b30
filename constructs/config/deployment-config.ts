/**
 * The deployment config: one typed, validated object that drives the whole chart.
 *
 * `main.ts` builds it from a YAML file (`KVROUTE_CONFIG`) or from the defaults, which reproduce the
 * seed deployment (meta-llama/Llama-3.2-1B in namespace llm-d, 3 decode + 2 prefill pods, block
 * size 16, hash algorithm sha256_cbor, PYTHONHASHSEED "42"). Constructs never read files or the
 * environment: they get this object (or parts of it) as props.
 */
import { readFileSync } from 'node:fs';
import { AdmissionSchema, describeIssues, HashAlgos, showValue } from '@kvroute/epp/contract';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { crossFieldProblems } from './cross-field-rules.js';
import { eppPackageVersion } from './epp-version.js';
import { REGISTRY_PATTERN, SECRET_NAME_PATTERN } from './images.js';

/** RFC 1123 label: lower-case alphanumerics and '-', at most 63 characters. */
const dnsLabel = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be an RFC 1123 label (lower-case letters, digits, "-"; e.g. "llm-d")');

/** A Kubernetes resource quantity such as "500m", "4", "16Gi". */
const quantity = z
  .string()
  .regex(/^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$/, 'must be a Kubernetes quantity such as "500m", "2", "512Mi" or "16Gi"');

const image = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._\-/:]*(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$/, 'must be "registry/repository:tag" or "...@sha256:<digest>" (pin a tag)');

const ResourcesSchema = z.object({
  cpu: quantity,
  memory: quantity,
});

const SecretKeyRefSchema = z.object({
  /** Secret name (created outside this repo: values never enter dist/). */
  name: z
    .string()
    .max(253)
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Secret name (lower-case letters, digits, "-" and ".")'),
  /** Key inside the Secret. */
  key: z.string().min(1),
});

const TolerationSchema = z.object({
  key: z.string().min(1),
  operator: z.enum(['Exists', 'Equal']).default('Exists'),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).default('NoSchedule'),
});

const AcceleratorSchema = z.object({
  /** Extended resource requested (requests = limits). */
  resourceName: z.string().min(1).default('nvidia.com/gpu'),
  /** Node label key the pods require (node affinity). */
  nodeLabelKey: z.string().min(1).default('nvidia.com/gpu.present'),
  /** Accepted values of `nodeLabelKey`. */
  nodeLabelValues: z.array(z.string().min(1)).min(1).default(['true']),
  /** Tolerations for the GPU node taints. */
  tolerations: z.array(TolerationSchema).default([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]),
});

const ModelCacheSchema = z.discriminatedUnion('type', [
  z.object({
    /** A per-pod emptyDir (model downloaded at every start). */
    type: z.literal('emptyDir'),
    sizeLimit: quantity.default('50Gi'),
  }),
  z.object({
    /** An existing PersistentVolumeClaim (ReadWriteMany/ReadOnlyMany for several pods). */
    type: z.literal('pvc'),
    claimName: dnsLabel,
  }),
]);

const ModelSchema = z.object({
  /** Hugging Face repo id; also vLLM's `--served-model-name` and the OpenAI `model` field. */
  name: z.string().default('meta-llama/Llama-3.2-1B'),
  /** vLLM `--max-model-len`. */
  maxModelLen: z.number().int().min(16).default(8192),
  /** vLLM `--max-num-seqs`. */
  maxNumSeqs: z.number().int().min(1).default(256),
  /** vLLM `--gpu-memory-utilization` in (0, 1]. */
  gpuMemoryUtilization: z.number().gt(0).max(1).default(0.9),
  /** vLLM `--tensor-parallel-size`; must equal the GPUs per pod. */
  tensorParallelSize: z.number().int().min(1).default(1),
  /** Secret holding the Hugging Face token (referenced, never copied). */
  hfTokenSecret: SecretKeyRefSchema.default({ name: 'llm-d-hf-token', key: 'HF_TOKEN' }),
  /** Where model weights are cached inside the pod. */
  cache: ModelCacheSchema.default({ type: 'emptyDir', sizeLimit: '50Gi' }),
  /** Seconds the startup probe allows for downloading and loading the weights. */
  startupTimeoutSeconds: z.number().int().min(60).default(1800),
  /** Extra vLLM flags appended verbatim. */
  extraArgs: z.array(z.string()).default([]),
});

const KvCacheSchema = z.object({
  /** vLLM `--block-size` = EPP `blockSize` (tokens per KV block, power of two). */
  blockSize: z.number().int().default(16),
  /** vLLM `--prefix-caching-hash-algo` = EPP `hashAlgo`. */
  hashAlgo: z.enum(HashAlgos).default('sha256_cbor'),
  /** vLLM PYTHONHASHSEED = EPP `hashSeed`. */
  hashSeed: z.string().min(1).default('42'),
});

const ServerPoolSchema = (replicas: number) =>
  z.object({
    replicas: z.number().int().min(0).default(replicas),
    /** GPUs per pod (requests = limits); must equal model.tensorParallelSize. */
    gpusPerPod: z.number().int().min(1).default(1),
    /** CPU / memory requests (= limits for memory). */
    resources: ResourcesSchema.default({ cpu: '4', memory: '16Gi' }),
    /** /dev/shm size (NCCL, tensor parallelism). */
    shmSize: quantity.default('2Gi'),
  });

const ImagesSchema = z.object({
  vllm: image.default('vllm/vllm-openai:v0.11.0'),
  routingSidecar: image.default('ghcr.io/llm-d/llm-d-routing-sidecar:v0.3.0'),
  /** Defaults to the EPP package version (epp/package.json). */
  epp: image.default(`ghcr.io/kvroute/kvroute-epp:${eppPackageVersion()}`),
  redis: image.default('redis:7.4.2-alpine'),
  /**
   * Registry (host, optional port and path) every image above is pulled from instead of its own,
   * under the same repository path and tag: with "registry.example.com/mirror", vLLM comes from
   * "registry.example.com/mirror/vllm/vllm-openai:v0.11.0" and Redis (a Docker Hub official image)
   * from "registry.example.com/mirror/library/redis:7.4.2-alpine".
   * @default undefined (each image from its own registry)
   */
  registry: z
    .string()
    .regex(REGISTRY_PATTERN, 'must be a registry host with an optional path, no scheme and no trailing "/" (e.g. "registry.example.com/mirror"; the host needs a "." or a port, or is "localhost")')
    .optional(),
  /**
   * Secrets (type kubernetes.io/dockerconfigjson, created in the namespace outside this repo) every
   * pod of the chart — vLLM, EPP, Redis — uses to pull its images.
   * @default [] (no imagePullSecrets field)
   */
  imagePullSecrets: z
    .array(z.string().max(253).regex(SECRET_NAME_PATTERN, 'must be a Secret name (lower-case letters, digits, "-" and ".")'))
    .refine((a) => new Set(a).size === a.length, 'lists a Secret twice; list each Secret once')
    .default([]),
});

const GatewaySchema = z.object({
  /**
   * `inferencepool`: HTTPRoute → InferencePool, Istio programs ext_proc natively.
   * `envoyfilter`: explicit Istio EnvoyFilter (ext_proc + ORIGINAL_DST cluster) and an HTTPRoute.
   */
  mode: z.enum(['inferencepool', 'envoyfilter']).default('inferencepool'),
  /** Gateway name (parentRef of the HTTPRoute, EnvoyFilter target); defaults to `<name>-gateway`. */
  name: dnsLabel.optional(),
  /** Emit the Gateway itself (false: it exists already). */
  create: z.boolean().default(true),
  /** GatewayClass of the emitted Gateway. */
  className: z.string().min(1).default('istio'),
  /** Listener port of the emitted Gateway. */
  listenerPort: z.number().int().min(1).max(65535).default(80),
  /** HTTPRoute hostnames (empty: any). */
  hostnames: z
    .array(z.string().regex(/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a DNS hostname such as "llm.example.com" or "*.example.com" (no port, no scheme)'))
    .default([]),
  /** Path prefix routed to the model. */
  pathPrefix: z.string().startsWith('/').default('/v1'),
  /** Request timeout of the model route (LLM responses stream for minutes). */
  requestTimeout: z.string().regex(/^\d+(ms|s|m|h)$/, 'must be a Gateway API duration such as "600s" or "10m"').default('600s'),
  /** ext_proc request/response body mode (EnvoyFilter mode). NONE is not allowed: the EPP needs the body. */
  bodyMode: z.enum(['FULL_DUPLEX_STREAMED', 'BUFFERED']).default('FULL_DUPLEX_STREAMED'),
  /** What the gateway does when the EPP is unreachable. */
  failureMode: z.enum(['FailOpen', 'FailClose']).default('FailOpen'),
  /** Labels of the gateway pods (NetworkPolicy source for EPP 9002); Istio labels them with the Gateway name. */
  podLabels: z.record(z.string(), z.string()).optional(),
  /** Namespace the gateway pods run in (NetworkPolicy); defaults to the deployment namespace. */
  podNamespace: dnsLabel.optional(),
});

const EppSchema = z.object({
  replicas: z.number().int().min(1).default(1),
  /**
   * `bind`: the EPP binds ZMQ 5557 and every vLLM pod connects to the EPP Service (one replica per pod).
   * `connect`: each vLLM pod binds, every EPP replica connects to every pod (discovery mode).
   */
  eventsMode: z.enum(['bind', 'connect']).default('bind'),
  resources: ResourcesSchema.default({ cpu: '2', memory: '2Gi' }),
  /** In-memory index budget in MiB (memory backend). */
  indexMemoryMiB: z.number().int().min(1).default(512),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  /**
   * Admission, passed to the EPP config as is: InferenceObjective name → priority (requests whose
   * `x-gateway-inference-objective` names a negative priority get 429 while the pool is
   * saturated) and the saturation thresholds.
   * @default { objectives: {}, queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8 }
   */
  admission: AdmissionSchema.default({}),
  /**
   * An llm-d `EndpointPickerConfig` (YAML text, or the parsed object) whose plugins and scheduling
   * profiles replace the EPP's default scheduling: an llm-d Router config carried over as is. It is
   * read at synth by the EPP's own loader (unknown plugin types and bad fields fail synth); its
   * block size and hash seed must equal `kvCache`'s, and the KV events, index and tokenizer stay
   * this deployment's.
   * @default undefined (the EPP's default scheduling)
   */
  endpointPickerConfig: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
});

const RedisSchema = z.object({
  enabled: z.boolean().default(false),
  /** Secret holding the Redis password (created outside this repo). */
  passwordSecret: SecretKeyRefSchema.default({ name: 'kvroute-redis', key: 'password' }),
  resources: ResourcesSchema.default({ cpu: '500m', memory: '1Gi' }),
  /** Redis maxmemory in MiB (allkeys-lru beyond). */
  maxMemoryMiB: z.number().int().min(16).default(768),
});

const MonitoringSchema = z.object({
  /** Emit PodMonitors/ServiceMonitors (needs the prometheus-operator CRDs). */
  enabled: z.boolean().default(true),
  /** Labels the Prometheus instance selects monitors by. */
  monitorLabels: z.record(z.string(), z.string()).default({ release: 'prometheus' }),
  /** Namespace Prometheus runs in (NetworkPolicy source for metrics ports). */
  prometheusNamespace: dnsLabel.default('monitoring'),
  /** Emit the Grafana dashboard ConfigMap. */
  dashboard: z.boolean().default(true),
});

const ArgoCdSchema = z.object({
  enabled: z.boolean().default(true),
  /** Git repository holding dist/. */
  repoURL: z
    .string()
    .regex(/^(https?:\/\/|git@|ssh:\/\/)/, 'must be a git URL: https://..., ssh://... or git@host:org/repo.git')
    .default('https://github.com/kvroute/kvroute.git'),
  /** Branch, tag or commit. */
  targetRevision: z.string().min(1).default('main'),
  /** Path of the synthesized manifests in the repo. */
  path: z.string().min(1).default('dist'),
  /** Namespace of Argo CD. */
  namespace: dnsLabel.default('argocd'),
  /** Argo CD project. */
  project: z.string().min(1).default('default'),
  /** Automated sync with prune and self-heal. */
  automated: z.boolean().default(true),
});

const httpUrl = z.string().regex(/^https?:\/\/[^\s/]+/, 'must be an http(s) URL such as "http://host.namespace.svc:9090"');

const VerifySchema = z.object({
  /**
   * Emit `kvroute-epp verify` as an Argo CD PostSync hook Job (`<name>-verify`): every sync sends a
   * shared-prefix workload through the gateway and fails the hook when prefix-cache routing misses
   * its thresholds (constructs/gitops/verify-job.ts).
   * @default false
   */
  enabled: z.boolean().default(false),
  /**
   * Gateway base URL the Job sends the workload to.
   * @default `http://<gateway name>-istio.<namespace>.svc:<gateway.listenerPort>` (Istio's Service of an automatically deployed Gateway)
   */
  gatewayUrl: httpUrl.optional(),
  /**
   * Prometheus HTTP API the Job reads vLLM's and the EPP's counters from.
   * @default `http://prometheus-operated.<monitoring.prometheusNamespace>.svc:9090` (the prometheus-operator's Service)
   */
  prometheusUrl: httpUrl.optional(),
  /**
   * Chat sessions of the workload.
   * @default 24
   */
  sessions: z.number().int().min(1).default(24),
  /**
   * Turns per session.
   * @default 3
   */
  turns: z.number().int().min(1).default(3),
  /**
   * Seconds the Job may run.
   * @default 900
   */
  activeDeadlineSeconds: z.number().int().min(60).default(900),
});

export const DeploymentConfigSchema = z
  .object({
    /** Base of every object name (`<name>-epp`, `<name>-decode`, ...); Service names must stay ≤ 63 chars and start with a letter. */
    name: z
      .string()
      .max(40, 'must be at most 40 characters so that "<name>-base-config" and the other object names stay valid')
      .regex(/^[a-z]([-a-z0-9]*[a-z0-9])?$/, 'must start with a lower-case letter and contain only lower-case letters, digits and "-" (it prefixes Service names), e.g. "kvroute"')
      .default('kvroute'),
    namespace: dnsLabel.default('llm-d'),
    /** IP family of the pod IPs (IPv6: the KV-event topic brackets the address, as the EPP expects). */
    ipFamily: z.enum(['IPv4', 'IPv6']).default('IPv4'),
    model: ModelSchema.default({}),
    kvCache: KvCacheSchema.default({}),
    /** `deployments` (plain Deployments) or `modelservice` (one llm-d ModelService CR; operator deprecated upstream). */
    workloadMode: z.enum(['deployments', 'modelservice']).default('deployments'),
    decode: ServerPoolSchema(3).default({ replicas: 3 }),
    prefill: ServerPoolSchema(2).default({ replicas: 2 }),
    /** Prefill/decode disaggregation (NIXL, routing sidecar). */
    pd: z
      .object({
        enabled: z.boolean().default(true),
        /** Uncached prompt tokens above which a request is prefilled remotely. */
        nonCachedTokensThreshold: z.number().int().min(0).default(256),
      })
      .default({}),
    accelerator: AcceleratorSchema.default({}),
    images: ImagesSchema.default({}),
    gateway: GatewaySchema.default({}),
    epp: EppSchema.default({}),
    redis: RedisSchema.default({}),
    monitoring: MonitoringSchema.default({}),
    argocd: ArgoCdSchema.default({}),
    verify: VerifySchema.default({}),
  })
  .strict();

/** A fully defaulted deployment config. */
export type DeploymentConfig = z.infer<typeof DeploymentConfigSchema>;
/** What a user writes (every field optional). */
export type DeploymentConfigInput = z.input<typeof DeploymentConfigSchema>;

/** Thrown for an invalid deployment config; `issues` lists each problem as "path: message (got value)". */
export class DeploymentConfigError extends Error {
  constructor(
    message: string,
    readonly issues: readonly string[],
  ) {
    super(message);
    this.name = 'DeploymentConfigError';
  }
}

/**
 * Parse, default and cross-check a deployment config.
 * @param source what the input came from (file name), used in the error message
 * @throws DeploymentConfigError naming every bad field with its value and the fix
 */
export function parseDeploymentConfig(input: unknown, source = 'deployment config'): DeploymentConfig {
  const r = DeploymentConfigSchema.safeParse(input ?? {});
  let issues: string[];
  if (r.success) {
    issues = crossFieldProblems(r.data).map((q) => `${q.path}: ${q.message} (got ${showValue(q.value)})`);
    if (issues.length === 0) return r.data;
  } else {
    issues = describeIssues(r.error.issues, input);
  }
  throw new DeploymentConfigError(`${source} is invalid:\n  - ${issues.join('\n  - ')}`, issues);
}

/** Read a YAML deployment config file and validate it with {@link parseDeploymentConfig}. */
export function loadDeploymentConfig(file: string): DeploymentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new DeploymentConfigError(`cannot read deployment config ${file}: ${(e as Error).message}; check the KVROUTE_CONFIG path`, [
      `(file): cannot read ${file}`,
    ]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new DeploymentConfigError(`${file} is not valid YAML: ${(e as Error).message}`, [`(file): YAML syntax error`]);
  }
  return parseDeploymentConfig(doc, file);
}
