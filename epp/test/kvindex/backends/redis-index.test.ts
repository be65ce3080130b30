import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { Redis } from 'ioredis';
import { REDIS_INDEX_DEFAULTS, RedisIndex, type RedisIndexLogger } from '../../../src/kvindex/backends/redis-index.js';
import type { PodEntry } from '../../../src/kvindex/types.js';
import { startRedisServer, type RedisServer } from '../../../testkit/redis-server.js';
import { runIndexContract } from './index-contract.js';

let server: RedisServer;
let prefixSeq = 0;

beforeAll(async () => {
  server = await startRedisServer({ password: 'test-pass' });
});
afterAll(async () => {
  await server.dispose();
});

async function connected(opts: ConstructorParameters<typeof RedisIndex>[0] = {}): Promise<RedisIndex> {
  const idx = new RedisIndex({ url: server.url, password: 'test-pass', keyPrefix: `t${++prefixSeq}:`, commandTimeoutMs: 1000, ...opts });
  if (!(await idx.waitReady(5000))) throw new Error(`redis index did not connect to ${server.url}`);
  return idx;
}

runIndexContract('RedisIndex (real redis-server)', () => connected());

const gpu = (pod: string): PodEntry => ({ pod, tier: 'gpu' });

class CapturingLogger implements RedisIndexLogger {
  readonly warnings: { obj: object; msg: string | undefined }[] = [];
  readonly infos: string[] = [];
  warn(obj: object, msg?: string): void {
    this.warnings.push({ obj, msg });
  }
  info(_obj: object, msg?: string): void {
    this.infos.push(msg ?? '');
  }
}

describe('RedisIndex data layout', () => {
  it('stores ref counts in a hash per request key, the mapping as a string, the reverse index as a set, all under the prefix', async () => {
    const idx = await connected({ keyPrefix: 'layout:' });
    const raw = new Redis({ host: server.host, port: server.port, password: 'test-pass' });
    try {
      await idx.add([7n], [11n], [gpu('10.0.0.1:8000'), { pod: '10.0.0.1:8000', tier: 'cpu' }]);
      await idx.add([7n], [11n], [gpu('10.0.0.1:8000')]);
      expect(await raw.hgetall('layout:r:11')).toEqual({ '10.0.0.1:8000|gpu': '2', '10.0.0.1:8000|cpu': '1' });
      expect(await raw.get('layout:e:7')).toBe('11');
      expect((await raw.smembers('layout:p:10.0.0.1:8000')).sort()).toEqual(['11|cpu', '11|gpu']);
      await idx.evict(7n, [gpu('10.0.0.1:8000')]);
      await idx.evict(7n, [gpu('10.0.0.1:8000'), { pod: '10.0.0.1:8000', tier: 'cpu' }]);
      // Nothing left behind: hash, mapping and reverse index are gone.
      expect(await raw.keys('layout:*')).toEqual([]);
    } finally {
      raw.disconnect();
      await idx.close();
    }
  });

  it('clear(pod) walks the pod set in batches and leaves other pods and prefixes alone', async () => {
    const idx = await connected({ clearBatchSize: 7 });
    const other = await connected();
    const raw = new Redis({ host: server.host, port: server.port, password: 'test-pass' });
    try {
      const keys = Array.from({ length: 100 }, (_, i) => BigInt(i) * 1_000_003n + 5n);
      await idx.add([], keys, [gpu('a:1'), { pod: 'a:1', tier: 'cpu' }, gpu('b:1')]);
      await other.add([], keys, [gpu('a:1')]);
      await idx.clear('a:1');
      expect((await idx.lookup(keys, new Set(['a:1']))).size).toBe(0);
      expect((await idx.lookup(keys)).size).toBe(100);
      expect(await raw.exists(`${idx.keyPrefix}p:a:1`)).toBe(0);
      expect((await other.lookup(keys)).size).toBe(100);
    } finally {
      raw.disconnect();
      await idx.close();
      await other.close();
    }
  });

  it('rejects a tier containing "|" and a URL with credentials, naming the fix', async () => {
    const idx = await connected();
    await expect(idx.add([], [1n], [{ pod: 'a:1', tier: 'g|pu' }])).rejects.toThrow(/no '\|' in the tier/);
    await idx.close();
    expect(() => new RedisIndex({ url: 'redis://user:pw@127.0.0.1:1' })).toThrow(/without credentials.*options.password/);
    expect(() => new RedisIndex({ url: server.url, commandTimeoutMs: 0 })).toThrow(/commandTimeoutMs: 0 is invalid/);
  });

  it('has the documented defaults', async () => {
    expect(REDIS_INDEX_DEFAULTS).toEqual({
      url: 'redis://127.0.0.1:6379',
      keyPrefix: 'kvroute:',
      commandTimeoutMs: 50,
      reconnectMaxDelayMs: 1000,
      logIntervalMs: 10_000,
      clearBatchSize: 1000,
    });
    const idx = new RedisIndex({ url: server.url, password: 'test-pass' });
    expect(idx.keyPrefix).toBe('kvroute:');
    expect(await idx.waitReady(5000)).toBe(true);
    await idx.close();
  });
});

