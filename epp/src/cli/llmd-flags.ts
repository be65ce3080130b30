/**
 * The llm-d Router EPP's command line, as its `inferencepool` Helm chart passes it, read into
 * kvroute's EPP config (so the chart can run kvroute's image unchanged).
 *
 * Go flag syntax: `--flag value`, `--flag=value`, one dash as well; a boolean is `--flag` or
 * `--flag=true|false` (`--flag false` is accepted too). Each flag either sets the kvroute setting
 * with the same meaning, or is accepted and reported (a note the EPP logs at start) where it cannot
 * change routing, or is an error naming the flag, the value and what to do. The chart's
 * `--pool-name`/`--endpoint-selector`/`--config-file`/`--config-text` switch llm-d's defaults on:
 * TLS with a self-signed certificate (`--secure-serving` defaults to true), no `--model` needed,
 * and llm-d's default scheduling when no config is given.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { InferencePoolGroups } from '../contract/config.js';
import { isEndpointPickerConfig, LLMD_DEFAULT_SCHEDULING, mapEndpointPickerConfig } from '../contract/endpoint-picker-config.js';
import { parseMetricSpec, type MetricSpec } from '../datalayer/metrics-scraper.js';
import { UsageError } from './serve-flags.js';

type Kind = 'string' | 'int' | 'bool' | 'duration';

/** Every llm-d EPP flag kvroute accepts, with the kind of value it takes. */
export const LLMD_FLAGS: Readonly<Record<string, Kind>> = Object.freeze({
  'grpc-port': 'int',
  'grpc-health-port': 'int',
  'metrics-port': 'int',
  'pool-name': 'string',
  'pool-namespace': 'string',
  'pool-group': 'string',
  'endpoint-selector': 'string',
  'endpoint-target-ports': 'string',
  'config-file': 'string',
  'config-text': 'string',
  'secure-serving': 'bool',
  'cert-path': 'string',
  'enable-cert-reload': 'bool',
  'refresh-metrics-interval': 'duration',
  'refresh-prometheus-metrics-interval': 'duration',
  'metrics-staleness-threshold': 'duration',
  'total-queued-requests-metric': 'string',
  'total-running-requests-metric': 'string',
  'kv-cache-usage-percentage-metric': 'string',
  'lora-info-metric': 'string',
  'cache-info-metric': 'string',
  'model-server-metrics-scheme': 'string',
  'model-server-metrics-path': 'string',
  'model-server-metrics-port': 'int',
  'model-server-metrics-https-insecure-skip-verify': 'bool',
  'disable-endpoint-subset-filter': 'bool',
  'ha-enable-leader-election': 'bool',
  tracing: 'bool',
  'health-checking': 'bool',
  'enable-pprof': 'bool',
  'metrics-endpoint-auth': 'bool',
  'zap-encoder': 'string',
  'zap-log-level': 'string',
  'zap-devel': 'bool',
  'zap-stacktrace-level': 'string',
  'zap-time-encoding': 'string',
  v: 'int',
});

/** Flags that make a command line an llm-d one (llm-d's EPP needs one of the first two). */
const LLMD_MODE_FLAGS = ['pool-name', 'endpoint-selector', 'config-file', 'config-text'];

/** Model name used when an llm-d command line names none: requests carry their own model. */
export const ANY_MODEL = '*';

export type LlmdValues = Map<string, string | boolean>;

