/**
 * The node:http2 gRPC transport (src/server/h2-grpc.ts) at the wire level: a raw node:http2
 * client writes length-prefixed frames split at every byte boundary and several per DATA frame,
 * and reads back whole responses (headers, messages, trailers, RST code). grpc-js clients check
 * interop (TLS, percent-encoded messages). The ext_proc suites cover the ExtProcServer on top.
 */
import { jest } from '@jest/globals';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { createSelfSignedCertificate } from '../../src/extproc/self-signed.js';
import { seededRandom } from '../../src/util/random.js';
import {
  encodeGrpcMessage,
  GrpcStatus,
  H2GrpcServer,
  serverStreamMethod,
  unaryMethod,
  type GrpcCall,
  type GrpcMethod,
  type H2GrpcServerOptions,
} from '../../src/extproc/h2-grpc.js';

const utf8 = (b: Buffer): string => b.toString('utf8');
const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

/** One length-prefixed message (flag 0 unless given). */
function frame(payload: string | Buffer, flag = 0, declaredLength?: number): Buffer {
  const p = typeof payload === 'string' ? bytes(payload) : payload;
  const h = Buffer.alloc(5);
  h[0] = flag;
  h.writeUInt32BE(declaredLength ?? p.length, 1);
  return Buffer.concat([h, p]);
}

/** Test-side decoder (independent of the server's): the payloads of a response body. */
function unframe(body: Buffer): string[] {
  const out: string[] = [];
  let off = 0;
  while (off < body.length) {
    if (body[off] !== 0) throw new Error(`response message with compressed flag ${body[off]}`);
    const len = body.readUInt32BE(off + 1);
    out.push(utf8(body.subarray(off + 5, off + 5 + len)));
    off += 5 + len;
  }
  return out;
}

interface Events {
  messages: string[];
  halfClosed: number;
  cancelled: string[];
  failed: { code: number; message: string }[];
}

/**
 * `/test.Echo/Chat`: answers each message `echo:<msg>`, a message `end` ends OK, `fail` ends
 * with INVALID_ARGUMENT, `throw` throws; half-close ends OK with `bye`. Events are recorded.
 */
function chat(events: Events, calls: GrpcCall<string>[] = []): GrpcMethod<string, string> {
  return {
    requestDeserialize: (b) => {
      const s = utf8(b);
      if (s === 'undecodable') throw new Error('bad bytes');
      return s;
    },
    responseSerialize: bytes,
    open: (call) => {
      calls.push(call);
      return {
        message: (m) => {
          events.messages.push(m);
          if (m === 'throw') throw new Error('handler bug');
          if (m === 'end') call.end();
          else if (m === 'fail') call.end({ code: GrpcStatus.INVALID_ARGUMENT, message: 'you asked for it' });
          else if (m.startsWith('big:')) call.send('x'.repeat(Number(m.slice(4))));
          else if (m.startsWith('many:')) {
            const [n, size] = m.slice(5).split('x').map(Number);
            for (let i = 0; i < n! && !call.finished; i++) call.send('y'.repeat(size!));
          } else if (m !== 'silent') call.send(`echo:${m}`);
        },
        halfClose: () => {
          events.halfClosed++;
          call.send('bye');
          call.end();
        },
        cancelled: (reason) => events.cancelled.push(reason),
        failed: (e) => events.failed.push({ code: e.code, message: e.message }),
      };
    },
  };
}

const newEvents = (): Events => ({ messages: [], halfClosed: 0, cancelled: [], failed: [] });

interface Harness {
  server: H2GrpcServer;
  port: number;
  events: Events;
  calls: GrpcCall<string>[];
}

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(opts: H2GrpcServerOptions = {}): Promise<Harness> {
  const events = newEvents();
  const calls: GrpcCall<string>[] = [];
  const server = new H2GrpcServer(opts);
  server.addMethod('/test.Echo/Chat', chat(events, calls));
  server.addMethod(
    '/test.Echo/Unary',
    unaryMethod(utf8, bytes, (m: string) => `unary:${m}`),
  );
  server.addMethod(
    '/test.Echo/Count',
    serverStreamMethod(utf8, bytes, (m: string, call) => {
      for (let i = 1; i <= Number(m); i++) call.send(String(i));
      call.end();
    }),
  );
  const port = await server.listen(0, '127.0.0.1');
  cleanups.push(() => server.shutdown(100));
  return { server, port, events, calls };
}

