/**
 * A lean Envoy stand-in for the ext_proc load test: gRPC spoken directly over `node:http2`
 * (length-prefixed protobuf messages, `grpc-status` trailers), with the exchange's fixed messages
 * serialized once. Envoy is C++ and spends a few µs per stream on ext_proc; a grpc-js client spends
 * ~400 µs of CPU per stream on this 2-core box, which then competes with the EPP it is measuring.
 * This driver costs a fraction of that, so the figures say more about the EPP.
 *
 * Each stream is the FULL_DUPLEX_STREAMED exchange of the grpc-js driver: request headers
 * (+ protocol_config) → the request body with end_of_stream → [EPP: headers reply, body reply(s)
 * ending in streamed_response.end_of_stream] → response headers → response body →
 * [EPP: the two replies] → half-close → trailers with grpc-status 0. Replies are decoded with the
 * same protos and checked; anything else rejects the stream.
 */
import * as http2 from 'node:http2';
import { loadProtos, ServiceNames } from '../../../src/extproc/proto.js';
import type { ProcessingRequest, ProcessingResponse } from '../../../src/extproc/types.js';

function headerMap(h: Record<string, string>): { headers: { key: string; raw_value: Buffer }[] } {
  return { headers: Object.entries(h).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
}

/** The first message of the bench's stream `k` (its `x-request-id` differs per stream). */
export function benchRequestHeaders(k: number): ProcessingRequest {
  return {
    request_headers: { headers: headerMap({ ':method': 'POST', ':path': '/v1/completions', 'content-type': 'application/json', 'x-request-id': `r${k}` }) },
    protocol_config: { request_body_mode: 4, response_body_mode: 4 },
  };
}

/**
 * The bench's exchange for stream `k`, as the gateway sends it: request headers (+ protocol_config,
 * FULL_DUPLEX_STREAMED both ways), the completions body with end_of_stream, response headers and a
 * JSON response body with usage.
 */
export function benchExchange(promptBytes: number, k: number): [ProcessingRequest, ProcessingRequest, ProcessingRequest, ProcessingRequest] {
  const filler = 'lorem ipsum dolor sit amet '.repeat(Math.ceil(promptBytes / 27)).slice(0, promptBytes);
  return [
    benchRequestHeaders(k),
    { request_body: { body: Buffer.from(JSON.stringify({ model: 'm', prompt: filler, max_tokens: 16 })), end_of_stream: true } },
    { response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) } },
    {
      response_body: {
        body: Buffer.from('{"id":"x","model":"m","choices":[{"text":"ok"}],"usage":{"prompt_tokens":2048,"completion_tokens":16}}'),
        end_of_stream: true,
      },
    },
  ];
}

/** gRPC message framing: flag 0 (uncompressed), u32 big-endian length, message. */
export function frame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + msg.length);
  out[0] = 0;
  out.writeUInt32BE(msg.length, 1);
  msg.copy(out, 5);
  return out;
}

export interface H2DriverOptions {
  readonly port: number;
  /** HTTP/2 connections, streams spread round-robin (like Envoy worker threads). */
  readonly connections: number;
  readonly promptBytes: number;
}

export class H2Driver {
  private readonly sessions: http2.ClientHttp2Session[];
  private readonly ser: (m: ProcessingRequest) => Buffer;
  private readonly de: (b: Buffer) => ProcessingResponse;
  private readonly bodyFrame: Buffer;
  private readonly respFrames: Buffer;
  private n = 0;

  constructor(opts: H2DriverOptions) {
    const def = loadProtos().extProcService.Process;
    if (def === undefined) throw new Error('ext_proc Process method missing from the protos');
    this.ser = def.requestSerialize as (m: ProcessingRequest) => Buffer;
    this.de = def.responseDeserialize as (b: Buffer) => ProcessingResponse;
    this.sessions = Array.from({ length: opts.connections }, () => {
      // Windows like Envoy's (1 MiB per stream; a large connection window), so replies never wait for WINDOW_UPDATEs.
      const s = http2.connect(`http://127.0.0.1:${opts.port}`, { settings: { initialWindowSize: 1 << 20 } });
      s.once('connect', () => s.setLocalWindowSize(16 << 20));
      s.on('error', () => undefined);
      return s;
    });
    const [, body, respHeaders, respBody] = benchExchange(opts.promptBytes, 0);
    this.bodyFrame = frame(this.ser(body));
    this.respFrames = Buffer.concat([frame(this.ser(respHeaders)), frame(this.ser(respBody))]);
  }

  /** One whole exchange; resolves with the EPP's added latency in ms (final body frame sent → headers reply). */
  one(): Promise<number> {
    const k = this.n++;
    const session = this.sessions[k % this.sessions.length] as http2.ClientHttp2Session;
    const headersFrame = frame(this.ser(benchRequestHeaders(k)));
    return new Promise((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': `/${ServiceNames.extProc}/Process`,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      let sentAt = 0;
      let latency = -1;
      let buf: Buffer = Buffer.alloc(0);
      let status: string | undefined;
      let failed: Error | undefined;
      const fail = (e: Error): void => {
        if (failed === undefined) failed = e;
        req.close(http2.constants.NGHTTP2_CANCEL);
      };
      const onMessage = (r: ProcessingResponse): void => {
        if (r.immediate_response) return fail(new Error(`immediate response ${r.immediate_response.status?.code}`));
        if (latency < 0) latency = performance.now() - sentAt;
        if (r.request_body?.response?.body_mutation?.streamed_response?.end_of_stream) req.write(this.respFrames);
        if (r.response_body) req.end();
      };
      req.on('data', (chunk: Buffer) => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        while (buf.length >= 5) {
          const len = buf.readUInt32BE(1);
          if (buf.length < 5 + len) break;
          const msg = buf.subarray(5, 5 + len);
          buf = buf.subarray(5 + len);
          try {
            onMessage(this.de(msg));
          } catch (e) {
            fail(e instanceof Error ? e : new Error(String(e)));
          }
        }
      });
      req.on('trailers', (t: http2.IncomingHttpHeaders) => {
        status = String(t['grpc-status']);
      });
      req.on('response', (h: http2.IncomingHttpHeaders) => {
        // trailers-only responses carry grpc-status in the headers
        if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      });
      req.on('error', (e: Error) => fail(e));
      req.on('close', () => {
        if (failed !== undefined) reject(failed);
        else if (status === '0' && latency >= 0) resolve(latency);
        else reject(new Error(`stream ended with grpc-status ${status ?? '(none)'}`));
      });
      req.write(headersFrame);
      sentAt = performance.now();
      req.write(this.bodyFrame);
    });
  }

  close(): void {
    for (const s of this.sessions) s.close();
  }
}