describe('RedisIndex when Redis fails', () => {
  it('a wrong password degrades to no hits and dropped writes, counted and logged, without throwing', async () => {
    const logger = new CapturingLogger();
    const registry = new Registry();
    const idx = new RedisIndex({ url: server.url, password: 'wrong', keyPrefix: 'wp:', logger, registry, commandTimeoutMs: 200 });
    try {
      expect(await idx.waitReady(300)).toBe(false);
      await expect(idx.lookup([1n, 2n])).resolves.toEqual(new Map());
      await expect(idx.add([1n], [1n], [gpu('a:1')])).resolves.toBeUndefined();
      await expect(idx.requestKeyFor(1n)).resolves.toBeUndefined();
      expect(idx.stats.degradedLookups).toBe(1);
      expect(idx.stats.droppedWrites.add).toBe(1);
      expect(logger.warnings.length).toBeGreaterThan(0);
      const text = await registry.metrics();
      expect(text).toMatch(/^kvroute_index_redis_up 0$/m);
      expect(text).toMatch(/^kvroute_index_redis_degraded_lookups_total 1$/m);
      expect(text).toMatch(/^kvroute_index_redis_dropped_writes_total\{op="add"\} 1$/m);
    } finally {
      await idx.close();
    }
  });

  it('without a logger or registry (the defaults) it still degrades silently instead of throwing', async () => {
    const idx = new RedisIndex({ url: server.url, password: 'wrong', keyPrefix: 'nl:', commandTimeoutMs: 100 });
    try {
      await expect(idx.lookup([1n])).resolves.toEqual(new Map());
      await expect(idx.evict(1n, [gpu('a:1')])).resolves.toBeUndefined();
      await expect(idx.clear('a:1')).resolves.toBeUndefined();
      expect(idx.stats).toMatchObject({ up: 0, degradedLookups: 1, droppedWrites: { add: 0, evict: 1, clear: 1 } });
    } finally {
      await idx.close();
    }
  });

  it('logs at most one warning per logIntervalMs (default 10 s) and reports how many were suppressed', async () => {
    const logger = new CapturingLogger();
    const idx = new RedisIndex({ url: server.url, password: 'wrong', keyPrefix: 'rl:', logger });
    try {
      for (let i = 0; i < 10; i++) expect((await idx.lookup([1n])).size).toBe(0);
      expect(idx.stats.degradedLookups).toBe(10);
      expect(logger.warnings).toHaveLength(1);
    } finally {
      await idx.close();
    }
    const fast = new CapturingLogger();
    const idx2 = new RedisIndex({ url: server.url, password: 'wrong', keyPrefix: 'rl:', logger: fast, logIntervalMs: 1 });
    try {
      await idx2.lookup([1n]);
      await new Promise((r) => setTimeout(r, 5));
      await idx2.lookup([1n]);
      expect(fast.warnings.length).toBeGreaterThanOrEqual(2);
    } finally {
      await idx2.close();
    }
  });

  it('survives the server being killed mid-test and reconnects by itself when it is back on the same port', async () => {
    const own = await startRedisServer();
    const logger = new CapturingLogger();
    const registry = new Registry();
    const idx = new RedisIndex({ url: own.url, keyPrefix: 'rc:', logger, registry, commandTimeoutMs: 200, reconnectMaxDelayMs: 100, logIntervalMs: 0 });
    try {
      expect(await idx.waitReady(5000)).toBe(true);
      await idx.add([101n], [1n, 2n], [gpu('a:1')]);
      expect((await idx.lookup([1n, 2n])).size).toBe(2);
      expect((await registry.metrics())).toMatch(/^kvroute_index_redis_up 1$/m);

      await own.stop();
      // Lookups answer no hits (not an exception), writes are dropped; both counted and logged.
      const started = Date.now();
      for (let i = 0; i < 5; i++) expect((await idx.lookup([1n, 2n])).size).toBe(0);
      await idx.add([], [3n], [gpu('a:1')]);
      await idx.evict(101n, [gpu('a:1')]);
      await idx.clear('a:1');
      expect(await idx.requestKeyFor(101n)).toBeUndefined();
      expect(Date.now() - started).toBeLessThan(5 * 200 + 2000);
      expect(idx.stats.degradedLookups).toBe(5);
      expect(idx.stats.droppedWrites).toEqual({ add: 1, evict: 1, clear: 1 });
      expect(logger.warnings.some((w) => /lookup answers no hits/.test(w.msg ?? ''))).toBe(true);
      // The up gauge follows the client's own view, which notices the closed socket a moment later.
      for (let i = 0; i < 100 && idx.connected; i++) await new Promise((r) => setTimeout(r, 10));
      const down = await registry.metrics();
      expect(down).toMatch(/^kvroute_index_redis_up 0$/m);
      expect(down).toMatch(/^kvroute_index_redis_degraded_lookups_total 5$/m);
      expect(down).toMatch(/^kvroute_index_redis_errors_total\{op="lookup"\} 5$/m);

      await own.restart();
      expect(await idx.waitReady(10_000)).toBe(true);
      expect(logger.infos).toContain('redis index reconnected');
      expect(await registry.metrics()).toMatch(/^kvroute_index_redis_up 1$/m);
      // The restarted server is empty (no persistence); writes and reads work again.
      expect((await idx.lookup([1n])).size).toBe(0);
      await idx.add([102n], [4n], [gpu('b:1')]);
      expect([...(await idx.lookup([4n])).entries()]).toEqual([[4n, [gpu('b:1')]]]);
      expect(await idx.requestKeyFor(102n)).toBe(4n);
      expect(idx.stats.degradedLookups).toBe(5);
    } finally {
      await idx.close();
      await own.dispose();
    }
  });

  it('a command slower than commandTimeoutMs degrades the lookup instead of waiting', async () => {
    const idx = await connected({ commandTimeoutMs: 30, keyPrefix: 'slow:' });
    const blocker = new Redis({ host: server.host, port: server.port, password: 'test-pass' });
    try {
      await idx.add([], [9n], [gpu('a:1')]);
      // DEBUG SLEEP blocks the single-threaded server for 300 ms.
      const sleeping = blocker.call('DEBUG', 'SLEEP', '0.3');
      await new Promise((r) => setTimeout(r, 20));
      const t0 = Date.now();
      expect((await idx.lookup([9n])).size).toBe(0);
      expect(Date.now() - t0).toBeLessThan(250);
      expect(idx.stats.degradedLookups).toBe(1);
      await sleeping;
      expect((await idx.lookup([9n])).size).toBe(1);
    } finally {
      blocker.disconnect();
      await idx.close();
    }
  });
});
