/**
 * Why are the EPP's cache predictions wrong? Per pod, a rolling window of (predicted, actual)
 * samples from the responses plus what the KV-event applier reports (batches arriving, engine block
 * sizes, hash-check results) are turned into findings, each naming a cause and its fix:
 *
 * - `events-missing`: the pod reports cached prompt tokens (≥ 2 times) while the EPP has received
 *   no KV events from it at all, or none for `eventsStaleMs` before those responses: the index
 *   thinks the pod is empty. Its publisher is off or cannot reach the EPP.
 * - `tokenization`: over the pods whose events do arrive, of the responses where the prediction or
 *   vLLM saw a hit, at least `minSamples` and a share ≥ `disagreeShare` disagree from the first block
 *   (predicted nothing and got a hit, or predicted a hit and got nothing): the EPP's tokens for a
 *   request are not vLLM's (chat template, BOS, tokenizer version). A fleet-wide symptom (one pod
 *   alone going wrong is not it), reported on every pod with such a disagreement.
 * - `hash-seed`: the applier's hash check (`kvroute_kv_events_hash_mismatch_total`) failed for at
 *   least half of the pod's recent checks: vLLM's PYTHONHASHSEED or hash algorithm is not the EPP's.
 * - `block-size`: the pod's BlockStored events, or its reported cached tokens, use a block size other
 *   than the EPP's.
 *
 * Findings are recomputed from the current windows, so they clear once fresh samples agree. A
 * finding that appears logs one warning (rate-limited per cause) and sets the gauge
 * `kvroute_diagnosis_active{cause,pod}` to 1 (0 once it clears).
 */
import { Gauge, type Registry } from 'prom-client';
import { DiagnosisCauses, DiagnosisMetrics, KvEventMetrics, type DiagnosisCause } from '../contract/metrics.js';
import { RateLimitedLog } from '../kvevents/observe.js';
import type { KvEventPodObserver } from '../kvevents/applier.js';
import type { Logger } from '../util/logger.js';

/** One finding of `GET /v1/diagnosis`. */
export interface Finding {
  readonly cause: DiagnosisCause;
  /** Endpoint `ip:port`. */
  readonly pod: string;
  /** Likely cause and the fix, in words. */
  readonly message: string;
  /** The numbers the finding rests on. */
  readonly evidence: Readonly<Record<string, number>>;
}

/** One response compared with its prediction. */
export interface AccuracySample {
  /** Blocks the index said the pod holds (its consecutive prefix, capped as predicted). */
  readonly predictedBlocks: number;
  /** `cached_tokens` vLLM reported. */
  readonly actualTokens: number;
  /** Prompt tokens (vLLM's count when reported). */
  readonly promptTokens: number;
}

export interface DiagnosisOptions {
  /** The EPP's block size (tokens per block). */
  readonly blockSize: number;
  /** The EPP's hash seed (for messages). */
  readonly hashSeed: string;
  /** The EPP's hash algorithm (for messages). */
  readonly hashAlgo: string;
  readonly logger: Logger;
  /** Registers `kvroute_diagnosis_active`. @default undefined (no gauge) */
  readonly registry?: Registry;
  /** Samples kept per pod. @default 32 */
  readonly window?: number;
  /** First-block disagreements (fleet-wide) before `tokenization` may be found. @default 4 */
  readonly minSamples?: number;
  /** Share of disagreements among the responses with a hit on either side that is systematic. @default 0.75 */
  readonly disagreeShare?: number;
  /** Responses with cached tokens and no events before `events-missing`. @default 2 */
  readonly eventsMissingHits?: number;
  /** Events older than this before a hit count as not arriving. @default 60000 */
  readonly eventsStaleMs?: number;
  /** At most one warning per cause per interval. @default 300000 */
  readonly warnIntervalMs?: number;
  /** Clock, ms. @default Date.now */
  readonly now?: () => number;
}

interface TimedSample extends AccuracySample {
  readonly at: number;
}

interface PodState {
  samples: TimedSample[];
  lastBatchAt: number | undefined;
  batches: number;
  engineBlockSize: number | undefined;
  checks: boolean[];
}

