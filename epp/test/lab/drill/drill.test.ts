/**
 * The quick fault drill end to end, as CI runs it: `npm run drill -- --quick --json FILE` in a child
 * process (real pods, EPP, Redis, ZeroMQ, gRPC), then the JSON interface is checked: every fault
 * present with the fixed fields, no crash, and nothing lost outside an EPP restart window.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAULTS } from '../../../lab/drill/faults.js';
import { parseDrillArgs } from '../../../lab/drill/main.js';

const EPP_DIR = fileURLToPath(new URL('../../..', import.meta.url));

interface FaultJson {
  name: string;
  sent: number;
  answered: number;
  explicitErrors: number;
  lost: number;
  recoverySeconds: number | null;
  crashes: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  lostOutsideRestartWindow: number;
  lostInRestartWindow: number;
  eppRestarts: number;
  extra: Record<string, unknown>;
}

describe('npm run drill -- --quick', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-drill-test-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('parses its flags: --quick writes no doc by default, unknown faults are named', () => {
    expect(parseDrillArgs(['--quick'])).toEqual({ quick: true });
    expect(parseDrillArgs([]).md).toMatch(/docs\/benchmarks\/drill\.md$/);
    expect(parseDrillArgs(['--no-md']).md).toBeUndefined();
    expect(() => parseDrillArgs(['--only', 'pod-stall,nope'])).toThrow(/unknown fault "nope"; faults: pod-kill-restart/);
    expect(() => parseDrillArgs(['--pods', '2'])).toThrow(/--pods "2" must be a number ≥ 3/);
  });

  it('runs every fault: no crash, nothing lost outside the EPP restart window, the JSON interface', async () => {
    const json = join(dir, 'drill.json');
    const child = spawn(process.execPath, ['--import', 'tsx', 'lab/drill/main.ts', '--quick', '--json', json], { cwd: EPP_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`drill exited ${code}:\n${out.slice(-6000)}`);
    const r = JSON.parse(readFileSync(json, 'utf8')) as { faults: FaultJson[]; crashes: unknown[] };
    expect(r.faults.map((f) => f.name)).toEqual(FAULTS.map((f) => f.name));
    expect(r.crashes).toEqual([]);
    for (const f of r.faults) {
      for (const k of ['sent', 'answered', 'explicitErrors', 'lost', 'crashes', 'rssBeforeMiB', 'rssAfterMiB'] as const) expect(typeof f[k]).toBe('number');
      expect(f.recoverySeconds === null || typeof f.recoverySeconds === 'number').toBe(true);
      expect(f.sent).toBeGreaterThan(0);
      expect(f.crashes).toBe(0);
      expect(f.lostOutsideRestartWindow).toBe(0);
      expect(f.answered + f.explicitErrors + f.lost).toBeLessThanOrEqual(f.sent);
      expect(f.rssAfterMiB).toBeGreaterThan(0);
    }
    const byName = new Map(r.faults.map((f) => [f.name, f]));
    expect(byName.get('epp-restart-memory')?.eppRestarts).toBe(1);
    expect(byName.get('epp-restart-memory-cold')?.eppRestarts).toBe(1);
    expect(byName.get('epp-restart-redis')?.eppRestarts).toBe(1);
    expect(byName.get('config-reload-invalid')?.extra).toMatchObject({ errorLogged: true, invalidReloadsCounted: 1, stillServing: true });
    // the drill sends the restarted pod one request directly, so its first batch (seq 0) reaches the
    // EPP, which counts exactly one publisher restart
    expect(byName.get('pod-kill-restart')?.extra.publisherRestartsSeen).toBe(1);
    // the warm restart loaded the snapshot the old EPP wrote on SIGTERM; the cold one had none
    expect(byName.get('epp-restart-memory')?.extra.snapshotLoaded).toBe(true);
    expect(byName.get('epp-restart-memory-cold')?.extra.snapshotLoaded).toBe(false);
    expect(byName.get('zmq-flood-unknown-pods')?.extra.ignoredAsNotEndpoints).toBeGreaterThan(0);
    // the FailClose probe is refused explicitly (503) while the EPP restarts, never lost
    const probe = byName.get('epp-restart-memory')?.extra.failCloseProbe as { sent: number; lost: number };
    expect(probe.sent).toBeGreaterThan(0);
    expect(probe.lost).toBe(0);
  }, 1_200_000);
});
