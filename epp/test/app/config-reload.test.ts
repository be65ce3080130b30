/**
 * Config file reload: the watcher sees a changed file, an invalid one is refused (old config kept,
 * error logged and counted), a valid admission change is applied live, other changes are named as
 * needing a restart. Real files, the real serve-flags loader and schema; in process and through
 * the running EPP.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { stringify } from 'yaml';
import { ConfigReloader } from '../../src/app/config-reload.js';
import { EppRuntime } from '../../src/app/epp.js';
import { configFileArg } from '../../src/cli/serve.js';
import { configFromServeArgs } from '../../src/cli/serve-flags.js';
import type { EppConfig } from '../../src/contract/config.js';
import type { Logger } from '../../src/util/logger.js';

interface Line {
  level: string;
  obj: object;
  msg?: string;
}

function capture(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const mk = (): Logger => ({
    trace: (obj, msg) => lines.push({ level: 'trace', obj, msg }),
    debug: (obj, msg) => lines.push({ level: 'debug', obj, msg }),
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
    child: () => mk(),
  });
  return { logger: mk(), lines };
}

const base = { model: 'm', server: { httpPort: 0, grpcPort: 0, healthPort: 0, host: '127.0.0.1' }, events: { zmqBind: 'tcp://127.0.0.1:*' }, admission: { objectives: { batch: -1 } } };

describe('config reload', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-reload-'));
    file = join(dir, 'epp.yaml');
    writeFileSync(file, stringify(base));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const reloader = (registry?: Registry): { r: ConfigReloader; lines: Line[]; applied: EppConfig[] } => {
    const { logger, lines } = capture();
    const applied: EppConfig[] = [];
    const argv = ['--config', file];
    const current = configFromServeArgs(argv) as EppConfig;
    const r = new ConfigReloader({ file, load: () => configFromServeArgs(argv) as EppConfig, current, apply: (c) => applied.push(c), logger, ...(registry ? { registry } : {}), intervalMs: 50 });
    return { r, lines, applied };
  };

  it('keeps the running config on an invalid file, logs the validator message, counts it', async () => {
    const registry = new Registry();
    const { r, lines, applied } = reloader(registry);
    writeFileSync(file, stringify({ ...base, blockSize: 12 }));
    expect(r.reload()).toBe('invalid');
    writeFileSync(file, 'model: [unterminated');
    expect(r.reload()).toBe('invalid');
    expect(applied).toEqual([]);
    expect(r.config.blockSize).toBe(16);
    const errors = lines.filter((l) => l.level === 'error').map((l) => l.msg ?? '');
    expect(errors[0]).toMatch(/config reload of .*epp.yaml failed; keeping the running config: .*blockSize 12 is not a power of two/s);
    expect(errors[1]).toContain('not valid YAML/JSON');
    const text = await registry.metrics();
    expect(text).toContain('kvroute_config_reloads_total{result="invalid"} 2');
    expect(text).toContain('kvroute_config_reloads_total{result="applied"} 0');
  });

  it('applies an admission change live and names other changed fields as needing a restart', () => {
    const { r, lines, applied } = reloader();
    writeFileSync(file, stringify({ ...base, admission: { objectives: { batch: -1, chat: 2 }, queueDepthThreshold: 9 } }));
    expect(r.reload()).toBe('applied');
    expect(applied).toHaveLength(1);
    expect(applied[0]?.admission).toMatchObject({ objectives: { batch: -1, chat: 2 }, queueDepthThreshold: 9 });
    expect(r.config.admission.queueDepthThreshold).toBe(9);
    writeFileSync(file, stringify({ ...base, admission: { objectives: { batch: -1, chat: 2 }, queueDepthThreshold: 9 }, blockSize: 32 }));
    expect(r.reload()).toBe('restart_required');
    expect(r.config.blockSize).toBe(16);
    expect(lines.some((l) => l.level === 'warn' && /config fields blockSize changed; they take effect after a restart/.test(l.msg ?? ''))).toBe(true);
    expect(r.reload()).toBe('restart_required'); // still differs from the running value
    writeFileSync(file, stringify({ ...base, admission: { objectives: { batch: -1, chat: 2 }, queueDepthThreshold: 9 } }));
    expect(r.reload()).toBe('unchanged');
    expect(r.counts).toEqual({ applied: 1, unchanged: 1, invalid: 0, restart_required: 2 });
  });

  it('the watcher reloads when the file changes (polling at the default 1000 ms)', async () => {
    const { logger } = capture();
    const applied: EppConfig[] = [];
    const argv = ['--config', file];
    const r = new ConfigReloader({ file, load: () => configFromServeArgs(argv) as EppConfig, current: configFromServeArgs(argv) as EppConfig, apply: (c) => applied.push(c), logger });
    r.start();
    try {
      await new Promise((res) => setTimeout(res, 100));
      const t0 = Date.now();
      writeFileSync(file, stringify({ ...base, admission: { objectives: { batch: -5 } } }));
      while (applied.length === 0 && Date.now() - t0 < 5000) await new Promise((res) => setTimeout(res, 25));
      expect(applied[0]?.admission.objectives).toEqual({ batch: -5 });
      expect(Date.now() - t0).toBeLessThan(2500);
    } finally {
      r.stop();
    }
  });

  it('serve watches the --config file (either spelling); no --config, no watch', () => {
    expect(configFileArg(['--model', 'm', '--config', '/etc/kvroute/epp.yaml'])).toBe('/etc/kvroute/epp.yaml');
    expect(configFileArg(['--config=/etc/kvroute/epp.yaml'])).toBe('/etc/kvroute/epp.yaml');
    expect(configFileArg(['--model', 'm'])).toBeUndefined();
  });

  it('the running EPP keeps serving on an invalid file and counts the reload', async () => {
    const argv = ['--config', file];
    const { logger, lines } = capture();
    const rt = await EppRuntime.start(configFromServeArgs(argv) as EppConfig, { logger, reload: { file, load: () => configFromServeArgs(argv) as EppConfig, intervalMs: 50 } });
    try {
      await new Promise((res) => setTimeout(res, 100));
      writeFileSync(file, 'model: m\nadmission:\n  queueDepthThreshold: -3\n');
      const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${rt.httpPort}/metrics`)).text();
      const deadline = Date.now() + 5000;
      while (!(await metrics()).includes('kvroute_config_reloads_total{result="invalid"} 1') && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      expect(await metrics()).toContain('kvroute_config_reloads_total{result="invalid"} 1');
      expect(lines.some((l) => l.level === 'error' && /admission.queueDepthThreshold/.test(l.msg ?? ''))).toBe(true);
      expect((await fetch(`http://127.0.0.1:${rt.httpPort}/readyz`)).status).toBe(200);
    } finally {
      await rt.stop();
    }
  });
});
