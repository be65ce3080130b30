/**
 * A scripted ext_proc client: plays the gateway (Envoy) side of
 * `envoy.service.ext_proc.v3.ExternalProcessor/Process` frame by frame. Used by the ext_proc tests,
 * the benchmark, and (later) the demo gateway.
 *
 *   const client = new ExtProcTestClient({ address: '127.0.0.1:9002' });
 *   const s = client.open();
 *   s.send(frames.requestHeaders({ ':path': '/v1/completions', ':method': 'POST' }));
 *   s.send(frames.requestBody('{"model":"m","prompt":"hi"}', true));
 *   const headersResponse = await s.next();
 *   ...
 *   s.end(); await s.done;
 *
 * `routeRequest()` runs the whole request phase like Envoy in FULL_DUPLEX_STREAMED mode and
 * returns the decision (destination, header mutation, the body to forward) or the immediate
 * response.
 */
import * as grpc from '@grpc/grpc-js';
import { Headers, MetadataNamespaces } from '../src/contract/names.js';
import { loadProtos, ServiceNames } from '../src/extproc/proto.js';
import type {
  HeaderMutation,
  HealthCheckResponse,
  ImmediateResponse,
  Metadata,
  PbStruct,
  ProcessingRequest,
  ProcessingResponse,
  ProtocolConfiguration,
} from '../src/extproc/types.js';

export interface ExtProcClientOptions {
  /** `host:port` of the ext_proc server. */
  readonly address: string;
  /** Trust this PEM certificate and use TLS. @default undefined (plaintext h2c) */
  readonly caPem?: string;
  /** TLS server name override. @default the host of `address` */
  readonly serverName?: string;
}

const PROCESS_PATH = `/${ServiceNames.extProc}/Process`;

function credentials(opts: ExtProcClientOptions): grpc.ChannelCredentials {
  return opts.caPem ? grpc.credentials.createSsl(Buffer.from(opts.caPem)) : grpc.credentials.createInsecure();
}

function channelOptions(opts: ExtProcClientOptions): grpc.ChannelOptions {
  return opts.serverName ? { 'grpc.ssl_target_name_override': opts.serverName } : {};
}

/** One scripted stream. Responses queue up; `next()` takes them in order. */
export class ScriptedStream<Req = ProcessingRequest> {
  /** Every response received so far, in order. */
  readonly responses: ProcessingResponse[] = [];
  /** Resolves with the final gRPC status (OK or error) once the server ends the call. */
  readonly done: Promise<grpc.StatusObject>;
  private readIndex = 0;
  private waiters: { resolve: (r: ProcessingResponse) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  private finalStatus: grpc.StatusObject | undefined;

  constructor(private readonly call: grpc.ClientDuplexStream<Req, ProcessingResponse>) {
    call.on('data', (r: ProcessingResponse) => {
      this.responses.push(r);
      const w = this.waiters.shift();
      if (w) {
        clearTimeout(w.timer);
        this.readIndex++;
        w.resolve(r);
      }
    });
    this.done = new Promise((resolve) => {
      call.on('status', (s: grpc.StatusObject) => {
        this.finalStatus = s;
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error(`stream ended (${grpc.status[s.code]}: ${s.details}) while waiting for a response`));
        }
        resolve(s);
      });
    });
    // Errors also arrive as 'status'; keep the 'error' event from throwing.
    call.on('error', () => undefined);
  }

  send(msg: Req): this {
    this.call.write(msg);
    return this;
  }

  /** Half-close (what Envoy does when the HTTP exchange is over). */
  end(): void {
    this.call.end();
  }

  /** Cancel the call (a client that goes away mid-stream). */
  cancel(): void {
    this.call.cancel();
  }

  /** The next response not yet taken; rejects after `timeoutMs` or when the call ends first. */
  next(timeoutMs = 5000): Promise<ProcessingResponse> {
    if (this.readIndex < this.responses.length) return Promise.resolve(this.responses[this.readIndex++]!);
    if (this.finalStatus) return Promise.reject(new Error(`stream already ended (${grpc.status[this.finalStatus.code]}: ${this.finalStatus.details})`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`no ext_proc response within ${timeoutMs} ms (got ${this.responses.length} so far)`));
      }, timeoutMs);
      this.waiters.push({ resolve, reject, timer });
    });
  }

  /** Takes `n` responses. */
  async take(n: number, timeoutMs = 5000): Promise<ProcessingResponse[]> {
    const out: ProcessingResponse[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(timeoutMs));
    return out;
  }

  /** Responses received but not taken yet. */
  pending(): ProcessingResponse[] {
    return this.responses.slice(this.readIndex);
  }
}

export class ExtProcTestClient {
  private readonly client: grpc.Client;
  private readonly serialize: (m: ProcessingRequest) => Buffer;
  private readonly deserialize: (b: Buffer) => ProcessingResponse;

