/**
 * ensureCommand: a real lookup on this machine's PATH and system directories; the install and
 * failure paths with an injected uid and apt-get runner (the default runner is the real spawnSync,
 * which the jest global set-up uses to install redis-server and prometheus as root).
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { provisionSystemCommands, TEST_SYSTEM_COMMANDS } from '../../testkit/global-setup.js';
import { type CommandRunner, ensureCommand, findCommand, installCommand, type RunResult } from '../../testkit/system-packages.js';

/** A fresh directory; `tool(name)` puts an executable `name` in it. */
function binDir(): { dir: string; tool: (name: string, mode?: number) => string } {
  const dir = mkdtempSync(join(tmpdir(), 'bin-'));
  return {
    dir,
    tool: (name, mode = 0o755) => {
      const path = join(dir, name);
      writeFileSync(path, '#!/bin/sh\nexit 0\n');
      chmodSync(path, mode);
      return path;
    },
  };
}

/** A runner that records calls and answers from `script` (one result per call, in order). */
function recorder(script: Array<RunResult | ((args: readonly string[]) => RunResult)>): { run: CommandRunner; calls: string[] } {
  const calls: string[] = [];
  const run: CommandRunner = (command, args) => {
    calls.push([command, ...args].join(' '));
    const next = script.shift();
    if (next === undefined) throw new Error(`unexpected call: ${command} ${args.join(' ')}`);
    return typeof next === 'function' ? next(args) : next;
  };
  return { run, calls };
}

const neverRun: CommandRunner = (command, args) => {
  throw new Error(`must not run ${command} ${args.join(' ')}`);
};
const INSTALL = (pkg: string) => `apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends ${pkg}`;
const UPDATE = 'apt-get -o DPkg::Lock::Timeout=300 update';

describe('ensureCommand: real lookups', () => {
  it('finds a command every machine has, without running apt-get', () => {
    const sh = ensureCommand('sh', 'dash', { run: neverRun, uid: 1000 });
    expect(sh).toMatch(/^\/(usr\/)?bin\/sh$/);
    expect(findCommand('sh')).toBe(sh);
  });

  it('finds the binaries the test set-up provides (redis-server, prometheus, promtool)', () => {
    for (const [command, pkg] of TEST_SYSTEM_COMMANDS) expect(ensureCommand(command, pkg, { run: neverRun })).toMatch(new RegExp(`/${command}$`));
  });

  it('as a non-root user, a missing command fails naming it and the exact install command', () => {
    expect(() => ensureCommand('kvroute-no-such-command', 'kvroute-no-such-package', { uid: 1000, run: neverRun })).toThrow(
      "'kvroute-no-such-command' was not found on PATH or in /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin; the tests need it. Install it with: sudo apt-get install -y kvroute-no-such-package",
    );
    expect(installCommand('redis-server')).toBe('sudo apt-get install -y redis-server');
  });

  it('searches the given directories in order, skipping files that are not executable', () => {
    const a = binDir();
    const b = binDir();
    a.tool('kv-tool', 0o644);
    const inB = b.tool('kv-tool');
    expect(ensureCommand('kv-tool', 'kv-tool', { searchPath: [a.dir, b.dir], run: neverRun })).toBe(inB);
    const first = a.tool('kv-tool2');
    b.tool('kv-tool2');
    expect(ensureCommand('kv-tool2', 'kv-tool', { searchPath: [a.dir, b.dir], run: neverRun })).toBe(first);
  });
});

