/**
 * The EPP config schema. One schema, three users: `kvroute-epp serve --config`, the flags (which
 * build the same object), and the cdk8s constructs that render the EPP ConfigMap.
 * Only zod is imported, so the cdk8s app can depend on this module without the EPP runtime.
 */
import { z } from 'zod';
import { describeIssues } from './issues.js';
import { EppPorts, HashAlgos, KvEventsTopic, RedisPasswordEnv } from './names.js';
import { pluginIssues } from './scheduling-plugins.js';

const isPowerOfTwo = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

const port = z.number().int().min(1).max(65535);
/** A port to listen on; 0 picks a free one (tests, local runs). */
const listenPort = z.number().int().min(0).max(65535);

/** `ip:port` (IPv6 in brackets). */
export const EndpointAddressSchema = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]@,=]+):\d{1,5}$/, 'expected "ip:port" (IPv6 as "[addr]:port")');

export const StaticEndpointSchema = z.object({
  /** `ip:port` the gateway sends traffic to; also the pod id in the KV-event topic. */
  address: EndpointAddressSchema,
  /** Human-readable name (pod name). */
  name: z.string().min(1),
  /** `decode`, `prefill` or `both`. */
  role: z.enum(['decode', 'prefill', 'both']).default('both'),
  /** URL of the pod's vLLM `/metrics`; defaults to `http://<address>/metrics`. */
  metricsUrl: z.string().url().optional(),
});
export type StaticEndpoint = z.infer<typeof StaticEndpointSchema>;

/** InferencePool API groups discovery can watch (v1, then the older v1alpha2). */
export const InferencePoolGroups = ['inference.networking.k8s.io', 'inference.networking.x-k8s.io'] as const;

export const DiscoverySchema = z.discriminatedUnion('mode', [
  z.object({
    mode: z.literal('static'),
    endpoints: z.array(StaticEndpointSchema).default([]),
  }),
  z.object({
    mode: z.literal('kubernetes'),
    /** InferencePool (inference.networking.k8s.io/v1) to watch. */
    poolName: z.string().min(1),
    /** Namespace of the pool and its pods; defaults to the EPP's own namespace. */
    poolNamespace: z.string().min(1).optional(),
    /**
     * API group of the InferencePool: `inference.networking.k8s.io` (v1) or the older
     * `inference.networking.x-k8s.io` (v1alpha2). llm-d's `--pool-group`.
     * @default "inference.networking.k8s.io"
     */
    poolGroup: z.enum(InferencePoolGroups).optional(),
  }),
  z.object({
    /** Pods found by a label selector, without an InferencePool (llm-d's standalone mode). */
    mode: z.literal('selector'),
    /** Label selector of the model-server pods, e.g. "app=vllm,env=prod" (llm-d's `--endpoint-selector`). */
    selector: z.string().min(1),
    /** Ports of each pod to route to (llm-d's `--endpoint-target-ports`). */
    targetPorts: z.array(port).min(1),
    /** Namespace of the pods; defaults to the EPP's own namespace. */
    namespace: z.string().min(1).optional(),
  }),
]);

/** A Prometheus metric, optionally narrowed by labels: `name` or `name{label=value,...}` (llm-d's metric flags). */
export const MetricSpecSchema = z
  .string()
  .regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{\s*[a-zA-Z_][a-zA-Z0-9_]*\s*=\s*[^,{}=]*(,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*=\s*[^,{}=]*)*\})?$/, 'expected a metric name, optionally with labels: name or name{label=value,...}');

/**
 * Where and what the EPP scrapes on each model-server pod. vLLM's names are the default; llm-d's
 * chart sets SGLang's or TensorRT-LLM's through its metric flags.
 */
