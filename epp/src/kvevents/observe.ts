/**
 * Metrics and logging of the KV-event pool, injected rather than tangled into the core: the pool
 * calls a {@link KvEventsMetrics} sink (no-op by default, prom-client via
 * {@link createPromKvEventsMetrics}) and a pino-compatible {@link Logger} (silent by default).
 */
import { Counter, type Registry } from 'prom-client';
import type { KvEvent } from './types.js';
import { KvEventMetrics } from '../contract/metrics.js';

/** The subset of pino's API the pool uses (`logger.warn({ obj }, 'msg')`). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/**
 * Why a frame, batch or event was dropped. Frame level: `frame_count`, `bad_seq`, `bad_topic`.
 * Batch level: `msgpack`, `bad_batch`. Event level: `bad_event`, `unknown_event_type`,
 * `parent_unknown` (a BlockStored whose parent hash the index does not know: the chain cannot be
 * placed), `unresolved_tier_update` (a token-less BlockStored for hashes the index does not know),
 * `apply_error` (the index threw).
 */
export const DROP_REASONS = [
  'frame_count',
  'bad_seq',
  'bad_topic',
  'msgpack',
  'bad_batch',
  'bad_event',
  'unknown_event_type',
  'parent_unknown',
  'unresolved_tier_update',
  'apply_error',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export const GAP_OUTCOMES = ['replayed', 'partially_replayed', 'unrepaired'] as const;
export type GapOutcome = (typeof GAP_OUTCOMES)[number];
export const REPLAY_RESULTS = ['ok', 'incomplete', 'timeout', 'error'] as const;
export type ReplayResult = (typeof REPLAY_RESULTS)[number];

/** Sink for the pool's counters. Every method must be cheap and must not throw. */
export interface KvEventsMetrics {
  received(): void;
  dropped(reason: DropReason, n?: number): void;
  applied(type: KvEvent['type']): void;
  /** A sequence gap of `missing` batches was seen, with its outcome. */
  seqGap(outcome: GapOutcome, missing: number): void;
  /** A pod's entries could not be kept consistent (unrepaired gap); see `gapPolicy`. */
  podStale(): void;
  /** The sequence went backwards: the publisher restarted. */
  publisherRestart(): void;
  replay(result: ReplayResult, batches: number): void;
  hashCheck(matched: boolean): void;
}

export const noopMetrics: KvEventsMetrics = {
  received: () => undefined,
  dropped: () => undefined,
  applied: () => undefined,
  seqGap: () => undefined,
  podStale: () => undefined,
  publisherRestart: () => undefined,
  replay: () => undefined,
  hashCheck: () => undefined,
};

/** Metric names (all prefixed `kvroute_kv_events_`). */
export const KvEventsMetricNames = {
  received: KvEventMetrics.received.name,
  dropped: KvEventMetrics.dropped.name,
  applied: KvEventMetrics.applied.name,
  seqGaps: KvEventMetrics.seqGaps.name,
  missingBatches: KvEventMetrics.missingBatches.name,
  podStale: KvEventMetrics.podStale.name,
  publisherRestarts: KvEventMetrics.publisherRestarts.name,
  replayRequests: KvEventMetrics.replayRequests.name,
  replayedBatches: KvEventMetrics.replayedBatches.name,
  hashChecks: KvEventMetrics.hashChecks.name,
  hashMismatch: KvEventMetrics.hashMismatch.name,
} as const;

/** prom-client implementation registered on `registry` (never the global registry). */
export function createPromKvEventsMetrics(registry: Registry): KvEventsMetrics {
  const r = [registry];
  // The two per-message/per-event counters count in plain numbers and are brought up to date at
  // scrape time (prom-client calls `collect` before reading): a labelled inc hashes its labels.
  let pendingReceived = 0;
  const pendingApplied: Record<KvEvent['type'], number> = { BlockStored: 0, BlockRemoved: 0, AllBlocksCleared: 0 };
  new Counter({
    name: KvEventsMetricNames.received,
    help: 'KV-event messages received (valid frames).',
    registers: r,
    collect() {
      if (pendingReceived > 0) this.inc(pendingReceived);
      pendingReceived = 0;
    },
  });
  const dropped = new Counter({
    name: KvEventsMetricNames.dropped,
    help: 'KV-event frames, batches or events dropped, by reason.',
    labelNames: ['reason'],
    registers: r,
  });
  new Counter({
    name: KvEventsMetricNames.applied,
    help: 'KV events applied to the index, by type.',
    labelNames: ['type'],
    registers: r,
    collect() {
      for (const type of ['BlockStored', 'BlockRemoved', 'AllBlocksCleared'] as const) {
        if (pendingApplied[type] > 0) this.inc({ type }, pendingApplied[type]);
        pendingApplied[type] = 0;
      }
    },
  });
  const gaps = new Counter({
    name: KvEventsMetricNames.seqGaps,
    help: 'Per-pod sequence gaps, by outcome (replayed, partially_replayed, unrepaired).',
    labelNames: ['outcome'],
    registers: r,
  });
  const missing = new Counter({ name: KvEventsMetricNames.missingBatches, help: 'Batches missing in sequence gaps.', registers: r });
  const stale = new Counter({ name: KvEventsMetricNames.podStale, help: 'Times a pod was marked stale after an unrepaired gap.', registers: r });
  const restarts = new Counter({ name: KvEventsMetricNames.publisherRestarts, help: 'Publisher restarts (sequence went backwards).', registers: r });
  const replays = new Counter({ name: KvEventsMetricNames.replayRequests, help: 'Replay requests, by result.', labelNames: ['result'], registers: r });
  const replayed = new Counter({ name: KvEventsMetricNames.replayedBatches, help: 'Batches recovered through replay.', registers: r });
  const checks = new Counter({ name: KvEventsMetricNames.hashChecks, help: 'Engine hashes recomputed and compared.', registers: r });
  const mismatch = new Counter({
    name: KvEventsMetricNames.hashMismatch,
    help: 'Engine hashes the EPP could not reproduce (PYTHONHASHSEED or --prefix-caching-hash-algo mismatch).',
    registers: r,
  });
  // Every known label value is exported at 0 from the start, so rate()/increase() see the first
  // increment (a series that appears at its first increment has no earlier sample to compare with)
  // and dashboards show 0 rather than no data.
  for (const reason of DROP_REASONS) dropped.inc({ reason }, 0);
  for (const outcome of GAP_OUTCOMES) gaps.inc({ outcome }, 0);
  for (const result of REPLAY_RESULTS) replays.inc({ result }, 0);
  return {
    received: () => {
      pendingReceived++;
    },
    dropped: (reason, n = 1) => dropped.inc({ reason }, n),
    applied: (type) => {
      pendingApplied[type]++;
    },
    seqGap: (outcome, n) => {
      gaps.inc({ outcome });
      missing.inc(n);
    },
    podStale: () => stale.inc(),
    publisherRestart: () => restarts.inc(),
    replay: (result, n) => {
      replays.inc({ result });
      if (n > 0) replayed.inc(n);
    },
    hashCheck: (matched) => {
      checks.inc();
      if (!matched) mismatch.inc();
    },
  };
}

/**
 * Logs at most one line per key per `intervalMs`, adding how many were suppressed, so a flood
 * of garbage cannot flood the log.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(key: string, obj: object, msg: string): void {
    const t = this.now();
    const s = this.last.get(key);
    if (s && t - s.at < this.intervalMs) {
      s.suppressed++;
      return;
    }
    if (this.last.size > 1000) this.last.clear();
    this.last.set(key, { at: t, suppressed: 0 });
    this.logger.warn(s && s.suppressed > 0 ? { ...obj, suppressed: s.suppressed } : obj, msg);
  }
}
