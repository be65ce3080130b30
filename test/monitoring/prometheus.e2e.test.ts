/**
 * The chart's Grafana dashboard and alert rules against a real Prometheus scraping the real demo
 * stack: `kvroute-epp serve` and simulated vLLM pods as processes (epp/lab/demo/run.ts), a
 * `prometheus` (epp/testkit/prometheus-server.ts) on 127.0.0.1 scraping them every second with the
 * labels the chart's monitors give their series in a cluster:
 * - the EPP under the job its ServiceMonitor yields (the Service name), `honor_labels` as the
 *   ServiceMonitor sets it, and the `namespace` label;
 * - each pod under its PodMonitor's job with `namespace` and `pod` (the name the EPP knows it by).
 *
 * The dashboard queries and the alert rules are taken from the chart synthesized for the demo's
 * namespace and model, never from a copy. Every dashboard query must return data (no empty panel,
 * no misspelled metric or label). Every alert expression compares (`> x`, `< x`, `== 0`), so a
 * healthy stack rightly returns nothing for it; instead every vector selector inside it must return
 * data, and the rule group must load with health "ok". The one exception is the kube-state-metrics
 * series `kube_deployment_status_replicas_available` (KvrouteEppNotReady), which exists only in a
 * cluster; the test checks it appears only as one alternative of an `or` whose other alternatives
 * (`up` of the EPP job) are present here. With `--fault hash-seed` the KvrouteHashMismatch alert
 * must become pending (its `for: 10m` keeps it there).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { PlatformMetrics } from '../../constructs/monitoring/metric-names.js';
import type { PrometheusRuleSpec } from '../../constructs/monitoring/prometheus-rule.js';
import { demoPodName, MODEL, runDemo, type DemoFault, type DemoStack } from '../../epp/lab/demo/run.js';
import { startPrometheus, type PromAlert, type PrometheusServer } from '../../epp/testkit/prometheus-server.js';
import { findObject, type K8sObject, objectsOfKind, synthObjects } from '../support/synth.js';

const NAMESPACE = 'kvroute-demo';
const TINY_TOKENIZER = new URL('../../epp/test/data/tokenizers/tiny-llama3', import.meta.url).pathname;

const config = parseDeploymentConfig({ namespace: NAMESPACE, model: { name: MODEL } });
const objects = synthObjects(config);
const ruleSpec = findObject(objects, 'PrometheusRule', `${config.name}-alerts`).spec as PrometheusRuleSpec;
const alertRules = ruleSpec.groups.flatMap((g) => g.rules);
// A ServiceMonitor's job is named after the Service it selects; the chart names both alike.
const eppJob = objectsOfKind(objects, 'ServiceMonitor')[0]?.metadata.name ?? 'no ServiceMonitor';
// prometheus-operator names a PodMonitor's job `<namespace>/<PodMonitor name>`.
const podJob = `${NAMESPACE}/${objectsOfKind(objects, 'PodMonitor')[0]?.metadata.name ?? '?'}`;

/** Every query of the synthesized dashboard ConfigMap, with its panel title. */
function dashboardQueries(): { panel: string; expr: string }[] {
  const cm = objectsOfKind(objects, 'ConfigMap').find((o: K8sObject) => o.metadata.labels?.grafana_dashboard === '1');
  if (cm === undefined) throw new Error('the synthesized chart has no Grafana dashboard ConfigMap');
  const data = cm.data as Record<string, string>;
  const model = JSON.parse(Object.values(data)[0] as string) as { panels: { title: string; targets: { expr: string }[] }[] };
  return model.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
}

/** The vector selectors (`name{matchers}`) inside a PromQL expression. */
function vectorSelectors(expr: string): string[] {
  return [...new Set([...expr.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}/g)].map((m) => `${m[1]}{${m[2]}}`))];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls every query until it returns data or `timeoutMs` passes; the queries that stayed empty. */
async function emptyQueries(prom: PrometheusServer, exprs: readonly string[], timeoutMs: number): Promise<string[]> {
  let pending = [...exprs];
  const until = Date.now() + timeoutMs;
  for (;;) {
    const empty: string[] = [];
    for (const e of pending) if ((await prom.query(e)).length === 0) empty.push(e);
    pending = empty;
    if (pending.length === 0 || Date.now() > until) return pending;
    await sleep(1000);
  }
}

/**
 * Runs the demo (small: 2 pods, one kvroute pass, the tiny tokenizer) with a Prometheus started as
 * soon as the stack is up (so it scrapes the counters before the workload moves them) and `check`
 * run against it after the workload, while everything still runs.
 */
