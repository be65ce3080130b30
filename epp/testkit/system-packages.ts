/**
 * System binaries the tests need (redis-server, prometheus, promtool): find them, or install the
 * Debian package when running as root, or fail with the exact command a user has to run.
 *
 *   const redis = ensureCommand('redis-server', 'redis-server');   // '/usr/bin/redis-server'
 *   const promtool = ensureCommand('promtool', 'prometheus');
 *
 * The lookup searches PATH plus the usual system directories (a non-login root shell often has no
 * /usr/sbin on PATH). The installer runs `apt-get install -y --no-install-recommends <package>`
 * with DEBIAN_FRONTEND=noninteractive and no stdin; when that fails (typically an empty package
 * index on a fresh machine) it runs `apt-get update` once and tries again. The user id and the
 * process runner are options so tests can exercise the non-root and failure paths; by default they
 * are the real `process.getuid()` and `spawnSync`.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Result of running one command (the subset of spawnSync's result the installer reads). */
export interface RunResult {
  /** Exit status; null when the process could not be started or was killed. */
  readonly status: number | null;
  /** stdout and stderr together, for error messages. */
  readonly output: string;
  /** Set when the process could not be started (e.g. ENOENT: no apt-get on this system). */
  readonly error?: Error;
}

/** Runs `command args…` to completion. */
export type CommandRunner = (command: string, args: readonly string[]) => RunResult;

export interface EnsureCommandOptions {
  /** User id deciding whether a missing package may be installed (only uid 0 installs). @default process.getuid() (undefined on Windows: never installs) */
  readonly uid?: number;
  /** Runs apt-get. @default spawnSync with DEBIAN_FRONTEND=noninteractive, stdin ignored, 15 min timeout */
  readonly run?: CommandRunner;
  /** Directories searched, in order. @default PATH's entries, then /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin */
  readonly searchPath?: readonly string[];
  /** Where the one-line "installing …" notice goes. @default console.error */
  readonly log?: (line: string) => void;
}

/** Directories searched after PATH: where Debian packages put binaries. */
export const SYSTEM_BIN_DIRS: readonly string[] = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

const COMMAND_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
/** Debian policy: lower case letters, digits, + - . ; at least two characters, starting alphanumeric. */
const DEBIAN_PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;

/** The command a non-root user runs to install `debianPackage`. */
export function installCommand(debianPackage: string): string {
  return `sudo apt-get install -y ${debianPackage}`;
}

