/** Shared fixtures of the ext_proc tests: a real server on 127.0.0.1:0 and expected messages. */
import { Registry } from 'prom-client';
import { Headers, MetadataNamespaces } from '../../src/contract/names.js';
import { ExtProcServer, type ExtProcServerOptions } from '../../src/extproc/grpc-server.js';
import type { HeaderValueOption, ProcessingResponse } from '../../src/extproc/types.js';
import { ExtProcTestClient } from '../../testkit/extproc-client.js';
import { ScriptedDirector } from './scripted-director.js';

export interface Harness {
  readonly server: ExtProcServer;
  readonly client: ExtProcTestClient;
  readonly director: ScriptedDirector;
  readonly registry: Registry;
  readonly grpcPort: number;
  readonly healthPort: number | undefined;
  close(): Promise<void>;
  /** Value of one metric series (labels must match exactly), 0 when absent. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

export const ENDPOINTS = ['10.0.0.1:8000', '10.0.0.2:8000'];

export async function startHarness(
  opts: Partial<ExtProcServerOptions> & { endpoints?: readonly string[] } = {},
): Promise<Harness> {
  const registry = new Registry();
  const director = (opts.director as ScriptedDirector | undefined) ?? new ScriptedDirector(opts.endpoints ?? ENDPOINTS);
  const server = new ExtProcServer({ ...opts, director, registry });
  const bound = await server.start({ grpcPort: 0, healthPort: 0, host: '127.0.0.1' });
  const client = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
  return {
    server,
    client,
    director,
    registry,
    grpcPort: bound.grpcPort,
    healthPort: bound.healthPort,
    async close() {
      client.close();
      await server.stop(200);
    },
    async metric(name, labels = {}) {
      const m = await registry.getSingleMetric(name)?.get();
      const want = JSON.stringify(Object.entries(labels).sort());
      const v = m?.values.find((x) => JSON.stringify(Object.entries(x.labels).sort()) === want);
      return v?.value ?? 0;
    },
  };
}

export const PATH_COMPLETIONS = '/v1/completions';
export const PATH_CHAT = '/v1/chat/completions';

export function postHeaders(path: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ':method': 'POST', ':path': path, ':authority': 'gw.local', 'content-type': 'application/json', 'x-request-id': 'req-1', ...extra };
}

/** A header set with overwrite semantics, as the EPP writes it. */
export function setHeader(key: string, value: string): HeaderValueOption {
  return { header: { key, raw_value: Buffer.from(value) }, append_action: 2 };
}

export function lbMetadata(dest: string): ProcessingResponse['dynamic_metadata'] {
  return { fields: { [MetadataNamespaces.lb]: { struct_value: { fields: { [Headers.destinationEndpoint]: { string_value: dest } } } } } };
}

/** The FULL_DUPLEX / body-less decision message. */
export function headersDecision(dest: string, extra: HeaderValueOption[] = []): ProcessingResponse {
  return {
    request_headers: { response: { header_mutation: { set_headers: [setHeader(Headers.destinationEndpoint, dest), ...extra] }, clear_route_cache: true } },
    dynamic_metadata: lbMetadata(dest),
  };
}

function streamed(body: Buffer, eos: boolean): { body?: Buffer; end_of_stream?: boolean } {
  return { ...(body.length > 0 ? { body } : {}), ...(eos ? { end_of_stream: true } : {}) };
}

export function requestBodyChunk(body: string | Buffer, eos: boolean): ProcessingResponse {
  return { request_body: { response: { body_mutation: { streamed_response: streamed(Buffer.from(body), eos) } } } };
}

export function responseBodyChunk(body: string | Buffer, eos: boolean): ProcessingResponse {
  return { response_body: { response: { body_mutation: { streamed_response: streamed(Buffer.from(body), eos) } } } };
}

/** An ImmediateResponse as the EPP sends it (the JSON body is checked separately). */
export function immediate(status: number, code: string): ProcessingResponse {
  return {
    immediate_response: {
      status: { code: status },
      headers: { set_headers: [setHeader('content-type', 'application/json')] },
      body: expectAnyBuffer(),
      details: `kvroute_${code}`,
    },
  };
}

function expectAnyBuffer(): Buffer {
  return expect.any(Buffer) as unknown as Buffer;
}

/** Parses the JSON error body of an immediate response. */
export function errorOf(r: ProcessingResponse): { code: string; message: string } {
  const body = r.immediate_response?.body;
  if (!body) throw new Error(`not an immediate response: ${JSON.stringify(r)}`);
  return (JSON.parse(Buffer.from(body).toString('utf8')) as { error: { code: string; message: string } }).error;
}

/** Deep copy with byte fields as `bytes:<utf8>` strings (fast whole-message equality on big bodies). */
export function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return `bytes:${Buffer.from(v).toString('utf8')}`;
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}
