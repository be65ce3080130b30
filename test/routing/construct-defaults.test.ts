import { Testing } from 'cdk8s';
import { envoyDuration, ExtProcEnvoyFilter } from '../../constructs/routing/envoy-filter.js';
import { EppDestinationRule } from '../../constructs/routing/epp-destination-rule.js';
import { ModelGateway } from '../../constructs/routing/gateway.js';
import { ServiceBackend } from '../../constructs/routing/http-backend.js';
import { ModelRoute } from '../../constructs/routing/http-route.js';
import { InferencePool } from '../../constructs/routing/inference-pool.js';
import type { K8sObject } from '../support/synth.js';

const only = (chart: ReturnType<typeof Testing.chart>): K8sObject => {
  const objs = Testing.synth(chart) as K8sObject[];
  expect(objs).toHaveLength(1);
  return objs[0];
};

describe('envoyDuration', () => {
  it('converts Gateway API durations to seconds', () => {
    expect(envoyDuration('600s')).toBe('600s');
    expect(envoyDuration('10m')).toBe('600s');
    expect(envoyDuration('1h')).toBe('3600s');
    expect(envoyDuration('500ms')).toBe('0.5s');
    expect(() => envoyDuration('ten')).toThrow(/"ten" is not a Gateway API duration/);
  });
});

describe('routing construct defaults', () => {
  it('InferencePool: failureMode FailOpen, no labels; empty selector rejected', () => {
    const chart = Testing.chart();
    const pool = new InferencePool(chart, 'p', { name: 'p', selector: { a: 'b' }, targetPort: 8000, endpointPicker: { serviceName: 'e', port: 9002 } });
    const o = only(chart);
    expect((o.spec as { endpointPickerRef: { failureMode: string } }).endpointPickerRef.failureMode).toBe('FailOpen');
    expect(o.metadata.labels ?? {}).toEqual({});
    expect(pool.toBackendRef()).toEqual({ group: 'inference.networking.k8s.io', kind: 'InferencePool', name: 'p' });
    expect(() => new InferencePool(Testing.chart(), 'q', { name: 'q', selector: {}, targetPort: 1, endpointPicker: { serviceName: 'e', port: 1 } })).toThrow(/selector is empty/);
  });

  it('ModelRoute: pathPrefix /v1, no hostnames, request timeout 600s; bad prefix rejected', () => {
    const chart = Testing.chart();
    new ModelRoute(chart, 'r', { name: 'r', gatewayName: 'g', backend: ServiceBackend.of('s', 80) });
    const spec = only(chart).spec as { hostnames?: string[]; rules: { matches: { path: { value: string } }[]; timeouts: { request: string }; backendRefs: unknown[] }[] };
    expect(spec.hostnames).toBeUndefined();
    expect(spec.rules[0].matches[0].path.value).toBe('/v1');
    expect(spec.rules[0].timeouts.request).toBe('600s');
    expect(spec.rules[0].backendRefs).toEqual([{ group: '', kind: 'Service', name: 's', port: 80 }]);
    expect(() => new ModelRoute(Testing.chart(), 'x', { name: 'x', gatewayName: 'g', backend: ServiceBackend.of('s', 80), pathPrefix: 'v1' })).toThrow(/must start with "\/"/);
    expect(() => ServiceBackend.of('s', 70000)).toThrow(/70000 is not a TCP port/);
  });

  it('ModelGateway: class istio, port 80', () => {
    const chart = Testing.chart();
    const gw = new ModelGateway(chart, 'g', { name: 'g' });
    expect(gw.port).toBe(80);
    const spec = only(chart).spec as { gatewayClassName: string; listeners: { port: number; name: string }[] };
    expect(spec.gatewayClassName).toBe('istio');
    expect(spec.listeners[0]).toMatchObject({ port: 80, name: ModelGateway.listenerName });
  });

  it('ExtProcEnvoyFilter: FULL_DUPLEX_STREAMED, failure_mode_allow true, wildcard vhost when no hostnames', () => {
    const chart = Testing.chart();
    const f = new ExtProcEnvoyFilter(chart, 'f', { name: 'f', gatewayName: 'g', listenerPort: 80, hostnames: [], eppServiceHost: 'e.ns.svc.cluster.local', eppPort: 9002 });
    expect(f.clusterName).toBe('f-original-dst');
    const patches = (only(chart).spec as { configPatches: { applyTo: string; patch: { value: { typed_config?: { failure_mode_allow: boolean; processing_mode: Record<string, string> } } } }[] }).configPatches;
    const tc = patches.find((p) => p.applyTo === 'HTTP_FILTER')?.patch.value.typed_config;
    expect(tc?.failure_mode_allow).toBe(true);
    expect(tc?.processing_mode.request_body_mode).toBe('FULL_DUPLEX_STREAMED');
    expect(patches.map((p) => p.applyTo)).toEqual(['CLUSTER', 'HTTP_FILTER', 'HTTP_ROUTE']);
    expect(patches[2].patch.value).toEqual({ route: { cluster: 'f-original-dst', timeout: '600s' } });
  });

  it('EppDestinationRule: TLS disabled, no labels', () => {
    const chart = Testing.chart();
    new EppDestinationRule(chart, 'd', { name: 'd', host: 'e.ns.svc.cluster.local' });
    const o = only(chart);
    expect(o.spec).toEqual({ host: 'e.ns.svc.cluster.local', trafficPolicy: { tls: { mode: 'DISABLE' } } });
    expect(o.metadata.labels ?? {}).toEqual({});
  });
});
