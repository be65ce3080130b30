/**
 * The ext_proc load test's floor servers (lab/bench/support/null-extproc.ts, on grpc-js and on bare
 * node:http2) must answer the bench's exchange exactly as the EPP does, or the floor they measure
 * says nothing about the EPP.
 */
import * as http2 from 'node:http2';
import { benchExchange, H2Driver } from '../../../lab/bench/support/h2-driver.js';
import { recordReplies, startGrpcNullExtProc, startNullExtProc, type NullExtProcServer } from '../../../lab/bench/support/null-extproc.js';
import { loadProtos } from '../../../src/extproc/proto.js';
import type { ProcessingResponse } from '../../../src/extproc/types.js';
import { Headers } from '../../../src/contract/names.js';

const decode = loadProtos().extProcService.Process!.responseDeserialize as (b: Buffer) => ProcessingResponse;

describe('recordReplies', () => {
  it("records the EPP's replies to the bench exchange, grouped by the request message that triggers them", async () => {
    const replies = await recordReplies(benchExchange(1000, 7), '10.1.2.3:8000');
    expect(replies.map((r) => r.length)).toEqual([0, 2, 1, 1]);
    const [headersReply, bodyReply] = replies[1]!.map((m) => decode(m));
    const set = headersReply!.request_headers!.response!.header_mutation!.set_headers!;
    const dest = set.find((h) => h.header!.key === Headers.destinationEndpoint);
    expect(Buffer.from(dest!.header!.raw_value!).toString()).toBe('10.1.2.3:8000');
    expect(headersReply!.request_headers!.response!.clear_route_cache).toBe(true);
    const streamed = bodyReply!.request_body!.response!.body_mutation!.streamed_response!;
    expect(streamed.end_of_stream).toBe(true);
    expect(JSON.parse(Buffer.from(streamed.body!).toString()).prompt).toHaveLength(1000);
    expect(decode(replies[2]![0]!).response_headers).toBeDefined();
    expect(decode(replies[3]![0]!).response_body).toBeDefined();
  });
});

describe.each([
  ['grpc-js', startGrpcNullExtProc],
  ['node:http2', startNullExtProc],
])('null ext_proc server on %s', (_name, start) => {
  let server: NullExtProcServer;
  beforeAll(async () => {
    server = await start(await recordReplies(benchExchange(2048, 0), '10.0.0.1:8000'));
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

  it('answers a stream half-closed before any reply with grpc-status 0', async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const req = session.request({ ':method': 'POST', ':path': '/envoy.service.ext_proc.v3.ExternalProcessor/Process', 'content-type': 'application/grpc' });
      req.end();
      // trailers-only (node:http2 floor) or headers + trailers (grpc-js): the status is in one of them
      let status: string | undefined;
      req.on('response', (h) => (status ??= h['grpc-status'] as string | undefined));
      req.on('trailers', (t) => (status ??= t['grpc-status'] as string | undefined));
      req.resume();
      await new Promise((r) => req.once('close', r));
      expect(status).toBe('0');
    } finally {
      session.close();
    }
  });
});
