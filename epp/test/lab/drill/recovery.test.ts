/** The drill's hit-rate accounting: windows of answered steady requests, and the recovery time. */
import { hitRate, type RequestRecord } from '../../../lab/drill/load.js';
import { recoverySeconds } from '../../../lab/drill/run.js';

const rec = (done: number, cached: number, prompt = 100, kind = 'steady', outcome: RequestRecord['outcome'] = 'answered'): RequestRecord => ({ sent: done - 100, done, outcome, promptTokens: prompt, cachedTokens: cached, kind });

describe('drill hit rate and recovery', () => {
  // 4 requests/s: 90 % hits until t=10 s, 0 % during 10–14 s, 50 % during 14–20 s, 90 % from 20 s
  const records: RequestRecord[] = [];
  for (let t = 0; t < 40_000; t += 250) records.push(rec(t, t < 10_000 ? 90 : t < 14_000 ? 0 : t < 20_000 ? 50 : 90));
  records.push(rec(5000, 0, 100, 'burst-critical'), rec(5000, 0, 100, 'steady', 'lost'));

  it('counts cached / prompt tokens of answered steady requests completed in [from, to)', () => {
    expect(hitRate(records, 0, 10_000)).toEqual({ rate: 0.9, n: 40 });
    expect(hitRate(records, 10_000, 14_000)).toEqual({ rate: 0, n: 16 });
    expect(hitRate(records, 12_000, 16_000).rate).toBeCloseTo(0.25);
    expect(hitRate(records, 50_000, 60_000)).toEqual({ rate: NaN, n: 0 });
  });

  it('is the start of the first window after the fault whose rate is ≥ 95 % of the level before', () => {
    expect(recoverySeconds(records, 0.9, 14_000, 40_000, 2000)).toBe(6);
    expect(recoverySeconds(records, 0.9, 20_000, 40_000, 2000)).toBe(0);
    // a window straddling the change gets there earlier only once it is ≥ 0.855 on average
    expect(recoverySeconds(records, 0.9, 14_000, 40_000, 4000)).toBe(6);
    expect(recoverySeconds(records, 0.5, 14_000, 40_000, 2000)).toBe(0);
    expect(recoverySeconds(records, 0.9, 14_000, 19_000, 2000)).toBeNull(); // not within the observation
    expect(recoverySeconds(records, NaN, 14_000, 40_000, 2000)).toBeNull(); // no level before
  });
});
