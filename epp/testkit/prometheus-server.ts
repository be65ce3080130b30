/**
 * A real `prometheus` server for end-to-end tests: started on a free 127.0.0.1 port with a
 * temporary config file and TSDB directory, scraping the given static targets (1 s scrape and rule
 * evaluation interval by default), optionally loading rule groups; queried through its HTTP API
 * and stopped (its directory removed) by `stop()`.
 *
 *   const prom = await startPrometheus({
 *     scrapeConfigs: [{ job: 'kvroute-epp', targets: ['127.0.0.1:9090'], labels: { namespace: 'llm-d' }, honorLabels: true }],
 *     ruleGroups: [{ name: 'kvroute-alerts', rules: [{ alert: 'X', expr: 'up == 0', for: '1m' }] }],
 *   });
 *   await prom.waitForTargetsUp();
 *   const series = await prom.query('sum(up)');        // the `result` of an instant query
 *   const alerts = await prom.alerts();                // GET /api/v1/alerts
 *   await prom.stop();
 *
 * The binary comes from `ensureCommand('prometheus', 'prometheus')` (Debian package `prometheus`,
 * installed by the jest global set-up as root). Config and rules files are written as JSON, which
 * is valid YAML.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../lab/demo/procs.js';
import { spawnOwned } from './owned-process.js';
import { ensureCommand } from './system-packages.js';

/** One scrape job with static targets. */
export interface PrometheusScrapeConfig {
  /** `job_name` (the `job` label of its series). */
  readonly job: string;
  /** `host:port` targets. */
  readonly targets: readonly string[];
  /**
   * Labels added to every series of these targets (e.g. `namespace`, `pod`, as Kubernetes service
   * discovery would add them).
   * @default {}
   */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * Extra labels per target, by `host:port` (e.g. the `pod` label Kubernetes service discovery
   * gives each pod); they override `labels`.
   * @default {}
   */
  readonly targetLabels?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /**
   * `honor_labels`: keep the target's own labels when they clash with target labels (as a
   * ServiceMonitor with `honorLabels: true` does).
   * @default false
   */
  readonly honorLabels?: boolean;
  /**
   * Path of the metrics endpoint.
   * @default '/metrics'
   */
  readonly metricsPath?: string;
}

