/**
 * grpc.health.v1 on the ext_proc port and the health port, readiness, graceful shutdown, and TLS
 * (self-signed and from files) with a client that pins the certificate.
 */
import { jest } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { ExtProcServer } from '../../src/extproc/grpc-server.js';
import { createSelfSignedCertificate } from '../../src/extproc/self-signed.js';
import { ServingStatus } from '../../src/extproc/types.js';
import { ExtProcTestClient, frames, HealthTestClient, protocolConfig, routeRequest } from '../../testkit/extproc-client.js';
import { headersDecision, PATH_COMPLETIONS, postHeaders } from './fixtures.js';
import { ScriptedDirector } from './scripted-director.js';

const body = '{"model":"m","prompt":"x"}';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(opts: { ready?: () => boolean; healthWatchIntervalMs?: number } = {}) {
  const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']), registry: new Registry(), ...opts });
  const bound = await server.start({ grpcPort: 0, healthPort: 0, host: '127.0.0.1' });
  cleanups.push(() => server.stop(100).then(() => undefined));
  const health = (port: number) => {
    const c = new HealthTestClient({ address: `127.0.0.1:${port}` });
    cleanups.push(() => c.close());
    return c;
  };
  return { server, bound, onGrpc: health(bound.grpcPort), onHealth: health(bound.healthPort!) };
}

describe('health', () => {
  test('Check is SERVING on both ports for any service name when ready (ready @default () => true)', async () => {
    const { onGrpc, onHealth } = await start();
    for (const c of [onGrpc, onHealth]) {
      for (const svc of ['', 'envoy.service.ext_proc.v3.ExternalProcessor', 'inference-extension', 'liveness']) {
        expect(await c.check(svc)).toEqual({ status: ServingStatus.SERVING });
      }
    }
  });

  test('readiness gates SERVING; Watch pushes changes on notifyHealthChanged()', async () => {
    let ready = false;
    const { server, onGrpc, onHealth } = await start({ ready: () => ready, healthWatchIntervalMs: 60_000 });
    expect(await onHealth.check()).toEqual({ status: ServingStatus.NOT_SERVING });
    const w1 = onGrpc.watch('envoy.service.ext_proc.v3.ExternalProcessor');
    const w2 = onHealth.watch();
    expect(await w1.next()).toBe(ServingStatus.NOT_SERVING);
    expect(await w2.next()).toBe(ServingStatus.NOT_SERVING);
    ready = true;
    server.notifyHealthChanged();
    expect(await w1.next()).toBe(ServingStatus.SERVING);
    expect(await w2.next()).toBe(ServingStatus.SERVING);
    expect(await onGrpc.check()).toEqual({ status: ServingStatus.SERVING });
    // No change, no message.
    server.notifyHealthChanged();
    await expect(w1.next(100)).rejects.toThrow(/no health status/);
    w1.cancel();
    w2.cancel();
  });

  test('Watch also polls ready() every healthWatchIntervalMs', async () => {
    let ready = true;
    const { onHealth } = await start({ ready: () => ready, healthWatchIntervalMs: 30 });
    const w = onHealth.watch();
    expect(await w.next()).toBe(ServingStatus.SERVING);
    ready = false;
    expect(await w.next(2000)).toBe(ServingStatus.NOT_SERVING);
    w.cancel();
  });

  test('healthWatchIntervalMs @default 1000: changes are noticed on ~1 s ticks without notify', async () => {
    let ready = true;
    const { onHealth } = await start({ ready: () => ready });
    const w = onHealth.watch();
    expect(await w.next()).toBe(ServingStatus.SERVING);
    ready = false;
    expect(await w.next(3000)).toBe(ServingStatus.NOT_SERVING);
    // Flipped right after a tick: the next tick is one interval later.
    const t1 = Date.now();
    ready = true;
    expect(await w.next(3000)).toBe(ServingStatus.SERVING);
    const gap = Date.now() - t1;
    expect(gap).toBeGreaterThan(700);
    expect(gap).toBeLessThan(2500);
    w.cancel();
  });

  test('a readiness callback that throws reports NOT_SERVING', async () => {
    const { onHealth } = await start({
      ready: () => {
        throw new Error('boom');
      },
    });
    expect(await onHealth.check()).toEqual({ status: ServingStatus.NOT_SERVING });
  });

  test('healthPort null serves no separate health port', async () => {
    const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']) });
    const bound = await server.start({ grpcPort: 0, healthPort: null, host: '127.0.0.1' });
    cleanups.push(() => server.stop(100).then(() => undefined));
    expect(bound.healthPort).toBeUndefined();
    const c = new HealthTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
    cleanups.push(() => c.close());
    expect(await c.check()).toEqual({ status: ServingStatus.SERVING });
  });
});

