/**
 * The ext_proc load test's floor server (bench/support/null-extproc.ts) must answer the bench's
 * exchange exactly as the EPP does, or the floor it measures says nothing about the EPP.
 */
import * as http2 from 'node:http2';
import { benchExchange, H2Driver } from '../../../lab/bench/support/h2-driver.js';
import { recordReplies, startNullExtProc, type NullExtProcServer } from '../../../lab/bench/support/null-extproc.js';
import { loadProtos } from '../../../src/extproc/proto.js';
import type { ProcessingResponse } from '../../../src/extproc/types.js';
import { Headers } from '../../../src/contract/names.js';

const decode = loadProtos().extProcService.Process!.responseDeserialize as (b: Buffer) => ProcessingResponse;

/** Splits length-prefixed gRPC frames. */
function unframe(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < buf.length; ) {
    expect(buf[off]).toBe(0);
    const len = buf.readUInt32BE(off + 1);
    out.push(buf.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  return out;
}

describe('recordReplies', () => {
  it("records the EPP's replies to the bench exchange, grouped by the request message that triggers them", async () => {
    const replies = await recordReplies(benchExchange(1000, 7), '10.1.2.3:8000');
    expect(replies.map((r) => r.length)).toEqual([0, 2, 1, 1]);
    const [headersReply, bodyReply] = replies[1]!.map((f) => decode(unframe(f)[0]!));
    const set = headersReply!.request_headers!.response!.header_mutation!.set_headers!;
    const dest = set.find((h) => h.header!.key === Headers.destinationEndpoint);
    expect(Buffer.from(dest!.header!.raw_value!).toString()).toBe('10.1.2.3:8000');
    expect(headersReply!.request_headers!.response!.clear_route_cache).toBe(true);
    const streamed = bodyReply!.request_body!.response!.body_mutation!.streamed_response!;
    expect(streamed.end_of_stream).toBe(true);
    expect(JSON.parse(Buffer.from(streamed.body!).toString()).prompt).toHaveLength(1000);
    expect(decode(unframe(replies[2]![0]!)[0]!).response_headers).toBeDefined();
    expect(decode(unframe(replies[3]![0]!)[0]!).response_body).toBeDefined();
  });
});

describe('null ext_proc server', () => {
  let server: NullExtProcServer;
  beforeAll(async () => {
    server = await startNullExtProc(await recordReplies(benchExchange(2048, 0), '10.0.0.1:8000'));
  });
  afterAll(() => server.close());

  it("completes the bench driver's exchange (the driver checks every reply and grpc-status 0)", async () => {
    const driver = new H2Driver({ port: server.port, connections: 2, promptBytes: 2048 });
    try {
      const latencies = await Promise.all(Array.from({ length: 20 }, () => driver.one()));
      expect(latencies).toHaveLength(20);
      for (const l of latencies) expect(l).toBeGreaterThanOrEqual(0);
    } finally {
      driver.close();
    }
  });

  it('answers a stream half-closed before any reply with trailers-only grpc-status 0', async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const req = session.request({ ':method': 'POST', ':path': '/envoy.service.ext_proc.v3.ExternalProcessor/Process', 'content-type': 'application/grpc' });
      req.end();
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('response', resolve));
      expect(headers['grpc-status']).toBe('0');
      req.resume();
      await new Promise((r) => req.once('close', r));
    } finally {
      session.close();
    }
  });
});
