/**
 * ExtProcServer on @grpc/grpc-js's Server: what the transport decides for the EPP (message size
 * limit, routing per port, client going away, keepalive, connection age, stream limit, a busy
 * port), over real sockets on 127.0.0.1.
 */
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { createServer, connect as netConnect, type Server as NetServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { ExtProcServer, grpcServerOptions, type ExtProcServerOptions } from '../../src/extproc/grpc-server.js';
import { loadProtos } from '../../src/extproc/proto.js';
import { ExtProcTestClient, frames, protocolConfig, routeRequest } from '../../testkit/extproc-client.js';
import { PATH_COMPLETIONS, postHeaders } from './fixtures.js';
import { ScriptedDirector } from './scripted-director.js';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(opts: Partial<Omit<ExtProcServerOptions, 'director' | 'registry'>> = {}) {
  const registry = new Registry();
  const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']), registry, ...opts });
  const bound = await server.start({ grpcPort: 0, healthPort: 0, host: '127.0.0.1' });
  cleanups.push(() => server.stop(100));
  const client = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
  cleanups.push(() => client.close());
  const outcome = async (o: string): Promise<number> => (await server.metrics.streams.get()).values.find((v) => v.labels.outcome === o)?.value ?? 0;
  return { server, bound, client, outcome };
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  for (let t = 0; t < ms && !cond(); t += 5) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
}

function h2(port: number): ClientHttp2Session {
  const s = h2connect(`http://127.0.0.1:${port}`);
  s.on('error', () => undefined);
  cleanups.push(() => void s.destroy());
  return s;
}

test('message limit = max(maxBodyBytes, maxResponseBufferBytes) + 1 MiB: at the limit decoded, one byte over RESOURCE_EXHAUSTED (counted as cancelled)', async () => {
  const { client, outcome } = await start({ maxBodyBytes: 2048, maxResponseBufferBytes: 4096 });
  const limit = 4096 + 1024 * 1024;
  // A valid ProcessingRequest of exactly `limit` bytes: request_body.body padded to size.
  const ser = loadProtos().extProcService.Process!.requestSerialize as (m: object) => Buffer;
  let pad = limit - 16;
  let msg = ser({ request_body: { body: Buffer.alloc(pad, 0x61), end_of_stream: true } });
  pad += limit - msg.length;
  msg = ser({ request_body: { body: Buffer.alloc(pad, 0x61), end_of_stream: true } });
  expect(msg.length).toBe(limit);
  const atLimit = client.openRaw();
  atLimit.send(msg);
  // Decoded, then refused by the protocol layer (a body before headers), not by the transport.
  expect(await atLimit.done).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'request_body received in state headers' });
  expect(await outcome('protocol_error')).toBe(1);
  const over = client.openRaw();
  over.send(Buffer.concat([msg, Buffer.from('a')]));
  const st = await over.done;
  // grpc-js judges the length prefix and ends the call itself; the EPP sees the call go away.
  expect([st.code, st.details]).toEqual([grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${limit + 1} vs ${limit})`]);
  // Counted as `cancelled`: grpc-js ends the call below the handler, which only sees it go away.
  expect(await outcome('cancelled')).toBe(1);
  expect(await outcome('error')).toBe(0);
});

test('an undecodable frame is INVALID_ARGUMENT naming the message type (counted as error), not a generic INTERNAL', async () => {
  const { client, outcome } = await start();
  const s = client.openRaw();
  s.send(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])); // field 1, length far past the end
  const st = await s.done;
  expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
  expect(st.details).toMatch(/^undecodable ProcessingRequest frame \(.+\); the client must send envoy\.service\.ext_proc\.v3\.ProcessingRequest$/);
  expect(await outcome('error')).toBe(1);
});

test('the health port serves health only: Process there is UNIMPLEMENTED naming the method', async () => {
  const { bound } = await start();
  const onHealth = new ExtProcTestClient({ address: `127.0.0.1:${bound.healthPort!}` });
  cleanups.push(() => onHealth.close());
  const s = onHealth.open();
  s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }));
  const st = await s.done;
  expect(st.code).toBe(grpc.status.UNIMPLEMENTED);
  expect(st.details).toContain('/envoy.service.ext_proc.v3.ExternalProcessor/Process');
});

test('a grpc-js client that closes its channel and cancels mid-body: the stream is cancelled, the server keeps routing', async () => {
  const { server, bound, client, outcome } = await start();
  const doomed = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
  const s = doomed.open();
  s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }));
  s.send(frames.requestBody('{"model":"m",', false));
  await waitFor(() => server.openStreams === 1);
  doomed.close();
  s.cancel();
  await waitFor(() => server.openStreams === 0);
  expect(await outcome('cancelled')).toBe(1);
  const out = await routeRequest(client.open(), { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"m","prompt":"x"}' });
  expect(out.kind).toBe('routed');
});

describe('grpc-js server options', () => {
  test('defaults: keepalive 30 s / 10 s, connection age 30 min with 10 min grace, 10,000 streams, channelz off; message limits only on the ext_proc port', () => {
    expect(grpcServerOptions({}, 1234)).toEqual({
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.max_connection_age_ms': 1_800_000,
      'grpc.max_connection_age_grace_ms': 600_000,
      'grpc.max_concurrent_streams': 10_000,
      'grpc.enable_channelz': 0,
      'grpc.max_receive_message_length': 1234,
      'grpc.max_send_message_length': 1234,
    });
    expect(grpcServerOptions({})).not.toHaveProperty('grpc.max_receive_message_length');
  });

  test('each option is passed through', () => {
    expect(grpcServerOptions({ keepaliveTimeMs: 1, keepaliveTimeoutMs: 2, maxConnectionAgeMs: 3, maxConnectionAgeGraceMs: 4, maxConcurrentStreams: 5 })).toEqual({
      'grpc.keepalive_time_ms': 1,
      'grpc.keepalive_timeout_ms': 2,
      'grpc.max_connection_age_ms': 3,
      'grpc.max_connection_age_grace_ms': 4,
      'grpc.max_concurrent_streams': 5,
      'grpc.enable_channelz': 0,
    });
  });

  test('maxConcurrentStreams is advertised in SETTINGS on both ports (10,000 by default)', async () => {
    const { bound } = await start({ maxConcurrentStreams: 7 });
    const a = h2(bound.grpcPort);
    await new Promise((r) => a.once('remoteSettings', r));
    expect(a.remoteSettings.maxConcurrentStreams).toBe(7);
    const dflt = await start();
    const b = h2(dflt.bound.healthPort!);
    await new Promise((r) => b.once('remoteSettings', r));
    expect(b.remoteSettings.maxConcurrentStreams).toBe(10_000);
  });

  test('keepalive: a peer that answers no PING is dropped after keepaliveTimeMs + keepaliveTimeoutMs', async () => {
    const { bound } = await start({ keepaliveTimeMs: 150, keepaliveTimeoutMs: 100 });
    // A raw HTTP/2 peer: preface + empty SETTINGS, then it reads and never answers anything.
    const sock = netConnect(bound.grpcPort, '127.0.0.1');
    cleanups.push(() => void sock.destroy());
    const frameTypes: number[] = [];
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        frameTypes.push(buf[3]!);
        buf = buf.subarray(9 + buf.readUIntBE(0, 3));
      }
    });
    const t0 = Date.now();
    sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    await new Promise((r) => sock.once('close', r));
    const elapsed = Date.now() - t0;
    expect(frameTypes).toContain(6); // PING
    expect(elapsed).toBeGreaterThanOrEqual(200);
    expect(elapsed).toBeLessThan(3000);
  });

  test('maxConnectionAgeMs: the connection gets GOAWAY (NO_ERROR); a stream open on it finishes within the grace period', async () => {
    const { server, bound, outcome } = await start({ maxConnectionAgeMs: 200, maxConnectionAgeGraceMs: 5000 });
    const c = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
    cleanups.push(() => c.close());
    const s = c.open();
    const out = routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"m","prompt":"x"}' });
    expect((await out).kind).toBe('routed');
    const raw = h2(bound.grpcPort);
    const goaway = await new Promise<number>((r) => raw.once('goaway', (code: number) => r(code)));
    expect(goaway).toBe(0);
    // The grpc-js client's connection got its GOAWAY too by now; its open stream still completes.
    await new Promise((r) => setTimeout(r, 100));
    s.send(frames.responseHeaders({ ':status': '200' }, { endOfStream: true }));
    expect(await s.take(1)).toEqual([{ response_headers: { response: {} } }]);
    s.end();
    expect((await s.done).code).toBe(grpc.status.OK);
    expect(await outcome('completed')).toBe(1);
    expect(server.openStreams).toBe(0);
  });

  test('maxConnectionAgeGraceMs: a stream still open when the grace ends is cancelled with its connection', async () => {
    const { server, bound, outcome } = await start({ maxConnectionAgeMs: 200, maxConnectionAgeGraceMs: 100 });
    const c = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
    cleanups.push(() => c.close());
    const s = c.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }));
    await waitFor(() => server.openStreams === 1);
    await waitFor(() => server.openStreams === 0, 3000);
    expect(await outcome('cancelled')).toBe(1);
    expect((await s.done).code).not.toBe(grpc.status.OK);
  });
});

test('a port already in use is a clear error naming the address and the fix', async () => {
  const busy: NetServer = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => busy.close(r)));
  const port = (busy.address() as { port: number }).port;
  const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']) });
  await expect(server.start({ grpcPort: port, healthPort: null, host: '127.0.0.1' })).rejects.toThrow(
    new RegExp(`cannot listen for ext_proc on 127\\.0\\.0\\.1:${port}: .*; free the port or choose another one \\(server\\.grpcPort\\)`),
  );
  const healthBusy = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']) });
  await expect(healthBusy.start({ grpcPort: 0, healthPort: port, host: '127.0.0.1' })).rejects.toThrow(/cannot listen for health on .*\(server\.healthPort\)/);
  // The ext_proc port bound before the health port failed was released: start works again.
  const ok = await healthBusy.start({ grpcPort: 0, healthPort: null, host: '127.0.0.1' });
  cleanups.push(() => healthBusy.stop(100));
  expect(ok.grpcPort).toBeGreaterThan(0);
});