export const ModelServerMetricsSchema = z
  .object({
    /** Waiting requests. @default "vllm:num_requests_waiting" */
    queued: MetricSpecSchema.default('vllm:num_requests_waiting'),
    /** Running requests. @default "vllm:num_requests_running" */
    running: MetricSpecSchema.default('vllm:num_requests_running'),
    /** KV-cache usage, 0–1; "" = not exported (load scorers treat it as unknown). @default "vllm:kv_cache_usage_perc" */
    kvCacheUsage: z.union([z.literal(''), MetricSpecSchema]).default('vllm:kv_cache_usage_perc'),
    /** Info metric whose `block_size` label is the pod's KV block size; "" = none. @default "vllm:cache_config_info" */
    cacheInfo: z.union([z.literal(''), MetricSpecSchema]).default('vllm:cache_config_info'),
    /** @default "http" */
    scheme: z.enum(['http', 'https']).default('http'),
    /** @default "/metrics" */
    path: z.string().startsWith('/').default('/metrics'),
    /** Port to scrape; unset = the pod's serving port. @default undefined */
    port: port.optional(),
    /** With https: accept any certificate (model servers usually serve self-signed ones). @default true */
    insecureSkipVerify: z.boolean().default(true),
  })
  .strict();

export const EventsSchema = z.object({
  /** `bind`: the EPP binds and vLLM connects (default). `connect`: the EPP connects to each discovered pod. */
  mode: z.enum(['bind', 'connect']).default('bind'),
  /** Bind address in `bind` mode. */
  zmqBind: z.string().default(`tcp://*:${EppPorts.zmq}`),
  /** Port vLLM binds its PUB socket on, in `connect` mode. */
  podPublisherPort: port.default(EppPorts.zmq),
  /** Port of the pod's replay (ROUTER) socket; unset = no replay, gaps mark the pod stale. */
  podReplayPort: port.optional(),
  /** ZMQ subscription prefix. */
  topicFilter: z.string().default(KvEventsTopic.prefix),
  /** Number of pods whose events are applied concurrently (per-pod order is always kept). */
  concurrency: z.number().int().min(1).max(1024).default(8),
});

export const IndexSchema = z.discriminatedUnion('backend', [
  z.object({
    backend: z.literal('memory'),
    /** Memory budget of the in-memory index in bytes; least recently used keys are evicted past it. */
    memoryBudgetBytes: z.number().int().min(1 << 20).default(512 * 1024 * 1024),
    /**
     * Snapshot file of the index (kvindex/backends/snapshot.ts): loaded at start, written every
     * `intervalMs` and on shutdown, so a restarted EPP starts warm instead of empty.
     * @default undefined (no snapshot: a restart starts with an empty index)
     */
    snapshot: z
      .object({
        /** File path (a volume that outlives the container, e.g. an emptyDir). */
        path: z.string().min(1),
        /** Time between periodic snapshots. @default 30000 */
        intervalMs: z.number().int().min(1000).default(30_000),
      })
      .strict()
      .optional(),
  }),
  z.object({
    backend: z.literal('redis'),
    /** `redis://host:port[/db]` without a password; the password comes from `passwordEnv`. */
    url: z.string().regex(/^rediss?:\/\/[^@\s]+$/, 'expected redis://host:port[/db] with no credentials in the URL'),
    /** Environment variable holding the password (set from a Secret). */
    passwordEnv: z.string().default(RedisPasswordEnv),
    /** Key prefix, so several models or fleets can share one Redis. */
    keyPrefix: z.string().default('kvroute:'),
    /** Per-command timeout; past it a lookup counts as "no hits". */
    commandTimeoutMs: z.number().int().min(1).default(50),
  }),
]);

export const TokenizerSchema = z.object({
  /** Directory with `tokenizer.json` (and `tokenizer_config.json` for the chat template). */
  path: z.string().optional(),
  /** Hugging Face repo to download from when `path` is unset (token from HF_TOKEN). */
  hfRepo: z.string().optional(),
  /** Cache directory for downloaded tokenizer files. */
  cacheDir: z.string().default('/tmp/kvroute-tokenizers'),
  /** Worker threads that tokenize off the event loop. */
  workers: z.number().int().min(1).max(64).default(2),
  /** Memory budget of the prefix store (text prefix → token ids) in bytes. */
  prefixStoreBytes: z.number().int().min(0).default(64 * 1024 * 1024),
});

