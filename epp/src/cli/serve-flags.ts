/**
 * `kvroute-epp serve` flags. Flags build the same object as the config file (`--config`), and a
 * flag given on the command line overrides the file. The result is validated by the one schema.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { parseEppConfig, type EppConfig, type StaticEndpoint } from '../contract/config.js';
import { EppPorts, HashAlgos } from '../contract/names.js';
import { ANY_MODEL, llmdSetup, splitLlmdArgs } from './llmd-flags.js';

export const SERVE_USAGE = `Usage: kvroute-epp serve [flags] [--config file.yaml]

Runs the endpoint picker: KV-event index (ZeroMQ), metrics/admin HTTP port, ext_proc gRPC.

Flags (override the config file):
  --config <file>            EPP config (YAML or JSON, kvroute.dev/v1alpha1 EppConfig)
  --model <name>             served model name (vLLM --served-model-name)        [required]
  --block-size <n>           tokens per KV block, = vLLM --block-size             [16]
  --hash-seed <s>            vLLM PYTHONHASHSEED (string, used verbatim)          [42]
  --hash-algo <a>            vLLM --prefix-caching-hash-algo: ${HashAlgos.join(' | ')} [sha256_cbor]
  --endpoints <list>         static discovery: ip:port=name[:role],...  (role decode|prefill|both)
  --grpc-port <n>            ext_proc gRPC port                                   [${EppPorts.grpc}]
  --health-port <n>          gRPC health port                                     [${EppPorts.grpcHealth}]
  --http-port <n>            /metrics, /healthz, /readyz, POST /v1/score          [${EppPorts.http}]
  --host <addr>              bind address for every listener                      [0.0.0.0]
  --zmq-bind <url>           KV-event SUB socket bind address                     [tcp://*:${EppPorts.zmq}]
  --tokenizer <dir>          directory with tokenizer.json (+ tokenizer_config.json)
  --tokenizer-hf-repo <repo> download the tokenizer from the Hugging Face hub (HF_TOKEN)
  --index-memory-bytes <n>   in-memory index budget in bytes                      [536870912]
  --redis-url <url>          use the Redis index (redis://host:port; password from KVROUTE_REDIS_PASSWORD)
  --log-level <l>            trace | debug | info | warn | error                 [info]
  -h, --help                 this help

llm-d Router EPP flags (its Helm chart's command line works unchanged; see README
"Replacing the llm-d Router's EPP"): --pool-name, --pool-namespace, --pool-group,
--endpoint-selector, --endpoint-target-ports, --config-file, --config-text (an
EndpointPickerConfig or an EppConfig), --grpc-health-port, --metrics-port,
--secure-serving, --cert-path, --enable-cert-reload, --refresh-metrics-interval,
--metrics-staleness-threshold, --total-queued-requests-metric,
--total-running-requests-metric, --kv-cache-usage-percentage-metric, --cache-info-metric,
--lora-info-metric, --model-server-metrics-scheme|-path|-port, --zap-encoder,
--zap-log-level, --v, and the accepted-and-reported --ha-enable-leader-election,
--tracing, --health-checking, --enable-pprof, --metrics-endpoint-auth=false,
--refresh-prometheus-metrics-interval. --endpoints replaces the pool's discovery.
`;

/** Thrown for bad flags; the CLI prints it and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function int(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${flag} must be a non-negative integer; got "${v}"`);
  return Number(v);
}

/** Parses `ip:port=name[:role],...`. */
export function parseEndpointsFlag(v: string): StaticEndpoint[] {
  const out: StaticEndpoint[] = [];
  for (const raw of v.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = raw.lastIndexOf('=');
    const address = eq === -1 ? raw : raw.slice(0, eq);
    let name = eq === -1 ? address : raw.slice(eq + 1);
    let role: StaticEndpoint['role'] = 'both';
    const m = /^(.*):(decode|prefill|both)$/.exec(name);
    if (m) {
      name = m[1];
      role = m[2] as StaticEndpoint['role'];
    }
    if (!/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]@,=]+):\d{1,5}$/.test(address)) {
      throw new UsageError(`--endpoints entry "${raw}": "${address}" is not ip:port (IPv6 as [addr]:port); example: 10.0.0.5:8000=decode-0`);
    }
    if (!name) throw new UsageError(`--endpoints entry "${raw}" has an empty name; write ip:port=name`);
    out.push({ address, name, role });
  }
  return out;
}