/** Polls `done` every 5 ms for up to `ms`; the assertions that follow say what was expected. */
async function waitFor(done: () => boolean, ms: number): Promise<void> {
  for (let waited = 0; waited < ms && !done(); waited += 5) await new Promise((r) => setTimeout(r, 5));
}

/** A TCP proxy to `port` that can go silent in both directions (a partition: no FIN, no RST). */
async function partitionProxy(port: number): Promise<{ port: number; partition(): void }> {
  const sockets: net.Socket[] = [];
  let silent = false;
  const proxy = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.push(client, upstream);
    client.on('data', (d) => void (silent || upstream.write(d)));
    upstream.on('data', (d) => void (silent || client.write(d)));
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => proxy.close(() => r()));
  });
  return { port: (proxy.address() as net.AddressInfo).port, partition: () => void (silent = true) };
}

function connect(port: number, opts: http2.ClientSessionOptions = {}): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`, opts);
  session.on('error', () => undefined);
  cleanups.push(() => {
    session.destroy();
  });
  return session;
}

interface RawResponse {
  headers: Record<string, string | number>;
  messages: string[];
  trailers: Record<string, string> | undefined;
  rstCode: number | undefined;
}

const KEPT = [':status', 'content-type', 'grpc-status', 'grpc-message', 'grpc-accept-encoding', 'allow'];
function kept(h: http2.IncomingHttpHeaders | http2.IncomingHttpStatusHeader): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const k of KEPT) {
    const v = (h as Record<string, unknown>)[k];
    if (typeof v === 'string' || typeof v === 'number') out[k] = v;
  }
  return out;
}

/** Collects the whole response of a request stream. */
function collect(req: http2.ClientHttp2Stream): Promise<RawResponse> {
  return new Promise((resolve) => {
    let headers: Record<string, string | number> = {};
    let trailers: Record<string, string> | undefined;
    const body: Buffer[] = [];
    req.on('response', (h) => (headers = kept(h)));
    req.on('trailers', (t) => (trailers = kept(t) as Record<string, string>));
    req.on('data', (c: Buffer) => body.push(c));
    req.on('error', () => undefined);
    req.on('close', () => resolve({ headers, messages: unframe(Buffer.concat(body)), trailers, rstCode: req.rstCode }));
  });
}

/** Writes chunks as separate DATA frames (each write flushed before the next). */
async function writeApart(req: http2.ClientHttp2Stream, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) {
    await new Promise<void>((r) => req.write(c, () => r()));
    await new Promise((r) => setImmediate(r));
  }
}

function open(session: http2.ClientHttp2Session, path = '/test.Echo/Chat', extra: http2.OutgoingHttpHeaders = {}): http2.ClientHttp2Stream {
  return session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc+proto', te: 'trailers', ...extra }, { endStream: false });
}

const OK_HEADERS = { ':status': 200, 'content-type': 'application/grpc+proto' };
const OK = { 'grpc-status': '0' };

describe('framing', () => {
  test('messages split at every byte boundary are reassembled, in order', async () => {
    const { port, events } = await startServer();
    const session = connect(port);
    const wire = Buffer.concat([frame('a'), frame(''), frame('hello world'), frame('é')]);
    for (let cut = 1; cut < wire.length; cut++) {
      const req = open(session);
      const res = collect(req);
      await writeApart(req, [wire.subarray(0, cut), wire.subarray(cut)]);
      req.end();
      expect(await res).toEqual({ headers: OK_HEADERS, messages: ['echo:a', 'echo:', 'echo:hello world', 'echo:é', 'bye'], trailers: OK, rstCode: 0 });
    }
    expect(events.messages).toHaveLength(4 * (wire.length - 1));
    expect(events.halfClosed).toBe(wire.length - 1);
  });

  test('one byte per DATA frame, and every message in one DATA frame', async () => {
    const { port } = await startServer();
    const session = connect(port);
    const wire = Buffer.concat([frame('one'), frame('two'), frame('three')]);
    const a = open(session);
    const ra = collect(a);
    await writeApart(
      a,
      [...wire].map((b) => Buffer.from([b])),
    );
    a.end();
    const b = open(session);
    const rb = collect(b);
    b.end(wire);
    const want = { headers: OK_HEADERS, messages: ['echo:one', 'echo:two', 'echo:three', 'bye'], trailers: OK, rstCode: 0 };
    expect(await ra).toEqual(want);
    expect(await rb).toEqual(want);
  });

  test('60 streams on one connection, messages cut at seeded random points, writes interleaved across streams', async () => {
    const { port } = await startServer();
    const session = connect(port);
    const rand = seededRandom(4242);
    const streams = Array.from({ length: 60 }, (_, i) => {
      const msgs = [`s${i}-a`, 'b'.repeat(1 + Math.floor(rand() * 300)), `s${i}-c`];
      const wire = Buffer.concat(msgs.map((m) => frame(m)));
      const pieces: Buffer[] = [];
      for (let off = 0; off < wire.length; ) {
        const n = 1 + Math.floor(rand() * 40);
        pieces.push(wire.subarray(off, off + n));
        off += n;
      }
      const req = open(session);
      return { msgs, pieces, req, res: collect(req) };
    });
    // Round-robin: piece k of every stream, then piece k+1, … (each stream's state is its own).
    for (let k = 0; streams.some((st) => k < st.pieces.length); k++) {
      for (const st of streams) if (k < st.pieces.length) st.req.write(st.pieces[k]!);
      await new Promise((r) => setImmediate(r));
    }
    for (const st of streams) st.req.end();
    for (const st of streams) {
      expect(await st.res).toEqual({ headers: OK_HEADERS, messages: [...st.msgs.map((m) => `echo:${m}`), 'bye'], trailers: OK, rstCode: 0 });
    }
  });

  test('a message larger than a DATA frame (64 KiB, spread over frames) arrives whole', async () => {
    const { port } = await startServer();
    const session = connect(port);
    const req = open(session);
    const res = collect(req);
    const big = 'z'.repeat(65536);
    req.end(Buffer.concat([frame(big), frame('after')]));
    expect(await res).toEqual({ headers: OK_HEADERS, messages: [`echo:${big}`, 'echo:after', 'bye'], trailers: OK, rstCode: 0 });
  });

  test('a handler that ends before any message answers trailers-only; an error status is percent-encoded', async () => {
    const { port } = await startServer();
    const session = connect(port);
    const a = open(session);
    const ra = collect(a);
    a.end(frame('end'));
    expect(await ra).toEqual({ headers: { ...OK_HEADERS, 'grpc-status': '0' }, messages: [], trailers: undefined, rstCode: 0 });
    const b = open(session);
    const rb = collect(b);
    b.end(Buffer.concat([frame('x'), frame('fail')]));
    expect(await rb).toEqual({ headers: OK_HEADERS, messages: ['echo:x'], trailers: { 'grpc-status': '3', 'grpc-message': 'you asked for it' }, rstCode: 0 });
  });
});

describe('refused and failed calls', () => {
  test('wrong content-type → HTTP 415, GET → 405, unknown path → UNIMPLEMENTED naming the path', async () => {
    const { port, events } = await startServer();
    const session = connect(port);
    const ct = session.request({ ':method': 'POST', ':path': '/test.Echo/Chat', 'content-type': 'application/json' });
    const rct = collect(ct);
    ct.end('{}');
    expect(await rct).toEqual({
      headers: { ':status': 415, 'content-type': 'application/grpc+proto', 'grpc-status': '3', 'grpc-message': 'content-type must be application/grpc (or application/grpc+proto), got application/json for /test.Echo/Chat' },
      messages: [],
      trailers: undefined,
      rstCode: 0,
    });
    const get = session.request({ ':method': 'GET', ':path': '/test.Echo/Chat' });
    expect(await collect(get)).toEqual({
      headers: { ':status': 405, 'content-type': 'application/grpc+proto', 'grpc-status': '13', 'grpc-message': 'gRPC requires :method POST, got GET for /test.Echo/Chat', allow: 'POST' },
      messages: [],
      trailers: undefined,
      rstCode: 0,
    });
    const unknown = open(session, '/test.Echo/Nope');
    const ru = collect(unknown);
    unknown.end(frame('x'));
    expect(await ru).toEqual({
      headers: {
        ...OK_HEADERS,
        'grpc-status': '12',
        'grpc-message': 'unknown method /test.Echo/Nope; this port serves /test.Echo/Chat, /test.Echo/Unary, /test.Echo/Count',
      },
      messages: [],
      trailers: undefined,
      rstCode: 0,
    });
    expect(events.messages).toEqual([]);
  });

  test('compressed flag: INTERNAL without grpc-encoding, UNIMPLEMENTED + grpc-accept-encoding for gzip; bad flag INTERNAL', async () => {
    const { port, events } = await startServer();
    const session = connect(port);
    const a = open(session);
    const ra = collect(a);
    a.end(Buffer.concat([frame('ok'), frame('zz', 1)]));
    expect(await ra).toEqual({
      headers: OK_HEADERS,
      messages: ['echo:ok'],
      trailers: { 'grpc-status': '13', 'grpc-message': 'request message has the compressed flag set but the call declares no grpc-encoding (or identity); send it uncompressed with flag 0' },
      rstCode: 0,
    });
    const b = open(session, '/test.Echo/Chat', { 'grpc-encoding': 'gzip' });
    const rb = collect(b);
    b.end(frame('zz', 1));
    expect(await rb).toEqual({
      headers: {
        ...OK_HEADERS,
        'grpc-status': '12',
        'grpc-message': 'request message compressed with grpc-encoding "gzip", which this server does not support (identity only); disable compression on the client channel',
        'grpc-accept-encoding': 'identity',
      },
      messages: [],
      trailers: undefined,
      rstCode: 0,
    });
    // grpc-encoding gzip with uncompressed messages (flag 0) is fine.
    const c = open(session, '/test.Echo/Chat', { 'grpc-encoding': 'gzip' });
    const rc = collect(c);
    c.end(frame('plain'));
    expect((await rc).messages).toEqual(['echo:plain', 'bye']);
    const d = open(session);
    const rd = collect(d);
    d.end(frame('x', 7));
    expect((await rd).headers).toEqual({ ...OK_HEADERS, 'grpc-status': '13', 'grpc-message': 'request message has compressed flag 7; it must be 0 or 1' });
    expect(events.failed.map((f) => f.code)).toEqual([13, 12, 13]);
  });

  test('maxReceiveMessageBytes: exactly the limit passes, one byte more is RESOURCE_EXHAUSTED (judged from the prefix)', async () => {
    const { port, events } = await startServer({ maxReceiveMessageBytes: 64, maxSendMessageBytes: 1024 });
    const session = connect(port);
    const a = open(session);
    const ra = collect(a);
    a.end(frame('q'.repeat(64)));
    expect((await ra).messages).toEqual([`echo:${'q'.repeat(64)}`, 'bye']);
    const b = open(session);
    const rb = collect(b);
    // Only the prefix is sent: the limit is enforced before any payload is buffered. The server
    // answers at once; the client then closes its side (the server leaves that to the client).
    b.write(frame('', 0, 65));
    await new Promise((r) => b.once('response', r));
    b.end();
    expect(await rb).toEqual({
      headers: { ...OK_HEADERS, 'grpc-status': '8', 'grpc-message': "request message of 65 bytes exceeds the server's limit of 64 bytes" },
      messages: [],
      trailers: undefined,
      rstCode: 0,
    });
    expect(events.failed).toEqual([{ code: 8, message: "request message of 65 bytes exceeds the server's limit of 64 bytes" }]);
  });

  test('maxReceiveMessageBytes @default 4 MiB; maxSendMessageBytes @default the same', async () => {
    const { port } = await startServer();
    const session = connect(port);
    const a = open(session);
    const ra = collect(a);
    a.end(frame('', 0, 4 * 1024 * 1024 + 1));
    expect((await ra).headers['grpc-status']).toBe('8');
    const b = open(session);
    const rb = collect(b);
    b.end(Buffer.concat([frame(`big:${4 * 1024 * 1024}`), frame(`big:${4 * 1024 * 1024 + 1}`)]));
    const r = await rb;
    expect(r.messages.map((m) => m.length)).toEqual([4 * 1024 * 1024]);
    expect(r.trailers).toEqual({ 'grpc-status': '8', 'grpc-message': "response message of 4194305 bytes exceeds the server's send limit of 4194304 bytes" });
  });

  test('undecodable message → INTERNAL; a throwing handler → INTERNAL; half-close mid-message → INTERNAL; the server keeps serving', async () => {
    const { port, events } = await startServer();
    const session = connect(port);
    const a = open(session);
    const ra = collect(a);
    a.end(frame('undecodable'));
    expect((await ra).headers).toEqual({ ...OK_HEADERS, 'grpc-status': '13', 'grpc-message': 'could not decode a request message for /test.Echo/Chat: bad bytes' });
    const b = open(session);
    const rb = collect(b);
    b.end(frame('throw'));
    expect((await rb).headers).toEqual({ ...OK_HEADERS, 'grpc-status': '13', 'grpc-message': 'server error in /test.Echo/Chat: handler bug' });
    const c = open(session);
    const rc = collect(c);
    c.end(frame('abcdef').subarray(0, 8));
    expect((await rc).headers).toEqual({ ...OK_HEADERS, 'grpc-status': '13', 'grpc-message': 'client half-closed in the middle of a request message (3 of 6 payload bytes received)' });
    const d = open(session);
    const rd = collect(d);
    d.end(Buffer.from([0, 0]));
    expect((await rd).headers['grpc-message']).toBe('client half-closed in the middle of a request message (2 of 5 prefix bytes received)');
    const e = open(session);
    const re = collect(e);
    e.end(frame('still here'));
    expect((await re).messages).toEqual(['echo:still here', 'bye']);
    expect(events.failed.map((f) => f.code)).toEqual([13, 13, 13, 13]);
  });

  test('unary and server-streaming methods want exactly one request message', async () => {
    const { port } = await startServer();
    const session = connect(port);
    const ok = open(session, '/test.Echo/Unary');
    const rok = collect(ok);
    ok.end(frame('hi'));
    expect(await rok).toEqual({ headers: OK_HEADERS, messages: ['unary:hi'], trailers: OK, rstCode: 0 });
    const none = open(session, '/test.Echo/Unary');
    const rnone = collect(none);
    none.end();
    expect((await rnone).headers).toEqual({ ...OK_HEADERS, 'grpc-status': '12', 'grpc-message': '/test.Echo/Unary is a unary method: send exactly one request message (got 0)' });
    const two = open(session, '/test.Echo/Count');
    const rtwo = collect(two);
    two.end(Buffer.concat([frame('1'), frame('2')]));
    expect((await rtwo).headers['grpc-message']).toBe('/test.Echo/Count is a server-streaming method: send exactly one request message (got 2)');
    const count = open(session, '/test.Echo/Count');
    const rcount = collect(count);
    count.end(frame('3'));
    expect(await rcount).toEqual({ headers: OK_HEADERS, messages: ['1', '2', '3'], trailers: OK, rstCode: 0 });
  });
});

describe('cancellation and robustness', () => {
  test('a client RST_STREAM mid-stream cancels the call; the same connection then serves the next call', async () => {
    // destroy() sends RST_STREAM alone (close(CANCEL) in node sends END_STREAM first, which the
    // transport may take as a half-close: see the h2-grpc.ts header).
    const { port, server, events } = await startServer();
    const session = connect(port);
    const a = open(session);
    const ra = collect(a);
    await writeApart(a, [frame('first')]);
    await waitFor(() => events.messages.length > 0, 500);
    a.destroy();
    await ra;
    await waitFor(() => events.cancelled.length > 0, 500);
    expect(events.cancelled).toEqual(['stream closed by the client']);
    expect(events.halfClosed).toBe(0);
    const b = open(session);
    const rb = collect(b);
    b.end(frame('next'));
    expect((await rb).messages).toEqual(['echo:next', 'bye']);
    await waitFor(() => server.openCalls === 0, 500);
    expect(server.openCalls).toBe(0);
  });

  test('a connection destroyed mid-stream cancels its calls; garbage bytes on a connection do not hurt the server', async () => {
    const { port, events } = await startServer();
    const s1 = connect(port);
    const a = open(s1);
    await writeApart(a, [frame('hello')]);
    await waitFor(() => events.messages.length > 0, 500);
    s1.destroy();
    await waitFor(() => events.cancelled.length > 0, 500);
    expect(events.cancelled).toHaveLength(1);
    // Not HTTP/2 at all.
    const { createConnection } = await import('node:net');
    await new Promise<void>((resolve) => {
      const sock = createConnection(port, '127.0.0.1', () => sock.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      sock.on('error', () => resolve());
      sock.on('close', () => resolve());
      sock.resume();
    });
    const s2 = connect(port);
    const b = open(s2);
    const rb = collect(b);
    b.end(frame('again'));
    expect((await rb).messages).toEqual(['echo:again', 'bye']);
  });

  test('a port already in use is a clear error naming the address and the fix', async () => {
    const { port } = await startServer();
    const second = new H2GrpcServer();
    await expect(second.listen(port, '127.0.0.1')).rejects.toThrow(
      new RegExp(`^gRPC server cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*; choose a free port or stop the process holding it$`),
    );
  });

  test('HTTP/2 settings: 1 MiB initial stream window is advertised', async () => {
    const { port } = await startServer();
    const session = connect(port);
    await new Promise<void>((r) => session.once('remoteSettings', () => r()));
    expect(session.remoteSettings.initialWindowSize).toBe(1024 * 1024);
  });

  test('a client that stops reading: the stream is reset once maxQueuedResponseBytes are queued', async () => {
    const { port, events } = await startServer({ maxQueuedResponseBytes: 8 * 1024 });
    // initialWindowSize 0: the server may not send any DATA, so every response stays queued.
    const session = connect(port, { settings: { initialWindowSize: 0 } });
    const req = open(session);
    const res = collect(req);
    req.write(frame('many:100x1024'));
    const r = await res;
    expect(r.rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(events.failed).toHaveLength(1);
    expect(events.failed[0]!.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(events.failed[0]!.message).toMatch(/^client is not reading: \d+ response bytes queued on \/test\.Echo\/Chat \(limit 8192\)$/);
    const queued = Number(/reading: (\d+)/.exec(events.failed[0]!.message)![1]);
    expect(queued).toBeGreaterThan(8192);
    expect(queued).toBeLessThanOrEqual(8192 + 1029);
  });

  test('maxQueuedResponseBytes @default 2 × maxSendMessageBytes + 1 MiB', async () => {
    const { port, events } = await startServer({ maxReceiveMessageBytes: 16 * 1024 });
    const session = connect(port, { settings: { initialWindowSize: 0 } });
    const req = open(session);
    const res = collect(req);
    req.write(frame('many:200x16384'));
    await res;
    const limit = 2 * 16 * 1024 + 1024 * 1024;
    expect(events.failed[0]!.message).toContain(`(limit ${limit})`);
    const queued = Number(/reading: (\d+)/.exec(events.failed[0]!.message)![1]);
    expect(queued).toBeGreaterThan(limit);
    expect(queued).toBeLessThanOrEqual(limit + 16389);
  });
});

describe('grpc-js client interop', () => {
  function grpcJsUnary(client: grpc.Client, path: string, msg: string): Promise<{ value?: string; code: number; details: string }> {
    return new Promise((resolve) => {
      client.makeUnaryRequest(path, bytes, utf8, msg, (err, value) => resolve(err ? { code: err.code, details: err.details } : { value: value!, code: 0, details: '' }));
    });
  }

  test('TLS (self-signed, ALPN h2): a grpc-js client pinning the certificate calls; a plaintext one cannot', async () => {
    const pair = createSelfSignedCertificate();
    const { port } = await startServer({ tls: { cert: pair.certPem, key: pair.keyPem } });
    const tls = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(pair.certPem)));
    cleanups.push(() => tls.close());
    expect(await grpcJsUnary(tls, '/test.Echo/Unary', 'over tls')).toEqual({ value: 'unary:over tls', code: 0, details: '' });
    const bidi = tls.makeBidiStreamRequest('/test.Echo/Chat', bytes, utf8);
    const got: string[] = [];
    bidi.on('data', (m: string) => got.push(m));
    const status = new Promise<grpc.StatusObject>((r) => bidi.on('status', r));
    bidi.write('a');
    bidi.write('b');
    bidi.end();
    expect((await status).code).toBe(0);
    expect(got).toEqual(['echo:a', 'echo:b', 'bye']);
    const plain = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(() => plain.close());
    await expect(new Promise<void>((resolve, reject) => plain.waitForReady(Date.now() + 800, (e) => (e ? reject(e) : resolve())))).rejects.toThrow();
  });

  test('status messages survive percent-encoding; unknown methods map to UNIMPLEMENTED', async () => {
    expect(encodeGrpcMessage('plain text: ok')).toBe('plain text: ok');
    expect(encodeGrpcMessage('100% é\n')).toBe('100%25 %C3%A9%0A');
    const server = new H2GrpcServer();
    server.addMethod('/test.Echo/Fail', unaryMethod(utf8, bytes, (m: string): string => {
      throw new Error(`nope: ${m}`);
    }));
    const port = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.shutdown(100));
    const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(() => c.close());
    expect(await grpcJsUnary(c, '/test.Echo/Fail', '100% é')).toEqual({ code: 13, details: 'server error in /test.Echo/Fail: nope: 100% é' });
    expect(await grpcJsUnary(c, '/test.Echo/Other', 'x')).toEqual({ code: 12, details: 'unknown method /test.Echo/Other; this port serves /test.Echo/Fail' });
  });
});

describe('shutdown', () => {
  test('open calls get the grace period, then UNAVAILABLE; the handler sees a cancel; new connections are refused', async () => {
    const { server, port, events } = await startServer();
    const session = connect(port);
    const req = open(session);
    const res = collect(req);
    await writeApart(req, [frame('silent')]);
    await waitFor(() => events.messages.length > 0, 500);
    let deadlineRan = 0;
    const t0 = Date.now();
    const result = await server.shutdown(150, () => deadlineRan++);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(145);
    expect(result).toEqual({ forcedCalls: 1 });
    expect(deadlineRan).toBe(1);
    expect(await res).toEqual({
      headers: { ...OK_HEADERS, 'grpc-status': '14', 'grpc-message': 'server shutting down: drain deadline passed' },
      messages: [],
      trailers: undefined,
      rstCode: expect.any(Number) as unknown as number,
    });
    expect(events.cancelled).toEqual(['server shutting down: drain deadline passed']);
    const late = http2.connect(`http://127.0.0.1:${port}`);
    const err = await new Promise<Error>((r) => late.on('error', r));
    expect((err as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });

  test('a call that finishes within the grace period ends normally; GOAWAY stops new streams on the connection', async () => {
    const { server, port, events } = await startServer();
    const session = connect(port);
    const goaway = new Promise<void>((r) => session.once('goaway', () => r()));
    const req = open(session);
    const res = collect(req);
    await writeApart(req, [frame('silent')]);
    await waitFor(() => events.messages.length > 0, 500);
    const t0 = Date.now();
    const stopping = server.shutdown(5000, () => {
      throw new Error('deadline must not run');
    });
    await goaway;
    expect(() => open(session)).toThrow(/GOAWAY/i);
    req.end(frame('last'));
    expect(await res).toEqual({ headers: OK_HEADERS, messages: ['echo:last', 'bye'], trailers: OK, rstCode: 0 });
    expect(await stopping).toEqual({ forcedCalls: 0 });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(events.cancelled).toEqual([]);
  });
});