export class Diagnosis implements KvEventPodObserver {
  private readonly pods = new Map<string, PodState>();
  private readonly window: number;
  private readonly minSamples: number;
  private readonly disagreeShare: number;
  private readonly eventsMissingHits: number;
  private readonly eventsStaleMs: number;
  private readonly now: () => number;
  private readonly warnLog: RateLimitedLog;
  private active = new Set<string>();
  private readonly gauge: Gauge<'cause' | 'pod'> | undefined;

  constructor(private readonly opts: DiagnosisOptions) {
    this.window = Math.max(1, opts.window ?? 32);
    this.minSamples = Math.max(1, opts.minSamples ?? 4);
    this.disagreeShare = opts.disagreeShare ?? 0.75;
    this.eventsMissingHits = Math.max(1, opts.eventsMissingHits ?? 2);
    this.eventsStaleMs = opts.eventsStaleMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.warnLog = new RateLimitedLog(opts.logger, opts.warnIntervalMs ?? 300_000, this.now);
    if (opts.registry) {
      const spec = DiagnosisMetrics.active;
      const refresh = (): void => void this.findings();
      this.gauge = new Gauge({
        name: spec.name,
        help: spec.help,
        labelNames: [...spec.labels] as ['cause', 'pod'],
        registers: [opts.registry],
        collect() {
          refresh();
        },
      });
    }
  }

  private pod(pod: string): PodState {
    let s = this.pods.get(pod);
    if (!s) {
      if (this.pods.size > 4096) this.pods.clear();
      s = { samples: [], lastBatchAt: undefined, batches: 0, engineBlockSize: undefined, checks: [] };
      this.pods.set(pod, s);
    }
    return s;
  }

  /** A response compared with its prediction; re-evaluates the findings. */
  record(pod: string, sample: AccuracySample): void {
    const s = this.pod(pod);
    s.samples.push({ ...sample, at: this.now() });
    if (s.samples.length > this.window) s.samples.shift();
    this.findings();
  }

  /** The pod is gone: its state is dropped. */
  forgetPod(pod: string): void {
    this.pods.delete(pod);
  }

  batch(pod: string): void {
    const s = this.pod(pod);
    s.batches++;
    s.lastBatchAt = this.now();
  }

  blockSize(pod: string, engineBlockSize: number): void {
    this.pod(pod).engineBlockSize = engineBlockSize;
  }

  hashChecked(pod: string, matched: boolean): void {
    const s = this.pod(pod);
    s.checks.push(matched);
    if (s.checks.length > 16) s.checks.shift();
  }