function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--config ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return parseYaml(text) ?? {};
  } catch (e) {
    throw new UsageError(`--config ${file}: not valid YAML/JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Builds and validates the EPP config from serve's argv. Returns undefined for --help. */
export function configFromServeArgs(argv: readonly string[]): EppConfig | undefined {
  return serveSetupFromArgs(argv)?.config;
}

/** The config, plus notes to log at start (llm-d flags and config fields accepted without effect). */
export function serveSetupFromArgs(argv: readonly string[]): { config: EppConfig; notes: string[] } | undefined {
  const { llmd, rest } = splitLlmdArgs(argv);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: false,
      strict: true,
      options: {
        config: { type: 'string' },
        model: { type: 'string' },
        'block-size': { type: 'string' },
        'hash-seed': { type: 'string' },
        'hash-algo': { type: 'string' },
        endpoints: { type: 'string' },
        'grpc-port': { type: 'string' },
        'health-port': { type: 'string' },
        'http-port': { type: 'string' },
        host: { type: 'string' },
        'zmq-bind': { type: 'string' },
        tokenizer: { type: 'string' },
        'tokenizer-hf-repo': { type: 'string' },
        'index-memory-bytes': { type: 'string' },
        'redis-url': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}; see kvroute-epp serve --help`);
  }
  const f = parsed.values;
  if (f.help) return undefined;
  const ll = llmdSetup(llmd);
  if (f.config !== undefined && ll.source !== undefined) throw new UsageError(`--config ${f.config} and ${ll.source} both give a config; give one of them`);
  const base = f.config ? readConfigFile(f.config) : (ll.base ?? {});
  if (!isRecord(base)) throw new UsageError(`--config ${f.config}: the top level must be a mapping of EppConfig fields`);
  const cfg: Record<string, unknown> = { ...base };
  ll.apply(cfg, { staticEndpoints: f.endpoints !== undefined, kvrouteFlags: f as Record<string, unknown> });
  const section = (k: string): Record<string, unknown> => {
    const cur = cfg[k];
    const copy = isRecord(cur) ? { ...cur } : {};
    cfg[k] = copy;
    return copy;
  };
  if (f.model !== undefined) cfg.model = f.model;
  if (f['block-size'] !== undefined) cfg.blockSize = int('block-size', f['block-size']);
  if (f['hash-seed'] !== undefined) cfg.hashSeed = f['hash-seed'];
  if (f['hash-algo'] !== undefined) cfg.hashAlgo = f['hash-algo'];
  if (f['log-level'] !== undefined) cfg.logLevel = f['log-level'];
  if (f.endpoints !== undefined) cfg.discovery = { mode: 'static', endpoints: parseEndpointsFlag(f.endpoints) };
  const ports: [string, string][] = [
    ['grpc-port', 'grpcPort'],
    ['health-port', 'healthPort'],
    ['http-port', 'httpPort'],
  ];
  for (const [flag, key] of ports) {
    if (f[flag as 'grpc-port'] !== undefined) section('server')[key] = int(flag, f[flag as 'grpc-port']);
  }
  if (f.host !== undefined) section('server').host = f.host;
  if (f['zmq-bind'] !== undefined) {
    const ev = section('events');
    ev.zmqBind = f['zmq-bind'];
    ev.mode = 'bind';
  }
  if (f.tokenizer !== undefined) section('tokenizer').path = f.tokenizer;
  if (f['tokenizer-hf-repo'] !== undefined) section('tokenizer').hfRepo = f['tokenizer-hf-repo'];
  if (f['redis-url'] !== undefined && f['index-memory-bytes'] !== undefined) {
    throw new UsageError('--redis-url and --index-memory-bytes pick different index backends; give one of them');
  }
  if (f['redis-url'] !== undefined) cfg.index = { ...(isRecord(cfg.index) && cfg.index.backend === 'redis' ? cfg.index : {}), backend: 'redis', url: f['redis-url'] };
  if (f['index-memory-bytes'] !== undefined) cfg.index = { backend: 'memory', memoryBudgetBytes: int('index-memory-bytes', f['index-memory-bytes']) };
  const notes = [...ll.notes];
  if (cfg.model === undefined && ll.llmdMode) {
    cfg.model = ANY_MODEL;
    notes.push('no --model: requests are routed for the model they name (the precise prefix-cache scorer needs a tokenizer: --tokenizer-hf-repo, or modelName in the config)');
  }
  if (cfg.model === undefined) throw new UsageError('--model is required (the served model name, e.g. --model meta-llama/Llama-3.2-1B), or set "model" in --config');
  const source = f.config ? `config ${f.config} (with flags)` : ll.source ? `${ll.source} (with flags)` : 'serve flags';
  const config = parseEppConfig(cfg, source);
  const precise = config.scheduling.plugins?.some((p) => p.type === 'precise-prefix-cache-scorer') ?? false;
  if (precise && !config.tokenizer.path && !config.tokenizer.hfRepo) {
    notes.push('precise-prefix-cache-scorer scores nothing without a tokenizer: set modelName (token-producer or tokenizersPoolConfig), --tokenizer-hf-repo or --tokenizer');
  }
  return { config, notes };
}