  constructor(opts: ExtProcClientOptions) {
    const { extProcService } = loadProtos();
    const def = extProcService.Process!;
    this.serialize = def.requestSerialize as (m: ProcessingRequest) => Buffer;
    this.deserialize = def.responseDeserialize as (b: Buffer) => ProcessingResponse;
    this.client = new grpc.Client(opts.address, credentials(opts), channelOptions(opts));
  }

  /** Opens a Process stream. */
  open(): ScriptedStream {
    return new ScriptedStream(this.client.makeBidiStreamRequest(PROCESS_PATH, this.serialize, this.deserialize));
  }

  /** Opens a Process stream that sends raw bytes as frames (to test undecodable input). */
  openRaw(): ScriptedStream<Buffer> {
    return new ScriptedStream(this.client.makeBidiStreamRequest(PROCESS_PATH, (b: Buffer) => b, this.deserialize));
  }

  /** Waits until the channel is connected. */
  waitForReady(timeoutMs = 5000): Promise<void> {
    return new Promise((resolve, reject) => this.client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    this.client.close();
  }
}

// ---- frame builders ------------------------------------------------------------------------

function headerMap(headers: Record<string, string>): { headers: { key: string; raw_value: Buffer }[] } {
  return { headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
}

/** `protocol_config` for a body mode (FULL_DUPLEX_STREAMED = 4, BUFFERED = 2, NONE = 0). */
export function protocolConfig(requestBodyMode: number, responseBodyMode = requestBodyMode): ProtocolConfiguration {
  return { request_body_mode: requestBodyMode, response_body_mode: responseBodyMode };
}

/** `metadata_context` carrying a subset hint (`envoy.lb.subset_hint`), or a served endpoint. */
export function subsetHintMetadata(endpoints: readonly string[]): Metadata {
  return {
    filter_metadata: {
      [MetadataNamespaces.subsetHint]: { fields: { [Headers.destinationEndpointSubset]: { list_value: { values: endpoints.map((e) => ({ string_value: e })) } } } },
    },
  };
}

export function servedEndpointMetadata(endpoint: string): Metadata {
  return { filter_metadata: { [MetadataNamespaces.lb]: { fields: { [Headers.destinationEndpointServed]: { string_value: endpoint } } } } };
}

export const frames = {
  requestHeaders(
    headers: Record<string, string>,
    opts: { endOfStream?: boolean; metadata?: Metadata; protocolConfig?: ProtocolConfiguration } = {},
  ): ProcessingRequest {
    return {
      request_headers: { headers: headerMap(headers), end_of_stream: opts.endOfStream ?? false },
      ...(opts.metadata ? { metadata_context: opts.metadata } : {}),
      ...(opts.protocolConfig ? { protocol_config: opts.protocolConfig } : {}),
    };
  },
  requestBody(body: string | Buffer, endOfStream: boolean): ProcessingRequest {
    return { request_body: { body: Buffer.from(body), end_of_stream: endOfStream } };
  },
  requestTrailers(trailers: Record<string, string> = {}): ProcessingRequest {
    return { request_trailers: { trailers: headerMap(trailers) } };
  },
  responseHeaders(headers: Record<string, string>, opts: { endOfStream?: boolean; metadata?: Metadata } = {}): ProcessingRequest {
    return {
      response_headers: { headers: headerMap(headers), end_of_stream: opts.endOfStream ?? false },
      ...(opts.metadata ? { metadata_context: opts.metadata } : {}),
    };
  },
  responseBody(body: string | Buffer, endOfStream: boolean): ProcessingRequest {
    return { response_body: { body: Buffer.from(body), end_of_stream: endOfStream } };
  },
  responseTrailers(trailers: Record<string, string> = {}): ProcessingRequest {
    return { response_trailers: { trailers: headerMap(trailers) } };
  },
};

/** Splits bytes into pieces of the given sizes (the last size repeats). */
export function splitBytes(buf: Buffer, sizes: number | readonly number[]): Buffer[] {
  const list = typeof sizes === 'number' ? [sizes] : sizes;
  const out: Buffer[] = [];
  let i = 0;
  let k = 0;
  while (i < buf.length) {
    const n = Math.max(1, list[Math.min(k++, list.length - 1)]!);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out.length > 0 ? out : [Buffer.alloc(0)];
}

// ---- high level ----------------------------------------------------------------------------

/** Reads a Struct string field `ns.key` from dynamic metadata. */
export function metadataString(md: PbStruct | undefined, ns: string, key: string): string | undefined {
  return md?.fields?.[ns]?.struct_value?.fields?.[key]?.string_value;
}

/** Header value set by a mutation. */
export function mutatedHeader(m: HeaderMutation | undefined, key: string): string | undefined {
  const h = m?.set_headers?.find((o) => o.header.key === key)?.header;
  if (!h) return undefined;
  return h.raw_value && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('utf8') : h.value;
}

export type RouteOutcome =
  | {
      readonly kind: 'routed';
      readonly destination: string;
      readonly metadataDestination: string | undefined;
      readonly headerMutation: HeaderMutation;
      readonly clearRouteCache: boolean;
      /** The body the gateway would forward upstream. */
      readonly body: Buffer;
      readonly responses: ProcessingResponse[];
    }
  | { readonly kind: 'immediate'; readonly status: number; readonly body: Buffer; readonly immediate: ImmediateResponse; readonly responses: ProcessingResponse[] };

/**
 * Runs the request phase in FULL_DUPLEX_STREAMED style: headers, body chunks (no waiting), then
 * collects the headers response and the streamed body until end_of_stream (or an immediate
 * response). The stream stays open for the response phase.
 */
export async function routeRequest(
  stream: ScriptedStream,
  req: { headers: Record<string, string>; body?: Buffer | string; chunkBytes?: number; metadata?: Metadata },
  timeoutMs = 5000,
): Promise<RouteOutcome> {
  const body = req.body === undefined ? undefined : Buffer.from(req.body);
  stream.send(frames.requestHeaders(req.headers, { endOfStream: body === undefined, protocolConfig: protocolConfig(4), ...(req.metadata ? { metadata: req.metadata } : {}) }));
  if (body !== undefined) {
    const parts = splitBytes(body, req.chunkBytes ?? 65536);
    parts.forEach((p, i) => stream.send(frames.requestBody(p, i === parts.length - 1)));
  }
  const responses: ProcessingResponse[] = [];
  const first = await stream.next(timeoutMs);
  responses.push(first);
  if (first.immediate_response) {
    const im = first.immediate_response;
    return { kind: 'immediate', status: im.status?.code ?? 0, body: Buffer.from(im.body ?? []), immediate: im, responses };
  }
  const common = first.request_headers?.response;
  if (!common) throw new Error(`expected a request_headers response, got ${JSON.stringify(Object.keys(first))}`);
  const forwarded: Buffer[] = [];
  if (body !== undefined) {
    for (;;) {
      const r = await stream.next(timeoutMs);
      responses.push(r);
      const sr = r.request_body?.response?.body_mutation?.streamed_response;
      if (!sr) throw new Error(`expected a streamed request_body response, got ${JSON.stringify(r)}`);
      forwarded.push(Buffer.from(sr.body ?? []));
      if (sr.end_of_stream) break;
    }
  }
  const headerMutation = common.header_mutation ?? {};
  return {
    kind: 'routed',
    destination: mutatedHeader(headerMutation, Headers.destinationEndpoint) ?? '',
    metadataDestination: metadataString(first.dynamic_metadata, MetadataNamespaces.lb, Headers.destinationEndpoint),
    headerMutation,
    clearRouteCache: common.clear_route_cache === true,
    body: body === undefined ? Buffer.alloc(0) : Buffer.concat(forwarded),
    responses,
  };
}

// ---- health --------------------------------------------------------------------------------

export class HealthTestClient {
  private readonly client: grpc.Client;
  private readonly def: grpc.ServiceDefinition;

  constructor(opts: ExtProcClientOptions) {
    this.def = loadProtos().healthService;
    this.client = new grpc.Client(opts.address, credentials(opts), channelOptions(opts));
  }

  check(service = ''): Promise<HealthCheckResponse> {
    const d = this.def.Check!;
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/${ServiceNames.health}/Check`,
        d.requestSerialize as (m: { service: string }) => Buffer,
        d.responseDeserialize as (b: Buffer) => HealthCheckResponse,
        { service },
        (err, res) => (err ? reject(err) : resolve(res ?? {})),
      );
    });
  }

  /** Opens a Watch; statuses arrive in `seen` (numeric ServingStatus), `ended` resolves at the end. */
  watch(service = ''): { seen: number[]; next: (timeoutMs?: number) => Promise<number>; cancel: () => void; ended: Promise<grpc.StatusObject> } {
    const d = this.def.Watch!;
    const call = this.client.makeServerStreamRequest(
      `/${ServiceNames.health}/Watch`,
      d.requestSerialize as (m: { service: string }) => Buffer,
      d.responseDeserialize as (b: Buffer) => HealthCheckResponse,
      { service },
    );
    const seen: number[] = [];
    let taken = 0;
    const waiters: ((s: number) => void)[] = [];
    call.on('data', (r: HealthCheckResponse) => {
      seen.push(r.status ?? 0);
      const w = waiters.shift();
      if (w) {
        taken++;
        w(r.status ?? 0);
      }
    });
    call.on('error', () => undefined);
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    return {
      seen,
      next: (timeoutMs = 5000) => {
        if (taken < seen.length) return Promise.resolve(seen[taken++]!);
        return new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`no health status within ${timeoutMs} ms`)), timeoutMs);
          waiters.push((s) => {
            clearTimeout(t);
            resolve(s);
          });
        });
      },
      cancel: () => call.cancel(),
      ended,
    };
  }

  close(): void {
    this.client.close();
  }
}
