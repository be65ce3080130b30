/**
 * The metric contract: valid and unique Prometheus names, type suffix conventions, and that
 * prom-client accepts every spec as written (name, help and label names) on a fresh registry.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  AllEppMetrics,
  CachePredictionMetrics,
  DiagnosisCauses,
  DiagnosisMetrics,
  EppMetricGroups,
  type MetricSpec,
  PredictionErrorBuckets,
  PredictionMismatchKinds,
  VllmMetrics,
} from '../../src/contract/metrics.js';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

describe('metric contract', () => {
  it('lists every group once and every name once', () => {
    const flat = Object.values(EppMetricGroups).flatMap((g) => Object.values(g as Record<string, MetricSpec>));
    expect(AllEppMetrics).toEqual(flat);
    const names = AllEppMetrics.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.length).toBeGreaterThan(50);
  });

  it.each(AllEppMetrics.map((m) => [m.name, m] as const))('%s: valid name and labels, suffix fits its type, help given', (_n, m) => {
    expect(m.name).toMatch(METRIC_NAME);
    expect(m.name).toMatch(/^(kvroute|inference)_/);
    for (const l of m.labels) {
      expect(l).toMatch(LABEL_NAME);
      expect(l.startsWith('__')).toBe(false);
    }
    expect(new Set(m.labels).size).toBe(m.labels.length);
    expect(m.name.endsWith('_total')).toBe(m.type === 'counter');
    expect(m.help.length).toBeGreaterThan(10);
  });

  it('prom-client registers every spec on one registry (no clash, names and labels accepted)', async () => {
    const registry = new Registry();
    for (const m of AllEppMetrics) {
      const cfg = { name: m.name, help: m.help, labelNames: [...m.labels], registers: [registry] };
      if (m.type === 'counter') new Counter(cfg);
      else if (m.type === 'gauge') new Gauge(cfg);
      else new Histogram({ ...cfg, buckets: [1] });
    }
    const exported = (await registry.getMetricsAsJSON()).map((x) => x.name);
    expect(exported.sort()).toEqual(AllEppMetrics.map((m) => m.name).sort());
  });

  it('the issue 13 metrics: pod-labelled cache prediction counters, kind-labelled mismatches, cause-labelled diagnosis', () => {
    expect(CachePredictionMetrics.predictedTokens).toMatchObject({ name: 'kvroute_cache_predicted_tokens_total', type: 'counter', labels: ['pod'] });
    expect(CachePredictionMetrics.actualTokens).toMatchObject({ name: 'kvroute_cache_actual_tokens_total', type: 'counter', labels: ['pod'] });
    expect(CachePredictionMetrics.promptTokens).toMatchObject({ name: 'kvroute_cache_prompt_tokens_total', type: 'counter', labels: ['pod'] });
    expect(CachePredictionMetrics.predictionErrorRatio).toMatchObject({ name: 'kvroute_cache_prediction_error_ratio', type: 'histogram', labels: ['pod'] });
    expect(CachePredictionMetrics.predictionMismatch).toMatchObject({ name: 'kvroute_cache_prediction_mismatch_total', type: 'counter', labels: ['pod', 'kind'] });
    expect(Object.values(PredictionMismatchKinds).sort()).toEqual(['predicted_hit_actual_miss', 'predicted_miss_actual_hit']);
    expect(DiagnosisMetrics.active).toMatchObject({ name: 'kvroute_diagnosis_active', type: 'gauge', labels: ['cause', 'pod'] });
    expect(Object.values(DiagnosisCauses).sort()).toEqual(['block-size', 'events-missing', 'hash-seed', 'tokenization']);
  });

  it('prediction error buckets run from -1 to 1, strictly increasing, with 0 as a bound', () => {
    expect(PredictionErrorBuckets[0]).toBe(-1);
    expect(PredictionErrorBuckets[PredictionErrorBuckets.length - 1]).toBe(1);
    for (let i = 1; i < PredictionErrorBuckets.length; i++) expect(PredictionErrorBuckets[i]).toBeGreaterThan(PredictionErrorBuckets[i - 1]);
    expect(PredictionErrorBuckets).toContain(0);
  });

  it('vLLM names are V1-engine names with the vllm: prefix', () => {
    for (const n of Object.values(VllmMetrics)) expect(n).toMatch(/^vllm:[a-z_]+$/);
    expect(Object.values(VllmMetrics).join(' ')).not.toMatch(/gpu_prefix_cache/);
  });
});