describe('graceful shutdown', () => {
  test('stop(): watchers see NOT_SERVING, an open stream may finish within the grace period', async () => {
    const { server, bound, onHealth } = await start();
    const w = onHealth.watch();
    expect(await w.next()).toBe(ServingStatus.SERVING);
    const client = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
    cleanups.push(() => client.close());
    const s = client.open();
    await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body });
    const stopping = server.stop(5000);
    expect(await w.next()).toBe(ServingStatus.NOT_SERVING);
    expect((await w.ended).code).toBe(0);
    // The open stream still works: response phase, then the gateway closes it.
    s.send(frames.responseHeaders({ ':status': '200' }, { endOfStream: true }));
    expect(await s.take(1)).toEqual([{ response_headers: { response: {} } }]);
    s.end();
    expect((await s.done).code).toBe(0);
    expect(await stopping).toEqual({ forcedStreams: 0 });
    expect(server.openStreams).toBe(0);
  });

  test('streams still open at the deadline are cancelled; the server can be started again', async () => {
    const { server, bound } = await start();
    const client = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
    cleanups.push(() => client.close());
    const s = client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }));
    s.send(frames.requestBody('{"model":', false));
    for (let i = 0; i < 200 && server.openStreams === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(server.openStreams).toBe(1);
    const t0 = Date.now();
    expect(await server.stop(150)).toEqual({ forcedStreams: 1 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    const st = await s.done;
    expect([st.code, st.details]).toEqual([14, 'EPP shutting down: drain deadline passed']); // UNAVAILABLE
    expect(await server.metrics.streams.get().then((m) => m.values.find((v) => v.labels.outcome === 'cancelled')?.value)).toBe(1);
    const again = await server.start({ grpcPort: 0, healthPort: null, host: '127.0.0.1' });
    const c2 = new ExtProcTestClient({ address: `127.0.0.1:${again.grpcPort}` });
    cleanups.push(() => c2.close());
    expect((await routeRequest(c2.open(), { headers: postHeaders(PATH_COMPLETIONS), body })).kind).toBe('routed');
  });

  test('start() twice is refused with a clear error', async () => {
    const { server } = await start();
    await expect(server.start({ grpcPort: 0, host: '127.0.0.1' })).rejects.toThrow(/called twice/);
  });
});

