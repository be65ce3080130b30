/**
 * Observation of ext_proc streams, kept out of the state machine: the stream reports events to an
 * `ExtProcObserver`; metrics (prom-client, GIE names) and logs are two implementations of it.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../util/logger.js';
import { API_ERRORS, type ApiErrorCode } from '../contract/errors.js';
import { RateLimitedLog } from '../kvevents/observe.js';
import type { InferenceRequest, ResponseInfo } from './director.js';
import { RequestMetrics } from '../contract/metrics.js';

/** Every {@link StreamOutcome}. */
export const STREAM_OUTCOMES = ['completed', 'immediate_response', 'cancelled', 'error', 'protocol_error'] as const satisfies readonly StreamOutcome[];

/** How an ext_proc stream ended. */
export type StreamOutcome =
  /** The gateway closed the stream normally. */
  | 'completed'
  /** The EPP answered with an ImmediateResponse (policy error). */
  | 'immediate_response'
  /** The gateway (or shutdown) cancelled the stream. */
  | 'cancelled'
  /** Transport error or undecodable frame. */
  | 'error'
  /** Frames out of protocol order (e.g. a body before headers). */
  | 'protocol_error';

/** What a failed request is known as when it failed (model may be unknown yet). */
export interface FailedRequest {
  readonly requestId: string | undefined;
  readonly model: string | undefined;
  readonly targetModel: string | undefined;
  readonly path: string | undefined;
}

export interface ExtProcObserver {
  /**
   * Destination chosen and about to be sent. `decisionSeconds`: from the complete body (or the
   * body-less headers) to the decision, i.e. parse + director pick + building the reply.
   */
  picked(req: InferenceRequest, destination: string, decisionSeconds: number): void;
  /** The request was answered with an ImmediateResponse. */
  rejected(req: FailedRequest, code: string, status: number, message: string): void;
  /** The response passed completely. */
  responded(req: InferenceRequest, info: ResponseInfo): void;
  /** The in-flight request's stream ended (paired with `picked`). */
  released(req: InferenceRequest): void;
  /** A stream ended. */
  streamEnded(outcome: StreamOutcome, detail?: string): void;
  /**
   * The gateway opened this stream in `observability_mode`: Envoy neither waits for nor applies
   * the replies, so the EPP's routing has no effect (a gateway misconfiguration). Once per stream.
   */
  observabilityMode(): void;
}

const NOOP: ExtProcObserver = {
  picked: () => undefined,
  rejected: () => undefined,
  responded: () => undefined,
  released: () => undefined,
  streamEnded: () => undefined,
  observabilityMode: () => undefined,
};

/** Fans events out to several observers. */
export function combineObservers(...list: ExtProcObserver[]): ExtProcObserver {
  if (list.length === 0) return NOOP;
  if (list.length === 1) return list[0]!;
  return {
    picked: (r, d, s) => list.forEach((o) => o.picked(r, d, s)),
    rejected: (r, c, s, m) => list.forEach((o) => o.rejected(r, c, s, m)),
    responded: (r, i) => list.forEach((o) => o.responded(r, i)),
    released: (r) => list.forEach((o) => o.released(r)),
    streamEnded: (out, d) => list.forEach((o) => o.streamEnded(out, d)),
    observabilityMode: () => list.forEach((o) => o.observabilityMode()),
  };
}

const TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072];
const SIZE_BUCKETS = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304, 8388608];
const DURATION_BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600];

/** prom-client metrics with the GIE `inference_objective_*` names, plus `kvroute_extproc_streams_total`. */
export class ExtProcMetrics implements ExtProcObserver {
  readonly requests: Counter<'model_name' | 'target_model_name'>;
  readonly errors: Counter<'model_name' | 'target_model_name' | 'error_code'>;
  readonly duration: Histogram<'model_name' | 'target_model_name'>;
  readonly sizes: Histogram<'model_name' | 'target_model_name'>;
  readonly inputTokens: Histogram<'model_name' | 'target_model_name'>;
  readonly outputTokens: Histogram<'model_name' | 'target_model_name'>;
  readonly running: Gauge<'model_name'>;
  readonly streams: Counter<'outcome'>;
  readonly decision: Histogram;
  readonly observabilityModeStreams: Counter;

