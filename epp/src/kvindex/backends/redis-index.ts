/**
 * Redis (or Valkey) KV-block index (ioredis), with the same contract as MemoryIndex, for several
 * EPP replicas sharing one index.
 *
 * Data layout (every key starts with `keyPrefix`, default `kvroute:`; keys are u64 decimals):
 *
 *   <prefix>r:<requestKey>   HASH   field "<pod>|<tier>" → reference count (HINCRBY on add; the
 *                                   field is HDEL'd when the count reaches 0, and Redis deletes
 *                                   the hash with its last field, so an empty key never lingers)
 *   <prefix>e:<engineKey>    STRING "<r1>,<r2>,…" the request keys the engine key maps to, in
 *                                   order; the last one is `requestKeyFor`. A new store replaces
 *                                   the list (SET). Deleted by `evict` once none of its request
 *                                   keys is held any more (kept while e.g. the CPU tier holds it).
 *   <prefix>p:<pod>          SET    members "<requestKey>|<tier>": the per-pod reverse index, so
 *                                   `clear(pod)` walks the pod's entries (SSCAN in batches), not
 *                                   the keyspace. Maintained by add (SADD) and evict (SREM at 0).
 *
 * Tiers must not contain "|" (fields are split at the last "|"); pods may.
 *
 * Round trips: `lookup` is one pipeline of HKEYS for all keys; `add` is one Lua script (HINCRBY +
 * SADD per key and entry, SET per engine key, atomically); `evict` is one Lua script (atomic decrement, HDEL
 * and SREM at zero, mapping cleanup); `forget` (self-healing) is one Lua script; `clear` is one pipeline per SSCAN batch. The scripts touch
 * keys they derive from the mapping, so this layout is for standalone Redis, not Redis Cluster.
 * `clear` is batched, not atomic: an entry the same pod re-stores while its clear is running may be
 * removed with the rest (clear follows pod removal or AllBlocksCleared, so this is benign). Unlike
 * MemoryIndex, `clear` leaves the engine mappings of the cleared keys in place (the next store of
 * the engine key replaces them; an evict through them finds nothing and deletes them).
 * No TTLs are set: size Redis with `maxmemory` and an eviction policy (e.g. allkeys-lru).
 *
 * Failure policy: every command has a timeout (`commandTimeoutMs`), there is no offline queue, and
 * the client reconnects by itself. When Redis is slow or unreachable, lookups answer "no hits",
 * writes are dropped, each counted in `stats` (kvroute_index_redis_* metrics) and logged (rate
 * limited); nothing Redis-related is thrown to the caller. Invalid arguments still throw.
 */
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { BlockKey, Index, PodEntry } from '../types.js';
import { assertBlockKey, engineGroups } from '../keys/engine-mapping.js';
import { registerRedisIndexMetrics, type RedisIndexStats } from './index-metrics.js';