describe('TLS', () => {
  test('self-signed: a client pinning the returned certificate can call Process; a plaintext client cannot', async () => {
    const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']) });
    const bound = await server.start({ grpcPort: 0, healthPort: 0, host: '127.0.0.1', tls: { mode: 'self-signed' } });
    cleanups.push(() => server.stop(100).then(() => undefined));
    const cert = new X509Certificate(bound.certPem!);
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.verify(cert.publicKey)).toBe(true);
    const tls = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}`, caPem: bound.certPem! });
    cleanups.push(() => tls.close());
    const s = tls.open();
    const out = await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body });
    expect(out.responses[0]).toEqual(headersDecision('10.0.0.1:8000'));
    s.end();
    expect((await s.done).code).toBe(0);
    // Health over TLS on the ext_proc port; the health port stays plaintext.
    const h1 = new HealthTestClient({ address: `127.0.0.1:${bound.grpcPort}`, caPem: bound.certPem! });
    const h2 = new HealthTestClient({ address: `127.0.0.1:${bound.healthPort!}` });
    cleanups.push(() => h1.close(), () => h2.close());
    expect(await h1.check()).toEqual({ status: ServingStatus.SERVING });
    expect(await h2.check()).toEqual({ status: ServingStatus.SERVING });
    const plain = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}` });
    cleanups.push(() => plain.close());
    await expect(plain.waitForReady(1000)).rejects.toThrow();
  });

  test('a client pinning a different certificate is refused', async () => {
    const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']) });
    const bound = await server.start({ grpcPort: 0, healthPort: null, host: '127.0.0.1', tls: { mode: 'self-signed' } });
    cleanups.push(() => server.stop(100).then(() => undefined));
    const other = await createSelfSignedCertificate();
    const c = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}`, caPem: other.certPem });
    cleanups.push(() => c.close());
    await expect(c.waitForReady(1000)).rejects.toThrow();
  });

  test('files: certificate and key from PEM files; a missing file is a clear error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvroute-tls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const pair = await createSelfSignedCertificate({ commonName: 'epp.test', hosts: ['localhost', '127.0.0.1'] });
    await writeFile(join(dir, 'tls.crt'), pair.certPem);
    await writeFile(join(dir, 'tls.key'), pair.keyPem);
    const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']) });
    const bound = await server.start({ grpcPort: 0, healthPort: null, host: '127.0.0.1', tls: { mode: 'files', certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') } });
    cleanups.push(() => server.stop(100).then(() => undefined));
    expect(bound.certPem).toBe(pair.certPem);
    expect(new X509Certificate(pair.certPem).subject).toBe('CN=epp.test');
    const c = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}`, caPem: pair.certPem });
    cleanups.push(() => c.close());
    expect((await routeRequest(c.open(), { headers: postHeaders(PATH_COMPLETIONS), body })).kind).toBe('routed');

    const bad = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']) });
    await expect(bad.start({ grpcPort: 0, healthPort: null, host: '127.0.0.1', tls: { mode: 'files', certFile: join(dir, 'nope.crt'), keyFile: join(dir, 'tls.key') } })).rejects.toThrow(
      /cannot read TLS certificate .*nope\.crt.*set server\.tls\.certFile/,
    );
  });
});

/** Subject of the certificate a new TLS connection to `port` is served. */
function servedSubject(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()?.subject ?? '');
      s.destroy();
    });
    s.on('error', reject);
  });
}

