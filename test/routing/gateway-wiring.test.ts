import { EppPorts, Labels } from '@kvroute/epp/contract';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { findObject, objectsOfKind, synthObjects } from '../support/synth.js';

interface RouteSpec {
  parentRefs: { group: string; kind: string; name: string }[];
  hostnames?: string[];
  rules: { matches: { path: { type: string; value: string } }[]; backendRefs: { group?: string; kind: string; name: string; port?: number }[]; timeouts: { request: string } }[];
}
interface PoolSpec {
  selector: { matchLabels: Record<string, string> };
  targetPorts: { number: number }[];
  endpointPickerRef: { group: string; kind: string; name: string; port: { number: number }; failureMode: string };
}
interface Patch {
  applyTo: string;
  match: { context: string; listener?: { portNumber: number }; routeConfiguration?: { portNumber: number; vhost: { name: string } } };
  patch: { operation: string; value: Record<string, unknown> };
}

describe('InferencePool mode (default)', () => {
  const objects = synthObjects(parseDeploymentConfig({}));
  const pool = findObject(objects, 'InferencePool', 'kvroute-pool');
  const route = findObject(objects, 'HTTPRoute', 'kvroute-route');

  it('InferencePool v1 selects the model-server pods and points at the EPP Service gRPC port', () => {
    expect(pool.apiVersion).toBe('inference.networking.k8s.io/v1');
    const spec = pool.spec as PoolSpec;
    expect(spec.selector.matchLabels).toEqual({ [Labels.inferenceServing]: 'true', [Labels.model]: 'meta-llama-Llama-3.2-1B', 'app.kubernetes.io/instance': 'kvroute' });
    expect(spec.targetPorts).toEqual([{ number: 8000 }]);
    expect(spec.endpointPickerRef).toEqual({ group: '', kind: 'Service', name: 'kvroute-epp', port: { number: EppPorts.grpc }, failureMode: 'FailOpen' });
    expect(findObject(objects, 'Service', spec.endpointPickerRef.name).kind).toBe('Service');
  });

  it('the pool selects decode pods (and prefill pods, which the EPP filters by role)', () => {
    const sel = (pool.spec as PoolSpec).selector.matchLabels;
    for (const name of ['kvroute-decode', 'kvroute-prefill']) {
      const labels = (findObject(objects, 'Deployment', name).spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
      expect(labels).toMatchObject(sel);
    }
  });

  it('HTTPRoute: Gateway parent, /v1 prefix, backend = the InferencePool', () => {
    const spec = route.spec as RouteSpec;
    expect(spec.parentRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'kvroute-gateway' }]);
    expect(spec.hostnames).toBeUndefined();
    expect(spec.rules[0].matches).toEqual([{ path: { type: 'PathPrefix', value: '/v1' } }]);
    expect(spec.rules[0].backendRefs).toEqual([{ group: 'inference.networking.k8s.io', kind: 'InferencePool', name: 'kvroute-pool' }]);
    expect(spec.rules[0].timeouts).toEqual({ request: '600s' });
  });

  it('Gateway: istio class, HTTP listener on 80, same-namespace routes', () => {
    const gw = findObject(objects, 'Gateway', 'kvroute-gateway');
    expect(gw.spec).toEqual({
      gatewayClassName: 'istio',
      listeners: [{ name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'Same' } } }],
    });
  });

  it('no EnvoyFilter; DestinationRule makes the EPP host plaintext', () => {
    expect(objectsOfKind(objects, 'EnvoyFilter')).toHaveLength(0);
    const dr = findObject(objects, 'DestinationRule', 'kvroute-epp');
    expect(dr.spec).toEqual({ host: 'kvroute-epp.llm-d.svc.cluster.local', trafficPolicy: { tls: { mode: 'DISABLE' } } });
  });

  it('gateway.create=false emits no Gateway but keeps the parentRef', () => {
    const o = synthObjects(parseDeploymentConfig({ gateway: { create: false, name: 'llm-d-infra-inference-gateway' } }));
    expect(objectsOfKind(o, 'Gateway')).toHaveLength(0);
    expect((findObject(o, 'HTTPRoute', 'kvroute-route').spec as RouteSpec).parentRefs[0].name).toBe('llm-d-infra-inference-gateway');
  });

  it('failureMode FailClose reaches the pool', () => {
    const o = synthObjects(parseDeploymentConfig({ gateway: { failureMode: 'FailClose' } }));
    expect((findObject(o, 'InferencePool', 'kvroute-pool').spec as PoolSpec).endpointPickerRef.failureMode).toBe('FailClose');
  });
});

