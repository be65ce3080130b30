import { Registry, register as globalRegistry } from 'prom-client';
import { KvEventsMetricNames, RateLimitedLog, createPromKvEventsMetrics } from '../../src/kvevents/observe.js';
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
