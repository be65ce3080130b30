/**
 * Minimal ext_proc client for the demo gateway: plays Envoy's side of
 * `envoy.service.ext_proc.v3.ExternalProcessor/Process` in FULL_DUPLEX_STREAMED mode for both
 * bodies. One `ExtProcExchange` per HTTP request:
 *
 *   const x = client.open();
 *   const route = await x.route(headers, body);        // request headers + body → decision
 *   await x.responseHeaders({ ':status': '200', ... });
 *   x.responseBody(chunk, false, write); ...; await x.responseBody(last, true, write);
 *   await x.finish();
 */
import * as grpc from '@grpc/grpc-js';
import { loadProtos, ServiceNames } from '../../src/extproc/proto.js';
import { BodySendMode, type HeaderMutation, type ProcessingRequest, type ProcessingResponse } from '../../src/extproc/types.js';

const PROCESS_PATH = `/${ServiceNames.extProc}/Process`;

/** Header the EPP sets to the picked `ip:port`. */
export const DESTINATION_HEADER = 'x-gateway-destination-endpoint';

export type RouteDecision =
  | { readonly kind: 'routed'; readonly destination: string; readonly body: Buffer; readonly headerMutation: HeaderMutation }
  | { readonly kind: 'immediate'; readonly status: number; readonly body: Buffer };

function headerMap(h: Record<string, string>): { headers: { key: string; raw_value: Buffer }[] } {
  return { headers: Object.entries(h).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
}

function mutated(m: HeaderMutation | undefined, key: string): string | undefined {
  const h = m?.set_headers?.find((o) => o.header.key.toLowerCase() === key)?.header;
  if (!h) return undefined;
  return h.raw_value && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('utf8') : h.value;
}

/** One Process stream. */
export class ExtProcExchange {
  private readonly queue: ProcessingResponse[] = [];
  private waiter: { resolve: (r: ProcessingResponse) => void; reject: (e: Error) => void } | undefined;
  private ended: Error | undefined;
  readonly status: Promise<grpc.StatusObject>;

  constructor(
    private readonly call: grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>,
    private readonly timeoutMs: number,
  ) {
    call.on('data', (r: ProcessingResponse) => {
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        w.resolve(r);
      } else this.queue.push(r);
    });
    call.on('error', () => undefined); // reported through 'status'
    this.status = new Promise((resolve) => {
      call.on('status', (s: grpc.StatusObject) => {
        this.ended = new Error(`ext_proc stream ended (${grpc.status[s.code]}: ${s.details})`);
        this.waiter?.reject(this.ended);
        this.waiter = undefined;
        resolve(s);
      });
    });
  }

  private next(): Promise<ProcessingResponse> {
    const r = this.queue.shift();
    if (r) return Promise.resolve(r);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no ext_proc response within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiter = {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** Request phase: headers then the body (one message, end_of_stream), then the decision. */
  async route(headers: Record<string, string>, body: Buffer): Promise<RouteDecision> {
    const mode = BodySendMode.FULL_DUPLEX_STREAMED;
    this.call.write({
      request_headers: { headers: headerMap(headers), end_of_stream: body.length === 0 },
      protocol_config: { request_body_mode: mode, response_body_mode: mode },
    });
    if (body.length > 0) this.call.write({ request_body: { body, end_of_stream: true } });
    const first = await this.next();
    if (first.immediate_response) {
      const im = first.immediate_response;
      return { kind: 'immediate', status: im.status?.code ?? 500, body: Buffer.from(im.body ?? []) };
    }
    const common = first.request_headers?.response;
    if (!common) throw new Error(`ext_proc: expected a request_headers response, got ${Object.keys(first).join(',')}`);
    const parts: Buffer[] = [];
    if (body.length > 0) {
      for (;;) {
        const r = await this.next();
        if (r.immediate_response) {
          return { kind: 'immediate', status: r.immediate_response.status?.code ?? 500, body: Buffer.from(r.immediate_response.body ?? []) };
        }
        const sr = r.request_body?.response?.body_mutation?.streamed_response;
        if (!sr) throw new Error(`ext_proc: expected a streamed request_body response, got ${Object.keys(r).join(',')}`);
        parts.push(Buffer.from(sr.body ?? []));
        if (sr.end_of_stream) break;
      }
    }
    const hm = common.header_mutation ?? {};
    const destination = mutated(hm, DESTINATION_HEADER);
    if (!destination) throw new Error(`ext_proc: the EPP set no ${DESTINATION_HEADER} header`);
    return { kind: 'routed', destination, body: Buffer.concat(parts), headerMutation: hm };
  }

  /** Response phase: the upstream's status and headers. */
  async responseHeaders(headers: Record<string, string>): Promise<HeaderMutation> {
    this.call.write({ response_headers: { headers: headerMap(headers), end_of_stream: false } });
    const r = await this.next();
    if (!r.response_headers) throw new Error(`ext_proc: expected a response_headers response, got ${Object.keys(r).join(',')}`);
    return r.response_headers.response?.header_mutation ?? {};
  }

  /** Sends one upstream body chunk. */
  sendResponseBody(chunk: Buffer, eos: boolean): void {
    this.call.write({ response_body: { body: chunk, end_of_stream: eos } });
  }

  /** Reads the processed response body, calling `write` per piece, until end_of_stream. */
  async pumpResponseBody(write: (b: Buffer) => void): Promise<void> {
    for (;;) {
      const r = await this.next();
      const sr = r.response_body?.response?.body_mutation?.streamed_response;
      if (!sr) throw new Error(`ext_proc: expected a streamed response_body response, got ${Object.keys(r).join(',')}`);
      if (sr.body && sr.body.length > 0) write(Buffer.from(sr.body));
      if (sr.end_of_stream) return;
    }
  }

  /** Half-closes the stream and waits for the server to end it. */
  async finish(): Promise<void> {
    this.call.end();
    await this.status;
  }

  cancel(): void {
    this.call.cancel();
  }
}

export class ExtProcClient {
  private readonly client: grpc.Client;
  private readonly serialize: (m: ProcessingRequest) => Buffer;
  private readonly deserialize: (b: Buffer) => ProcessingResponse;

  /**
   * @param address `host:port` of the EPP's ext_proc port (plaintext).
   * @param timeoutMs per-response timeout
   */
  constructor(
    address: string,
    private readonly timeoutMs = 10_000,
  ) {
    const def = loadProtos().extProcService.Process;
    if (!def) throw new Error('ext_proc proto has no Process method');
    this.serialize = def.requestSerialize as (m: ProcessingRequest) => Buffer;
    this.deserialize = def.responseDeserialize as (b: Buffer) => ProcessingResponse;
    // Reconnect quickly after the EPP restarts (grpc-js would otherwise back off up to 120 s).
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 });
  }

  open(): ExtProcExchange {
    return new ExtProcExchange(this.client.makeBidiStreamRequest(PROCESS_PATH, this.serialize, this.deserialize), this.timeoutMs);
  }

  close(): void {
    this.client.close();
  }
}
