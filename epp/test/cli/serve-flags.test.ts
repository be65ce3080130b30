import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EppConfigError } from '../../src/contract/config.js';
import { configFromServeArgs, parseEndpointsFlag, SERVE_USAGE, UsageError } from '../../src/cli/serve-flags.js';

describe('kvroute-epp serve flags', () => {
  it('builds the config from the flags named in ARCHITECTURE.md', () => {
    const c = configFromServeArgs([
      '--model', 'meta-llama/Llama-3.2-1B', '--block-size', '64', '--hash-seed', '7',
      '--endpoints', '10.0.0.1:8000=pod-a,10.0.0.2:8000=pod-b:prefill',
      '--grpc-port', '19002', '--health-port', '19003', '--http-port', '19090', '--zmq-bind', 'tcp://127.0.0.1:15557',
    ]);
    expect(c).toMatchObject({
      model: 'meta-llama/Llama-3.2-1B',
      blockSize: 64,
      hashSeed: '7',
      server: { grpcPort: 19002, healthPort: 19003, httpPort: 19090 },
      events: { mode: 'bind', zmqBind: 'tcp://127.0.0.1:15557' },
      discovery: {
        mode: 'static',
        endpoints: [
          { address: '10.0.0.1:8000', name: 'pod-a', role: 'both' },
          { address: '10.0.0.2:8000', name: 'pod-b', role: 'prefill' },
        ],
      },
    });
  });

  it('documents every flag in --help and returns undefined for it', () => {
    for (const flag of ['--model', '--block-size', '--hash-seed', '--endpoints', '--grpc-port', '--health-port', '--http-port', '--zmq-bind', '--config']) {
      expect(SERVE_USAGE).toContain(flag);
    }
    expect(configFromServeArgs(['--help'])).toBeUndefined();
  });

  it('lets flags override the config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvroute-cfg-'));
    const file = join(dir, 'epp.yaml');
    writeFileSync(file, 'model: from-file\nblockSize: 32\nhashSeed: "1"\n');
    const c = configFromServeArgs(['--config', file, '--hash-seed', '2']);
    expect(c).toMatchObject({ model: 'from-file', blockSize: 32, hashSeed: '2' });
  });

  it('requires a model', () => {
    expect(() => configFromServeArgs([])).toThrow(/--model is required/);
  });

  it.each([
    [['--model', 'm', '--block-size', 'x'], UsageError, /--block-size must be a non-negative integer; got "x"/],
    [['--model', 'm', '--block-size', '12'], EppConfigError, /blockSize 12 is not a power of two/],
    [['--model', 'm', '--bogus'], UsageError, /Unknown option '--bogus'.*serve --help/],
    [['--model', 'm', '--endpoints', '10.0.0.1=a'], UsageError, /"10\.0\.0\.1" is not ip:port/],
    [['--config', '/nonexistent/x.yaml'], UsageError, /cannot read it \(ENOENT\)/],
    [['--model', 'm', '--redis-url', 'redis://r:6379', '--index-memory-bytes', '1048576'], UsageError, /pick different index backends/],
  ])('rejects %j with a clear message', (argv, type, message) => {
    expect(() => configFromServeArgs(argv)).toThrow(type);
    expect(() => configFromServeArgs(argv)).toThrow(message);
  });

  it('parses IPv6 endpoints and bare addresses', () => {
    expect(parseEndpointsFlag('[fd00::2]:8000=v6, 10.1.1.1:8200')).toEqual([
      { address: '[fd00::2]:8000', name: 'v6', role: 'both' },
      { address: '10.1.1.1:8200', name: '10.1.1.1:8200', role: 'both' },
    ]);
  });

  it('selects the redis backend by flag', () => {
    const c = configFromServeArgs(['--model', 'm', '--redis-url', 'redis://127.0.0.1:6379']);
    expect(c?.index).toMatchObject({ backend: 'redis', url: 'redis://127.0.0.1:6379' });
  });
});
