import { EppConfigError, EppConfigSchema, parseEppConfig } from '../../src/contract/config.js';
import { EppPorts, KvEventsTopic } from '../../src/contract/names.js';

describe('EPP config schema', () => {
  it('fills every documented default from just a model', () => {
    const c = parseEppConfig({ model: 'meta-llama/Llama-3.2-1B' });
    expect(c).toMatchObject({
      apiVersion: 'kvroute.dev/v1alpha1',
      kind: 'EppConfig',
      model: 'meta-llama/Llama-3.2-1B',
      blockSize: 16,
      hashAlgo: 'sha256_cbor',
      hashSeed: '42',
      logLevel: 'info',
      server: { grpcPort: 9002, healthPort: 9003, httpPort: 9090, host: '0.0.0.0', tls: { mode: 'off' }, maxBodyBytes: 8 * 1024 * 1024 },
      discovery: { mode: 'static', endpoints: [] },
      events: { mode: 'bind', zmqBind: 'tcp://*:5557', podPublisherPort: 5557, topicFilter: 'kv@', concurrency: 8 },
      index: { backend: 'memory', memoryBudgetBytes: 512 * 1024 * 1024 },
      tokenizer: { cacheDir: '/tmp/kvroute-tokenizers', workers: 2, prefixStoreBytes: 64 * 1024 * 1024 },
      scheduling: {
        weights: { prefix: 3, queue: 2, kvCacheUtilization: 2, activeRequests: 1, sessionAffinity: 0 },
        tierWeights: { gpu: 1.0, cpu: 0.8 },
        scrapeIntervalMs: 50,
        scrapeTimeoutMs: 200,
        metricsStalenessMs: 500,
        pd: { enabled: false, nonCachedTokensThreshold: 256 },
      },
    });
    expect(c.events.podReplayPort).toBeUndefined();
    expect(c.tokenizer.path).toBeUndefined();
  });

  it('uses the contract ports and topic prefix as defaults', () => {
    const c = parseEppConfig({ model: 'm' });
    expect(c.server.grpcPort).toBe(EppPorts.grpc);
    expect(c.events.zmqBind).toBe(`tcp://*:${EppPorts.zmq}`);
    expect(c.events.topicFilter).toBe(KvEventsTopic.prefix);
    expect(KvEventsTopic.format('10.0.0.1:8000', 'm')).toBe('kv@10.0.0.1:8000@m');
  });

  it('defaults a static endpoint role to both and accepts IPv6', () => {
    const c = parseEppConfig({ model: 'm', discovery: { mode: 'static', endpoints: [{ address: '[fd00::1]:8000', name: 'p0' }] } });
    expect(c.discovery).toEqual({ mode: 'static', endpoints: [{ address: '[fd00::1]:8000', name: 'p0', role: 'both' }] });
  });

  it('defaults the redis backend fields', () => {
    const c = parseEppConfig({ model: 'm', index: { backend: 'redis', url: 'redis://redis.llm-d.svc:6379' } });
    expect(c.index).toEqual({ backend: 'redis', url: 'redis://redis.llm-d.svc:6379', passwordEnv: 'KVROUTE_REDIS_PASSWORD', keyPrefix: 'kvroute:', commandTimeoutMs: 50 });
  });

  it.each([
    [{ model: 'm', blockSize: 24 }, /blockSize: blockSize 24 is not a power of two.*\(got 24\)/],
    [{ model: '' }, /model: model must be the served model name.*\(got ""\)/],
    [{}, /model: Required \(got nothing\)/],
    [{ model: 'm', hashAlgo: 'builtin' }, /hashAlgo: .*sha256_cbor.*\(got "builtin"\)/],
    [{ model: 'm', discovery: { mode: 'static', endpoints: [{ address: '10.0.0.1', name: 'x' }] } }, /discovery\.endpoints\.0\.address: expected "ip:port"/],
    [{ model: 'm', index: { backend: 'redis', url: 'redis://:secret@host:6379' } }, /index\.url: expected redis:\/\/host:port\[\/db\] with no credentials/],
    [{ model: 'm', server: { grpcPort: 70000 } }, /server\.grpcPort: .*\(got 70000\)/],
    [{ model: 'm', typo: 1 }, /Unrecognized key\(s\) in object: 'typo'/],
  ])('rejects %j naming field, value and fix', (input, message) => {
    expect(() => parseEppConfig(input)).toThrow(message);
  });

  it('collects every problem in one EppConfigError', () => {
    let err: unknown;
    try {
      parseEppConfig({ model: '', blockSize: 3 }, 'test config');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EppConfigError);
    expect((err as EppConfigError).issues).toHaveLength(2);
    expect((err as Error).message).toMatch(/^invalid test config:/);
  });

  it('round-trips: a parsed config parses to itself', () => {
    const c = parseEppConfig({ model: 'm', blockSize: 64, hashSeed: '' });
    expect(EppConfigSchema.parse(JSON.parse(JSON.stringify(c)))).toEqual(c);
  });
});
