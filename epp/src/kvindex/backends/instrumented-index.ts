/**
 * A decorator that records kvroute_index_* metrics around any `Index` (memory, Redis, ...), so
 * the backends carry no metric code on their hot paths:
 *
 *   kvroute_index_operations_total{op}            calls per operation (lookup, add, evict, requestKeyFor, clear)
 *   kvroute_index_operation_errors_total{op}      calls that threw (the error is re-thrown)
 *   kvroute_index_operation_duration_seconds{op}  latency histogram
 *   kvroute_index_lookup_keys_total               request keys asked for
 *   kvroute_index_lookup_hits_total               keys answered (the held prefix: the walk stops at the first miss)
 *   kvroute_index_lookup_prefix_blocks            histogram of the held prefix length per lookup
 *   kvroute_index_added_entries_total             (request key, pod entry) pairs written by add
 *   kvroute_index_evicted_entries_total           pod entries named by evict
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { BlockKey, Index, PodEntry, RawIndexWriter } from '../types.js';
import { IndexMetrics } from '../../contract/metrics.js';

export interface InstrumentedIndexOptions {
  /** Where the metrics are registered (never the global registry). */
  readonly registry: Registry;
  /** Latency buckets in seconds. @default [1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25] */
  readonly durationBuckets?: readonly number[];
}

export const DEFAULT_INDEX_DURATION_BUCKETS: readonly number[] = [1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25];
const PREFIX_BUCKETS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];

type Op = 'lookup' | 'add' | 'evict' | 'requestKeyFor' | 'clear' | 'forget';

/** The raw write path times one call in this many (see `InstrumentedIndex.raw`). */
export const RAW_TIMING_SAMPLE = 16;

export class InstrumentedIndex implements Index {
  private readonly ops: Counter<'op'>;
  private readonly errors: Counter<'op'>;
  private readonly duration: Histogram<'op'>;
  private readonly lookupKeys: Counter;
  private readonly lookupHits: Counter;
  private readonly prefix: Histogram;
  private readonly added: Counter;
  private readonly evicted: Counter;

  constructor(
    readonly inner: Index,
    opts: InstrumentedIndexOptions,
  ) {
    const registers = [opts.registry];
    // The raw write path counts in plain numbers, brought up to date when the registry is read.
    const pending = this.pendingRaw;
    this.ops = new Counter({
      name: IndexMetrics.operations.name,
      help: 'Index operations by type.',
      labelNames: ['op'],
      registers,
      collect() {
        if (pending.adds > 0) this.inc({ op: 'add' }, pending.adds);
        if (pending.requestKeyFors > 0) this.inc({ op: 'requestKeyFor' }, pending.requestKeyFors);
        pending.adds = 0;
        pending.requestKeyFors = 0;
      },
    });
    this.errors = new Counter({ name: IndexMetrics.operationErrors.name, help: 'Index operations that threw, by type.', labelNames: ['op'], registers });
    this.duration = new Histogram({
      name: IndexMetrics.operationDuration.name,
      help: 'Index operation latency by type.',
      labelNames: ['op'],
      buckets: [...(opts.durationBuckets ?? DEFAULT_INDEX_DURATION_BUCKETS)],
      registers,
    });
    this.lookupKeys = new Counter({ name: IndexMetrics.lookupKeys.name, help: 'Request keys asked for in lookups.', registers });
    this.lookupHits = new Counter({ name: IndexMetrics.lookupHits.name, help: 'Request keys found in lookups (the held prefix).', registers });
    this.prefix = new Histogram({ name: IndexMetrics.lookupPrefixBlocks.name, help: 'Held prefix length (blocks) per lookup.', buckets: PREFIX_BUCKETS, registers });
    this.added = new Counter({
      name: IndexMetrics.addedEntries.name,
      help: '(request key, pod entry) pairs written by add.',
      registers,
      collect() {
        if (pending.added > 0) this.inc(pending.added);
        pending.added = 0;
      },
    });
    this.evicted = new Counter({ name: IndexMetrics.evictedEntries.name, help: 'Pod entries named by evict.', registers });
    for (const op of ['lookup', 'add', 'evict', 'requestKeyFor', 'clear'] as const) {
      this.ops.inc({ op }, 0);
      this.errors.inc({ op }, 0);
    }
  }

