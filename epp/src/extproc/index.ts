/** The ext_proc protocol layer: what the runtime composition and the scheduler import. */
export type { ApiKind, ChatMessage, InferenceRequest, PickResult, RequestDirector, ResponseInfo, Usage } from './director.js';
export { formatDestination, joinHostPort, parseEndpoint, subsetAllows, type HostPort } from './endpoints.js';
export { toImmediateResponse } from './immediate.js';
export { ExtProcMetrics, ExtProcLogging, combineObservers, type ExtProcObserver, type StreamOutcome } from './observer.js';
export { apiKindForPath, parseRequestBody, type ParsedBody } from './parse.js';
export { loadProtos, PROTO_DIR, ServiceNames } from './proto.js';
export { BODY_CHUNK_BYTES, REQUEST_ID_HEADER } from './stream.js';
