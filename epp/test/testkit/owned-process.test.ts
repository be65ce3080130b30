import { spawnOwned } from '../../testkit/owned-process.js';

describe('spawnOwned', () => {
  it('keeps stderr by default, and stdout too with capture both', async () => {
    const quiet = spawnOwned('sh', ['-c', 'echo out; echo err >&2']);
    await quiet.exited;
    expect(quiet.output()).toBe('err\n');
    const both = spawnOwned('sh', ['-c', 'echo out; echo err >&2'], { capture: 'both' });
    await both.exited;
    expect(both.output()).toContain('out\n');
    expect(both.output()).toContain('err\n');
    expect(both.running()).toBe(false);
    expect(both.spawnError()).toBeUndefined();
  });

  it('reports a running process until it is killed, and unhooks its exit guard', async () => {
    const before = process.listenerCount('exit');
    const p = spawnOwned('sleep', ['30']);
    expect(p.running()).toBe(true);
    expect(process.listenerCount('exit')).toBe(before + 1);
    p.child.kill('SIGTERM');
    await p.exited;
    expect(p.running()).toBe(false);
    expect(process.listenerCount('exit')).toBe(before);
  });

  it('remembers a binary that cannot be started instead of throwing, and counts it as exited', async () => {
    const p = spawnOwned('/nonexistent/kvroute-no-such-binary', []);
    await p.exited;
    expect(p.spawnError()?.message).toMatch(/ENOENT/);
    expect(p.running()).toBe(false);
  });
});