  /** The current findings (and warnings for new ones, gauge update). */
  findings(): Finding[] {
    const bs = this.opts.blockSize;
    const out: Finding[] = [];
    const disagreeing: { pod: string; d: number; n: number }[] = [];
    let agreed = 0;
    for (const [pod, s] of this.pods) {
      // events-missing: hits after no (fresh) events.
      const fresh = (at: number): boolean => s.lastBatchAt !== undefined && at - s.lastBatchAt <= this.eventsStaleMs;
      const unseenHits = s.samples.filter((x) => x.actualTokens >= bs && x.predictedBlocks === 0 && !fresh(x.at)).length;
      const eventsMissing = unseenHits >= this.eventsMissingHits;
      if (eventsMissing) {
        out.push({
          cause: DiagnosisCauses.eventsMissing,
          pod,
          message:
            s.batches === 0
              ? `pod ${pod} served ${unseenHits} prefix-cache hits but the EPP has received no KV events from it, so the index thinks it is empty. ` +
                `Fix: start vLLM with --kv-events-config (enable_kv_cache_events, publisher zmq, endpoint the EPP's ZMQ address, topic kv@<pod ip:port>@<model>) and check that the pod can reach the EPP's ZMQ port.`
              : `pod ${pod} served ${unseenHits} prefix-cache hits but its last KV event arrived over ${Math.round(this.eventsStaleMs / 1000)} s earlier, so the index no longer follows it. ` +
                `Fix: check the pod's KV-event publisher (--kv-events-config) and its connection to the EPP's ZMQ port.`,
          evidence: { hitsWithoutEvents: unseenHits, batches: s.batches },
        });
      }
      // hash-seed: the applier's check.
      const mism = s.checks.filter((m) => !m).length;
      if (mism > 0 && mism * 2 >= s.checks.length) {
        out.push({
          cause: DiagnosisCauses.hashSeed,
          pod,
          message:
            `pod ${pod}: ${mism} of its last ${s.checks.length} KV-event block hashes differ from the EPP's ${this.opts.hashAlgo} hash of the same tokens (${KvEventMetrics.hashMismatch.name}): ` +
            `vLLM's PYTHONHASHSEED or --prefix-caching-hash-algo is not the EPP's. Fix: set PYTHONHASHSEED=${this.opts.hashSeed} and --prefix-caching-hash-algo ${this.opts.hashAlgo} on vLLM, or the EPP's hashSeed/hashAlgo to vLLM's.`,
          evidence: { hashMismatches: mism, hashChecks: s.checks.length },
        });
      }
      // block-size: events or cached-token counts.
      const offGrid = s.samples.filter((x) => x.actualTokens % bs !== 0).length;
      if (s.engineBlockSize !== undefined || offGrid >= 2) {
        const seen = s.engineBlockSize !== undefined ? `its KV events use blocks of ${s.engineBlockSize} tokens` : `${offGrid} of its cached-token counts are not multiples of ${bs}`;
        out.push({
          cause: DiagnosisCauses.blockSize,
          pod,
          message: `pod ${pod}: ${seen}, but the EPP's block size is ${bs}. Fix: start vLLM with --block-size ${bs}, or set the EPP's blockSize to vLLM's.`,
          evidence: { eppBlockSize: bs, ...(s.engineBlockSize !== undefined ? { podBlockSize: s.engineBlockSize } : {}), offGridResponses: offGrid },
        });
      }
      // tokenization: first-block disagreement, on pods whose events arrive.
      if (!eventsMissing && s.batches > 0) {
        const d = s.samples.filter((x) => (x.predictedBlocks === 0 && x.actualTokens >= bs) || (x.predictedBlocks > 0 && x.actualTokens === 0)).length;
        agreed += s.samples.filter((x) => x.predictedBlocks > 0 && x.actualTokens >= bs).length;
        if (d > 0) disagreeing.push({ pod, d, n: s.samples.length });
      }
    }
    const disagreed = disagreeing.reduce((a, x) => a + x.d, 0);
    if (disagreed >= this.minSamples && disagreed >= this.disagreeShare * (disagreed + agreed)) {
      const share = Math.round((100 * disagreed) / (disagreed + agreed));
      for (const d of disagreeing) {
        out.push({
          cause: DiagnosisCauses.tokenization,
          pod: d.pod,
          message:
            `pod ${d.pod}: ${d.d} of its last ${d.n} responses disagree with the EPP's prediction from the first block, and ${share}% of the responses with a hit on either side do across the fleet: ` +
            `the EPP's tokens for a request are not vLLM's (chat template, BOS token or tokenizer version). Fix: give the EPP the same tokenizer and chat template as vLLM ` +
            `(the model's tokenizer_config.json at the revision vLLM serves, and vLLM's --chat-template if it sets one).`,
          evidence: { disagreements: d.d, samples: d.n, fleetDisagreeShare: share / 100 },
        });
      }
    }
    this.publish(out);
    return out;
  }

  private publish(out: readonly Finding[]): void {
    const now = new Set(out.map((f) => `${f.cause}\u0000${f.pod}`));
    for (const f of out) {
      const key = `${f.cause}\u0000${f.pod}`;
      if (!this.active.has(key)) this.warnLog.warn(`diagnosis:${f.cause}`, { cause: f.cause, pod: f.pod, ...f.evidence }, `cache predictions are wrong: ${f.message}`);
    }
    if (this.gauge) {
      // Every cause of every pod heard from is exported (0 when not found), so the series exist
      // before a finding and a dashboard shows 0 rather than no data.
      for (const pod of this.pods.keys()) {
        for (const cause of Object.values(DiagnosisCauses)) if (!now.has(`${cause}\u0000${pod}`)) this.gauge.set({ cause, pod }, 0);
      }
      for (const key of this.active) {
        if (!now.has(key)) {
          const [cause, pod] = key.split('\u0000') as [string, string];
          this.gauge.set({ cause, pod }, 0);
        }
      }
      for (const f of out) this.gauge.set({ cause: f.cause, pod: f.pod }, 1);
    }
    this.active = now;
  }
}