export const ScorerWeightsSchema = z.object({
  /** Precise prefix-cache scorer (KV-event index). */
  prefix: z.number().min(0).default(3),
  /** Waiting-queue depth scorer. */
  queue: z.number().min(0).default(2),
  /** KV-cache utilization scorer. */
  kvCacheUtilization: z.number().min(0).default(2),
  /** The EPP's own in-flight requests per pod. */
  activeRequests: z.number().min(0).default(1),
  /** Session affinity (`x-session-id`). */
  sessionAffinity: z.number().min(0).default(0),
});

/**
 * The predicted-TTFT scorer (scheduling/predicted-ttft.ts), the default `scheduling.preset`. Costs
 * are in prefill-token equivalents: what one engine step spends on something, expressed as the
 * number of prompt tokens it could have prefilled in that time. The defaults are physical ratios
 * that hold across GPUs and dense models, not fitted values.
 */
export const PredictedTtftSchema = z
  .object({
    /**
     * Prefill throughput of one pod, tokens/s: turns costs into the milliseconds logs and
     * `/v1/score` show, and drains queued prefill (`queueDrain`). 40,000 ≈ an 8B dense model on one
     * H100 (≈ 2·8·10⁹ FLOP per token at ≈ 60 % of 990 TFLOP/s); set it for other models/GPUs.
     * @default 40000
     */
    prefillTokensPerSecond: z.number().positive().default(40_000),
    /**
     * The pods' `--max-num-batched-tokens`: prompt tokens one engine step prefills (chunked
     * prefill). vLLM's V1 default for the OpenAI server on large GPUs.
     * @default 8192
     */
    chunkTokens: z.number().int().positive().default(8192),
    /**
     * Fixed cost of one engine step, in tokens: a step reads every weight once, which takes as long
     * as computing as many tokens as the GPU's roofline ridge point (peak FLOP/s ÷ memory bytes/s;
     * BF16 weights are 2 bytes and cost 2 FLOP per token): H100 989 T ÷ 3.35 TB/s ≈ 295, A100
     * 312 T ÷ 1.55 TB/s ≈ 200.
     * @default 300
     */
    stepOverheadTokens: z.number().min(0).default(300),
    /**
     * Cost of one decoding sequence in a step, in tokens: its new token takes one token's compute
     * and one slot of the step's token budget.
     * @default 1
     */
    decodeSequenceTokens: z.number().min(0).default(1),
    /**
     * Cost of reading one context token's KV cache in a decode step, in tokens: KV bytes per token
     * × ridge point ÷ (2 FLOP × parameters); Llama-3.1-8B on H100: 128 KiB × 295 ÷ 16·10⁹ ≈ 0.0024.
     * @default 0.0025
     */
    contextTokenFactor: z.number().min(0).default(0.0025),
    /**
     * Extra cost per uncached prompt token. 0 ranks by this request's TTFT alone (greedy: it gives
     * away hit rate whenever a cold pod is a little faster); 1 charges the prefill work a second
     * time, for the requests that arrive at the pod while it runs and wait behind it.
     * @default 1
     */
    missPenalty: z.number().min(0).default(1),
    /**
     * Below this fraction of the prompt cached on the best pod, the cache is ignored and the
     * request is placed by load alone (every pod predicted with the whole prompt uncached). Such a
     * request starts a new context (a new session, a new document) whose later turns follow it to
     * the pod it lands on; a short shared prefix (a system prompt) saves at most that fraction of
     * one prefill but would pull every new context onto the few pods that hold it, and their later
     * turns queue there. 0 = always use the cache. 0.3 is also SGLang's default cache threshold.
     * @default 0.3
     */
    minCachedFraction: z.number().min(0).max(1).default(0.3),
    /**
     * Record each routed prompt's blocks as speculative index entries for the chosen pod.
     * @default true
     */
    speculative: z.boolean().default(true),
    /**
     * How long a speculative entry outlives its request's first response chunk, ms: the time for
     * the pod's KV events to reach the index (one engine step, ZMQ, the event pool), with margin.
     * @default 2000
     */
    speculativeGraceMs: z.number().int().min(0).default(2000),
    /**
     * Divide each pod's cost by 1 − its projected KV occupancy (scraped usage plus the tokens
     * about to be allocated, over `num_gpu_blocks` from `vllm:cache_config_info`): a pod short
     * of KV blocks makes new requests wait for running ones to finish, or preempts them, and that
     * delay grows as 1 ÷ (1 − occupancy) as for any resource near saturation.
     * @default true
     */
    memoryPressure: z.boolean().default(true),
    /**
     * Count each pod's queued prefill as draining at `prefillTokensPerSecond` while it waits for its
     * first chunk (the pod computes it meanwhile), instead of in full until the chunk arrives; the
     * first chunk settles the account. With it, `prefillTokensPerSecond` matters for the ranking.
     * @default true
     */
    queueDrain: z.boolean().default(true),
  })
  .strict();