/** The logging the index needs (pino-compatible). */
export interface RedisIndexLogger {
  warn(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
}

export interface RedisIndexOptions {
  /** `redis://host:port[/db]` (or `rediss://`), without credentials. @default 'redis://127.0.0.1:6379' */
  readonly url?: string;
  /** Password (the EPP reads it from the env variable named by `index.passwordEnv`). @default undefined */
  readonly password?: string;
  /** Prefix of every key, so several models or fleets can share one Redis. @default 'kvroute:' */
  readonly keyPrefix?: string;
  /** Timeout of each command; past it a lookup counts as "no hits" and a write is dropped. @default 50 */
  readonly commandTimeoutMs?: number;
  /** Upper bound of the reconnect back-off (50 ms × attempt, capped here). @default 1000 */
  readonly reconnectMaxDelayMs?: number;
  /** Failures are logged at most once per this interval (the rest are counted). @default 10000 */
  readonly logIntervalMs?: number;
  /** SSCAN batch size of `clear`. @default 1000 */
  readonly clearBatchSize?: number;
  /** Logger for failures and reconnects. @default undefined (silent) */
  readonly logger?: RedisIndexLogger;
  /** Registry for the kvroute_index_redis_* metrics. @default undefined (no metrics) */
  readonly registry?: Registry;
}

export const REDIS_INDEX_DEFAULTS = {
  url: 'redis://127.0.0.1:6379',
  keyPrefix: 'kvroute:',
  commandTimeoutMs: 50,
  reconnectMaxDelayMs: 1000,
  logIntervalMs: 10_000,
  clearBatchSize: 1000,
} as const;

/**
 * KEYS[1] = <prefix>e:<engineKey>; ARGV[1] = prefix; ARGV[2..] = pod, tier pairs.
 * Drops one reference of each (pod, tier) from every request key the engine key maps to; deletes
 * the mapping when none of those keys is held any more.
 */
const EVICT_LUA = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local prefix = ARGV[1]
local held = false
for rk in string.gmatch(v, '[^,]+') do
  local hk = prefix .. 'r:' .. rk
  for i = 2, #ARGV, 2 do
    local pod = ARGV[i]
    local tier = ARGV[i + 1]
    local f = pod .. '|' .. tier
    local c = tonumber(redis.call('HGET', hk, f))
    if c then
      if c <= 1 then
        redis.call('HDEL', hk, f)
        redis.call('SREM', prefix .. 'p:' .. pod, rk .. '|' .. tier)
      else
        redis.call('HINCRBY', hk, f, -1)
      end
    end
  end
  if redis.call('EXISTS', hk) == 1 then held = true end
end
if not held then redis.call('DEL', KEYS[1]) end
return 1
`;
const EVICT_SHA = createHash('sha1').update(EVICT_LUA).digest('hex');

/**
 * No KEYS; ARGV = prefix, nEntries, (pod, tier) × nEntries, nRequestKeys, requestKey × n,
 * then (engineKey, "r1,r2,…") pairs. One command instead of 2·|R|·|entries| + |groups|.
 */
/**
 * forget(requestKeys, pod): ARGV = prefix, pod, requestKey...; removes every "<pod>|<tier>" field
 * (whatever its count) of each key and the matching reverse-index members; returns how many keys
 * had an entry of the pod.
 */
const FORGET_LUA = `
local prefix = ARGV[1]
local pod = ARGV[2]
local podSet = prefix .. 'p:' .. pod
local dropped = 0
for i = 3, #ARGV do
  local rk = ARGV[i]
  local hkey = prefix .. 'r:' .. rk
  local hit = false
  for _, f in ipairs(redis.call('HKEYS', hkey)) do
    local bar = string.find(f, '|[^|]*$')
    if bar and string.sub(f, 1, bar - 1) == pod then
      redis.call('HDEL', hkey, f)
      redis.call('SREM', podSet, rk .. '|' .. string.sub(f, bar + 1))
      hit = true
    end
  end
  if hit then dropped = dropped + 1 end
end
return dropped
`;
const FORGET_SHA = createHash('sha1').update(FORGET_LUA).digest('hex');

const ADD_LUA = `
local prefix = ARGV[1]
local ne = tonumber(ARGV[2])
local i = 3
local fields, podSets, tiers = {}, {}, {}
for j = 1, ne do
  fields[j] = ARGV[i] .. '|' .. ARGV[i + 1]
  podSets[j] = prefix .. 'p:' .. ARGV[i]
  tiers[j] = '|' .. ARGV[i + 1]
  i = i + 2
end
local nr = tonumber(ARGV[i])
i = i + 1
for j = 1, nr do
  local rk = ARGV[i]
  i = i + 1
  local hk = prefix .. 'r:' .. rk
  for m = 1, ne do
    redis.call('HINCRBY', hk, fields[m], 1)
    redis.call('SADD', podSets[m], rk .. tiers[m])
  end
end
while i < #ARGV do
  redis.call('SET', prefix .. 'e:' .. ARGV[i], ARGV[i + 1])
  i = i + 2
end
return nr
`;
const ADD_SHA = createHash('sha1').update(ADD_LUA).digest('hex');

type Op = 'lookup' | 'add' | 'evict' | 'requestKeyFor' | 'clear';

function positiveInt(v: number, name: string, def: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`RedisIndex ${name}: ${String(v)} is invalid; use a positive integer (default ${def})`);
  return v;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The Redis `Index`. */
export class RedisIndex implements Index {
  readonly keyPrefix: string;
  private readonly client: Redis;
  private readonly logger: RedisIndexLogger | undefined;
  private readonly logIntervalMs: number;
  private readonly clearBatchSize: number;
  private readonly fieldCache = new Map<string, PodEntry>();
  private readonly errors: Record<Op, number> = { lookup: 0, add: 0, evict: 0, requestKeyFor: 0, clear: 0 };
  private readonly dropped: Record<'add' | 'evict' | 'clear', number> = { add: 0, evict: 0, clear: 0 };
  private degraded = 0;
  private lastLog = -Infinity;
  private suppressed = 0;
  private wasReady = false;
  private closed = false;

  constructor(opts: RedisIndexOptions = {}) {
    const url = opts.url ?? REDIS_INDEX_DEFAULTS.url;
    if (!/^rediss?:\/\/[^@\s]+$/.test(url)) {
      throw new Error(`RedisIndex url: ${JSON.stringify(url)} is invalid; use redis://host:port[/db] (or rediss://) without credentials, and pass the password in options.password`);
    }
    const commandTimeout = positiveInt(opts.commandTimeoutMs ?? REDIS_INDEX_DEFAULTS.commandTimeoutMs, 'commandTimeoutMs', REDIS_INDEX_DEFAULTS.commandTimeoutMs);
    const maxDelay = positiveInt(opts.reconnectMaxDelayMs ?? REDIS_INDEX_DEFAULTS.reconnectMaxDelayMs, 'reconnectMaxDelayMs', REDIS_INDEX_DEFAULTS.reconnectMaxDelayMs);
    this.logIntervalMs = opts.logIntervalMs ?? REDIS_INDEX_DEFAULTS.logIntervalMs;
    this.clearBatchSize = positiveInt(opts.clearBatchSize ?? REDIS_INDEX_DEFAULTS.clearBatchSize, 'clearBatchSize', REDIS_INDEX_DEFAULTS.clearBatchSize);
    this.keyPrefix = opts.keyPrefix ?? REDIS_INDEX_DEFAULTS.keyPrefix;
    this.logger = opts.logger;
    this.client = new Redis(url, {
      password: opts.password,
      commandTimeout,
      connectTimeout: Math.max(1000, commandTimeout),
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => Math.min(times * 50, maxDelay),
      reconnectOnError: () => false,
    });
    // Without a listener ioredis prints every connection error; route them to the rate-limited log.
    this.client.on('error', (e: unknown) => this.report('connection', e));
    this.client.on('ready', () => {
      if (this.wasReady) this.logger?.info?.({ url }, 'redis index reconnected');
      this.wasReady = true;
    });
    if (opts.registry !== undefined) registerRedisIndexMetrics(opts.registry, this);
  }

  /** Whether the connection is ready now. */
  get connected(): boolean {
    return this.client.status === 'ready';
  }

  /** Wait until the connection is ready (true) or `timeoutMs` passes (false). Never rejects. */
  async waitReady(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.connected) {
      if (this.closed || Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  get stats(): RedisIndexStats {
    return { up: this.connected ? 1 : 0, errors: { ...this.errors }, droppedWrites: { ...this.dropped }, degradedLookups: this.degraded };
  }

  // ---------------------------------------------------------------------------------------------

  async lookup(requestKeys: readonly BlockKey[], pods?: ReadonlySet<string>): Promise<Map<BlockKey, PodEntry[]>> {
    const out = new Map<BlockKey, PodEntry[]>();
    if (requestKeys.length === 0) return out;
    const filter = pods !== undefined && pods.size > 0 ? pods : undefined;
    let replies: [Error | null, unknown][] | null;
    try {
      const p = this.client.pipeline();
      for (const k of requestKeys) p.hkeys(`${this.keyPrefix}r:${k}`);
      replies = await p.exec();
    } catch (e) {
      this.fail('lookup', e);
      return out;
    }
    if (replies === null) {
      this.fail('lookup', new Error('pipeline aborted'));
      return out;
    }
    for (let i = 0; i < requestKeys.length; i++) {
      const [err, fields] = replies[i] ?? [new Error('missing reply'), null];
      if (err !== null) {
        this.fail('lookup', err);
        return new Map();
      }
      const holders: PodEntry[] = [];
      for (const f of fields as string[]) {
        const entry = this.entryOf(f);
        if (entry !== undefined && (filter === undefined || filter.has(entry.pod))) holders.push(entry);
      }
      if (holders.length === 0) break;
      out.set(requestKeys[i] as BlockKey, holders);
    }
    return out;
  }

  async add(engineKeys: readonly BlockKey[], requestKeys: readonly BlockKey[], entries: readonly PodEntry[]): Promise<void> {
    this.assertOpen('add');
    for (let i = 0; i < requestKeys.length; i++) assertBlockKey(requestKeys[i], `RedisIndex.add requestKeys[${i}]`);
    for (let i = 0; i < engineKeys.length; i++) assertBlockKey(engineKeys[i], `RedisIndex.add engineKeys[${i}]`);
    entries.forEach((e, i) => this.assertEntry(e, `RedisIndex.add entries[${i}]`));
    const groups = engineGroups(engineKeys, requestKeys);
    if ((entries.length === 0 || requestKeys.length === 0) && groups.length === 0) return;
    const args: (string | number)[] = [this.keyPrefix, entries.length];
    for (const e of entries) args.push(e.pod, e.tier);
    const nr = entries.length === 0 ? 0 : requestKeys.length;
    args.push(nr);
    for (let i = 0; i < nr; i++) args.push((requestKeys[i] as BlockKey).toString());
    for (const g of groups) args.push(g.engineKey.toString(), g.requestKeys.join(','));
    await this.write('add', () => this.script(ADD_SHA, ADD_LUA, 0, args));
  }

  async evict(engineKey: BlockKey, entries: readonly PodEntry[]): Promise<void> {
    this.assertOpen('evict');
    assertBlockKey(engineKey, 'RedisIndex.evict engineKey');
    entries.forEach((e, i) => this.assertEntry(e, `RedisIndex.evict entries[${i}]`));
    if (entries.length === 0) return;
    const args: string[] = [this.keyPrefix];
    for (const e of entries) args.push(e.pod, e.tier);
    const key = `${this.keyPrefix}e:${engineKey}`;
    await this.write('evict', () => this.script(EVICT_SHA, EVICT_LUA, 1, [key, ...args]));
  }

  /**
   * Drops the pod's entries of these request keys (self-healing; one Lua script). A Redis failure
   * is counted and logged like a failed evict, and resolves to 0.
   */
  async forget(requestKeys: readonly BlockKey[], pod: string): Promise<number> {
    this.assertOpen('forget');
    if (typeof pod !== 'string' || pod === '') throw new TypeError(`RedisIndex.forget: pod ${JSON.stringify(pod)} is invalid; pass the endpoint id 'ip:port'`);
    requestKeys.forEach((k, i) => assertBlockKey(k, `RedisIndex.forget requestKeys[${i}]`));
    if (requestKeys.length === 0) return 0;
    try {
      return Number(await this.script(FORGET_SHA, FORGET_LUA, 0, [this.keyPrefix, pod, ...requestKeys.map((k) => k.toString())]));
    } catch (e) {
      this.dropped.evict++;
      this.fail('evict', e);
      return 0;
    }
  }

  async requestKeyFor(engineKey: BlockKey): Promise<BlockKey | undefined> {
    assertBlockKey(engineKey, 'RedisIndex.requestKeyFor engineKey');
    let v: string | null;
    try {
      v = await this.client.get(`${this.keyPrefix}e:${engineKey}`);
    } catch (e) {
      this.fail('requestKeyFor', e);
      return undefined;
    }
    if (v === null || v === '') return undefined;
    const last = v.slice(v.lastIndexOf(',') + 1);
    return /^\d+$/.test(last) ? BigInt(last) : undefined;
  }

  async clear(pod: string): Promise<void> {
    this.assertOpen('clear');
    if (typeof pod !== 'string' || pod === '') throw new TypeError(`RedisIndex.clear: pod ${JSON.stringify(pod)} is invalid; pass the endpoint id 'ip:port'`);
    const setKey = `${this.keyPrefix}p:${pod}`;
    let cursor = '0';
    await this.write('clear', async () => {
      do {
        const [next, members] = await this.client.sscan(setKey, cursor, 'COUNT', this.clearBatchSize);
        cursor = next;
        if (members.length === 0) continue;
        const p = this.client.pipeline();
        for (const m of members) {
          const bar = m.indexOf('|');
          p.hdel(`${this.keyPrefix}r:${m.slice(0, bar)}`, `${pod}|${m.slice(bar + 1)}`);
        }
        p.srem(setKey, ...members);
        await this.checked(await p.exec());
      } while (cursor !== '0');
      return null;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // fall through to a hard disconnect
      }
    }
    this.client.disconnect();
  }

  // ---------------------------------------------------------------------------------------------

  private assertOpen(op: string): void {
    if (this.closed) throw new Error(`RedisIndex.${op}: the index is closed; create a new RedisIndex`);
  }

  private assertEntry(e: PodEntry, what: string): void {
    if (e === null || typeof e !== 'object' || typeof e.pod !== 'string' || typeof e.tier !== 'string' || e.pod === '' || e.tier.includes('|')) {
      throw new TypeError(`${what}: ${JSON.stringify(e)} is not a pod entry; pass { pod: 'ip:port', tier: 'gpu' | 'cpu' | ... } with a non-empty pod and no '|' in the tier`);
    }
  }

  /** The PodEntry of a hash field "<pod>|<tier>" (interned; bounded cache). */
  private entryOf(field: string): PodEntry | undefined {
    let e = this.fieldCache.get(field);
    if (e !== undefined) return e;
    const bar = field.lastIndexOf('|');
    if (bar <= 0) return undefined;
    if (this.fieldCache.size >= 65_536) this.fieldCache.clear();
    e = Object.freeze({ pod: field.slice(0, bar), tier: field.slice(bar + 1) });
    this.fieldCache.set(field, e);
    return e;
  }

  /** EVALSHA, loading the script with EVAL when the server does not know it (NOSCRIPT). */
  private async script(sha: string, lua: string, numKeys: number, keysAndArgs: (string | number)[]): Promise<unknown> {
    try {
      return await this.client.evalsha(sha, numKeys, ...keysAndArgs);
    } catch (e) {
      if (!message(e).startsWith('NOSCRIPT')) throw e;
      return await this.client.eval(lua, numKeys, ...keysAndArgs);
    }
  }

  /** Throw the first per-command error of a pipeline reply. */
  private async checked(replies: [Error | null, unknown][] | null): Promise<void> {
    if (replies === null) throw new Error('pipeline aborted');
    for (const [err] of replies) if (err !== null) throw err;
  }

  /** Run a write; on failure count it as dropped and log, never throw. */
  private async write(op: 'add' | 'evict' | 'clear', run: () => Promise<unknown>): Promise<void> {
    try {
      const r = await run();
      if (Array.isArray(r)) await this.checked(r as [Error | null, unknown][]);
    } catch (e) {
      this.dropped[op]++;
      this.fail(op, e);
    }
  }

  private fail(op: Op, e: unknown): void {
    this.errors[op]++;
    if (op === 'lookup') this.degraded++;
    this.report(op, e);
  }

  /** Rate-limited warning. */
  private report(op: string, e: unknown): void {
    const now = Date.now();
    if (now - this.lastLog < this.logIntervalMs) {
      this.suppressed++;
      return;
    }
    this.lastLog = now;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    this.logger?.warn(
      { op, err: message(e), suppressed, status: this.client.status },
      op === 'lookup' || op === 'requestKeyFor'
        ? `redis index unavailable: ${op} answers no hits`
        : op === 'connection'
          ? 'redis index connection error'
          : `redis index ${op} failed: write dropped`,
    );
  }
}
