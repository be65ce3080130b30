/**
 * The floor for the ext_proc load test: an ext_proc server that does no work. It answers each
 * stream with the very bytes the EPP sends for the bench's exchange (recorded once from a real
 * `ExtProcStream` at start), but it decodes nothing, parses no JSON and schedules nothing: it
 * counts request messages and writes the pre-encoded replies after the 2nd (request body) and 4th
 * (response body).
 *
 * Two stacks: `startGrpcNullExtProc` serves on @grpc/grpc-js's Server with the EPP's own server
 * options (the bench's default floor: the same transport as the EPP, so EPP − floor is the EPP's
 * own work), and `startNullExtProc` on bare `node:http2` (length-prefixed messages counted by
 * hand), which shows what grpc-js itself costs on top of HTTP/2.
 *
 * Latency measured against it is what the machine, loopback, the transport and the driver cost by
 * themselves; the bench runs it side by side with the EPP so the EPP's own share can be read off.
 */
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { grpcServerOptions } from '../../../src/extproc/grpc-server.js';
import { Registry } from 'prom-client';
import type { InferenceRequest, PickResult, RequestDirector } from '../../../src/extproc/director.js';
import { combineObservers, ExtProcLogging, ExtProcMetrics } from '../../../src/extproc/observer.js';
import { loadProtos, ServiceNames } from '../../../src/extproc/proto.js';
import { ExtProcStream } from '../../../src/extproc/stream.js';
import type { ProcessingRequest, ProcessingResponse } from '../../../src/extproc/types.js';
import { silentLogger } from '../../../src/util/logger.js';
import { frame } from './h2-driver.js';

/** Replies of a real ExtProcStream to `exchange` (4 request messages), serialized (no gRPC frame prefix), grouped by the message that triggers them. */
export async function recordReplies(exchange: readonly ProcessingRequest[], endpoint: string): Promise<Buffer[][]> {
  const ser = loadProtos().extProcService.Process!.responseSerialize as (m: ProcessingResponse) => Buffer;
  const director: RequestDirector = {
    pick: (_r: InferenceRequest): Promise<PickResult> => Promise.resolve({ endpoints: [endpoint] }),
  };
  const logger = silentLogger();
  const out: Buffer[][] = exchange.map(() => []);
  let current = 0;
  let ended = false;
  const s = new ExtProcStream(
    { director, maxBodyBytes: 8 << 20, maxResponseBufferBytes: 16 << 20, models: [], defaultBodyMode: 'duplex', observer: combineObservers(new ExtProcMetrics(new Registry()), new ExtProcLogging(logger)), logger },
    { send: (m) => out[current]!.push(ser(m)), end: () => (ended = true) },
  );
  for (current = 0; current < exchange.length; current++) {
    s.push(exchange[current]!);
    await s.idle();
  }
  s.endOfInput();
  await s.idle();
  if (!ended) throw new Error('recorded exchange did not end the stream');
  return out;
}

export interface NullExtProcServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The do-nothing server on grpc-js, 127.0.0.1: messages stay bytes both ways (identity
 * (de)serializers); `replies[i]` is written after the (i+1)-th request message, the half-close
 * ends the call with OK.
 */
export async function startGrpcNullExtProc(replies: readonly Buffer[][]): Promise<NullExtProcServer> {
  const server = new grpc.Server(grpcServerOptions({}, 64 << 20));
  const identity = (b: Buffer): Buffer => b;
  const service: grpc.ServiceDefinition = {
    Process: {
      path: `/${ServiceNames.extProc}/Process`,
      requestStream: true,
      responseStream: true,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  };
  server.addService(service, {
    Process: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      let messages = 0;
      call.on('data', () => {
        for (const r of replies[messages++] ?? []) call.write(r);
      });
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

/**
 * The do-nothing server on bare node:http2, 127.0.0.1. `replies[i]` is written after the (i+1)-th
 * request message of a stream; the half-close is answered with `grpc-status: 0` trailers.
 */
export async function startNullExtProc(replies: readonly Buffer[][]): Promise<NullExtProcServer> {
  const joined = replies.map((r) => (r.length === 0 ? undefined : Buffer.concat(r.map(frame))));
  const server = http2.createServer({ settings: { initialWindowSize: 1 << 20 } });
  server.on('session', (session) => {
    session.on('error', () => undefined);
    session.once('connect', () => session.setLocalWindowSize(16 << 20));
  });
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    let messages = 0;
    let need = -1; // payload bytes still to skip, or -1 while reading a prefix
    let prefix = 0; // prefix bytes seen
    let len = 0;
    let responded = false;
    const reply = (): void => {
      const r = joined[messages - 1];
      if (r === undefined) return;
      if (!responded) {
        responded = true;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      }
      stream.write(r);
    };
    stream.on('data', (chunk: Buffer) => {
      let off = 0;
      while (off < chunk.length) {
        if (need < 0) {
          // prefix: flag byte + u32 BE length; only the length bytes matter here
          if (prefix >= 1) len = (len * 256 + chunk[off]!) >>> 0;
          off++;
          if (++prefix === 5) {
            prefix = 0;
            need = len;
            len = 0;
            if (need === 0) {
              need = -1;
              messages++;
              reply();
            }
          }
        } else {
          const take = Math.min(need, chunk.length - off);
          off += take;
          need -= take;
          if (need === 0) {
            need = -1;
            messages++;
            reply();
          }
        }
      }
    });
    stream.on('end', () => {
      if (!responded) stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-status': '0' }, { endStream: true });
      else stream.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
