/**
 * Composes the running EPP from a validated config, in order:
 *   1. metrics registry and logger
 *   2. KV-block index (memory or Redis) and the read-path Indexer
 *   3. endpoints (static list) and the vLLM metrics scraper
 *   4. the KV-event pool (ZeroMQ SUB; bind, or connect to each endpoint)
 *   5. tokenization (when a tokenizer is configured)
 *   6. the scheduler and its request director
 *   7. the ext_proc gRPC server (9002) and gRPC health (9003)
 *   8. the HTTP port: /metrics, /healthz, /readyz, POST /v1/score
 * and stops them in reverse order: readiness drops first, open ext_proc streams are drained.
 */
import { readFileSync } from 'node:fs';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { ScoreService, type PromptTokenizer } from '../http/score.js';
import type { EppConfig } from '../contract/config.js';
import { EndpointStore, type Endpoint } from '../datalayer/endpoint-store.js';
import { InferenceObjectiveWatch } from '../datalayer/k8s-objectives.js';
import { KubernetesDiscovery } from '../datalayer/k8s-discovery.js';
import { MetricsScraper, metricNamesFrom, metricsUrlFor, type MetricsLocation } from '../datalayer/metrics-scraper.js';
import { Indexer } from '../kvindex/indexer.js';
import { InstrumentedIndex } from '../kvindex/backends/instrumented-index.js';
import { MemoryIndex } from '../kvindex/backends/memory-index.js';
import { RedisIndex } from '../kvindex/backends/redis-index.js';
import { PrefixScorer } from '../kvindex/scorer.js';
import type { Index } from '../kvindex/types.js';
import { podEventAddresses } from '../kvevents/addresses.js';
import { KvEventPool } from '../kvevents/pool.js';
import { loadSnapshot, saveSnapshot, SnapshotError, type SnapshotFingerprint } from '../kvindex/backends/snapshot.js';
import { ConfigReloader } from './config-reload.js';
import { buildScheduler } from '../scheduling/build.js';
import { SchedulingDirector } from '../scheduling/director.js';
import { CacheAccuracy } from '../accuracy/cache-accuracy.js';
import { Diagnosis } from '../accuracy/diagnosis.js';
import { ExtProcServer } from '../extproc/grpc-server.js';
import { HttpServer } from '../http/http-server.js';
import { Tokenization, tokenizationMetrics } from '../tokenization/index.js';
import { createLogger, type Logger } from '../util/logger.js';
import { IndexMetrics, InfoMetrics } from '../contract/metrics.js';

export interface EppRuntimeOptions {
  /**
   * Logger.
   * @default a pino JSON logger on stderr at config.logLevel
   */
  readonly logger?: Logger;
  /**
   * Environment (Redis password, HF token).
   * @default process.env
   */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Time open ext_proc streams get to finish on stop before they are cancelled.
   * @default 10000
   */
  readonly drainMs?: number;
  /**
   * Reload the config file when it changes (`serve --config`): `load` reads and validates it (with
   * the flags on top); see config-reload.ts for what is applied live.
   * @default undefined (no reload)
   */
  readonly reload?: { readonly file: string; readonly load: () => EppConfig; readonly intervalMs?: number };
}

/** The endpoint a static config entry describes. */
export function staticEndpoint(e: { address: string; name: string; role: Endpoint['role']; metricsUrl?: string }, location?: MetricsLocation): Endpoint {
  return { address: e.address, name: e.name, role: e.role, metricsUrl: e.metricsUrl ?? metricsUrlFor(e.address, location) };
}