describe('ensureCommand as root (injected apt-get)', () => {
  it('installs the package, logs one line, and returns the new binary', () => {
    const bin = binDir();
    const lines: string[] = [];
    const { run, calls } = recorder([
      () => {
        bin.tool('fake-cmd');
        return { status: 0, output: 'Setting up fake-pkg' };
      },
    ]);
    expect(ensureCommand('fake-cmd', 'fake-pkg', { uid: 0, run, searchPath: [bin.dir], log: (l) => lines.push(l) })).toBe(join(bin.dir, 'fake-cmd'));
    expect(calls).toEqual([INSTALL('fake-pkg')]);
    expect(lines).toEqual(["installing the Debian package 'fake-pkg' (apt-get install -y) because 'fake-cmd' is missing"]);
  });

  it('runs apt-get update and installs again when the first install fails', () => {
    const bin = binDir();
    const { run, calls } = recorder([
      { status: 100, output: 'E: Unable to locate package fake-pkg' },
      { status: 0, output: 'Reading package lists...' },
      () => {
        bin.tool('fake-cmd');
        return { status: 0, output: 'Setting up fake-pkg' };
      },
    ]);
    expect(ensureCommand('fake-cmd', 'fake-pkg', { uid: 0, run, searchPath: [bin.dir], log: () => {} })).toBe(join(bin.dir, 'fake-cmd'));
    expect(calls).toEqual([INSTALL('fake-pkg'), UPDATE, INSTALL('fake-pkg')]);
  });

  it('a failing apt-get update is an error naming the command, the output and the manual fix', () => {
    const { run } = recorder([
      { status: 100, output: 'E: Unable to locate package fake-pkg' },
      { status: 100, output: 'E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease' },
    ]);
    expect(() => ensureCommand('fake-cmd', 'fake-pkg', { uid: 0, run, searchPath: [binDir().dir], log: () => {} })).toThrow(
      "'fake-cmd' is missing; 'apt-get update' failed (exit 100) before installing 'fake-pkg':\nE: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease\nInstall it with: apt-get update && apt-get install -y fake-pkg",
    );
  });

  it('a failing second install is an error with apt-get output', () => {
    const { run } = recorder([
      { status: 100, output: 'E: Unable to locate package fake-pkg' },
      { status: 0, output: '' },
      { status: 100, output: 'E: Unable to locate package fake-pkg' },
    ]);
    expect(() => ensureCommand('fake-cmd', 'fake-pkg', { uid: 0, run, searchPath: [binDir().dir], log: () => {} })).toThrow(
      "'fake-cmd' is missing and 'apt-get install -y fake-pkg' failed (exit 100):\nE: Unable to locate package fake-pkg",
    );
  });

  it('a package that does not provide the command is an error saying so', () => {
    const { run } = recorder([{ status: 0, output: '' }]);
    const dir = binDir().dir;
    expect(() => ensureCommand('fake-cmd', 'wrong-pkg', { uid: 0, run, searchPath: [dir], log: () => {} })).toThrow(
      `installed the Debian package 'wrong-pkg' but 'fake-cmd' is still not in ${dir}; the package does not provide that command — pass the package that does`,
    );
  });

  it('no apt-get on the system is an error naming the command', () => {
    const enoent = Object.assign(new Error('spawnSync apt-get ENOENT'), { code: 'ENOENT' });
    const { run } = recorder([{ status: null, output: '', error: enoent }]);
    expect(() => ensureCommand('fake-cmd', 'fake-pkg', { uid: 0, run, searchPath: [binDir().dir], log: () => {} })).toThrow(
      "'fake-cmd' is missing and apt-get is not available to install 'fake-pkg'; install it with this system's package manager",
    );
  });
});

describe('ensureCommand rejects bad names before looking anything up', () => {
  it.each(['', '/usr/bin/redis-server', 'redis-server; rm -rf /', '../x'])('command %j', (command) => {
    expect(() => ensureCommand(command, 'redis-server', { run: neverRun })).toThrow(`ensureCommand: command ${JSON.stringify(command)} is not a bare command name`);
  });
  it.each(['Redis-Server', 'r', 'redis server', '-y'])('package %j', (pkg) => {
    expect(() => ensureCommand('redis-server', pkg, { run: neverRun })).toThrow(`ensureCommand: Debian package ${JSON.stringify(pkg)} is not a valid package name`);
  });
});

describe('the jest global set-up (provisionSystemCommands)', () => {
  it('as a non-root user with a command missing: prints its install command and goes on to the next', async () => {
    const lines: string[] = [];
    const asUser: typeof ensureCommand = (command, pkg, options) => ensureCommand(command, pkg, { ...options, uid: 1000, run: neverRun });
    await provisionSystemCommands({ commands: [['kvroute-no-such-command', 'kvroute-no-such-package'], ['sh', 'dash']], ensure: asUser, print: (l) => lines.push(l) });
    expect(lines).toEqual([
      "'kvroute-no-such-command' was not found on PATH or in /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin; the tests need it. Install it with: sudo apt-get install -y kvroute-no-such-package (the tests that need 'kvroute-no-such-command' will fail)",
    ]);
  });

  it('as root: prints the one install line ensureCommand logs', async () => {
    const bin = binDir();
    const lines: string[] = [];
    const { run } = recorder([
      () => {
        bin.tool('fake-cmd');
        return { status: 0, output: '' };
      },
    ]);
    const asRoot: typeof ensureCommand = (command, pkg, options) => ensureCommand(command, pkg, { ...options, uid: 0, run, searchPath: [bin.dir] });
    await provisionSystemCommands({ commands: [['fake-cmd', 'fake-pkg']], ensure: asRoot, print: (l) => lines.push(l) });
    expect(lines).toEqual(["installing the Debian package 'fake-pkg' (apt-get install -y) because 'fake-cmd' is missing"]);
  });

  it('provides redis-server, prometheus and promtool', () => {
    expect(TEST_SYSTEM_COMMANDS).toEqual([
      ['redis-server', 'redis-server'],
      ['prometheus', 'prometheus'],
      ['promtool', 'prometheus'],
    ]);
  });
});
