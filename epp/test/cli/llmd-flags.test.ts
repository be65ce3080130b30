/**
 * The llm-d Router EPP's flags read into kvroute's config: Go flag syntax, each flag's meaning,
 * the notes for flags accepted without effect, and errors naming flag, value and fix.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGoBool, parseGoDuration, splitLlmdArgs } from '../../src/cli/llmd-flags.js';
import { serveSetupFromArgs } from '../../src/cli/serve-flags.js';

const setup = (args: string[]) => {
  const s = serveSetupFromArgs(args);
  if (!s) throw new Error('help');
  return s;
};
const errorOf = (args: string[]): string => {
  try {
    serveSetupFromArgs(args);
  } catch (e) {
    return (e as Error).message;
  }
  return '';
};

describe('Go flag syntax', () => {
  it('takes --flag value, --flag=value, one dash, bare and explicit booleans, and leaves kvroute flags alone', () => {
    const { llmd, rest } = splitLlmdArgs(['--pool-name', 'p', '-pool-namespace=ns', '--ha-enable-leader-election', '--tracing=false', '--secure-serving', 'false', '--lora-info-metric', '', '--model', 'm', '--endpoints=1.2.3.4:8000=a']);
    expect(Object.fromEntries(llmd)).toEqual({ 'pool-name': 'p', 'pool-namespace': 'ns', 'ha-enable-leader-election': true, tracing: false, 'secure-serving': false, 'lora-info-metric': '' });
    expect(rest).toEqual(['--model', 'm', '--endpoints=1.2.3.4:8000=a']);
  });

  it('parses Go booleans and durations', () => {
    expect(['1', 't', 'TRUE', 'True'].map(parseGoBool)).toEqual([true, true, true, true]);
    expect(['0', 'f', 'FALSE', 'false'].map(parseGoBool)).toEqual([false, false, false, false]);
    expect(parseGoBool('yes')).toBeUndefined();
    expect(['50ms', '2s', '1m30s', '1.5s', '0', '250us', '1h'].map(parseGoDuration)).toEqual([50, 2000, 90_000, 1500, 0, 0.25, 3_600_000]);
    expect(parseGoDuration('50')).toBeUndefined();
    expect(parseGoDuration('fast')).toBeUndefined();
  });

  it('names the flag when a boolean or a value is malformed', () => {
    expect(errorOf(['--pool-name', 'p', '--tracing=maybe'])).toBe('--tracing=maybe: not a boolean; write --tracing=true or --tracing=false');
    expect(errorOf(['--pool-name'])).toBe('--pool-name needs a value: --pool-name=<value> or --pool-name <value>');
    expect(errorOf(['--pool-name', 'p', '--refresh-metrics-interval=50'])).toBe('--refresh-metrics-interval=50: not a duration; write e.g. 50ms, 2s or 1m30s');
    expect(errorOf(['--pool-name', 'p', '--refresh-metrics-interval=1ms'])).toBe('--refresh-metrics-interval=1ms: kvroute needs at least 5 ms here; use 5ms or more');
    expect(errorOf(['--pool-name', 'p', '--grpc-health-port=70000'])).toBe('--grpc-health-port=70000: must be an integer from 0 to 65535');
  });
});

describe('what each llm-d flag does', () => {
  it('a chart command line: pool discovery, TLS self-signed, llm-d default scheduling, no --model needed', () => {
    const { config, notes } = setup(['--pool-name', 'qwen', '--pool-namespace', 'llm-d', '--pool-group', 'inference.networking.k8s.io', '--zap-encoder', 'json', '--tracing=false', '--metrics-endpoint-auth=false']);
    expect(config.discovery).toEqual({ mode: 'kubernetes', poolName: 'qwen', poolNamespace: 'llm-d', poolGroup: 'inference.networking.k8s.io' });
    expect(config.server.tls).toEqual({ mode: 'self-signed' });
    expect(config.server).toMatchObject({ grpcPort: 9002, healthPort: 9003 });
    expect(config.model).toBe('*');
    expect(config.scheduling.profiles?.[0]?.plugins).toEqual([
      { pluginRef: 'queue-scorer', weight: 2 },
      { pluginRef: 'kv-cache-utilization-scorer', weight: 2 },
      { pluginRef: 'prefix-cache-scorer', weight: 3 },
      { pluginRef: 'max-score-picker' },
    ]);
    expect(notes.some((n) => n.includes("llm-d's default scheduling"))).toBe(true);
  });

  it('the older pool group, the standalone selector mode, ports and metrics port', () => {
    expect(setup(['--pool-name', 'p', '--pool-group=inference.networking.x-k8s.io']).config.discovery).toEqual({ mode: 'kubernetes', poolName: 'p', poolGroup: 'inference.networking.x-k8s.io' });
    const s = setup(['--endpoint-selector', 'app=vllm,tier=gpu', '--endpoint-target-ports=8000,8001', '--pool-namespace', 'ns', '--grpc-port=9102', '--grpc-health-port', '9103', '--metrics-port=9190']);
    expect(s.config.discovery).toEqual({ mode: 'selector', selector: 'app=vllm,tier=gpu', targetPorts: [8000, 8001], namespace: 'ns' });
    expect(s.config.server).toMatchObject({ grpcPort: 9102, healthPort: 9103, httpPort: 9190 });
  });

  it('--endpoints replaces the pool; --secure-serving=false and --cert-path choose the TLS mode', () => {
    const s = setup(['--pool-name', 'p', '--endpoints', '10.0.0.1:8000=a', '--secure-serving=false', '--cert-path', '/certs']);
    expect(s.config.discovery).toEqual({ mode: 'static', endpoints: [{ address: '10.0.0.1:8000', name: 'a', role: 'both' }] });
    expect(s.config.server.tls).toEqual({ mode: 'off' });
    expect(s.notes).toContain('--cert-path=/certs is accepted and ignored: TLS is off (--secure-serving=false)');
    expect(setup(['--pool-name', 'p', '--cert-path=/certs/', '--enable-cert-reload']).config.server.tls).toEqual({ mode: 'files', certFile: '/certs/tls.crt', keyFile: '/certs/tls.key' });
    // kvroute's own command line keeps its defaults: no TLS unless asked for
    expect(setup(['--model', 'm']).config.server.tls).toEqual({ mode: 'off' });
  });

  it('model-server metric flags (SGLang as the chart renders them, Triton with labels and "" to disable)', () => {
    const sglang = setup(['--pool-name', 'p', '--total-queued-requests-metric="sglang:num_queue_reqs"', '--total-running-requests-metric="sglang:num_running_reqs"', '--kv-cache-usage-percentage-metric="sglang:token_usage"', '--cache-info-metric="sglang:cache_config_info"']);
    expect(sglang.config.scheduling.modelServerMetrics).toMatchObject({ queued: 'sglang:num_queue_reqs', running: 'sglang:num_running_reqs', kvCacheUsage: 'sglang:token_usage', cacheInfo: 'sglang:cache_config_info', scheme: 'http', path: '/metrics' });
    const triton = setup(['--pool-name', 'p', '--total-queued-requests-metric', 'nv_trt_llm_request_metrics{request_type=waiting}', '--kv-cache-usage-percentage-metric=""', '--lora-info-metric', '', '--model-server-metrics-path="/prometheus/metrics"', '--model-server-metrics-port=8002', '--model-server-metrics-scheme', 'https']);
    expect(triton.config.scheduling.modelServerMetrics).toMatchObject({ queued: 'nv_trt_llm_request_metrics{request_type=waiting}', kvCacheUsage: '', path: '/prometheus/metrics', port: 8002, scheme: 'https' });
    expect(triton.notes).toContain('--lora-info-metric= is accepted and ignored: kvroute has no LoRA-affinity scoring');
    // without metric flags the config keeps vLLM's names (the field stays unset)
    expect(setup(['--pool-name', 'p']).config.scheduling.modelServerMetrics).toBeUndefined();
    expect(errorOf(['--pool-name', 'p', '--total-queued-requests-metric='])).toBe('--total-queued-requests-metric is empty: kvroute needs the model server\'s queued requests metric (vLLM: vllm:num_requests_waiting)');
    expect(errorOf(['--pool-name', 'p', '--total-running-requests-metric=a{b}'])).toMatch(/^--total-running-requests-metric=a\{b\}: metric "a\{b\}": "b" is not label=value/);
    expect(errorOf(['--pool-name', 'p', '--model-server-metrics-scheme=ftp'])).toBe('--model-server-metrics-scheme=ftp: must be http or https');
  });

  it('intervals, staleness, log levels', () => {
    const s = setup(['--pool-name', 'p', '--refresh-metrics-interval', '100ms', '--metrics-staleness-threshold=2s', '--zap-log-level=debug']);
    expect(s.config.scheduling).toMatchObject({ scrapeIntervalMs: 100, metricsStalenessMs: 2000 });
    expect(s.config.logLevel).toBe('debug');
    expect(setup(['--pool-name', 'p', '--v=5']).config.logLevel).toBe('trace');
    expect(setup(['--pool-name', 'p', '--v', '2']).config.logLevel).toBe('info');
    expect(setup(['--pool-name', 'p', '--v=5', '--log-level', 'warn']).config.logLevel).toBe('warn'); // kvroute's own flag wins
    expect(errorOf(['--pool-name', 'p', '--zap-log-level=loud'])).toBe('--zap-log-level=loud: use debug, info, warn, error or a verbosity number (4 = debug, 5 = trace)');
  });

  it('flags that cannot change routing are notes; ones kvroute cannot honour are errors', () => {
    const s = setup(['--pool-name', 'p', '--ha-enable-leader-election', '--tracing=true', '--health-checking', '--enable-pprof=true', '--zap-encoder=console', '--refresh-prometheus-metrics-interval=5s']);
    expect(s.notes.join('\n')).toMatch(/kvroute has no leader election: every replica reports ready and routes/);
    expect(s.notes).toContain('--tracing=true is accepted and ignored: kvroute exports no OpenTelemetry traces');
    expect(s.notes).toContain('--zap-encoder=console is accepted and ignored: kvroute always logs JSON lines');
    expect(s.notes).toContain('--refresh-prometheus-metrics-interval=5s is accepted and ignored: kvroute computes its own /metrics when they are scraped');
    expect(errorOf(['--pool-name', 'p', '--disable-endpoint-subset-filter=true'])).toBe("--disable-endpoint-subset-filter=true: kvroute always honours the gateway's endpoint subset hint; remove the flag");
    expect(errorOf(['--pool-name', 'p', '--endpoint-selector', 'a=b'])).toBe('--pool-name=p and --endpoint-selector=a=b are both given; give exactly one (an InferencePool, or standalone pods)');
    expect(errorOf(['--config-file', '/x.yaml', '--config-text', 'kind: EndpointPickerConfig'])).toBe('--config-file and --config-text are both given; give one of them (as llm-d requires)');
    expect(errorOf(['--config-text', 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n'])).toBe(
      'no endpoints to route to: give --pool-name (an InferencePool), --endpoint-selector with --endpoint-target-ports, or --endpoints ip:port=name,... for static pods',
    );
    expect(errorOf(['--pool-name', 'p', '--zap-encoder=xml'])).toBe('--zap-encoder=xml: must be json or console');
    expect(errorOf(['--pool-name', 'p', '--grpc-health-port=9100', '--health-port', '9200'])).toBe('--grpc-health-port=9100 and --health-port=9200 set the same port; give one of them');
  });
});

describe('--config-file / --config-text', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-llmd-flags-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads an EndpointPickerConfig (file or text); flags override what it sets', () => {
    const file = join(dir, 'epp.yaml');
    writeFileSync(file, 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: precise-prefix-cache-scorer\n  parameters:\n    tokenProcessorConfig: { blockSize: 64, hashSeed: "7" }\n');
    const s = setup(['--pool-name', 'p', '--config-file', file, '--block-size', '32']);
    expect(s.config.scheduling.plugins).toEqual([{ type: 'precise-prefix-cache-scorer' }]);
    expect(s.config.hashSeed).toBe('7');
    expect(s.config.blockSize).toBe(32); // --block-size wins over the config's blockSize
    expect(s.notes).toContain('precise-prefix-cache-scorer scores nothing without a tokenizer: set modelName (token-producer or tokenizersPoolConfig), --tokenizer-hf-repo or --tokenizer');
    expect(setup(['--pool-name', 'p', '--config-file', file, '--tokenizer-hf-repo', 'Qwen/Qwen3-0.6B']).notes.join('\n')).not.toMatch(/without a tokenizer/);
    const t = setup(['--endpoints', '1.1.1.1:80=a', '--config-text', 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: load-aware-scorer\n']);
    expect(t.config.scheduling.profiles).toEqual([{ name: 'default', plugins: [{ pluginRef: 'load-aware-scorer' }] }]);
  });

  it('reads a kvroute EppConfig too, and names the file and field of a bad one', () => {
    const ok = join(dir, 'kvroute.yaml');
    writeFileSync(ok, 'model: m\nblockSize: 32\n');
    expect(setup(['--pool-name', 'p', '--config-file', ok]).config).toMatchObject({ model: 'm', blockSize: 32 });
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: typo-scorer\n');
    expect(errorOf(['--pool-name', 'p', '--config-file', bad])).toMatch(new RegExp(`^invalid EndpointPickerConfig \\(--config-file ${bad.replace(/[/.]/g, '\\$&')}\\):\\n  - plugins\\.0\\.type: plugin type "typo-scorer" is not known; use one of `));
    expect(errorOf(['--pool-name', 'p', '--config-file', join(dir, 'missing.yaml')])).toMatch(/^--config-file .*missing\.yaml: cannot read it \(ENOENT\); mount the config there or fix the path$/);
    expect(errorOf(['--config', ok, '--config-file', ok])).toBe(`--config ${ok} and --config-file ${ok} both give a config; give one of them`);
  });
});