/** Splits argv into llm-d flags (parsed, Go syntax) and the rest (kvroute's own flags). */
export function splitLlmdArgs(argv: readonly string[]): { llmd: LlmdValues; rest: string[] } {
  const llmd: LlmdValues = new Map();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const m = /^--?([a-z][a-z0-9-]*)(?:=([\s\S]*))?$/.exec(arg);
    const kind = m && Object.hasOwn(LLMD_FLAGS, m[1] as string) ? LLMD_FLAGS[m[1] as string] : undefined;
    if (!m || kind === undefined) {
      rest.push(arg);
      continue;
    }
    const name = m[1] as string;
    let value = m[2];
    if (kind === 'bool') {
      if (value === undefined && /^(true|false)$/i.test(argv[i + 1] ?? '')) value = argv[++i];
      const b = value === undefined ? true : parseGoBool(value);
      if (b === undefined) throw new UsageError(`--${name}=${value}: not a boolean; write --${name}=true or --${name}=false`);
      llmd.set(name, b);
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value: --${name}=<value> or --${name} <value>`);
      value = argv[++i] as string;
    }
    llmd.set(name, value);
  }
  return { llmd, rest };
}

/** Go's strconv.ParseBool. */
export function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration, in milliseconds ("50ms", "2s", "1m30s", "0"); undefined when malformed. */
export function parseGoDuration(v: string): number | undefined {
  const s = v.trim();
  if (s === '0' || s === '+0' || s === '-0') return 0;
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(s);
  if (!m) return undefined;
  let total = 0;
  for (const part of s.replace(/^[+-]/, '').matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) total += Number(part[1]) * (UNIT_MS[part[2] as string] as number);
  return m[1] === '-' ? -total : total;
}

/** Removes one pair of double quotes around a whole value (the chart renders `--flag="value"`). */
function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

function specString(s: MetricSpec): string {
  const labels = Object.entries(s.labels);
  return labels.length === 0 ? s.name : `${s.name}{${labels.map(([k, v]) => `${k}=${v}`).join(',')}}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What the llm-d part of a command line contributes. */
export interface LlmdSetup {
  /** An llm-d command line (pool, selector or llm-d config flags given). */
  readonly llmdMode: boolean;
  /** The config document from --config-file/--config-text, mapped to EppConfig fields (undefined = none). */
  readonly base: Record<string, unknown> | undefined;
  /** Where `base` came from, for error messages. */
  readonly source: string | undefined;
  /** Notes to log at start (flags and config fields accepted without effect). */
  readonly notes: string[];
  /** Applies the flags onto a config object (after the config document, before kvroute's own flags). */
  apply(cfg: Record<string, unknown>, opts: { staticEndpoints: boolean; kvrouteFlags: Record<string, unknown> }): void;
}

function readDocument(flag: string, text: string, where: string): unknown {
  try {
    return parseYaml(text) ?? {};
  } catch (e) {
    throw new UsageError(`${flag} ${where}: not valid YAML/JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

/** Interprets the llm-d flags; throws UsageError naming flag, value and fix. */
export function llmdSetup(llmd: LlmdValues): LlmdSetup {
  const str = (k: string): string | undefined => llmd.get(k) as string | undefined;
  const bool = (k: string): boolean | undefined => llmd.get(k) as boolean | undefined;
  const llmdMode = LLMD_MODE_FLAGS.some((f) => llmd.has(f));
  const notes: string[] = [];
  const note = (flag: string, why: string): void => {
    notes.push(`--${flag}=${String(llmd.get(flag))} is accepted and ignored: ${why}`);
  };

  // --- config document ---------------------------------------------------------------------
  let base: Record<string, unknown> | undefined;
  let source: string | undefined;
  const file = str('config-file');
  const text = str('config-text');
  if (file !== undefined && text !== undefined) throw new UsageError('--config-file and --config-text are both given; give one of them (as llm-d requires)');
  if (file !== undefined || text !== undefined) {
    let raw: string;
    if (file !== undefined) {
      try {
        raw = readFileSync(file, 'utf8');
      } catch (e) {
        throw new UsageError(`--config-file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); mount the config there or fix the path`);
      }
      source = `--config-file ${file}`;
    } else {
      raw = text as string;
      source = '--config-text';
    }
    const doc = readDocument(file !== undefined ? '--config-file' : '--config-text', raw, file ?? '');
    if (isEndpointPickerConfig(doc)) {
      const mapped = mapEndpointPickerConfig(doc, `EndpointPickerConfig (${source})`);
      base = JSON.parse(JSON.stringify(mapped.overlay)) as Record<string, unknown>;
      notes.push(...mapped.notes.map((n) => `${source}: ${n}`));
    } else if (isRecord(doc)) {
      base = { ...doc }; // a kvroute EppConfig
    } else {
      throw new UsageError(`${source}: the top level must be an EndpointPickerConfig or a kvroute EppConfig mapping`);
    }
  } else if (llmdMode) {
    base = { scheduling: JSON.parse(JSON.stringify(LLMD_DEFAULT_SCHEDULING)) as unknown };
    notes.push("no --config-file/--config-text: llm-d's default scheduling (queue-scorer 2, kv-cache-utilization-scorer 2, prefix-cache-scorer 3, max-score-picker)");
  }

  const apply = (cfg: Record<string, unknown>, opts: { staticEndpoints: boolean; kvrouteFlags: Record<string, unknown> }): void => {
    const section = (k: string): Record<string, unknown> => {
      const cur = cfg[k];
      const copy = isRecord(cur) ? { ...cur } : {};
      cfg[k] = copy;
      return copy;
    };
    const int = (flag: string, min: number, max: number): number | undefined => {
      const v = str(flag);
      if (v === undefined) return undefined;
      if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${flag}=${v}: must be an integer from ${min} to ${max}`);
      return Number(v);
    };
    const ms = (flag: string, min: number): number | undefined => {
      const v = str(flag);
      if (v === undefined) return undefined;
      const d = parseGoDuration(v);
      if (d === undefined) throw new UsageError(`--${flag}=${v}: not a duration; write e.g. 50ms, 2s or 1m30s`);
      if (Math.round(d) < min) throw new UsageError(`--${flag}=${v}: kvroute needs at least ${min} ms here; use ${min}ms or more`);
      return Math.round(d);
    };

    // --- ports ---
    const ports: [string, string, string][] = [
      ['grpc-port', 'grpcPort', 'grpc-port'],
      ['grpc-health-port', 'healthPort', 'health-port'],
      ['metrics-port', 'httpPort', 'http-port'],
    ];
    for (const [flag, key, kvFlag] of ports) {
      const p = int(flag, 0, 65535);
      if (p === undefined) continue;
      const own = opts.kvrouteFlags[kvFlag];
      if (own !== undefined && own !== str(flag)) throw new UsageError(`--${flag}=${str(flag)} and --${kvFlag}=${String(own)} set the same port; give one of them`);
      section('server')[key] = p;
    }

    // --- discovery ---
    const pool = str('pool-name');
    const selector = str('endpoint-selector');
    const targetPorts = str('endpoint-target-ports');
    const ns = str('pool-namespace');
    const group = str('pool-group');
    if (pool !== undefined && selector !== undefined) throw new UsageError(`--pool-name=${pool} and --endpoint-selector=${selector} are both given; give exactly one (an InferencePool, or standalone pods)`);
    if (group !== undefined && !(InferencePoolGroups as readonly string[]).includes(group)) {
      throw new UsageError(`--pool-group=${group}: kvroute watches InferencePools of ${InferencePoolGroups.join(' (v1) or ')} (v1alpha2); use one of them`);
    }
    if (targetPorts !== undefined && selector === undefined) throw new UsageError(`--endpoint-target-ports=${targetPorts} needs --endpoint-selector (standalone mode)`);
    if (selector !== undefined && (targetPorts === undefined || targetPorts.trim() === '')) {
      throw new UsageError(`--endpoint-selector=${selector} needs --endpoint-target-ports, the pods' serving ports (e.g. --endpoint-target-ports=8000)`);
    }
    if (opts.staticEndpoints) {
      if (pool !== undefined || selector !== undefined) notes.push(`--endpoints replaces ${pool !== undefined ? `the pool's (${pool})` : `the selector's (${selector})`} Kubernetes discovery`);
    } else if (pool !== undefined) {
      cfg.discovery = { mode: 'kubernetes', poolName: pool, ...(ns !== undefined && ns !== '' ? { poolNamespace: ns } : {}), ...(group !== undefined ? { poolGroup: group } : {}) };
    } else if (selector !== undefined) {
      const list = (targetPorts as string).split(',').map((p) => p.trim());
      for (const p of list) {
        if (!/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535) throw new UsageError(`--endpoint-target-ports=${targetPorts}: "${p}" is not a port; write a comma-separated list such as 8000,8001`);
      }
      cfg.discovery = { mode: 'selector', selector, targetPorts: list.map(Number), ...(ns !== undefined && ns !== '' ? { namespace: ns } : {}) };
      if (group !== undefined) notes.push(`--pool-group=${group} has no effect in standalone mode (--endpoint-selector)`);
    } else if (llmdMode && !isRecord(cfg.discovery)) {
      throw new UsageError('no endpoints to route to: give --pool-name (an InferencePool), --endpoint-selector with --endpoint-target-ports, or --endpoints ip:port=name,... for static pods');
    }

    // --- TLS ---
    const secure = bool('secure-serving') ?? (llmdMode ? true : undefined);
    const certPath = str('cert-path');
    if (secure === true) {
      section('server').tls = certPath !== undefined && certPath !== '' ? { mode: 'files', certFile: `${certPath.replace(/\/$/, '')}/tls.crt`, keyFile: `${certPath.replace(/\/$/, '')}/tls.key` } : { mode: 'self-signed' };
    } else if (secure === false) {
      section('server').tls = { mode: 'off' };
      if (certPath !== undefined) note('cert-path', 'TLS is off (--secure-serving=false)');
    } else if (certPath !== undefined) {
      section('server').tls = { mode: 'files', certFile: `${certPath.replace(/\/$/, '')}/tls.crt`, keyFile: `${certPath.replace(/\/$/, '')}/tls.key` };
    }
    if (llmd.has('enable-cert-reload')) note('enable-cert-reload', 'kvroute reloads tls.crt/tls.key whenever they change, with or without this flag');

    // --- metrics scraping ---
    const scheduling = section('scheduling');
    const interval = ms('refresh-metrics-interval', 5);
    if (interval !== undefined) scheduling.scrapeIntervalMs = interval;
    const stale = ms('metrics-staleness-threshold', 1);
    if (stale !== undefined) scheduling.metricsStalenessMs = stale;
    if (llmd.has('refresh-prometheus-metrics-interval')) note('refresh-prometheus-metrics-interval', "kvroute computes its own /metrics when they are scraped");
    const msm: Record<string, unknown> = isRecord(scheduling.modelServerMetrics) ? { ...scheduling.modelServerMetrics } : {};
    const metricFlags: [string, string, boolean][] = [
      ['total-queued-requests-metric', 'queued', true],
      ['total-running-requests-metric', 'running', true],
      ['kv-cache-usage-percentage-metric', 'kvCacheUsage', false],
      ['cache-info-metric', 'cacheInfo', false],
    ];
    for (const [flag, key, required] of metricFlags) {
      const v = str(flag);
      if (v === undefined) continue;
      let spec: MetricSpec | undefined;
      try {
        spec = parseMetricSpec(v);
      } catch (e) {
        throw new UsageError(`--${flag}=${v}: ${(e as Error).message}; write e.g. sglang:num_queue_reqs or nv_trt_llm_request_metrics{request_type=waiting}`);
      }
      if (spec === undefined && required) throw new UsageError(`--${flag} is empty: kvroute needs the model server's ${key} requests metric (vLLM: vllm:num_requests_${key === 'queued' ? 'waiting' : 'running'})`);
      msm[key] = spec === undefined ? '' : specString(spec);
    }
    if (llmd.has('lora-info-metric')) note('lora-info-metric', 'kvroute has no LoRA-affinity scoring');
    const scheme = str('model-server-metrics-scheme');
    if (scheme !== undefined) {
      const s = unquote(scheme);
      if (s !== 'http' && s !== 'https') throw new UsageError(`--model-server-metrics-scheme=${scheme}: must be http or https`);
      msm.scheme = s;
    }
    const path = str('model-server-metrics-path');
    if (path !== undefined) {
      const p = unquote(path);
      if (!p.startsWith('/')) throw new UsageError(`--model-server-metrics-path=${path}: must be a path starting with /, e.g. /metrics`);
      msm.path = p;
    }
    const mport = int('model-server-metrics-port', 0, 65535);
    if (mport !== undefined && mport > 0) msm.port = mport;
    const skip = bool('model-server-metrics-https-insecure-skip-verify');
    if (skip !== undefined) msm.insecureSkipVerify = skip;
    if (Object.keys(msm).length > 0) scheduling.modelServerMetrics = msm;

    // --- behaviour kvroute cannot change ---
    if (bool('disable-endpoint-subset-filter') === true) {
      throw new UsageError('--disable-endpoint-subset-filter=true: kvroute always honours the gateway\'s endpoint subset hint; remove the flag');
    }
    if (bool('metrics-endpoint-auth') === true) {
      throw new UsageError(
        '--metrics-endpoint-auth=true: kvroute serves /metrics without authentication; pass --metrics-endpoint-auth=false (chart: inferenceExtension.monitoring.prometheus.auth.enabled=false) and restrict the metrics port with a NetworkPolicy',
      );
    }
    if (llmdMode && !llmd.has('metrics-endpoint-auth')) notes.push('/metrics is served without authentication (llm-d defaults --metrics-endpoint-auth to true); restrict the metrics port with a NetworkPolicy');
    if (bool('ha-enable-leader-election') === true) {
      notes.push(
        '--ha-enable-leader-election=true is accepted, but kvroute has no leader election: every replica reports ready and routes; with several replicas use the Redis index (--redis-url) so all of them see every KV event',
      );
    }
    if (bool('tracing') === true) note('tracing', 'kvroute exports no OpenTelemetry traces');
    if (llmd.has('health-checking')) note('health-checking', 'kvroute always serves grpc.health.v1 on the ext_proc and health ports');
    if (llmd.has('enable-pprof')) note('enable-pprof', 'kvroute is not a Go program; profile it with node --cpu-prof');

    // --- logging ---
    const enc = str('zap-encoder');
    if (enc !== undefined) {
      const e = unquote(enc);
      if (e !== 'json' && e !== 'console') throw new UsageError(`--zap-encoder=${enc}: must be json or console`);
      if (e === 'console') note('zap-encoder', 'kvroute always logs JSON lines');
    }
    for (const flag of ['zap-devel', 'zap-stacktrace-level', 'zap-time-encoding']) if (llmd.has(flag)) note(flag, 'kvroute logs JSON lines with pino');
    const level = (flag: string, v: string): string => {
      const s = unquote(v).toLowerCase();
      if (/^\d+$/.test(s)) return Number(s) >= 5 ? 'trace' : Number(s) >= 4 ? 'debug' : 'info';
      const named: Record<string, string> = { debug: 'debug', info: 'info', warn: 'warn', error: 'error', dpanic: 'error', panic: 'error', fatal: 'error' };
      if (!Object.hasOwn(named, s)) throw new UsageError(`--${flag}=${v}: use debug, info, warn, error or a verbosity number (4 = debug, 5 = trace)`);
      return named[s] as string;
    };
    const v = str('v');
    if (v !== undefined) cfg.logLevel = level('v', v);
    const zl = str('zap-log-level');
    if (zl !== undefined) cfg.logLevel = level('zap-log-level', zl);
  };

  return { llmdMode, base, source, notes, apply };
}