  /**
   * @param models model names whose request and error counters (every error code of the contract)
   *   and whose running-requests gauge are exported at 0 from the start, so `rate()` sees their first
   *   increment and dashboards show 0 rather than no data (@default [] — series appear on first use).
   *   Stream outcomes are always exported from the start.
   */
  constructor(registry: Registry, models: readonly string[] = []) {
    const registers = [registry];
    const mt = ['model_name', 'target_model_name'] as const;
    this.requests = new Counter({ name: RequestMetrics.requests.name, help: 'Requests routed by the EPP.', labelNames: mt, registers });
    this.errors = new Counter({
      name: RequestMetrics.requestErrors.name,
      help: 'Requests answered with an error (ImmediateResponse) by the EPP.',
      labelNames: [...mt, 'error_code'],
      registers,
    });
    this.duration = new Histogram({
      name: RequestMetrics.requestDuration.name,
      help: 'Time from request headers to the end of the response, as seen by the EPP.',
      labelNames: mt,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.sizes = new Histogram({ name: RequestMetrics.requestSizes.name, help: 'Request body size in bytes.', labelNames: mt, buckets: SIZE_BUCKETS, registers });
    this.inputTokens = new Histogram({ name: RequestMetrics.inputTokens.name, help: 'Prompt tokens reported in usage.', labelNames: mt, buckets: TOKEN_BUCKETS, registers });
    this.outputTokens = new Histogram({ name: RequestMetrics.outputTokens.name, help: 'Completion tokens reported in usage.', labelNames: mt, buckets: TOKEN_BUCKETS, registers });
    this.running = new Gauge({ name: RequestMetrics.runningRequests.name, help: 'Requests routed and not finished yet.', labelNames: ['model_name'], registers });
    this.streams = new Counter({ name: RequestMetrics.extprocStreams.name, help: 'ext_proc streams by how they ended.', labelNames: ['outcome'], registers });
    this.decision = new Histogram({
      name: RequestMetrics.extprocDecisionDuration.name,
      help: 'From the complete request body to the routing decision (parse + director pick + reply), in seconds.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.observabilityModeStreams = new Counter({
      name: RequestMetrics.extprocObservabilityModeStreams.name,
      help: "ext_proc streams the gateway opened in observability_mode (Envoy ignores the EPP's replies there, so these requests were not routed by the EPP).",
      registers,
    });
    for (const outcome of STREAM_OUTCOMES) this.streams.inc({ outcome }, 0);
    for (const model of models) {
      const l = { model_name: model, target_model_name: model };
      this.requests.inc(l, 0);
      for (const code of Object.keys(API_ERRORS) as ApiErrorCode[]) this.errors.inc({ ...l, error_code: code }, 0);
      this.running.inc({ model_name: model }, 0);
    }
  }

  private static labels(r: { model: string | undefined; targetModel: string | undefined }): { model_name: string; target_model_name: string } {
    return { model_name: r.model ?? '', target_model_name: r.targetModel ?? r.model ?? '' };
  }

  picked(req: InferenceRequest, _destination: string, decisionSeconds: number): void {
    const l = ExtProcMetrics.labels(req);
    this.decision.observe(decisionSeconds);
    this.requests.inc(l);
    if (req.bodyBytes > 0) this.sizes.observe(l, req.bodyBytes);
    this.running.inc({ model_name: l.model_name });
  }

  rejected(req: FailedRequest, code: string): void {
    this.errors.inc({ ...ExtProcMetrics.labels(req), error_code: code });
  }

  responded(req: InferenceRequest, info: ResponseInfo): void {
    const l = ExtProcMetrics.labels(req);
    this.duration.observe(l, (performance.now() - req.receivedAt) / 1000);
    if (info.usage?.promptTokens !== undefined) this.inputTokens.observe(l, info.usage.promptTokens);
    if (info.usage?.completionTokens !== undefined) this.outputTokens.observe(l, info.usage.completionTokens);
  }

  released(req: InferenceRequest): void {
    this.running.dec({ model_name: req.model ?? '' });
  }

  streamEnded(outcome: StreamOutcome): void {
    this.streams.inc({ outcome });
  }

  observabilityMode(): void {
    this.observabilityModeStreams.inc();
  }
}

/** Structured logs: picks at debug, rejections at info (client errors) or error (500s). */
export class ExtProcLogging implements ExtProcObserver {
  private readonly warnLog: RateLimitedLog;

  /** @param warnIntervalMs at most one observability_mode warning per interval (@default 60000) */
  constructor(
    private readonly log: Logger,
    warnIntervalMs = 60_000,
  ) {
    this.warnLog = new RateLimitedLog(log, warnIntervalMs);
  }

  picked(req: InferenceRequest, destination: string, decisionSeconds: number): void {
    this.log.debug(
      { requestId: req.requestId, model: req.model, targetModel: req.targetModel, destination, bodyBytes: req.bodyBytes, decisionMs: decisionSeconds * 1000 },
      'picked endpoint',
    );
  }

  rejected(req: FailedRequest, code: string, status: number, message: string): void {
    const fields = { requestId: req.requestId, model: req.model, path: req.path, code, status, error: message };
    if (status >= 500 && code === 'internal') this.log.error(fields, 'ext_proc request failed');
    else this.log.info(fields, 'ext_proc request rejected');
  }

  responded(req: InferenceRequest, info: ResponseInfo): void {
    this.log.debug({ requestId: req.requestId, status: info.status, usage: info.usage, served: info.servedEndpoint }, 'response complete');
  }

  released(): void {}

  streamEnded(outcome: StreamOutcome, detail?: string): void {
    if (outcome === 'error' || outcome === 'protocol_error') this.log.warn({ outcome, detail }, 'ext_proc stream broke');
  }

  observabilityMode(): void {
    this.warnLog.warn(
      'observability_mode',
      { fix: 'set observability_mode: false (or leave it unset) in the gateway ext_proc filter that calls the EPP' },
      "the gateway runs ext_proc in observability_mode: Envoy ignores the EPP's replies, so requests are not routed by the EPP",
    );
  }
}
