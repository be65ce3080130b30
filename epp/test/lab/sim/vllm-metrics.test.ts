/** The simulated pod's vLLM-format /metrics text: the TTFT histogram in vLLM's buckets. */
import { renderVllmMetrics, TTFT_BUCKETS, TtftHistogram, VllmMetricNames } from '../../../lab/sim/vllm-metrics.js';

const VALUES = { prefixCacheQueries: 0, prefixCacheHits: 0, numRequestsWaiting: 0, numRequestsRunning: 0, kvCacheUsagePerc: 0 };
const OPTS = { modelName: 'm', profile: { blockSize: 16, numBlocks: 100, gpuMemoryUtilization: 0.9 } };
const NAME = VllmMetricNames.timeToFirstToken;

describe('vLLM TTFT histogram of a simulated pod', () => {
  it('counts observations cumulatively per bucket, +Inf last, with sum and count', () => {
    const h = new TtftHistogram();
    for (const s of [0.0005, 0.03, 0.03, 0.3, 3000]) h.observe(s);
    const b = new Map(h.buckets());
    expect(h.buckets()).toHaveLength(TTFT_BUCKETS.length + 1);
    expect(b.get('0.001')).toBe(1);
    expect(b.get('0.02')).toBe(1);
    expect(b.get('0.04')).toBe(3);
    expect(b.get('0.5')).toBe(4);
    expect(b.get('2560')).toBe(4); // 3000 s is beyond the last bound
    expect(b.get('+Inf')).toBe(5);
    expect(h.count).toBe(5);
    expect(h.sum).toBeCloseTo(3000.3605, 9);
  });

  it('rejects a negative or non-finite TTFT, naming the value', () => {
    expect(() => new TtftHistogram().observe(-1)).toThrow(/finite non-negative number \(got -1\)/);
    expect(() => new TtftHistogram().observe(NaN)).toThrow(/got NaN/);
  });

  it('is rendered in vLLM text format only when given (the default renders none)', () => {
    expect(renderVllmMetrics(VALUES, OPTS)).not.toContain(NAME);
    const h = new TtftHistogram();
    h.observe(0.05);
    const text = renderVllmMetrics(VALUES, { ...OPTS, ttft: h });
    expect(text).toContain(`# TYPE ${NAME} histogram`);
    expect(text).toContain(`${NAME}_bucket{engine="0",model_name="m",le="0.04"} 0.0\n`);
    expect(text).toContain(`${NAME}_bucket{engine="0",model_name="m",le="0.06"} 1.0\n`);
    expect(text).toContain(`${NAME}_bucket{engine="0",model_name="m",le="1.0"} 1.0\n`);
    expect(text).toContain(`${NAME}_bucket{engine="0",model_name="m",le="+Inf"} 1.0\n`);
    expect(text).toContain(`${NAME}_sum{engine="0",model_name="m"} 0.05\n`);
    expect(text).toContain(`${NAME}_count{engine="0",model_name="m"} 1.0\n`);
  });
});
