/**
 * Prometheus metrics of the index backends, read from their `stats` at scrape time (collect
 * callbacks), so the backends' hot paths carry no metric code. Registered on the registry passed
 * in, never on prom-client's global registry.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { MemoryIndexStats } from './memory-index.js';
import { IndexMetrics } from '../../contract/metrics.js';

/** Something whose `stats` grow monotonically in the counter fields. */
interface StatsSource<S> {
  readonly stats: S;
}

/** A counter that reports `read()` (a monotonic total) at scrape time. */
function totalCounter(registry: Registry, name: string, help: string, read: () => number): void {
  let reported = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now > reported) {
        this.inc(now - reported);
        reported = now;
      }
    },
  });
}

/** Same, per label value. */
function labelledTotalCounter(registry: Registry, name: string, help: string, label: string, read: () => Readonly<Record<string, number>>): void {
  const reported = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      for (const [value, now] of Object.entries(read())) {
        const before = reported.get(value) ?? 0;
        // Always touch the label so it is exported at 0 too.
        this.inc({ [label]: value }, Math.max(0, now - before));
        reported.set(value, Math.max(before, now));
      }
    },
  });
}

function gauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** kvroute_index_memory_* gauges and counters of a MemoryIndex. */
export function registerMemoryIndexMetrics(registry: Registry, index: StatsSource<MemoryIndexStats>): void {
  gauge(registry, IndexMetrics.memoryKeys.name, 'Request keys held by the in-memory index.', () => index.stats.keys);
  gauge(registry, IndexMetrics.memoryEntries.name, '(request key, pod, tier) entries held by the in-memory index.', () => index.stats.entries);
  gauge(registry, IndexMetrics.memoryEngineEdges.name, 'Engine key to request key mappings held by the in-memory index.', () => index.stats.engineEdges);
  gauge(registry, IndexMetrics.memoryBytes.name, 'Bytes allocated by the in-memory index.', () => index.stats.approxBytes);
  gauge(registry, IndexMetrics.memoryBudgetBytes.name, 'Memory budget of the in-memory index.', () => index.stats.budgetBytes);
  totalCounter(registry, IndexMetrics.memoryLruEvictions.name, 'Request keys evicted (least recently used first) to stay within the memory budget.', () => index.stats.lruEvictions);
  totalCounter(registry, IndexMetrics.memoryDroppedEntries.name, 'Entries not stored because one add exceeded the whole memory budget.', () => index.stats.droppedEntries);
}

/** Live statistics of a RedisIndex (what its metrics report). */
export interface RedisIndexStats {
  /** 1 while the connection is ready, else 0. */
  readonly up: number;
  /** Failed commands or pipelines, per operation. */
  readonly errors: Readonly<Record<string, number>>;
  /** Writes dropped because Redis failed, per operation (add, evict, clear). */
  readonly droppedWrites: Readonly<Record<string, number>>;
  /** Lookups answered with "no hits" because Redis failed. */
  readonly degradedLookups: number;
}

/** kvroute_index_redis_* metrics of a RedisIndex. */
export function registerRedisIndexMetrics(registry: Registry, index: StatsSource<RedisIndexStats>): void {
  gauge(registry, IndexMetrics.redisUp.name, '1 while the Redis connection of the index is ready, else 0.', () => index.stats.up);
  labelledTotalCounter(registry, IndexMetrics.redisErrors.name, 'Redis commands of the index that failed (timeout, connection, server error).', 'op', () => index.stats.errors);
  labelledTotalCounter(registry, IndexMetrics.redisDroppedWrites.name, 'Index writes dropped because Redis failed.', 'op', () => index.stats.droppedWrites);
  totalCounter(registry, IndexMetrics.redisDegradedLookups.name, 'Lookups answered with no hits because Redis failed.', () => index.stats.degradedLookups);
}
