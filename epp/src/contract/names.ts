/**
 * Names that the EPP, the vLLM pods, the gateway and the cdk8s constructs must agree on.
 * This module has no runtime dependencies: the cdk8s app imports it as well as the EPP.
 * Change a value here and both sides change together.
 */

/** Ports of the EPP container. */
export const EppPorts = {
  /** Envoy ext_proc gRPC (also serves grpc.health.v1). */
  grpc: 9002,
  /** gRPC health only (liveness/readiness probes). */
  grpcHealth: 9003,
  /** HTTP: /metrics, /healthz, /readyz, POST /v1/score. */
  http: 9090,
  /** ZeroMQ SUB socket that vLLM pods publish KV events to. */
  zmq: 5557,
} as const;

/** Named ports of the EPP Service (referenced by monitors and network policies). */
export const EppPortNames = {
  grpc: 'grpc-ext-proc',
  grpcHealth: 'grpc-health',
  http: 'http-metrics',
  zmq: 'zmq-kv-events',
} as const;

/** Ports of a vLLM model-server pod. */
export const VllmPorts = {
  /** Port the gateway sends traffic to (routing sidecar on decode pods, vLLM itself otherwise). */
  serving: 8000,
  /** vLLM's own port behind the routing sidecar on decode pods. */
  vllmBehindSidecar: 8200,
  /** ZeroMQ replay (ROUTER) socket vLLM binds when `replay_endpoint` is set. */
  kvEventsReplay: 5556,
  /** NIXL side channel for P/D KV transfer. */
  nixlSideChannel: 5600,
} as const;

/** Pod label keys. */
export const Labels = {
  /** `decode`, `prefill` or `both` (llm-d convention). */
  role: 'llm-d.ai/role',
  /** Marks every pod that serves the model (the InferencePool selector). */
  inferenceServing: 'llm-d.ai/inference-serving',
  /** Model label used by llm-d. */
  model: 'llm-d.ai/model',
} as const;

export const Roles = {
  decode: 'decode',
  prefill: 'prefill',
  both: 'both',
} as const;
export type Role = (typeof Roles)[keyof typeof Roles];

/** HTTP header and metadata names of the Gateway API Inference Extension protocol and llm-d. */
export const Headers = {
  /** Picked endpoint(s), `ip:port[,ip:port...]`, IPv6 bracketed. */
  destinationEndpoint: 'x-gateway-destination-endpoint',
  /** Prefill pod for the decode pod's routing sidecar (P/D). */
  prefillerHostPort: 'x-prefiller-host-port',
  /** Session affinity key. */
  sessionId: 'x-session-id',
  /** InferenceObjective name; its priority decides admission (priority < 0 = sheddable). */
  inferenceObjective: 'x-gateway-inference-objective',
  /** Subset hint key inside the `envoy.lb.subset_hint` filter metadata. */
  destinationEndpointSubset: 'x-gateway-destination-endpoint-subset',
  /** Endpoint the gateway really used (response side). */
  destinationEndpointServed: 'x-gateway-destination-endpoint-served',
} as const;

export const MetadataNamespaces = {
  /** Dynamic metadata namespace that carries the pick to Envoy's load balancer. */
  lb: 'envoy.lb',
  /** Filter metadata namespace of the subset hint. */
  subsetHint: 'envoy.lb.subset_hint',
} as const;

/** KV-event topic helpers: vLLM publishes on `kv@<podIP>:<port>@<model>`. */
export const KvEventsTopic = {
  prefix: 'kv@',
  /** Topic string a pod publishes on. */
  format(endpoint: string, model: string): string {
    return `kv@${endpoint}@${model}`;
  },
} as const;

/** Prefix-caching hash algorithms the EPP reproduces (vLLM `--prefix-caching-hash-algo`). */
export const HashAlgos = ['sha256_cbor', 'sha256_cbor_64bit'] as const;
export type HashAlgo = (typeof HashAlgos)[number];

/** Environment variable that carries the Redis password into the EPP (value from a Secret). */
export const RedisPasswordEnv = 'KVROUTE_REDIS_PASSWORD';
/** Environment variable that carries the Hugging Face token (value from a Secret). */
export const HfTokenEnv = 'HF_TOKEN';
/** Path where the EPP expects its config file inside the container. */
export const EppConfigPath = '/etc/kvroute/epp-config.yaml';

/**
 * Node flags the EPP's serving process is started with: they go on node's command line (the
 * image's ENTRYPOINT, the chart's container command), because NODE_OPTIONS refuses V8 flags
 * outside node's allow-list (`--no-allocation-site-pretenuring` among them) and
 * `v8.setFlagsFromString` after start is unsafe. Why each flag: src/util/v8-tuning.ts.
 */
export const EppServingV8Flags: readonly string[] = ['--no-allocation-site-pretenuring'];
