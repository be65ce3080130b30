/**
 * ExtProcServer on the node:http2 transport: what the transport decides for the EPP (message size
 * limit, routing per port, client going away), seen through a grpc-js client.
 */
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { ExtProcServer } from '../../src/extproc/grpc-server.js';
import { loadProtos, ServiceNames } from '../../src/extproc/proto.js';
import { ExtProcTestClient, frames, protocolConfig, routeRequest } from '../../testkit/extproc-client.js';
import { PATH_COMPLETIONS, postHeaders } from './fixtures.js';
import { ScriptedDirector } from './scripted-director.js';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(opts: { maxBodyBytes?: number; maxResponseBufferBytes?: number } = {}) {
  const registry = new Registry();
  const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']), registry, ...opts });
  const bound = await server.start({ grpcPort: 0, healthPort: 0, host: '127.0.0.1' });
  cleanups.push(() => server.stop(100));
  const client = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
  cleanups.push(() => client.close());
  const outcome = async (o: string): Promise<number> => (await server.metrics.streams.get()).values.find((v) => v.labels.outcome === o)?.value ?? 0;
  return { server, bound, client, outcome };
}

test('message limit = max(maxBodyBytes, maxResponseBufferBytes) + 1 MiB: at the limit decoded, one byte over RESOURCE_EXHAUSTED (counted as error)', async () => {
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
  const over = client.openRaw();
  over.send(Buffer.concat([msg, Buffer.from('a')]));
  const st = await over.done;
  expect([st.code, st.details]).toEqual([grpc.status.RESOURCE_EXHAUSTED, `request message of ${limit + 1} bytes exceeds the server's limit of ${limit} bytes`]);
  expect(await outcome('error')).toBe(1);
  expect(await outcome('protocol_error')).toBe(1);
});

test('the health port serves health only: Process there is UNIMPLEMENTED naming the path', async () => {
  const { bound } = await start();
  const onHealth = new ExtProcTestClient({ address: `127.0.0.1:${bound.healthPort!}` });
  cleanups.push(() => onHealth.close());
  const s = onHealth.open();
  s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }));
  const st = await s.done;
  expect([st.code, st.details]).toEqual([
    grpc.status.UNIMPLEMENTED,
    `unknown method /${ServiceNames.extProc}/Process; this port serves /${ServiceNames.health}/Check, /${ServiceNames.health}/List, /${ServiceNames.health}/Watch`,
  ]);
});

test('a grpc-js client that closes its channel and cancels mid-body: the stream is cancelled, the server keeps routing', async () => {
  const { server, bound, client, outcome } = await start();
  const doomed = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
  const s = doomed.open();
  s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }));
  s.send(frames.requestBody('{"model":"m",', false));
  for (let i = 0; i < 200 && server.openStreams === 0; i++) await new Promise((r) => setTimeout(r, 5));
  expect(server.openStreams).toBe(1);
  doomed.close();
  s.cancel();
  for (let i = 0; i < 200 && server.openStreams > 0; i++) await new Promise((r) => setTimeout(r, 5));
  expect(server.openStreams).toBe(0);
  expect(await outcome('cancelled')).toBe(1);
  const out = await routeRequest(client.open(), { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"m","prompt":"x"}' });
  expect(out.kind).toBe('routed');
});