describe('TLS certificate rotation (files)', () => {
  test('a rotated certificate is served to new connections; an unreadable pair keeps the old one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvroute-tls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const first = await createSelfSignedCertificate({ commonName: 'epp-1', hosts: ['localhost', '127.0.0.1'] });
    const second = await createSelfSignedCertificate({ commonName: 'epp-2', hosts: ['localhost', '127.0.0.1'] });
    const crt = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    await writeFile(crt, first.certPem);
    await writeFile(key, first.keyPem);
    const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']), tlsReloadIntervalMs: 20 });
    const bound = await server.start({ grpcPort: 0, healthPort: null, host: '127.0.0.1', tls: { mode: 'files', certFile: crt, keyFile: key } });
    cleanups.push(() => server.stop(100).then(() => undefined));
    const served = (): Promise<string> => servedSubject(bound.grpcPort);
    expect(await served()).toBe('CN=epp-1');
    // a half-written rotation (garbage key) is refused; the old certificate stays
    await writeFile(key, 'not a key');
    await new Promise((r) => setTimeout(r, 120));
    expect(await served()).toBe('CN=epp-1');
    await writeFile(crt, second.certPem);
    await writeFile(key, second.keyPem);
    let subject = '';
    for (let i = 0; i < 100 && subject !== 'CN=epp-2'; i++) {
      await new Promise((r) => setTimeout(r, 20));
      subject = await served();
    }
    expect(subject).toBe('CN=epp-2');
    const c = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}`, caPem: second.certPem });
    cleanups.push(() => c.close());
    expect((await routeRequest(c.open(), { headers: postHeaders(PATH_COMPLETIONS), body })).kind).toBe('routed');
  });
});

describe('TLS certificate rotation default interval', () => {
  test('the files are checked every 10 s (tlsReloadIntervalMs @default 10000)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvroute-tls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const crt = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    const first = await createSelfSignedCertificate({ commonName: 'epp-1', hosts: ['127.0.0.1'] });
    const second = await createSelfSignedCertificate({ commonName: 'epp-2', hosts: ['127.0.0.1'] });
    await writeFile(crt, first.certPem);
    await writeFile(key, first.keyPem);
    // Only the timer functions are faked; sockets, files and setImmediate stay real.
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'clearImmediate', 'queueMicrotask', 'hrtime', 'performance', 'Date'] });
    try {
      const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']) });
      const bound = await server.start({ grpcPort: 0, healthPort: null, host: '127.0.0.1', tls: { mode: 'files', certFile: crt, keyFile: key } });
      cleanups.push(() => server.stop(100).then(() => undefined));
      const served = (): Promise<string> => servedSubject(bound.grpcPort);
      expect(await served()).toBe('CN=epp-1'); // also lets the initial stat of the files finish
      for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r));
      await writeFile(crt, second.certPem);
      await writeFile(key, second.keyPem);
      jest.advanceTimersByTime(9_999);
      for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r));
      expect(await served()).toBe('CN=epp-1');
      jest.advanceTimersByTime(1);
      let subject = '';
      for (let i = 0; i < 2000 && subject !== 'CN=epp-2'; i++) {
        for (let k = 0; k < 20; k++) await new Promise((r) => setImmediate(r));
        subject = await served();
      }
      expect(subject).toBe('CN=epp-2');
    } finally {
      // the cleanups (server stop) need real timers
      jest.useRealTimers();
    }
  });
});

describe('self-signed certificate defaults', () => {
  test('@default commonName kvroute-epp, hosts localhost/127.0.0.1/::1/hostname, 365 days', async () => {
    const cert = new X509Certificate((await createSelfSignedCertificate()).certPem);
    expect(cert.subject).toBe('CN=kvroute-epp');
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkIP('::1')).toBe('::1');
    expect(cert.ca).toBe(true);
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
    expect(days).toBeCloseTo(365, 3);
  });

  test('a validity that is not a positive number of days is refused, naming the value', async () => {
    await expect(createSelfSignedCertificate({ days: 0 })).rejects.toThrow('self-signed certificate: days 0 must be a positive number of days');
    await expect(createSelfSignedCertificate({ days: Number.NaN })).rejects.toThrow(/days NaN must be a positive number/);
  });

  test('validity past 2049 uses GeneralizedTime and still parses', async () => {
    const cert = new X509Certificate((await createSelfSignedCertificate({ days: 40 * 365 })).certPem);
    expect(new Date(cert.validTo).getUTCFullYear()).toBeGreaterThanOrEqual(2065);
  });
});

describe('config compatibility', () => {
  test('the EPP config `server` section can be passed to start() as is', async () => {
    const { parseEppConfig } = await import('../../src/contract/config.js');
    const config = parseEppConfig({ model: 'm', server: { grpcPort: 1, healthPort: 2, host: '127.0.0.1', tls: { mode: 'self-signed' }, maxBodyBytes: 4096 } });
    const server = new ExtProcServer({ director: new ScriptedDirector(['10.0.0.1:8000']), maxBodyBytes: config.server.maxBodyBytes, models: [config.model] });
    // Ports 0 instead of the configured ones (tests bind free ports only).
    const bound = await server.start({ ...config.server, grpcPort: 0, healthPort: 0 });
    cleanups.push(() => server.stop(100).then(() => undefined));
    expect(bound.certPem).toContain('BEGIN CERTIFICATE');
    const c = new ExtProcTestClient({ address: `127.0.0.1:${bound.grpcPort}`, caPem: bound.certPem! });
    cleanups.push(() => c.close());
    const out = await routeRequest(c.open(), { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"other","prompt":"x"}' });
    expect(out.kind === 'immediate' && out.status).toBe(404);
  });
});
