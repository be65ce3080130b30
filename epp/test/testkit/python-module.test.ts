/**
 * ensurePythonModule: finds a system python3 that imports a module, installs the Debian package as
 * root, else names the install command. The runner is injected (no apt-get runs here); the real
 * path is exercised by test/extproc/grpcio-interop.test.ts.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePythonModule, type RunResult } from '../../testkit/system-packages.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kvroute-py-'));
  writeFileSync(join(dir, 'python3'), '#!/bin/sh\nexit 1\n');
  chmodSync(join(dir, 'python3'), 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A runner answering `python3 -c import …` from `importable()` and apt-get with `aptStatus`. */
function runner(importable: () => boolean, aptStatus = 0) {
  const calls: string[] = [];
  const run = (command: string, args: readonly string[]): RunResult => {
    calls.push([command, ...args].join(' '));
    if (command === 'apt-get') return { status: aptStatus, output: aptStatus === 0 ? '' : 'E: Unable to locate package' };
    return { status: importable() ? 0 : 1, output: '' };
  };
  return { calls, run };
}

test('module already importable: the system python3 is returned, nothing installed', () => {
  const { calls, run } = runner(() => true);
  expect(ensurePythonModule('grpc', 'python3-grpcio', { searchPath: [dir], uid: 0, run })).toBe(join(dir, 'python3'));
  expect(calls).toEqual([`${join(dir, 'python3')} -c import grpc`]);
});

test('as root: a missing module installs the Debian package, then imports', () => {
  let installed = false;
  const { calls, run } = runner(() => installed);
  const logged: string[] = [];
  const wrapped = (c: string, a: readonly string[]): RunResult => {
    const r = run(c, a);
    if (c === 'apt-get') installed = true;
    return r;
  };
  expect(ensurePythonModule('grpc', 'python3-grpcio', { searchPath: [dir], uid: 0, run: wrapped, log: (l) => logged.push(l) })).toBe(join(dir, 'python3'));
  expect(calls).toEqual([
    `${join(dir, 'python3')} -c import grpc`,
    'apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends python3-grpcio',
    `${join(dir, 'python3')} -c import grpc`,
  ]);
  expect(logged).toEqual(["installing the Debian package 'python3-grpcio' (apt-get install -y) because the Python module 'grpc' is missing"]);
});

test('not root: the error names the module, the interpreter and the install command', () => {
  const { calls, run } = runner(() => false);
  expect(() => ensurePythonModule('grpc', 'python3-grpcio', { searchPath: [dir], uid: 1000, run })).toThrow(
    `the Python module 'grpc' cannot be imported by ${join(dir, 'python3')}; the tests need it. Install it with: sudo apt-get install -y python3-grpcio`,
  );
  expect(calls.some((c) => c.startsWith('apt-get'))).toBe(false);
});

test('a package that does not provide the module is named as such', () => {
  const { run } = runner(() => false);
  expect(() => ensurePythonModule('grpc', 'python3-yaml', { searchPath: [dir], uid: 0, run, log: () => undefined })).toThrow(
    /installed the Debian package 'python3-yaml' but .* still cannot import 'grpc'; the package does not provide that module/,
  );
});

test('bad module or package names are refused before anything runs', () => {
  const { calls, run } = runner(() => true);
  expect(() => ensurePythonModule('grpc; import os', 'python3-grpcio', { searchPath: [dir], run })).toThrow(/"grpc; import os" is not a Python module name/);
  expect(() => ensurePythonModule('grpc', 'Python3 grpcio', { searchPath: [dir], run })).toThrow(/"Python3 grpcio" is not a valid package name/);
  expect(calls).toEqual([]);
});