export const PluginSpecSchema = z
  .object({
    /** Plugin type, llm-d's names (see PLUGIN_TYPES in contract/scheduling-plugins.ts). */
    type: z.string().min(1),
    /** Name profiles refer to; defaults to the type. */
    name: z.string().min(1).optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export const ProfileSpecSchema = z
  .object({
    name: z.string().min(1),
    plugins: z.array(z.object({ pluginRef: z.string().min(1), weight: z.number().min(0).optional() }).strict()).min(1),
  })
  .strict();

export const SchedulingSchema = z
  .object({
  /**
   * The default composition when no `plugins`/`profiles` are given: `predicted-ttft` (one scorer:
   * lowest predicted time to first token, see `predictedTtft`; `weights.sessionAffinity` still
   * applies) or `llmd-suite` (llm-d's weighted scorers, see `weights`).
   * @default "predicted-ttft"
   */
  preset: z.enum(['predicted-ttft', 'llmd-suite']).default('predicted-ttft'),
  /** Options of the predicted-TTFT scorer (preset `predicted-ttft`, plugin `predicted-ttft-scorer`). */
  predictedTtft: PredictedTtftSchema.default({}),
  /**
   * Scorer weights of the `llmd-suite` preset (a weight of 0 leaves the scorer out); only
   * `sessionAffinity` applies to `predicted-ttft`; ignored when `plugins`/`profiles` are set.
   */
  weights: ScorerWeightsSchema.default({}),
  /**
   * llm-d style plugin list (EndpointPickerConfig `plugins`); with `profiles`, replaces `weights`.
   * @default undefined (the scheduler is composed from `weights`)
   */
  plugins: z.array(PluginSpecSchema).optional(),
  /**
   * llm-d style scheduling profiles referencing `plugins` (one primary profile, or `decode` +
   * `prefill` for P/D). @default undefined
   */
  profiles: z.array(ProfileSpecSchema).optional(),
  /** Device-tier weights for the prefix scorer. */
  tierWeights: z.record(z.string(), z.number().min(0)).default({ gpu: 1.0, cpu: 0.8 }),
  /**
   * Metric names and location on the model servers.
   * @default undefined (vLLM's names at http://<pod>/metrics)
   */
  modelServerMetrics: ModelServerMetricsSchema.optional(),
  /** Metrics scrape interval per pod. */
  scrapeIntervalMs: z.number().int().min(5).default(50),
  /** Scrape timeout. */
  scrapeTimeoutMs: z.number().int().min(1).default(200),
  /** Metrics older than this are treated as unknown, not as zero load. */
  metricsStalenessMs: z.number().int().min(1).default(500),
  /** P/D disaggregation: prefill profile when the uncached suffix exceeds the threshold. */
  pd: z
    .object({
      enabled: z.boolean().default(false),
      nonCachedTokensThreshold: z.number().int().min(0).default(256),
    })
    .default({}),
  })
  .superRefine((v, ctx) => {
    for (const issue of pluginIssues(v.plugins, v.profiles)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: issue.path, message: issue.message });
  });

/**
 * Admission (GIE's legacy admission with the utilization detector): a request whose objective has
 * a negative priority is sheddable and gets 429 while the pool is saturated.
 */
export const AdmissionSchema = z
  .object({
    /**
     * InferenceObjective name (request header `x-gateway-inference-objective`) → priority. A
     * request without the header, or naming an objective not listed, has priority 0.
     * @default {}
     */
    objectives: z.record(z.string().min(1), z.number().int()).default({}),
    /** Waiting requests at which an endpoint counts as saturated. @default 5 */
    queueDepthThreshold: z.number().positive().default(5),
    /** KV-cache usage (0–1) at which an endpoint counts as saturated. @default 0.8 */
    kvCacheUtilThreshold: z.number().gt(0).max(1).default(0.8),
    /**
     * With kubernetes discovery, also read the pool's InferenceObjective objects
     * (inference.networking.x-k8s.io/v1alpha2, `spec.priority`); they take precedence over
     * `objectives`. @default true
     */
    watchObjectives: z.boolean().default(true),
  })
  .strict();

export const ServerSchema = z.object({
  grpcPort: listenPort.default(EppPorts.grpc),
  healthPort: listenPort.default(EppPorts.grpcHealth),
  httpPort: listenPort.default(EppPorts.http),
  /** Bind host for all listeners. */
  host: z.string().default('0.0.0.0'),
  /** TLS on the ext_proc port: off, self-signed, or a given certificate. */
  tls: z
    .discriminatedUnion('mode', [
      z.object({ mode: z.literal('off') }),
      z.object({ mode: z.literal('self-signed') }),
      z.object({ mode: z.literal('files'), certFile: z.string(), keyFile: z.string() }),
    ])
    .default({ mode: 'off' }),
  /** Largest request body accepted (413 beyond). */
  maxBodyBytes: z.number().int().min(1024).default(8 * 1024 * 1024),
});

export const EppConfigSchema = z
  .object({
    apiVersion: z.literal('kvroute.dev/v1alpha1').default('kvroute.dev/v1alpha1'),
    kind: z.literal('EppConfig').default('EppConfig'),
    /** Served model name (vLLM `--served-model-name`). */
    model: z.string().min(1, 'model must be the served model name, e.g. "meta-llama/Llama-3.2-1B"'),
    /** vLLM `--block-size`: tokens per KV block. */
    blockSize: z
      .number()
      .int()
      .refine(isPowerOfTwo, (v) => ({ message: `blockSize ${v} is not a power of two; use vLLM's --block-size (e.g. 16)` }))
      .default(16),
    /** vLLM `--prefix-caching-hash-algo`. */
    hashAlgo: z.enum(HashAlgos).default('sha256_cbor'),
    /** vLLM's PYTHONHASHSEED (a string, used verbatim). */
    hashSeed: z.string().default('42'),
    server: ServerSchema.default({}),
    discovery: DiscoverySchema.default({ mode: 'static', endpoints: [] }),
    events: EventsSchema.default({}),
    index: IndexSchema.default({ backend: 'memory' }),
    tokenizer: TokenizerSchema.default({}),
    scheduling: SchedulingSchema.default({}),
    admission: AdmissionSchema.default({}),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  })
  .strict();

/** A fully defaulted EPP config. */
export type EppConfig = z.infer<typeof EppConfigSchema>;
/** What a user may write (defaults optional). */
export type EppConfigInput = z.input<typeof EppConfigSchema>;

/** Thrown for an invalid config; the message lists every problem with its path and value. */
export class EppConfigError extends Error {
  constructor(
    message: string,
    readonly issues: readonly string[],
  ) {
    super(message);
    this.name = 'EppConfigError';
  }
}

/** Parse and default an EPP config; throws EppConfigError naming field, value and fix. */
export function parseEppConfig(input: unknown, source = 'EPP config'): EppConfig {
  const r = EppConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const issues = describeIssues(r.error.issues, input);
  throw new EppConfigError(`invalid ${source}:\n  - ${issues.join('\n  - ')}`, issues);
}
