/**
 * promtool unit-test cases for the kvroute alerts of the default deployment (namespace llm-d, model
 * meta-llama/Llama-3.2-1B, EPP job/Deployment kvroute-epp): for every alert, input series that
 * make it fire and series that must not. Series use promtool's expanding notation: 'a+bxN' is N+1
 * samples a, a+b, …, one per minute.
 */
import { EppMetrics, PlatformMetrics, VllmMetrics } from '../../constructs/monitoring/metric-names.js';

export const NAMESPACE = 'llm-d';
export const MODEL = 'meta-llama/Llama-3.2-1B';
export const EPP_JOB = 'kvroute-epp';
export const EPP_INSTANCE = '10.0.0.9:9090';

/** One input series. */
export interface InputSeries {
  readonly series: string;
  readonly values: string;
}

/** How `$value` renders in the annotations of an expected alert. */
export interface RenderedValue {
  /** `{{ $value }}` */
  readonly plain?: string;
  /** `{{ $value | humanize }}` */
  readonly humanize?: string;
  /** `{{ $value | humanizePercentage }}` */
  readonly percent?: string;
}

/** An alert expected to fire (labels without `severity`, which the rule adds). */
export interface ExpectedAlert {
  readonly labels: Record<string, string>;
  readonly value?: RenderedValue;
}

export interface AlertCase {
  readonly alert: string;
  /** What the case shows. */
  readonly name: string;
  readonly series: readonly InputSeries[];
  /** Evaluation time after the first sample (Prometheus duration). */
  readonly evalTime: string;
  /** Alerts firing at evalTime; [] means none (not even one still pending counts). */
  readonly fires: readonly ExpectedAlert[];
}

const sel = (labels: Record<string, string>): string =>
  `{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`;
/** A series of the EPP's scrape target. */
const epp = (metric: string, labels: Record<string, string> = {}): string => `${metric}${sel({ namespace: NAMESPACE, job: EPP_JOB, instance: EPP_INSTANCE, ...labels })}`;
/** A series of a vLLM pod's scrape target. */
const vllm = (metric: string, pod: string): string => `${metric}${sel({ namespace: NAMESPACE, model_name: MODEL, pod, job: 'llm-d/kvroute-decode', instance: `${pod}:8200` })}`;
const s = (series: string, values: string): InputSeries => ({ series, values });

const E = EppMetrics;
const V = VllmMetrics;
const POD_A = 'kvroute-decode-a';
const POD_B = 'kvroute-decode-b';
const ns = { namespace: NAMESPACE };