function readServiceAccountNamespace(): string | undefined {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export class EppRuntime {
  readonly registry = new Registry();
  readonly logger: Logger;
  readonly store: EndpointStore;
  readonly index: Index;
  readonly indexer: Indexer;
  readonly pool: KvEventPool;
  readonly scraper: MetricsScraper;
  readonly director: SchedulingDirector;
  /** Findings about wrong cache predictions (`GET /v1/diagnosis`). */
  readonly diagnosis: Diagnosis;
  readonly accuracy: CacheAccuracy;
  private tokenization: Tokenization | undefined;
  private discovery: KubernetesDiscovery | undefined;
  private objectives: InferenceObjectiveWatch | undefined;
  private readonly env: NodeJS.ProcessEnv;
  private http: HttpServer | undefined;
  private extproc: ExtProcServer | undefined;
  private ready = false;
  private readonly drainMs: number;
  private readonly memoryIndex: MemoryIndex | undefined;
  private snapshotTimer: NodeJS.Timeout | undefined;
  private snapshotSaving: Promise<void> = Promise.resolve();
  private readonly snapshotMetrics: { loads: Counter<'result'>; saves: Counter<'result'>; dropped: Counter; keys: Gauge } | undefined;
  private reloader: ConfigReloader | undefined;
  private readonly reloadOpts: EppRuntimeOptions['reload'];
  /** Set once the snapshot was loaded (a runtime that failed before must not overwrite it). */
  private started = false;
  /** Admission settings in effect (swapped by a config reload). */
  private liveAdmission: EppConfig['admission'];
  /** Bound ports after start. */
  httpPort = 0;
  grpcPort = 0;
  healthPort: number | undefined;
  /** PEM of the ext_proc certificate when TLS is on (self-signed or from files). */
  certPem: string | undefined;

  private constructor(
    readonly config: EppConfig,
    opts: EppRuntimeOptions,
  ) {
    const env = opts.env ?? process.env;
    this.env = env;
    this.drainMs = opts.drainMs ?? 10_000;
    this.reloadOpts = opts.reload;
    this.liveAdmission = config.admission;
    this.logger = opts.logger ?? createLogger(config.logLevel);
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: InfoMetrics.info.name,
      help: 'EPP build information.',
      labelNames: ['commit', 'build_ref'],
      registers: [this.registry],
    }).set({ commit: env.KVROUTE_COMMIT ?? 'unknown', build_ref: env.KVROUTE_VERSION ?? 'dev' }, 1);

    // 2. index
    const ic = config.index;
    let backend: Index;
    if (ic.backend === 'redis') {
      backend = new RedisIndex({
        url: ic.url,
        password: env[ic.passwordEnv] || undefined,
        keyPrefix: ic.keyPrefix,
        commandTimeoutMs: ic.commandTimeoutMs,
        logger: this.logger.child({ component: 'redis-index' }),
        registry: this.registry,
      });
    } else {
      backend = new MemoryIndex({ memoryBudgetBytes: ic.memoryBudgetBytes, registry: this.registry });
      this.memoryIndex = backend as MemoryIndex;
    }
    this.snapshotMetrics =
      ic.backend === 'memory' && ic.snapshot
        ? {
            loads: new Counter({ name: IndexMetrics.snapshotLoads.name, help: 'Index snapshot loads at start by result: ok, absent, corrupt, foreign (refused).', labelNames: ['result'], registers: [this.registry] }),
            saves: new Counter({ name: IndexMetrics.snapshotSaves.name, help: 'Index snapshot writes by result (ok, error).', labelNames: ['result'], registers: [this.registry] }),
            dropped: new Counter({ name: IndexMetrics.snapshotDroppedEntries.name, help: 'Snapshot entries dropped at load because their pod is no longer an endpoint.', registers: [this.registry] }),
            keys: new Gauge({ name: IndexMetrics.snapshotKeys.name, help: 'Request keys in the last snapshot written or loaded.', registers: [this.registry] }),
          }
        : undefined;
    this.index = new InstrumentedIndex(backend, { registry: this.registry });
    this.indexer = new Indexer({
      index: this.index,
      blockSize: config.blockSize,
      hashSeed: config.hashSeed,
      engineAlgo: config.hashAlgo,
      scorer: new PrefixScorer({ tierWeights: config.scheduling.tierWeights }),
    });

    // 3. endpoints and metrics
    this.store = new EndpointStore({ metricsStalenessMs: config.scheduling.metricsStalenessMs });
    this.scraper = new MetricsScraper({
      store: this.store,
      logger: this.logger.child({ component: 'scraper' }),
      intervalMs: config.scheduling.scrapeIntervalMs,
      timeoutMs: config.scheduling.scrapeTimeoutMs,
      expectedBlockSize: config.blockSize,
      registry: this.registry,
      metricNames: metricNamesFrom(config.scheduling.modelServerMetrics),
      insecureSkipVerify: config.scheduling.modelServerMetrics?.insecureSkipVerify ?? false,
    });

    // 4. events, and the check of predicted against actual cache hits they feed
    this.diagnosis = new Diagnosis({
      blockSize: config.blockSize,
      hashSeed: config.hashSeed,
      hashAlgo: config.hashAlgo,
      logger: this.logger.child({ component: 'diagnosis' }),
      registry: this.registry,
    });
    this.accuracy = new CacheAccuracy({
      blockSize: config.blockSize,
      index: this.index,
      registry: this.registry,
      diagnosis: this.diagnosis,
      logger: this.logger.child({ component: 'cache-accuracy' }),
    });
    const ev = config.events;
    this.pool = new KvEventPool({
      index: this.index,
      blockSize: config.blockSize,
      hashSeed: config.hashSeed,
      hashAlgo: config.hashAlgo,
      mode: ev.mode,
      bindAddress: ev.zmqBind,
      topicFilter: ev.topicFilter,
      concurrency: ev.concurrency,
      // A shared Redis index already holds what another replica applied: replaying a joining
      // pod's history from 0 would count its blocks twice.
      replayOnJoin: ic.backend !== 'redis',
      // Only endpoints' events (a flood for made-up pods would fill the index and evict real
      // entries). An empty static list accepts every pod (local runs and tools without a list).
      acceptPod: (pod) => this.store.get(pod) !== undefined || (config.discovery.mode === 'static' && this.store.size === 0),
      registry: this.registry,
      logger: this.logger.child({ component: 'kv-events' }),
      podObserver: this.diagnosis,
    });
    this.store.onChange((event, endpoint) => {
      if (event === 'added' && (ev.mode === 'connect' || ev.podReplayPort !== undefined)) {
        // connect mode: subscribe to the pod's PUB socket; both modes: where to ask for replays.
        const addresses = podEventAddresses(endpoint.address, ev.podPublisherPort, ev.podReplayPort);
        this.pool.addPod(endpoint.address, ev.mode === 'connect' ? addresses.publisher : undefined, addresses.replay);
      }
      if (event === 'removed') {
        this.accuracy.forgetPod(endpoint.address);
        void this.pool.removePod(endpoint.address).catch(() => undefined);
        void this.index.clear(endpoint.address).catch((err: unknown) => this.logger.warn({ err, pod: endpoint.address }, 'clearing a removed pod failed'));
        this.logger.info({ pod: endpoint.address }, 'endpoint removed; its index entries are cleared');
      }
    });

    // 6. scheduling
    const built = buildScheduler({ config, indexer: this.indexer });
    this.director = new SchedulingDirector({
      scheduler: built.scheduler,
      sessions: built.sessions,
      store: this.store,
      logger: this.logger.child({ component: 'scheduler' }),
      model: config.model,
      tokenizer: this.tokenizerView(),
      registry: this.registry,
      admission: this.admissionView(),
      objectivePriority: (name) => this.objectives?.priorityOf(name),
      accuracy: this.accuracy,
    });
  }

  /** Builds and starts every component; rejects (after cleaning up) if one cannot start. */
  static async start(config: EppConfig, opts: EppRuntimeOptions = {}): Promise<EppRuntime> {
    const rt = new EppRuntime(config, opts);
    try {
      await rt.startComponents();
    } catch (err) {
      await rt.stop();
      throw err;
    }
    return rt;
  }

  /** Admission options that always read the settings in effect (a reload swaps them). */
  private admissionView(): EppConfig['admission'] {
    this.liveAdmission = this.config.admission;
    const live = (): EppConfig['admission'] => this.liveAdmission;
    return {
      get objectives() {
        return live().objectives;
      },
      get queueDepthThreshold() {
        return live().queueDepthThreshold;
      },
      get kvCacheUtilThreshold() {
        return live().kvCacheUtilThreshold;
      },
      get watchObjectives() {
        return live().watchObjectives;
      },
    };
  }

  private snapshotFingerprint(): SnapshotFingerprint {
    const c = this.config;
    return { model: c.model, blockSize: c.blockSize, hashSeed: c.hashSeed, hashAlgo: c.hashAlgo };
  }

  /** Loads the index snapshot (memory index with `index.snapshot`); a bad one is refused, logged and counted. */
  private async loadIndexSnapshot(): Promise<void> {
    const ic = this.config.index;
    if (ic.backend !== 'memory' || !ic.snapshot || !this.memoryIndex) return;
    const d = this.config.discovery;
    const keep = d.mode === 'static' ? new Set(d.endpoints.map((e) => e.address)) : undefined;
    const t0 = Date.now();
    try {
      const r = await loadSnapshot(ic.snapshot.path, this.memoryIndex, this.snapshotFingerprint(), keep ? (pod) => keep.has(pod) : undefined);
      if (!r) {
        this.snapshotMetrics?.loads.inc({ result: 'absent' });
        this.logger.info({ path: ic.snapshot.path }, 'no index snapshot yet; starting with an empty index');
        return;
      }
      this.pool.restoreWatermarks(r.seqs);
      this.snapshotMetrics?.loads.inc({ result: 'ok' });
      this.snapshotMetrics?.dropped.inc(r.droppedEntries);
      this.snapshotMetrics?.keys.set(r.keys);
      this.logger.info(
        { path: ic.snapshot.path, keys: r.keys, entries: r.entries, droppedEntries: r.droppedEntries, droppedPods: r.droppedPods, createdAt: r.createdAt, ms: Date.now() - t0 },
        'index snapshot loaded',
      );
    } catch (err) {
      if (!(err instanceof SnapshotError)) throw err;
      this.snapshotMetrics?.loads.inc({ result: err.reason });
      this.logger.error({ path: ic.snapshot.path, reason: err.reason, err: err.message }, `index snapshot refused: ${err.message}`);
    }
  }

  /** Drops snapshot entries of pods that discovery no longer lists (kubernetes discovery). */
  private async dropAbsentSnapshotPods(): Promise<void> {
    if (!this.snapshotMetrics || this.config.discovery.mode === 'static') return;
    const present = new Set(this.store.list().map((e) => e.address));
    for (const pod of this.pool.watermarks().keys()) {
      if (present.has(pod)) continue;
      await this.pool.removePod(pod);
      this.logger.info({ pod }, 'snapshot entries of a pod no longer in the pool dropped');
    }
  }

  /** Writes the index snapshot now (periodic timer and shutdown); failures are logged and counted. */
  saveIndexSnapshot(): Promise<void> {
    const ic = this.config.index;
    if (ic.backend !== 'memory' || !ic.snapshot || !this.memoryIndex) return Promise.resolve();
    const path = ic.snapshot.path;
    const index = this.memoryIndex;
    this.snapshotSaving = this.snapshotSaving.then(async () => {
      const t0 = Date.now();
      try {
        const s = await saveSnapshot(path, index, this.snapshotFingerprint(), this.pool.watermarks());
        this.snapshotMetrics?.saves.inc({ result: 'ok' });
        this.snapshotMetrics?.keys.set(s.keys);
        this.logger.debug({ path, ...s, ms: Date.now() - t0 }, 'index snapshot written');
      } catch (err) {
        this.snapshotMetrics?.saves.inc({ result: 'error' });
        this.logger.error({ path, err: (err as Error).message }, `writing the index snapshot ${path} failed`);
      }
    });
    return this.snapshotSaving;
  }

  /** The ZMQ endpoint the event pool bound (bind mode). */
  get zmqEndpoint(): string | undefined {
    return this.pool.endpoint;
  }

  private tokenizerView(): PromptTokenizer {
    return {
      tokenizeCompletion: (model, prompt) => this.requireTokenizer().tokenizeCompletion(model, prompt),
      tokenizeChat: (model, messages) => this.requireTokenizer().tokenizeChat(model, messages),
    };
  }

  private requireTokenizer(): Tokenization {
    if (!this.tokenization) {
      throw new Error('no tokenizer is configured: start with --tokenizer <dir> or --tokenizer-hf-repo <repo>');
    }
    return this.tokenization;
  }

  private async startComponents(): Promise<void> {
    const c = this.config;
    await this.loadIndexSnapshot();
    this.started = true;
    await this.pool.start();
    if (c.discovery.mode === 'static') {
      const location = c.scheduling.modelServerMetrics;
      this.store.replaceAll(c.discovery.endpoints.map((e) => staticEndpoint(e, location)));
    } else {
      const d = c.discovery;
      // llm-d's EPP falls back to the NAMESPACE env (its chart sets it from the downward API)
      const namespace = (d.mode === 'selector' ? d.namespace : d.poolNamespace) ?? this.env.POD_NAMESPACE ?? this.env.NAMESPACE ?? readServiceAccountNamespace();
      if (!namespace) {
        throw new Error('discovery.poolNamespace is unset and the namespace is unknown: set discovery.poolNamespace or the POD_NAMESPACE env (downward API)');
      }
      const kubeConfig = KubernetesDiscovery.defaultConfig();
      const location = c.scheduling.modelServerMetrics;
      this.discovery = new KubernetesDiscovery({
        store: this.store,
        logger: this.logger.child({ component: 'discovery' }),
        poolName: d.mode === 'kubernetes' ? d.poolName : '',
        ...(d.mode === 'kubernetes' && d.poolGroup ? { poolGroup: d.poolGroup } : {}),
        ...(d.mode === 'selector' ? { selector: { labels: d.selector, ports: d.targetPorts } } : {}),
        metricsUrl: (address) => metricsUrlFor(address, location),
        namespace,
        kubeConfig,
      });
      await this.discovery.start();
      if (c.admission.watchObjectives && d.mode === 'kubernetes') {
        this.objectives = new InferenceObjectiveWatch({ logger: this.logger.child({ component: 'objectives' }), poolName: d.poolName, namespace, kubeConfig });
        // Not awaited: a slow API server must not hold readiness for an optional input.
        void this.objectives.start();
      }
    }
    await this.dropAbsentSnapshotPods();
    if (c.index.backend === 'memory' && c.index.snapshot) {
      this.snapshotTimer = setInterval(() => void this.saveIndexSnapshot(), c.index.snapshot.intervalMs);
      this.snapshotTimer.unref();
    }
    this.scraper.start();
    if (c.tokenizer.path || c.tokenizer.hfRepo) {
      this.tokenization = await Tokenization.fromConfig(c, {
        observer: tokenizationMetrics(this.registry),
        logger: this.logger.child({ component: 'tokenizer' }),
      });
    }
    this.extproc = new ExtProcServer({
      director: this.director,
      registry: this.registry,
      logger: this.logger.child({ component: 'ext-proc' }),
      maxBodyBytes: c.server.maxBodyBytes,
      metricModels: [c.model],
      ready: () => this.ready,
    });
    const bound = await this.extproc.start({ grpcPort: c.server.grpcPort, healthPort: c.server.healthPort, host: c.server.host, tls: c.server.tls });
    this.grpcPort = bound.grpcPort;
    this.healthPort = bound.healthPort;
    this.certPem = bound.certPem;
    this.http = new HttpServer({
      registry: this.registry,
      logger: this.logger.child({ component: 'http' }),
      maxBodyBytes: c.server.maxBodyBytes,
      readiness: [() => (this.ready ? undefined : 'starting')],
      diagnosis: () => this.diagnosis.findings(),
      score: new ScoreService({
        indexer: this.indexer,
        model: c.model,
        tokenizer: this.tokenization ? this.tokenizerView() : undefined,
        endpoints: () => this.store.list(),
        explain: (model, tokens) => this.director.explain(model, tokens),
      }),
    });
    this.httpPort = await this.http.listen(c.server.httpPort, c.server.host);
    if (this.reloadOpts) {
      this.reloader = new ConfigReloader({
        file: this.reloadOpts.file,
        load: this.reloadOpts.load,
        current: c,
        apply: (next) => {
          this.liveAdmission = next.admission;
        },
        logger: this.logger.child({ component: 'config' }),
        registry: this.registry,
        ...(this.reloadOpts.intervalMs !== undefined ? { intervalMs: this.reloadOpts.intervalMs } : {}),
      });
      this.reloader.start();
    }
    this.ready = true;
    this.logger.info(
      { grpcPort: this.grpcPort, healthPort: this.healthPort, httpPort: this.httpPort, zmq: this.zmqEndpoint, model: c.model, blockSize: c.blockSize, hashAlgo: c.hashAlgo, index: c.index.backend, endpoints: this.store.size },
      'kvroute-epp started',
    );
  }

  /** Stops in reverse order; safe to call twice. */
  async stop(): Promise<void> {
    this.ready = false;
    this.reloader?.stop();
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    this.snapshotTimer = undefined;
    if (this.extproc) {
      const r = await this.extproc.stop(this.drainMs).catch(() => undefined);
      if (r && r.forcedStreams > 0) this.logger.warn({ forcedStreams: r.forcedStreams }, 'ext_proc streams cancelled at shutdown');
    }
    await this.http?.close().catch(() => undefined);
    await this.tokenization?.close().catch(() => undefined);
    await this.discovery?.stop().catch(() => undefined);
    await this.objectives?.stop().catch(() => undefined);
    await this.scraper.stop();
    await this.pool.stop().catch(() => undefined);
    // After the pool drained: the snapshot holds every applied batch and matching watermarks.
    if (this.started) await this.saveIndexSnapshot();
    await this.index.close().catch(() => undefined);
  }
}