describe('EnvoyFilter mode', () => {
  const objects = synthObjects(parseDeploymentConfig({ gateway: { mode: 'envoyfilter', hostnames: ['a.example.com', 'b.example.com'], listenerPort: 8080 } }));
  const ef = findObject(objects, 'EnvoyFilter', 'kvroute-ext-proc');
  const spec = ef.spec as { targetRefs: { kind: string; name: string }[]; configPatches: Patch[] };
  const byApply = (a: string) => spec.configPatches.filter((p) => p.applyTo === a);

  it('targets the Gateway', () => {
    expect(ef.apiVersion).toBe('networking.istio.io/v1alpha3');
    expect(spec.targetRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'kvroute-gateway' }]);
  });

  it('inserts ext_proc before the router, pointing at the EPP Service gRPC port, body FULL_DUPLEX_STREAMED, trailers SEND', () => {
    const [f] = byApply('HTTP_FILTER');
    expect(f.patch.operation).toBe('INSERT_BEFORE');
    expect(f.match.listener?.portNumber).toBe(8080);
    const tc = (f.patch.value as { typed_config: { grpc_service: { envoy_grpc: { cluster_name: string } }; processing_mode: Record<string, string> } }).typed_config;
    expect(tc.grpc_service.envoy_grpc.cluster_name).toBe(`outbound|${EppPorts.grpc}||kvroute-epp.llm-d.svc.cluster.local`);
    expect(tc.processing_mode.request_body_mode).toBe('FULL_DUPLEX_STREAMED');
    expect(tc.processing_mode.response_trailer_mode).toBe('SEND');
  });

  it('adds the ORIGINAL_DST cluster and repoints each virtual host of the route to it', () => {
    const [c] = byApply('CLUSTER');
    expect(c.patch.operation).toBe('ADD');
    expect(c.patch.value).toMatchObject({ name: 'kvroute-ext-proc-original-dst', type: 'ORIGINAL_DST', original_dst_lb_config: { http_header_name: 'x-gateway-destination-endpoint' } });
    const routes = byApply('HTTP_ROUTE');
    expect(routes.map((r) => r.match.routeConfiguration)).toEqual([
      { portNumber: 8080, vhost: { name: 'a.example.com:8080' } },
      { portNumber: 8080, vhost: { name: 'b.example.com:8080' } },
    ]);
    // Same timeout as the HTTPRoute (gateway.requestTimeout, default 600s).
    for (const r of routes) expect(r.patch).toEqual({ operation: 'MERGE', value: { route: { cluster: 'kvroute-ext-proc-original-dst', timeout: '600s' } } });
  });

  it('HTTPRoute sends the model path to the decode Service (which the route patch overrides)', () => {
    const route = findObject(objects, 'HTTPRoute', 'kvroute-route').spec as RouteSpec;
    expect(route.hostnames).toEqual(['a.example.com', 'b.example.com']);
    expect(route.rules[0].backendRefs).toEqual([{ group: '', kind: 'Service', name: 'kvroute-decode', port: 8000 }]);
    const svc = findObject(objects, 'Service', 'kvroute-decode').spec as { ports: { port: number; targetPort: string }[]; selector: Record<string, string> };
    expect(svc.ports[0]).toMatchObject({ port: 8000, targetPort: 'http' });
    expect(svc.selector[Labels.role]).toBe('decode');
  });

  it('the pool still exists for EPP discovery, listener port from config on the Gateway', () => {
    expect(findObject(objects, 'InferencePool', 'kvroute-pool')).toBeDefined();
    expect((findObject(objects, 'Gateway', 'kvroute-gateway').spec as { listeners: { port: number }[] }).listeners[0].port).toBe(8080);
  });

  it('without hostnames the wildcard virtual host is patched; BUFFERED and the timeout reach the filter and route', () => {
    const o = synthObjects(parseDeploymentConfig({ gateway: { mode: 'envoyfilter', bodyMode: 'BUFFERED', failureMode: 'FailClose', requestTimeout: '15m' } }));
    expect((findObject(o, 'HTTPRoute', 'kvroute-route').spec as RouteSpec).rules[0].timeouts.request).toBe('15m');
    expect((findObject(o, 'EnvoyFilter', 'kvroute-ext-proc').spec as { configPatches: Patch[] }).configPatches.find((p) => p.applyTo === 'HTTP_ROUTE')?.patch.value).toEqual({
      route: { cluster: 'kvroute-ext-proc-original-dst', timeout: '900s' },
    });
    const s = findObject(o, 'EnvoyFilter', 'kvroute-ext-proc').spec as { configPatches: Patch[] };
    expect(s.configPatches.filter((p) => p.applyTo === 'HTTP_ROUTE').map((p) => p.match.routeConfiguration?.vhost.name)).toEqual(['*:80']);
    const f = s.configPatches.find((p) => p.applyTo === 'HTTP_FILTER')?.patch.value as { typed_config: { failure_mode_allow: boolean; processing_mode: Record<string, string> } };
    expect(f.typed_config.processing_mode.request_body_mode).toBe('BUFFERED');
    expect(f.typed_config.failure_mode_allow).toBe(false);
  });
});
