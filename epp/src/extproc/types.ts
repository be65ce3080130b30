/**
 * TypeScript shapes of the ext_proc and health messages as @grpc/proto-loader decodes/encodes
 * them with the options in `proto.ts` (snake_case, unset fields absent, numeric enums, Buffers).
 * They mirror `epp/proto/**` one to one.
 */

/** google.protobuf.Value (one of the kinds is set). */
export interface PbValue {
  null_value?: 0;
  number_value?: number;
  string_value?: string;
  bool_value?: boolean;
  struct_value?: PbStruct;
  list_value?: PbListValue;
}
export interface PbStruct {
  fields?: Record<string, PbValue>;
}
export interface PbListValue {
  values?: PbValue[];
}

export interface HeaderValue {
  key: string;
  value?: string;
  raw_value?: Buffer | Uint8Array;
}

/** envoy.config.core.v3.HeaderValueOption.HeaderAppendAction */
export const HeaderAppendAction = {
  APPEND_IF_EXISTS_OR_ADD: 0,
  ADD_IF_ABSENT: 1,
  OVERWRITE_IF_EXISTS_OR_ADD: 2,
  OVERWRITE_IF_EXISTS: 3,
} as const;

export interface HeaderValueOption {
  header: HeaderValue;
  append_action?: number;
  keep_empty_value?: boolean;
}
export interface HeaderMap {
  headers?: HeaderValue[];
}
export interface Metadata {
  filter_metadata?: Record<string, PbStruct>;
}

/** envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode */
export const BodySendMode = {
  NONE: 0,
  STREAMED: 1,
  BUFFERED: 2,
  BUFFERED_PARTIAL: 3,
  FULL_DUPLEX_STREAMED: 4,
  GRPC: 5,
} as const;

export interface ProtocolConfiguration {
  request_body_mode?: number;
  response_body_mode?: number;
  send_body_without_waiting_for_header_response?: boolean;
}

export interface HttpHeaders {
  headers?: HeaderMap;
  end_of_stream?: boolean;
}
export interface HttpBody {
  body?: Buffer | Uint8Array;
  end_of_stream?: boolean;
}
export interface HttpTrailers {
  trailers?: HeaderMap;
}

export interface ProcessingRequest {
  request_headers?: HttpHeaders;
  response_headers?: HttpHeaders;
  request_body?: HttpBody;
  response_body?: HttpBody;
  request_trailers?: HttpTrailers;
  response_trailers?: HttpTrailers;
  metadata_context?: Metadata;
  observability_mode?: boolean;
  protocol_config?: ProtocolConfiguration;
}

export interface HeaderMutation {
  set_headers?: HeaderValueOption[];
  remove_headers?: string[];
}
export interface StreamedBodyResponse {
  body?: Buffer | Uint8Array;
  end_of_stream?: boolean;
}
export interface BodyMutation {
  body?: Buffer | Uint8Array;
  clear_body?: boolean;
  streamed_response?: StreamedBodyResponse;
}

/** envoy.service.ext_proc.v3.CommonResponse.ResponseStatus */
export const ResponseStatus = { CONTINUE: 0, CONTINUE_AND_REPLACE: 1 } as const;

export interface CommonResponse {
  status?: number;
  header_mutation?: HeaderMutation;
  body_mutation?: BodyMutation;
  trailers?: HeaderMap;
  clear_route_cache?: boolean;
}
export interface HeadersResponse {
  response?: CommonResponse;
}
export interface BodyResponse {
  response?: CommonResponse;
}
export interface TrailersResponse {
  header_mutation?: HeaderMutation;
}
export interface ImmediateResponse {
  status?: { code?: number };
  headers?: HeaderMutation;
  body?: Buffer | Uint8Array;
  grpc_status?: { status?: number };
  details?: string;
}

export interface ProcessingResponse {
  request_headers?: HeadersResponse;
  response_headers?: HeadersResponse;
  request_body?: BodyResponse;
  response_body?: BodyResponse;
  request_trailers?: TrailersResponse;
  response_trailers?: TrailersResponse;
  immediate_response?: ImmediateResponse;
  dynamic_metadata?: PbStruct;
}

/** grpc.health.v1.HealthCheckResponse.ServingStatus */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
export type ServingStatusValue = (typeof ServingStatus)[keyof typeof ServingStatus];

export interface HealthCheckRequest {
  service?: string;
}
export interface HealthCheckResponse {
  status?: number;
}
export interface HealthListResponse {
  statuses?: Record<string, HealthCheckResponse>;
}
