/**
 * Typed builders for the Envoy config an Istio EnvoyFilter carries (the CRD types `patch.value` as a
 * free-form struct). The exact shapes are asserted in test/routing/ext-proc-filter.test.ts.
 *
 * Reference: GAIE's standalone Envoy (config/charts/standalone/values.yaml) and Istio's native
 * InferencePool filter: header SEND, body FULL_DUPLEX_STREAMED both ways, trailers SEND, and an
 * ORIGINAL_DST cluster that sends each request to the `ip:port` the EPP wrote into
 * `x-gateway-destination-endpoint`.
 */
import { Headers } from '@kvroute/epp/contract';

/** ext_proc body modes kvroute allows (NONE would hide the prompt from the EPP). */
export type ExtProcBodyMode = 'FULL_DUPLEX_STREAMED' | 'BUFFERED';
export const ExtProcBodyModes: readonly ExtProcBodyMode[] = ['FULL_DUPLEX_STREAMED', 'BUFFERED'];

/** Options of {@link extProcFilterPatch}. */
export interface ExtProcFilterOptions {
  /** EPP Service host, e.g. "kvroute-epp.llm-d.svc.cluster.local". */
  readonly serviceHost: string;
  /** EPP ext_proc gRPC port. */
  readonly port: number;
  /**
   * Request body mode.
   * @default 'FULL_DUPLEX_STREAMED'
   */
  readonly requestBodyMode?: ExtProcBodyMode;
  /**
   * Response body mode.
   * @default the request body mode
   */
  readonly responseBodyMode?: ExtProcBodyMode;
  /**
   * Let requests through (gateway picks) when the EPP is unreachable.
   * @default true
   */
  readonly failureModeAllow?: boolean;
  /**
   * Timeout of each gRPC call to the EPP.
   * @default '10s'
   */
  readonly grpcTimeout?: string;
  /**
   * How long Envoy waits for the EPP's answer to one message.
   * @default '1000s'
   */
  readonly messageTimeout?: string;
}

/** The `envoy.filters.http.ext_proc` HTTP filter (value of an HTTP_FILTER patch). */
export interface ExtProcFilter {
  readonly name: 'envoy.filters.http.ext_proc';
  readonly typed_config: {
    readonly '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor';
    readonly grpc_service: {
      readonly envoy_grpc: { readonly cluster_name: string; readonly authority: string };
      readonly timeout: string;
    };
    readonly failure_mode_allow: boolean;
    readonly allow_mode_override: boolean;
    readonly message_timeout: string;
    readonly processing_mode: {
      readonly request_header_mode: 'SEND';
      readonly response_header_mode: 'SEND';
      readonly request_body_mode: ExtProcBodyMode;
      readonly response_body_mode: ExtProcBodyMode;
      readonly request_trailer_mode: 'SEND';
      readonly response_trailer_mode: 'SEND';
    };
  };
}

const durationRe = /^\d+(\.\d+)?s$/;

/** Istio's outbound cluster name of a Service port. */
export function istioOutboundCluster(serviceHost: string, port: number): string {
  return `outbound|${port}||${serviceHost}`;
}

/** Builds the ext_proc filter that sends every request (headers, body, trailers) to the EPP. */
export function extProcFilterPatch(o: ExtProcFilterOptions): ExtProcFilter {
  const req = o.requestBodyMode ?? 'FULL_DUPLEX_STREAMED';
  const res = o.responseBodyMode ?? req;
  for (const [field, mode] of [
    ['requestBodyMode', req],
    ['responseBodyMode', res],
  ] as const) {
    if (!ExtProcBodyModes.includes(mode)) {
      throw new Error(`extProcFilterPatch: ${field} ${JSON.stringify(mode)} is not allowed: the EPP must see the body to score prefixes; use "FULL_DUPLEX_STREAMED" or "BUFFERED"`);
    }
  }
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
    throw new Error(`extProcFilterPatch: port ${o.port} is not a TCP port; pass the EPP's ext_proc port (9002)`);
  }
  const grpcTimeout = o.grpcTimeout ?? '10s';
  const messageTimeout = o.messageTimeout ?? '1000s';
  for (const [field, v] of [
    ['grpcTimeout', grpcTimeout],
    ['messageTimeout', messageTimeout],
  ] as const) {
    if (!durationRe.test(v)) throw new Error(`extProcFilterPatch: ${field} ${JSON.stringify(v)} is not a protobuf duration; write seconds like "10s"`);
  }
  return {
    name: 'envoy.filters.http.ext_proc',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
      grpc_service: {
        envoy_grpc: { cluster_name: istioOutboundCluster(o.serviceHost, o.port), authority: `${o.serviceHost}:${o.port}` },
        timeout: grpcTimeout,
      },
      failure_mode_allow: o.failureModeAllow ?? true,
      allow_mode_override: true,
      message_timeout: messageTimeout,
      processing_mode: {
        request_header_mode: 'SEND',
        response_header_mode: 'SEND',
        request_body_mode: req,
        response_body_mode: res,
        request_trailer_mode: 'SEND',
        response_trailer_mode: 'SEND',
      },
    },
  };
}

/** The ORIGINAL_DST cluster (value of a CLUSTER ADD patch). */
export interface OriginalDstCluster {
  readonly name: string;
  readonly type: 'ORIGINAL_DST';
  readonly lb_policy: 'CLUSTER_PROVIDED';
  readonly connect_timeout: string;
  readonly original_dst_lb_config: { readonly use_http_header: true; readonly http_header_name: string };
  readonly circuit_breakers: {
    readonly thresholds: readonly { readonly max_connections: number; readonly max_pending_requests: number; readonly max_requests: number }[];
  };
}

/** A cluster that connects to whatever `ip:port` the EPP put in `x-gateway-destination-endpoint`. */
export function originalDstCluster(name: string): OriginalDstCluster {
  if (!/^[A-Za-z0-9_.|-]+$/.test(name)) {
    throw new Error(`originalDstCluster: name ${JSON.stringify(name)} has characters Envoy cluster names should not; use letters, digits, "-", "_", "."`);
  }
  return {
    name,
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: '1000s',
    original_dst_lb_config: { use_http_header: true, http_header_name: Headers.destinationEndpoint },
    circuit_breakers: { thresholds: [{ max_connections: 40000, max_pending_requests: 40000, max_requests: 40000 }] },
  };
}

/** The route change (value of an HTTP_ROUTE MERGE patch): send the route to the ORIGINAL_DST cluster. */
export function routeToCluster(cluster: string, timeout = '0s'): { route: { cluster: string; timeout: string } } {
  return { route: { cluster, timeout } };
}