/** One rule of a rule group (the Prometheus rules-file form). */
export interface PrometheusRuleFileRule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A rule group (the Prometheus rules-file form; a PrometheusRule's `spec.groups` entries). */
export interface PrometheusRuleGroup {
  readonly name: string;
  readonly rules: readonly PrometheusRuleFileRule[];
}

export interface PrometheusServerOptions {
  /** Scrape jobs. */
  readonly scrapeConfigs: readonly PrometheusScrapeConfig[];
  /**
   * Rule groups, written to one rules file.
   * @default [] (no rules file)
   */
  readonly ruleGroups?: readonly PrometheusRuleGroup[];
  /**
   * `scrape_interval` and `evaluation_interval` (Prometheus duration).
   * @default '1s'
   */
  readonly interval?: string;
  /**
   * Port to listen on.
   * @default a free port (freePort in lab/demo/procs.ts)
   */
  readonly port?: number;
  /**
   * Path of the prometheus binary.
   * @default prometheus from PATH or the system directories (ensureCommand: installed when root, else an error naming the install command)
   */
  readonly binary?: string;
  /**
   * How long to wait for `/-/ready`.
   * @default 30000
   */
  readonly startTimeoutMs?: number;
}

/** One series of an instant-query result (`resultType: vector`). */
export interface PromSample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** One entry of `GET /api/v1/alerts`. */
export interface PromAlert {
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly state: 'pending' | 'firing' | 'inactive';
  readonly activeAt?: string;
  readonly value?: string;
}

/** One rule of `GET /api/v1/rules`. */
export interface PromRuleStatus {
  readonly name: string;
  readonly query: string;
  readonly health: string;
  readonly lastError?: string;
  readonly type: string;
  readonly state?: string;
}

/** One group of `GET /api/v1/rules`. */
export interface PromRuleGroupStatus {
  readonly name: string;
  readonly file: string;
  readonly rules: PromRuleStatus[];
}

/** One active target of `GET /api/v1/targets`. */
export interface PromTarget {
  readonly labels: Record<string, string>;
  readonly scrapeUrl: string;
  readonly health: 'up' | 'down' | 'unknown';
  readonly lastError: string;
}

export interface PrometheusServer {
  readonly port: number;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The `result` of an instant query (`GET /api/v1/query`); throws on a query error, naming the query. */
  query(expr: string): Promise<PromSample[]>;
  /** `GET /api/v1/alerts`. */
  alerts(): Promise<PromAlert[]>;
  /** `GET /api/v1/rules` groups. */
  rules(): Promise<PromRuleGroupStatus[]>;
  /** Active targets (`GET /api/v1/targets`). */
  targets(): Promise<PromTarget[]>;
  /** Waits until every configured target has been scraped successfully at least once; throws naming the targets that are not up. */
  waitForTargetsUp(timeoutMs?: number): Promise<void>;
  /** Everything prometheus printed (its log), for error messages. */
  log(): string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const DURATION = /^([0-9]+(ms|s|m|h|d|w|y))+$/;

function checkOptions(o: PrometheusServerOptions): void {
  if (o.scrapeConfigs.length === 0) throw new Error('startPrometheus: scrapeConfigs is empty; give at least one job with targets, e.g. { job: "epp", targets: ["127.0.0.1:9090"] }');
  const jobs = new Set<string>();
  for (const c of o.scrapeConfigs) {
    if (c.job === '' || jobs.has(c.job)) throw new Error(`startPrometheus: job names must be non-empty and unique (got ${JSON.stringify(c.job)}); name each scrape job differently`);
    jobs.add(c.job);
    if (c.targets.length === 0) throw new Error(`startPrometheus: job ${JSON.stringify(c.job)} has no targets; give 'host:port' addresses`);
    for (const t of c.targets) {
      if (!/^[^\s/:]+:[0-9]+$/.test(t)) throw new Error(`startPrometheus: target ${JSON.stringify(t)} of job ${JSON.stringify(c.job)} is not 'host:port' (no scheme, no path); e.g. '127.0.0.1:9090'`);
    }
    for (const t of Object.keys(c.targetLabels ?? {})) {
      if (!c.targets.includes(t)) throw new Error(`startPrometheus: targetLabels of job ${JSON.stringify(c.job)} names ${JSON.stringify(t)}, which is not among its targets (${c.targets.join(', ')}); key them by target address`);
    }
  }
  if (o.interval !== undefined && !DURATION.test(o.interval)) throw new Error(`startPrometheus: interval ${JSON.stringify(o.interval)} is not a Prometheus duration; e.g. '1s'`);
}

/** The prometheus.yml of `o` (as JSON, which Prometheus reads as YAML). */
export function prometheusConfig(o: PrometheusServerOptions, rulesFile?: string): Record<string, unknown> {
  const interval = o.interval ?? '1s';
  return {
    global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
    ...(rulesFile !== undefined ? { rule_files: [rulesFile] } : {}),
    scrape_configs: o.scrapeConfigs.map((c) => ({
      job_name: c.job,
      metrics_path: c.metricsPath ?? '/metrics',
      honor_labels: c.honorLabels ?? false,
      // One static config per target, so each can carry its own labels.
      static_configs: c.targets.map((t) => ({ targets: [t], labels: { ...(c.labels ?? {}), ...(c.targetLabels?.[t] ?? {}) } })),
    })),
  };
}

/** Start a real prometheus on 127.0.0.1. */
export async function startPrometheus(o: PrometheusServerOptions): Promise<PrometheusServer> {
  checkOptions(o);
  const binary = o.binary ?? ensureCommand('prometheus', 'prometheus');
  const port = o.port ?? (await freePort());
  const startTimeoutMs = o.startTimeoutMs ?? 30_000;
  const dir = await mkdtemp(join(tmpdir(), 'kvroute-prometheus-'));
  let rulesFile: string | undefined;
  if ((o.ruleGroups ?? []).length > 0) {
    rulesFile = join(dir, 'rules.yaml');
    await writeFile(rulesFile, JSON.stringify({ groups: o.ruleGroups }, null, 2));
  }
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, JSON.stringify(prometheusConfig(o, rulesFile), null, 2));
  const url = `http://127.0.0.1:${port}`;

  const proc = spawnOwned(
    binary,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { capture: 'both' },
  );
  const { child, exited, running } = proc;

  const stop = async (): Promise<void> => {
    if (running()) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    const spawnError = proc.spawnError();
    if (spawnError !== undefined) {
      await stop();
      throw new Error(`prometheus (${binary}) failed to start: ${spawnError.message}`);
    }
    if (!running()) {
      const log = proc.output().trim();
      await stop();
      throw new Error(`prometheus exited with code ${String(child.exitCode)} before it was ready on port ${port}:\n${log}`);
    }
    const ready = await fetch(`${url}/-/ready`).then(
      async (r) => {
        await r.arrayBuffer();
        return r.ok;
      },
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      const log = proc.output().trim();
      await stop();
      throw new Error(`prometheus did not report /-/ready on ${url} within ${startTimeoutMs} ms:\n${log}`);
    }
    await sleep(100);
  }

  const api = async <T>(path: string, what: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${what} failed (${res.status} ${body.errorType ?? ''}): ${body.error ?? JSON.stringify(body)}`);
    return body.data;
  };

  const server: PrometheusServer = {
    port,
    url,
    async query(expr) {
      const data = await api<{ resultType: string; result: PromSample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`, `query ${JSON.stringify(expr)}`);
      if (data.resultType !== 'vector') throw new Error(`prometheus query ${JSON.stringify(expr)} returned a ${data.resultType}, not an instant vector`);
      return data.result;
    },
    async alerts() {
      return (await api<{ alerts: PromAlert[] }>('/api/v1/alerts', 'GET /api/v1/alerts')).alerts;
    },
    async rules() {
      return (await api<{ groups: PromRuleGroupStatus[] }>('/api/v1/rules', 'GET /api/v1/rules')).groups;
    },
    async targets() {
      return (await api<{ activeTargets: PromTarget[] }>('/api/v1/targets?state=active', 'GET /api/v1/targets')).activeTargets;
    },
    async waitForTargetsUp(timeoutMs = 30_000) {
      const want = o.scrapeConfigs.reduce((n, c) => n + c.targets.length, 0);
      const until = Date.now() + timeoutMs;
      for (;;) {
        const targets = await server.targets();
        const up = targets.filter((t) => t.health === 'up');
        if (up.length >= want) return;
        if (Date.now() > until) {
          const down = targets.filter((t) => t.health !== 'up').map((t) => `${t.scrapeUrl} (${t.health}${t.lastError ? `: ${t.lastError}` : ''})`);
          throw new Error(`prometheus: ${up.length} of ${want} targets up after ${timeoutMs} ms; not up: ${down.join(', ') || 'not discovered yet'}`);
        }
        await sleep(200);
      }
    },
    log: () => proc.output(),
    stop,
  };
  return server;
}
