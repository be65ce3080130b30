import { Headers } from '@kvroute/epp/contract';
import { extProcFilterPatch, istioOutboundCluster, originalDstCluster, routeToCluster, type ExtProcBodyMode } from '../../constructs/routing/ext-proc-filter.js';

describe('extProcFilterPatch', () => {
  it('has exactly the reference shape (defaults: FULL_DUPLEX_STREAMED, fail open, 10s / 1000s)', () => {
    expect(extProcFilterPatch({ serviceHost: 'kvroute-epp.llm-d.svc.cluster.local', port: 9002 })).toStrictEqual({
      name: 'envoy.filters.http.ext_proc',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
        grpc_service: {
          envoy_grpc: { cluster_name: 'outbound|9002||kvroute-epp.llm-d.svc.cluster.local', authority: 'kvroute-epp.llm-d.svc.cluster.local:9002' },
          timeout: '10s',
        },
        failure_mode_allow: true,
        allow_mode_override: true,
        message_timeout: '1000s',
        processing_mode: {
          request_header_mode: 'SEND',
          response_header_mode: 'SEND',
          request_body_mode: 'FULL_DUPLEX_STREAMED',
          response_body_mode: 'FULL_DUPLEX_STREAMED',
          request_trailer_mode: 'SEND',
          response_trailer_mode: 'SEND',
        },
      },
    });
  });

  it('BUFFERED by option; response follows the request unless set; fail closed by option', () => {
    const f = extProcFilterPatch({ serviceHost: 'e.ns.svc.cluster.local', port: 9002, requestBodyMode: 'BUFFERED', failureModeAllow: false, grpcTimeout: '5s', messageTimeout: '30s' });
    expect(f.typed_config.processing_mode.request_body_mode).toBe('BUFFERED');
    expect(f.typed_config.processing_mode.response_body_mode).toBe('BUFFERED');
    expect(f.typed_config.processing_mode.request_trailer_mode).toBe('SEND');
    expect(f.typed_config.failure_mode_allow).toBe(false);
    expect(f.typed_config.grpc_service.timeout).toBe('5s');
    expect(f.typed_config.message_timeout).toBe('30s');
    const g = extProcFilterPatch({ serviceHost: 'e', port: 1, requestBodyMode: 'BUFFERED', responseBodyMode: 'FULL_DUPLEX_STREAMED' });
    expect(g.typed_config.processing_mode.response_body_mode).toBe('FULL_DUPLEX_STREAMED');
  });

  it('never allows body mode NONE (the seed mistake)', () => {
    expect(() => extProcFilterPatch({ serviceHost: 'e', port: 9002, requestBodyMode: 'NONE' as ExtProcBodyMode })).toThrow(/requestBodyMode "NONE" is not allowed.*FULL_DUPLEX_STREAMED/);
    expect(() => extProcFilterPatch({ serviceHost: 'e', port: 9002, responseBodyMode: 'STREAMED' as ExtProcBodyMode })).toThrow(/responseBodyMode "STREAMED"/);
  });

  it('rejects bad ports and durations', () => {
    expect(() => extProcFilterPatch({ serviceHost: 'e', port: 0 })).toThrow(/port 0 is not a TCP port/);
    expect(() => extProcFilterPatch({ serviceHost: 'e', port: 9002, grpcTimeout: '10' })).toThrow(/grpcTimeout "10" is not a protobuf duration/);
  });
});

describe('originalDstCluster and routeToCluster', () => {
  it('ORIGINAL_DST keyed on the destination-endpoint header', () => {
    expect(originalDstCluster('c')).toStrictEqual({
      name: 'c',
      type: 'ORIGINAL_DST',
      lb_policy: 'CLUSTER_PROVIDED',
      connect_timeout: '1000s',
      original_dst_lb_config: { use_http_header: true, http_header_name: Headers.destinationEndpoint },
      circuit_breakers: { thresholds: [{ max_connections: 40000, max_pending_requests: 40000, max_requests: 40000 }] },
    });
    expect(Headers.destinationEndpoint).toBe('x-gateway-destination-endpoint');
    expect(() => originalDstCluster('bad name')).toThrow(/characters/);
  });
  it('route patch defaults to no route timeout', () => {
    expect(routeToCluster('c')).toEqual({ route: { cluster: 'c', timeout: '0s' } });
    expect(istioOutboundCluster('h', 1)).toBe('outbound|1||h');
  });
});