describe('review fixes: dead peers, content types, extra unary messages', () => {
  test('a peer that stops answering PINGs is dropped and its calls are cancelled', async () => {
    const { port, events } = await startServer({ keepaliveIntervalMs: 100, keepaliveTimeoutMs: 150 });
    const proxy = await partitionProxy(port);
    const session = connect(proxy.port);
    const req = open(session);
    req.on('error', () => undefined);
    req.write(frame('silent'));
    await waitFor(() => events.messages.length > 0, 500);
    expect(events.messages).toEqual(['silent']);
    proxy.partition();
    await waitFor(() => events.cancelled.length > 0, 2000);
    expect(events.cancelled).toHaveLength(1);
  });

  test('keepalive defaults: a PING every 30 s (@default 30000), the peer dropped 10 s (@default 10000) after an unanswered one', async () => {
    // Only the timer functions are faked; sockets, setImmediate and promises stay real.
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'clearImmediate', 'queueMicrotask', 'hrtime', 'performance', 'Date'] });
    try {
      const turns = async (n: number, until: () => boolean = () => false): Promise<void> => {
        for (let i = 0; i < n && !until(); i++) await new Promise((r) => setImmediate(r));
      };
      const { port, events } = await startServer();
      const proxy = await partitionProxy(port);
      const session = connect(proxy.port);
      const req = open(session);
      req.on('error', () => undefined);
      req.write(frame('silent'));
      await turns(20_000, () => events.messages.length > 0);
      expect(events.messages).toEqual(['silent']);
      proxy.partition();
      jest.advanceTimersByTime(29_999); // no PING yet
      jest.advanceTimersByTime(1); // PING sent (lost in the partition); its deadline is t = 40 s
      jest.advanceTimersByTime(9_999);
      await turns(2_000);
      expect(events.cancelled).toEqual([]);
      jest.advanceTimersByTime(1);
      await turns(20_000, () => events.cancelled.length > 0);
      expect(events.cancelled).toHaveLength(1);
    } finally {
      // the cleanups (server shutdown) need real timers
      jest.useRealTimers();
    }
  });

  test('application/grpc+proto is served; grpc-web is refused (its framing differs)', async () => {
    const { port } = await startServer();
    const session = connect(port);
    const ok = session.request({ ':method': 'POST', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc+proto', te: 'trailers' });
    const rok = collect(ok);
    ok.end(frame('a'));
    expect((await rok).messages).toEqual(['unary:a']);
    const web = session.request({ ':method': 'POST', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc-web+proto' });
    const rweb = collect(web);
    web.end(frame('a'));
    expect((await rweb).headers[':status']).toBe(415);
  });

  test('a second message on a unary call ends it at once (nothing more is buffered)', async () => {
    const { port } = await startServer();
    const session = connect(port);
    const req = session.request({ ':method': 'POST', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('error', () => undefined);
    const headers = new Promise<http2.IncomingHttpHeaders>((r) => req.once('response', r));
    req.write(Buffer.concat([frame('1'), frame('2')]));
    // no half-close: the status comes anyway (trailers-only)
    const h = await headers;
    expect([h['grpc-status'], h['grpc-message']]).toEqual(['12', '/test.Echo/Unary is a unary method: send exactly one request message (got 2)']);
    req.close();
  });

  test('SETTINGS: 10,000 concurrent streams per connection by default, or as configured', async () => {
    for (const [opts, want] of [[{}, 10_000], [{ maxConcurrentStreams: 7 }, 7]] as const) {
      const { port } = await startServer(opts);
      const session = connect(port);
      const settings = await new Promise<http2.Settings>((r) => session.once('remoteSettings', r));
      expect(settings.maxConcurrentStreams).toBe(want);
    }
  });
});

