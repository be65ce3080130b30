import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { DEFAULT_INDEX_DURATION_BUCKETS, InstrumentedIndex } from '../../../src/kvindex/backends/instrumented-index.js';
import { MemoryIndex } from '../../../src/kvindex/backends/memory-index.js';
import { runIndexContract } from './index-contract.js';

runIndexContract('InstrumentedIndex(MemoryIndex)', async () => new InstrumentedIndex(new MemoryIndex(), { registry: new Registry() }));

const gpu = (pod: string) => ({ pod, tier: 'gpu' });

function metric(text: string, line: string): number {
  const esc = line.replace(/[{}"|()[\]+.]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text);
  if (m === null) throw new Error(`metric line ${line} not found in:\n${text}`);
  return Number(m[1]);
}

describe('InstrumentedIndex', () => {
  it('counts operations, keys, hits and entries, and times every operation', async () => {
    const registry = new Registry();
    const idx = new InstrumentedIndex(new MemoryIndex(), { registry });
    await idx.add([1n, 2n], [11n, 12n], [gpu('a:1'), gpu('b:1')]);
    await idx.add([], [13n], [gpu('a:1')]);
    await idx.lookup([11n, 12n, 14n, 13n]); // walk stops at 14n: 2 hits
    await idx.lookup([99n]);
    await idx.evict(2n, [gpu('a:1')]);
    expect(await idx.requestKeyFor(1n)).toBe(11n);
    await idx.clear('b:1');
    const text = await registry.metrics();
    expect(metric(text, 'kvroute_index_operations_total{op="lookup"}')).toBe(2);
    expect(metric(text, 'kvroute_index_operations_total{op="add"}')).toBe(2);
    expect(metric(text, 'kvroute_index_operations_total{op="evict"}')).toBe(1);
    expect(metric(text, 'kvroute_index_operations_total{op="requestKeyFor"}')).toBe(1);
    expect(metric(text, 'kvroute_index_operations_total{op="clear"}')).toBe(1);
    expect(metric(text, 'kvroute_index_operation_errors_total{op="add"}')).toBe(0);
    expect(metric(text, 'kvroute_index_lookup_keys_total')).toBe(5);
    expect(metric(text, 'kvroute_index_lookup_hits_total')).toBe(2);
    expect(metric(text, 'kvroute_index_lookup_prefix_blocks_bucket{le="0"}')).toBe(1);
    expect(metric(text, 'kvroute_index_lookup_prefix_blocks_bucket{le="2"}')).toBe(2);
    expect(metric(text, 'kvroute_index_added_entries_total')).toBe(5);
    expect(metric(text, 'kvroute_index_evicted_entries_total')).toBe(1);
    expect(metric(text, 'kvroute_index_operation_duration_seconds_count{op="lookup"}')).toBe(2);
    expect(metric(text, 'kvroute_index_operation_duration_seconds_count{op="clear"}')).toBe(1);
    // Default buckets are exported (10 µs .. 250 ms).
    expect(metric(text, `kvroute_index_operation_duration_seconds_bucket{le="${DEFAULT_INDEX_DURATION_BUCKETS[0]}",op="add"}`)).toBeLessThanOrEqual(2);
    expect(text).toContain('le="0.25",op="add"');
  });

  it('counts an operation that throws and re-throws the error', async () => {
    const registry = new Registry();
    const inner = new MemoryIndex();
    const idx = new InstrumentedIndex(inner, { registry });
    await expect(idx.add([], [-5n], [gpu('a:1')])).rejects.toThrow(/-5n is not a block key/);
    await idx.close();
    await expect(idx.add([], [5n], [gpu('a:1')])).rejects.toThrow(/closed/);
    const text = await registry.metrics();
    expect(metric(text, 'kvroute_index_operation_errors_total{op="add"}')).toBe(2);
    expect(metric(text, 'kvroute_index_added_entries_total')).toBe(0);
  });

  it('uses the duration buckets given', async () => {
    const registry = new Registry();
    const idx = new InstrumentedIndex(new MemoryIndex(), { registry, durationBuckets: [0.5, 7] });
    await idx.lookup([1n]);
    const text = await registry.metrics();
    expect(metric(text, 'kvroute_index_operation_duration_seconds_bucket{le="7",op="lookup"}')).toBe(1);
    expect(text).not.toContain('le="0.25"');
  });
});
