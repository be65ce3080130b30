/**
 * The testkit's real `prometheus`: config defaults, input errors, and a real server scraping a
 * local /metrics endpoint with job, static and per-target labels, loading a rule group whose alert
 * becomes pending.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { prometheusConfig, startPrometheus, type PrometheusServer } from '../../testkit/prometheus-server.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('prometheusConfig', () => {
  it('fills in the documented defaults: 1s intervals, /metrics, no honor_labels, no labels, no rules file', () => {
    const c = prometheusConfig({ scrapeConfigs: [{ job: 'a', targets: ['127.0.0.1:1'] }] });
    expect(c).toEqual({
      global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
      scrape_configs: [{ job_name: 'a', metrics_path: '/metrics', honor_labels: false, static_configs: [{ targets: ['127.0.0.1:1'], labels: {} }] }],
    });
  });

  it('gives each target its own static config with the job labels and its own labels on top', () => {
    const c = prometheusConfig(
      { interval: '5s', scrapeConfigs: [{ job: 'a', targets: ['h:1', 'h:2'], labels: { namespace: 'n', pod: 'x' }, targetLabels: { 'h:2': { pod: 'p2' } }, honorLabels: true, metricsPath: '/m' }] },
      '/tmp/rules.yaml',
    );
    expect(c.rule_files).toEqual(['/tmp/rules.yaml']);
    expect(c.global).toEqual({ scrape_interval: '5s', evaluation_interval: '5s', scrape_timeout: '5s' });
    expect((c.scrape_configs as { static_configs: unknown }[])[0]).toEqual({
      job_name: 'a',
      metrics_path: '/m',
      honor_labels: true,
      static_configs: [
        { targets: ['h:1'], labels: { namespace: 'n', pod: 'x' } },
        { targets: ['h:2'], labels: { namespace: 'n', pod: 'p2' } },
      ],
    });
  });
});

describe('startPrometheus input errors', () => {
  it.each([
    [{ scrapeConfigs: [] }, /scrapeConfigs is empty/],
    [{ scrapeConfigs: [{ job: 'a', targets: ['h:1'] }, { job: 'a', targets: ['h:2'] }] }, /job names must be non-empty and unique \(got "a"\)/],
    [{ scrapeConfigs: [{ job: 'a', targets: [] }] }, /job "a" has no targets/],
    [{ scrapeConfigs: [{ job: 'a', targets: ['http://h:1/metrics'] }] }, /target "http:\/\/h:1\/metrics" of job "a" is not 'host:port'/],
    [{ scrapeConfigs: [{ job: 'a', targets: ['h:1'], targetLabels: { 'h:9': { pod: 'p' } } }] }, /names "h:9", which is not among its targets \(h:1\)/],
    [{ interval: '1 second', scrapeConfigs: [{ job: 'a', targets: ['h:1'] }] }, /interval "1 second" is not a Prometheus duration; e\.g\. '1s'/],
  ])('rejects %j', async (opts, msg) => {
    await expect(startPrometheus(opts)).rejects.toThrow(msg);
  });

  it('names the binary when it cannot be started', async () => {
    await expect(startPrometheus({ binary: '/nonexistent/prometheus', scrapeConfigs: [{ job: 'a', targets: ['127.0.0.1:1'] }] })).rejects.toThrow(/prometheus \(\/nonexistent\/prometheus\) failed to start|exited with code/);
  });
});

describe('startPrometheus against a local /metrics endpoint', () => {
  let target: Server;
  let addr: string;
  let value = 1;
  let prom: PrometheusServer;

  beforeAll(async () => {
    target = createServer((req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`# TYPE demo_total counter\ndemo_total{pod="from-target"} ${value}\n`);
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    addr = `127.0.0.1:${(target.address() as AddressInfo).port}`;
    prom = await startPrometheus({
      scrapeConfigs: [
        { job: 'plain', targets: [addr], labels: { namespace: 'ns' }, targetLabels: { [addr]: { pod: 'from-config' } } },
        { job: 'honoring', targets: [addr], labels: { namespace: 'ns', pod: 'from-config' }, honorLabels: true },
      ],
      ruleGroups: [{ name: 'g', rules: [{ alert: 'DemoGrowing', expr: 'sum by (job) (rate(demo_total[1m])) > 0', for: '1h', labels: { severity: 'warning' } }] }],
    });
  }, 60_000);
  afterAll(async () => {
    await prom?.stop();
    await new Promise((r) => target.close(r));
  });

  it('scrapes every target and labels its series like Kubernetes discovery would', async () => {
    await prom.waitForTargetsUp();
    expect((await prom.targets()).map((t) => t.health)).toEqual(['up', 'up']);
    const series = (await prom.query('demo_total')).map((s) => [s.metric.job, s.metric.namespace, s.metric.pod, s.metric.exported_pod]).sort();
    // without honor_labels the target's own `pod` becomes exported_pod; with it, the target's wins
    expect(series).toEqual([
      ['honoring', 'ns', 'from-target', undefined],
      ['plain', 'ns', 'from-config', 'from-target'],
    ]);
  });

  it('loads the rule group with health ok, and the alert becomes pending once the counter moves', async () => {
    const groups = await prom.rules();
    expect(groups.map((g) => g.name)).toEqual(['g']);
    expect(groups[0]?.rules.map((r) => [r.name, r.health])).toEqual([['DemoGrowing', 'ok']]);
    value = 50;
    const until = Date.now() + 20_000;
    let states: string[] = [];
    while (Date.now() < until) {
      states = (await prom.alerts()).map((a) => `${a.labels.alertname} ${a.labels.job} ${a.state}`).sort();
      if (states.length === 2) break;
      await sleep(500);
    }
    expect(states).toEqual(['DemoGrowing honoring pending', 'DemoGrowing plain pending']);
  }, 30_000);

  it('throws on a query error, naming the query', async () => {
    await expect(prom.query('sum(')).rejects.toThrow(/query "sum\(" failed \(400 bad_data\)/);
  });

  it('stop() ends the server: its port answers no more', async () => {
    const p = await startPrometheus({ scrapeConfigs: [{ job: 'a', targets: [addr] }] });
    expect((await fetch(`${p.url}/-/ready`)).ok).toBe(true);
    await p.stop();
    await expect(fetch(`${p.url}/-/ready`)).rejects.toThrow();
  }, 60_000);
});