  /**
   * The inner backend's raw write path with the same metrics as `add` and `requestKeyFor`, or
   * undefined when the backend has none.
   */
  get raw(): RawIndexWriter | undefined {
    if (this.rawWriter === null) {
      const inner = this.inner.raw;
      this.rawWriter = inner === undefined ? undefined : this.instrumentRaw(inner);
    }
    return this.rawWriter;
  }

  private rawWriter: RawIndexWriter | undefined | null = null;

  /** Raw-path counts not yet added to the prom-client counters. */
  private readonly pendingRaw = { adds: 0, requestKeyFors: 0, added: 0 };

  /**
   * The raw path's metrics: every call is counted (in plain numbers, see the counters' `collect`),
   * and one call in {@link RAW_TIMING_SAMPLE} of each operation is timed into the duration
   * histogram, so its `_count` for add/requestKeyFor is a sample there, not the operation count.
   */
  private instrumentRaw(inner: RawIndexWriter): RawIndexWriter {
    const addErrors = this.errors.labels({ op: 'add' });
    const addDuration = this.duration.labels({ op: 'add' });
    const rkErrors = this.errors.labels({ op: 'requestKeyFor' });
    const rkDuration = this.duration.labels({ op: 'requestKeyFor' });
    const pending = this.pendingRaw;
    let addCalls = 0;
    let rkCalls = 0;
    return {
      addRawSync(engine, engineOff, request, requestOff, n, entry): void {
        const timed = addCalls++ % RAW_TIMING_SAMPLE === 0;
        const t0 = timed ? performance.now() : 0;
        pending.adds++;
        try {
          inner.addRawSync(engine, engineOff, request, requestOff, n, entry);
        } catch (e) {
          addErrors.inc();
          throw e;
        } finally {
          if (timed) addDuration.observe((performance.now() - t0) / 1000);
        }
        pending.added += n;
      },
      requestKeyForRawSync(hi, lo, out, outOff): boolean {
        const timed = rkCalls++ % RAW_TIMING_SAMPLE === 0;
        const t0 = timed ? performance.now() : 0;
        pending.requestKeyFors++;
        try {
          return inner.requestKeyForRawSync(hi, lo, out, outOff);
        } catch (e) {
          rkErrors.inc();
          throw e;
        } finally {
          if (timed) rkDuration.observe((performance.now() - t0) / 1000);
        }
      },
    };
  }

  private async timed<T>(op: Op, run: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    this.ops.inc({ op });
    try {
      return await run();
    } catch (e) {
      this.errors.inc({ op });
      throw e;
    } finally {
      this.duration.observe({ op }, (performance.now() - t0) / 1000);
    }
  }

  async lookup(requestKeys: readonly BlockKey[], pods?: ReadonlySet<string>): Promise<Map<BlockKey, PodEntry[]>> {
    const out = await this.timed('lookup', () => this.inner.lookup(requestKeys, pods));
    this.lookupKeys.inc(requestKeys.length);
    this.lookupHits.inc(out.size);
    this.prefix.observe(out.size);
    return out;
  }

  async add(engineKeys: readonly BlockKey[], requestKeys: readonly BlockKey[], entries: readonly PodEntry[]): Promise<void> {
    await this.timed('add', () => this.inner.add(engineKeys, requestKeys, entries));
    this.added.inc(requestKeys.length * entries.length);
  }

  async evict(engineKey: BlockKey, entries: readonly PodEntry[]): Promise<void> {
    await this.timed('evict', () => this.inner.evict(engineKey, entries));
    this.evicted.inc(entries.length);
  }

  requestKeyFor(engineKey: BlockKey): Promise<BlockKey | undefined> {
    return this.timed('requestKeyFor', () => this.inner.requestKeyFor(engineKey));
  }

  clear(pod: string): Promise<void> {
    return this.timed('clear', () => this.inner.clear(pod));
  }

  /** Passed through when the backend has it (see Index.forget). */
  get forget(): ((requestKeys: readonly BlockKey[], pod: string) => Promise<number>) | undefined {
    const inner = this.inner;
    if (inner.forget === undefined) return undefined;
    return (requestKeys, pod) => this.timed('forget', () => (inner.forget as NonNullable<Index['forget']>).call(inner, requestKeys, pod));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