async function withPrometheus(fault: DemoFault, check: (prom: PrometheusServer) => Promise<void>): Promise<void> {
  let prom: PrometheusServer | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'kvroute-prom-e2e-'));
  // One sheddable objective, as a deployment that sheds has: its shed counter (the "Shed requests
  // by objective" panel) exists from the start. The demo's requests name no objective.
  const eppConfigFile = join(dir, 'epp.yaml');
  writeFileSync(eppConfigFile, JSON.stringify({ admission: { objectives: { batch: -1 } } }));
  try {
    await runDemo({
      eppConfigFile,
      fault,
      pods: 2,
      requests: 16,
      systemPrompts: 4,
      systemWords: 300,
      concurrency: 4,
      numBlocks: 2000,
      policies: ['kvroute'],
      tokenizerDir: TINY_TOKENIZER,
      onStarted: async (stack: DemoStack) => {
        prom = await startPrometheus({
          scrapeConfigs: [
            { job: eppJob, targets: [`127.0.0.1:${stack.http}`], labels: { namespace: NAMESPACE }, honorLabels: true },
            {
              job: podJob,
              targets: [...stack.pods],
              labels: { namespace: NAMESPACE },
              targetLabels: Object.fromEntries(stack.pods.map((p, i) => [p, { pod: demoPodName(i) }])),
            },
          ],
          ruleGroups: ruleSpec.groups,
        });
        await prom.waitForTargetsUp();
      },
      onRunning: async () => {
        if (prom === undefined) throw new Error('onRunning before onStarted');
        await check(prom);
      },
    });
  } finally {
    await prom?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('dashboard and alerts against a real Prometheus scraping the demo', () => {
  it('the synthesized chart has the monitors, rules and dashboard the test reads', () => {
    expect(eppJob).toBe(`${config.name}-epp`);
    expect(alertRules.length).toBeGreaterThanOrEqual(10);
    expect(dashboardQueries().length).toBeGreaterThanOrEqual(16);
  });

  it('vectorSelectors finds every selector of an expression, once each', () => {
    expect(vectorSelectors('sum by (a) (rate(x_total{a="1"}[5m])) / sum(rate(y{b="2",c=~"3"}[5m] offset 1h)) or absent(x_total{a="1"})')).toEqual([
      'x_total{a="1"}',
      'y{b="2",c=~"3"}',
    ]);
    expect(vectorSelectors('vllm:prefix_cache_hits_total{namespace="n"} > 0')).toEqual(['vllm:prefix_cache_hits_total{namespace="n"}']);
  });

  it('healthy stack: every dashboard query and every selector of every alert returns data; the rules load and none is active', async () => {
    await withPrometheus('none', async (prom) => {
      // every dashboard query returns data
      const queries = dashboardQueries();
      const empty = await emptyQueries(
        prom,
        queries.map((q) => q.expr),
        30_000,
      );
      expect(empty.map((e) => `${queries.find((q) => q.expr === e)?.panel}: ${e}`)).toEqual([]);

      // the rule group loads and every rule evaluates without error
      const groups = await prom.rules();
      const loaded = groups.flatMap((g) => g.rules);
      expect(loaded.map((r) => r.name).sort()).toEqual(alertRules.map((r) => r.alert).sort());
      expect(loaded.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`)).toEqual([]);

      // every selector inside every alert returns data (kube-state-metrics only in a cluster)
      const kubeStateMetrics = PlatformMetrics.deploymentAvailableReplicas;
      const selectors = new Map<string, string>();
      const clusterOnly: string[] = [];
      for (const r of alertRules) {
        for (const s of vectorSelectors(r.expr)) {
          if (s.startsWith(`${kubeStateMetrics}{`)) clusterOnly.push(r.expr);
          else selectors.set(s, r.alert);
        }
      }
      expect(selectors.size).toBeGreaterThan(10);
      // the documented exception: one alert, where it is only an alternative of an `or` whose other sides exist here
      expect(clusterOnly).toEqual([expect.stringMatching(new RegExp(`^\\(max by \\(namespace\\) \\(${kubeStateMetrics}\\{[^}]*\\}\\) < 1\\) or \\(sum by \\(namespace\\) \\(up\\{`))]);
      const emptySelectors = await emptyQueries(prom, [...selectors.keys()], 10_000);
      expect(emptySelectors.map((s) => `${selectors.get(s)}: ${s}`)).toEqual([]);
      // the EPP job's `up` is the one the chart's KvrouteEppNotReady selects
      expect(await prom.query(`up{namespace="${NAMESPACE}",job="${eppJob}"}`)).toEqual([expect.objectContaining({ value: [expect.any(Number), '1'] })]);

      // a healthy fleet raises no alert
      await sleep(3000);
      expect((await prom.alerts()).map((a) => `${a.labels.alertname} ${a.state}`)).toEqual([]);
    });
  }, 240_000);

  it('--fault hash-seed: KvrouteHashMismatch becomes pending', async () => {
    await withPrometheus('hash-seed', async (prom) => {
      const until = Date.now() + 30_000;
      let alerts: PromAlert[] = [];
      let hit: PromAlert | undefined;
      while (hit === undefined && Date.now() < until) {
        alerts = await prom.alerts();
        hit = alerts.find((a) => a.labels.alertname === 'KvrouteHashMismatch');
        if (hit === undefined) await sleep(1000);
      }
      // its `for: 10m` keeps it pending; on failure the message lists the active alerts
      expect(hit?.state ?? `not active after 30 s; active: ${alerts.map((a) => `${a.labels.alertname} ${a.state}`).join(', ') || 'none'}`).toMatch(/^(pending|firing)$/);
      expect(hit?.labels).toMatchObject({ namespace: NAMESPACE, severity: 'warning' });
      expect(Number(hit?.value)).toBeGreaterThan(0);
    });
  }, 240_000);
});
