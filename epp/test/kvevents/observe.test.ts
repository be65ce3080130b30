import { Registry, register as globalRegistry } from 'prom-client';
import { DROP_REASONS, GAP_OUTCOMES, KvEventsMetricNames, REPLAY_RESULTS, RateLimitedLog, createPromKvEventsMetrics } from '../../src/kvevents/observe.js';
import { counter, recordingLogger } from './helpers.js';

describe('kv-events metrics and logging', () => {
  it('registers every kvroute_kv_events_* metric on the given registry only', async () => {
    const reg = new Registry();
    const m = createPromKvEventsMetrics(reg);
    for (const name of Object.values(KvEventsMetricNames)) {
      expect(name.startsWith('kvroute_kv_events_')).toBe(true);
      expect(reg.getSingleMetric(name)).toBeDefined();
      expect(globalRegistry.getSingleMetric(name)).toBeUndefined();
    }
    m.dropped('msgpack');
    m.dropped('bad_event', 3);
    m.seqGap('replayed', 4);
    m.replay('ok', 4);
    m.hashCheck(true);
    m.hashCheck(false);
    expect(await counter(reg, KvEventsMetricNames.dropped, { reason: 'bad_event' })).toBe(3);
    expect(await counter(reg, KvEventsMetricNames.dropped)).toBe(4);
    expect(await counter(reg, KvEventsMetricNames.missingBatches)).toBe(4);
    expect(await counter(reg, KvEventsMetricNames.replayedBatches)).toBe(4);
    expect(await counter(reg, KvEventsMetricNames.hashChecks)).toBe(2);
    expect(await counter(reg, KvEventsMetricNames.hashMismatch)).toBe(1);
  });

  it('exports every known reason, outcome and result at 0 from the start (so rate() sees the first increment)', async () => {
    const reg = new Registry();
    createPromKvEventsMetrics(reg);
    const series = async (name: string, label: string): Promise<string[]> =>
      (await reg.getSingleMetric(name)!.get()).values.map((v) => `${String(v.labels[label])}=${v.value}`).sort();
    expect(await series(KvEventsMetricNames.dropped, 'reason')).toEqual(DROP_REASONS.map((r) => `${r}=0`).sort());
    expect(DROP_REASONS).toContain('parent_unknown');
    expect(await series(KvEventsMetricNames.seqGaps, 'outcome')).toEqual(['partially_replayed=0', 'replayed=0', 'unrepaired=0']);
    expect(GAP_OUTCOMES).toHaveLength(3);
    expect(await series(KvEventsMetricNames.replayRequests, 'result')).toEqual(REPLAY_RESULTS.map((r) => `${r}=0`).sort());
    expect((await reg.metrics()).match(/^kvroute_kv_events_dropped_total\{reason="msgpack"\} 0$/m)).not.toBeNull();
  });

  it('rate-limits warnings per key and reports how many were suppressed', () => {
    const logger = recordingLogger();
    let now = 0;
    const log = new RateLimitedLog(logger, 10_000, () => now);
    for (let i = 0; i < 5; i++) log.warn('a', { i }, 'A');
    log.warn('b', {}, 'B');
    expect(logger.lines.map((l) => l.msg)).toEqual(['A', 'B']);
    now = 10_000;
    log.warn('a', { i: 9 }, 'A again');
    expect(logger.lines[2]).toMatchObject({ level: 'warn', msg: 'A again', obj: { i: 9, suppressed: 4 } });
  });
});