export const ALERT_CASES: readonly AlertCase[] = [
  // Prefix-cache hit-rate collapse: 80% for two hours, then 10%.
  {
    alert: 'KvroutePrefixCacheHitRateCollapse',
    name: 'hit rate falls from 80% to 10%',
    series: [s(vllm(V.prefixCacheQueries, POD_A), '0+1000x180'), s(vllm(V.prefixCacheHits, POD_A), '0+800x120 96100+100x59')],
    evalTime: '170m',
    fires: [{ labels: ns, value: { percent: '10%' } }],
  },
  {
    alert: 'KvroutePrefixCacheHitRateCollapse',
    name: 'hit rate falls from 80% to 60% (above half of the baseline)',
    series: [s(vllm(V.prefixCacheQueries, POD_A), '0+1000x180'), s(vllm(V.prefixCacheHits, POD_A), '0+800x120 96600+600x59')],
    evalTime: '170m',
    fires: [],
  },
  {
    alert: 'KvroutePrefixCacheHitRateCollapse',
    name: 'steady hit rate',
    series: [s(vllm(V.prefixCacheQueries, POD_A), '0+1000x180'), s(vllm(V.prefixCacheHits, POD_A), '0+800x180')],
    evalTime: '170m',
    fires: [],
  },
  // Predicted/actual mismatch: pod A predicted 800 of 1000 tokens per minute, got 200; pod B is right.
  {
    alert: 'KvroutePredictionMismatch',
    name: 'pod A: predicted 80% cached, vLLM reports 20%; pod B predicted within 5%',
    series: [
      s(epp(E.cachePromptTokens, { pod: POD_A }), '0+1000x60'),
      s(epp(E.cachePredictedTokens, { pod: POD_A }), '0+800x60'),
      s(epp(E.cacheActualTokens, { pod: POD_A }), '0+200x60'),
      s(epp(E.cachePromptTokens, { pod: POD_B }), '0+1000x60'),
      s(epp(E.cachePredictedTokens, { pod: POD_B }), '0+800x60'),
      s(epp(E.cacheActualTokens, { pod: POD_B }), '0+750x60'),
    ],
    evalTime: '40m',
    fires: [{ labels: { ...ns, pod: POD_A }, value: { percent: '60%' } }],
  },
  {
    alert: 'KvroutePredictionMismatch',
    name: 'no prompt tokens reported (0/0 is not a mismatch)',
    series: [s(epp(E.cachePromptTokens, { pod: POD_A }), '0x60'), s(epp(E.cachePredictedTokens, { pod: POD_A }), '0x60'), s(epp(E.cacheActualTokens, { pod: POD_A }), '0x60')],
    evalTime: '40m',
    fires: [],
  },
  {
    alert: 'KvroutePredictionMismatch',
    name: 'the pod holds more than predicted (index behind while KV events are in flight): not alerted',
    series: [
      s(epp(E.cachePromptTokens, { pod: POD_A }), '0+1000x60'),
      s(epp(E.cachePredictedTokens, { pod: POD_A }), '0+200x60'),
      s(epp(E.cacheActualTokens, { pod: POD_A }), '0+800x60'),
    ],
    evalTime: '40m',
    fires: [],
  },
  // KV-event gaps: one gap a minute versus one every five minutes.
  {
    alert: 'KvrouteKvEventGaps',
    name: 'a sequence gap every minute',
    series: [s(epp(E.kvEventsSeqGaps, { outcome: 'replayed' }), '0+1x60')],
    evalTime: '30m',
    fires: [{ labels: ns, value: { humanize: '15' } }],
  },
  {
    alert: 'KvrouteKvEventGaps',
    name: 'a sequence gap every five minutes',
    series: [s(epp(E.kvEventsSeqGaps, { outcome: 'replayed' }), '0 0 0 0 0 1 1 1 1 1 2 2 2 2 2 3 3 3 3 3 4 4 4 4 4 5 5 5 5 5 6 6 6 6 6 7')],
    evalTime: '30m',
    fires: [],
  },
  // Stale pods.
  {
    alert: 'KvrouteKvEventsPodStale',
    name: 'a pod marked stale every minute',
    series: [s(epp(E.kvEventsPodStale), '0+1x60')],
    evalTime: '45m',
    fires: [{ labels: ns, value: { humanize: '30' } }],
  },
  {
    alert: 'KvrouteKvEventsPodStale',
    name: 'one stale marking',
    series: [s(epp(E.kvEventsPodStale), '0x10 1x50')],
    evalTime: '45m',
    fires: [],
  },
  // No KV events while requests are routed.
  {
    alert: 'KvrouteKvEventsMissing',
    name: 'requests routed, no KV events',
    series: [s(epp(E.kvEventsReceived), '0x60'), s(epp(E.requests, { model_name: MODEL, target_model_name: MODEL }), '0+10x60')],
    evalTime: '30m',
    fires: [{ labels: ns }],
  },
  {
    alert: 'KvrouteKvEventsMissing',
    name: 'requests routed and KV events arriving',
    series: [s(epp(E.kvEventsReceived), '0+100x60'), s(epp(E.requests, { model_name: MODEL, target_model_name: MODEL }), '0+10x60')],
    evalTime: '30m',
    fires: [],
  },
  {
    alert: 'KvrouteKvEventsMissing',
    name: 'no KV events and no requests (idle)',
    series: [s(epp(E.kvEventsReceived), '0x60'), s(epp(E.requests, { model_name: MODEL, target_model_name: MODEL }), '5x60')],
    evalTime: '30m',
    fires: [],
  },
  // Hash mismatch.
  {
    alert: 'KvrouteHashMismatch',
    name: 'mismatching hashes keep arriving',
    series: [s(epp(E.kvEventsHashMismatch), '0+2x60')],
    evalTime: '30m',
    fires: [{ labels: ns }],
  },
  {
    alert: 'KvrouteHashMismatch',
    name: 'old mismatches only (counter flat)',
    series: [s(epp(E.kvEventsHashMismatch), '5x60')],
    evalTime: '30m',
    fires: [],
  },
  // EPP not ready: target down, target missing, or no available replica.
  {
    alert: 'KvrouteEppNotReady',
    name: 'the EPP target is down',
    series: [s(epp(PlatformMetrics.up), '0x20')],
    evalTime: '10m',
    fires: [{ labels: ns }],
  },
  {
    alert: 'KvrouteEppNotReady',
    name: 'no EPP target at all',
    series: [s(`${PlatformMetrics.up}${sel({ namespace: NAMESPACE, job: 'something-else', instance: '10.0.0.5:80' })}`, '1x20')],
    evalTime: '10m',
    fires: [{ labels: { ...ns, job: EPP_JOB } }],
  },
  {
    alert: 'KvrouteEppNotReady',
    name: 'target scraped but the Deployment has no available replica (readiness failing)',
    series: [s(epp(PlatformMetrics.up), '1x20'), s(`${PlatformMetrics.deploymentAvailableReplicas}${sel({ namespace: NAMESPACE, deployment: 'kvroute-epp', job: 'kube-state-metrics' })}`, '0x20')],
    evalTime: '10m',
    fires: [{ labels: ns }],
  },
  {
    alert: 'KvrouteEppNotReady',
    name: 'one of two replicas down, one up and available',
    series: [
      s(epp(PlatformMetrics.up), '1x20'),
      s(epp(PlatformMetrics.up, { instance: '10.0.0.10:9090' }), '0x20'),
      s(`${PlatformMetrics.deploymentAvailableReplicas}${sel({ namespace: NAMESPACE, deployment: 'kvroute-epp', job: 'kube-state-metrics' })}`, '1x20'),
    ],
    evalTime: '10m',
    fires: [],
  },
  {
    alert: 'KvrouteEppNotReady',
    name: 'down for less than 5m (pending, not firing)',
    series: [s(epp(PlatformMetrics.up), '1x5 0x10')],
    evalTime: '9m',
    fires: [],
  },
  // No ready endpoints.
  {
    alert: 'KvrouteNoReadyEndpoints',
    name: 'zero ready pods',
    series: [s(epp(E.poolReadyPods, { name: 'kvroute-pool' }), '0x10')],
    evalTime: '5m',
    fires: [{ labels: ns }],
  },
  {
    alert: 'KvrouteNoReadyEndpoints',
    name: 'zero ready pods for 1m only (pending)',
    series: [s(epp(E.poolReadyPods, { name: 'kvroute-pool' }), '0x10')],
    evalTime: '1m',
    fires: [],
  },
  {
    alert: 'KvrouteNoReadyEndpoints',
    name: 'three ready pods',
    series: [s(epp(E.poolReadyPods, { name: 'kvroute-pool' }), '3x10')],
    evalTime: '5m',
    fires: [],
  },
  // Shed rate.
  {
    alert: 'KvrouteShedRate',
    name: '10 of 100 requests a minute shed',
    series: [
      s(epp(E.requests, { model_name: MODEL, target_model_name: MODEL }), '0+90x30'),
      s(epp(E.requestErrors, { model_name: MODEL, target_model_name: MODEL, error_code: 'shed' }), '0+10x30'),
    ],
    evalTime: '20m',
    fires: [{ labels: ns, value: { percent: '10%' } }],
  },
  {
    alert: 'KvrouteShedRate',
    name: 'every request shed (no routed-request series at all)',
    series: [s(epp(E.requestErrors, { model_name: MODEL, target_model_name: MODEL, error_code: 'shed' }), '0+10x30')],
    evalTime: '20m',
    fires: [{ labels: ns, value: { percent: '100%' } }],
  },
  {
    alert: 'KvrouteShedRate',
    name: '1 of 100 requests shed, others fail for other reasons',
    series: [
      s(epp(E.requests, { model_name: MODEL, target_model_name: MODEL }), '0+89x30'),
      s(epp(E.requestErrors, { model_name: MODEL, target_model_name: MODEL, error_code: 'shed' }), '0+1x30'),
      s(epp(E.requestErrors, { model_name: MODEL, target_model_name: MODEL, error_code: 'not_ready' }), '0+10x30'),
    ],
    evalTime: '20m',
    fires: [],
  },
  // Stale pod metrics: three endpoints known, one fresh.
  {
    alert: 'KvrouteStalePodMetrics',
    name: 'three endpoints known, one with fresh metrics',
    series: [
      s(epp(E.endpointInFlight, { endpoint: '10.0.0.1:8000' }), '0x20'),
      s(epp(E.endpointInFlight, { endpoint: '10.0.0.2:8000' }), '2x20'),
      s(epp(E.endpointInFlight, { endpoint: '10.0.0.3:8000' }), '1x20'),
      s(epp(E.poolReadyPods, { name: 'kvroute-pool' }), '1x20'),
    ],
    evalTime: '10m',
    fires: [{ labels: { ...ns, instance: EPP_INSTANCE }, value: { plain: '2' } }],
  },
  {
    alert: 'KvrouteStalePodMetrics',
    name: 'every known endpoint fresh',
    series: [
      s(epp(E.endpointInFlight, { endpoint: '10.0.0.1:8000' }), '0x20'),
      s(epp(E.endpointInFlight, { endpoint: '10.0.0.2:8000' }), '2x20'),
      s(epp(E.poolReadyPods, { name: 'kvroute-pool' }), '2x20'),
    ],
    evalTime: '10m',
    fires: [],
  },
  // Diagnosis.
  {
    alert: 'KvrouteDiagnosisActive',
    name: 'hash-seed diagnosed on pod A, tokenization cleared on pod B',
    series: [s(epp(E.diagnosisActive, { cause: 'hash-seed', pod: POD_A }), '1x20'), s(epp(E.diagnosisActive, { cause: 'tokenization', pod: POD_B }), '0x20')],
    evalTime: '15m',
    fires: [{ labels: { ...ns, pod: POD_A, cause: 'hash-seed' } }],
  },
  {
    alert: 'KvrouteDiagnosisActive',
    name: 'diagnosis active for 5m only (pending)',
    series: [s(epp(E.diagnosisActive, { cause: 'block-size', pod: POD_A }), '0x10 1x10')],
    evalTime: '15m',
    fires: [],
  },
];