function defaultSearchPath(): string[] {
  const fromEnv = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '');
  return [...new Set([...fromEnv, ...SYSTEM_BIN_DIRS])];
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The absolute path of `command` in `dirs`, or undefined. */
export function findCommand(command: string, dirs: readonly string[] = defaultSearchPath()): string | undefined {
  for (const dir of dirs) {
    const candidate = join(dir, command);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

const defaultRun: CommandRunner = (command, args) => {
  const r = spawnSync(command, [...args], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 15 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
};

function tail(output: string, lines = 5): string {
  return output.trim().split('\n').slice(-lines).join('\n');
}

/**
 * `apt-get install -y <debianPackage>` (after `apt-get update` when the first try fails); throws
 * with `missing` ("'x' is missing") and apt's output when it cannot.
 */
function aptInstall(debianPackage: string, missing: string, options: EnsureCommandOptions): void {
  const run = options.run ?? defaultRun;
  const log = options.log ?? ((line: string) => console.error(line));
  log(`installing the Debian package '${debianPackage}' (apt-get install -y) because ${missing}`);
  // Lock timeout: another test run (or agent) may be installing at the same moment.
  const installArgs = ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', debianPackage];
  let result = run('apt-get', installArgs);
  if (result.error !== undefined && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(`${missing} and apt-get is not available to install '${debianPackage}'; install it with this system's package manager`);
  }
  if (result.status !== 0) {
    const update = run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update']);
    if (update.status !== 0) {
      throw new Error(`${missing}; 'apt-get update' failed (exit ${update.status}) before installing '${debianPackage}':\n${tail(update.output)}\nInstall it with: apt-get update && apt-get install -y ${debianPackage}`);
    }
    result = run('apt-get', installArgs);
  }
  if (result.status !== 0) {
    throw new Error(`${missing} and 'apt-get install -y ${debianPackage}' failed (exit ${result.status}):\n${tail(result.output)}`);
  }
}

/**
 * The absolute path of `command`; installs `debianPackage` first when the command is missing and
 * the user is root. Throws when the command is missing and cannot be installed; the message names
 * the command, the package and the exact install command.
 */
export function ensureCommand(command: string, debianPackage: string, options: EnsureCommandOptions = {}): string {
  if (!COMMAND_NAME.test(command)) {
    throw new Error(`ensureCommand: command ${JSON.stringify(command)} is not a bare command name; pass the name looked up on PATH (e.g. 'redis-server'), not a path or shell text`);
  }
  if (!DEBIAN_PACKAGE_NAME.test(debianPackage)) {
    throw new Error(`ensureCommand: Debian package ${JSON.stringify(debianPackage)} is not a valid package name; use the name 'apt-get install' takes (lower case, e.g. 'redis-server')`);
  }
  const dirs = options.searchPath ?? defaultSearchPath();
  const found = findCommand(command, dirs);
  if (found !== undefined) return found;

  const uid = 'uid' in options ? options.uid : process.getuid?.();
  if (uid !== 0) {
    throw new Error(`'${command}' was not found on PATH or in ${SYSTEM_BIN_DIRS.join(', ')}; the tests need it. Install it with: ${installCommand(debianPackage)}`);
  }

  aptInstall(debianPackage, `'${command}' is missing`, options);
  const installed = findCommand(command, dirs);
  if (installed === undefined) {
    throw new Error(`installed the Debian package '${debianPackage}' but '${command}' is still not in ${dirs.join(', ')}; the package does not provide that command — pass the package that does`);
  }
  return installed;
}

const PYTHON_MODULE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * The path of a `python3` that can `import <module>`; installs `debianPackage` (e.g.
 * `python3-grpcio` for `grpc`) first when the import fails and the user is root, else throws
 * naming the module, the package and the install command. The interpreter is the system's
 * python3 (searched in SYSTEM_BIN_DIRS only, installed by `ensureCommand('python3', 'python3')`
 * when missing): Debian's python3-* packages install for it, not for a pyenv or venv python3
 * that may come first on PATH.
 */
export function ensurePythonModule(module: string, debianPackage: string, options: EnsureCommandOptions = {}): string {
  if (!PYTHON_MODULE.test(module)) {
    throw new Error(`ensurePythonModule: ${JSON.stringify(module)} is not a Python module name; pass the dotted name 'import' takes (e.g. 'grpc')`);
  }
  if (!DEBIAN_PACKAGE_NAME.test(debianPackage)) {
    throw new Error(`ensurePythonModule: Debian package ${JSON.stringify(debianPackage)} is not a valid package name; use the name 'apt-get install' takes (lower case, e.g. 'python3-grpcio')`);
  }
  const python = ensureCommand('python3', 'python3', { ...options, searchPath: options.searchPath ?? SYSTEM_BIN_DIRS });
  const run = options.run ?? defaultRun;
  const imports = (): boolean => run(python, ['-c', `import ${module}`]).status === 0;
  if (imports()) return python;
  const uid = 'uid' in options ? options.uid : process.getuid?.();
  if (uid !== 0) {
    throw new Error(`the Python module '${module}' cannot be imported by ${python}; the tests need it. Install it with: ${installCommand(debianPackage)}`);
  }
  aptInstall(debianPackage, `the Python module '${module}' is missing`, options);
  if (!imports()) {
    throw new Error(`installed the Debian package '${debianPackage}' but ${python} still cannot import '${module}'; the package does not provide that module — pass the package that does`);
  }
  return python;
}
