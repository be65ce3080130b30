/** ProcessGroup: readiness, failures before ready, one SIGTERM per child, SIGKILL after the grace period. */
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { ephemeralPortRange, freePort, ProcessGroup } from '../../../lab/demo/procs.js';

const CWD = fileURLToPath(new URL('../../..', import.meta.url));
const SCRIPT = 'test/lab/demo/fixtures/child.ts';

const gone = (pid: number | undefined): boolean => {
  try {
    process.kill(pid as number, 0);
    return false;
  } catch {
    return true;
  }
};

describe('ProcessGroup', () => {
  it('waits for the ready line and stops every child with one SIGTERM, even when stopAll is called twice', async () => {
    const g = new ProcessGroup();
    const [a, b] = await Promise.all([
      g.start({ name: 'a', script: SCRIPT, args: ['ready'], cwd: CWD, ready: /"ready":true/ }),
      g.start({ name: 'b', script: SCRIPT, args: ['ready'], cwd: CWD, ready: /"ready":true/ }),
    ]);
    expect(a.match[0]).toBe('"ready":true');
    expect(g.alive()).toHaveLength(2);
    const [x, y] = await Promise.all([g.stopAll(), g.stopAll()]);
    expect(x).toEqual([
      { name: 'a', exit: 0, killed: false },
      { name: 'b', exit: 0, killed: false },
    ]);
    expect(y).toBe(x);
    expect(gone(a.child.proc.pid) && gone(b.child.proc.pid)).toBe(true);
    await expect(g.start({ name: 'late', script: SCRIPT, args: [], cwd: CWD, ready: /x/ })).rejects.toThrow(/stopping/);
  }, 30000);

  it('reports a child that exits before it is ready, with its output', async () => {
    const g = new ProcessGroup();
    await expect(g.start({ name: 'c', script: SCRIPT, args: ['crash'], cwd: CWD, ready: /"ready":true/ })).rejects.toThrow(/c exited \(3\) before it was ready; output:\nboom: bad flag/);
    expect(await g.stopAll()).toEqual([{ name: 'c', exit: 3, killed: false }]);
  }, 30000);

  it('times out a child that never gets ready, then kills one that ignores SIGTERM', async () => {
    const g = new ProcessGroup();
    await expect(g.start({ name: 'slow', script: SCRIPT, args: ['silent'], cwd: CWD, ready: /"ready":true/, readyTimeoutMs: 300 })).rejects.toThrow(/slow not ready within 300 ms/);
    await g.start({ name: 'stubborn', script: SCRIPT, args: ['stubborn'], cwd: CWD, ready: /"ready":true/ });
    const exits = await g.stopAll(500);
    expect(exits).toEqual([
      { name: 'slow', exit: 0, killed: false },
      { name: 'stubborn', exit: 'SIGKILL', killed: true },
    ]);
    expect(g.alive()).toEqual([]);
  }, 30000);

  it('freePort returns a bindable port below the ephemeral range, so listen(0) elsewhere cannot take it', async () => {
    const [lo, hi] = ephemeralPortRange();
    expect(lo).toBeGreaterThan(0);
    expect(hi).toBeGreaterThanOrEqual(lo);
    const ports = await Promise.all(Array.from({ length: 8 }, () => freePort()));
    expect(new Set(ports).size).toBe(ports.length); // never the same port twice
    // with room below the range (Linux's default 32768–60999 here), ports come from [10000, lo)
    const [min, max] = lo > 11_000 ? [10_000, lo - 1] : [1, 65_535];
    for (const p of ports) {
      expect(p).toBeGreaterThanOrEqual(min);
      expect(p).toBeLessThanOrEqual(max);
      const s = createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(p, '127.0.0.1', () => resolve());
      });
      await new Promise((r) => s.close(r));
    }
  });
});
