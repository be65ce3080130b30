/**
 * A child process a test stand-in owns (redis-server, prometheus): its output is kept (bounded), a
 * spawn error is remembered instead of thrown, and it is killed if the test process exits without
 * stopping it, so no orphaned server outlives a test run.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface OwnedProcess {
  readonly child: ChildProcess;
  /** Resolves when the process has exited (for any reason). */
  readonly exited: Promise<void>;
  /** Why the binary could not be started, if it could not. */
  spawnError(): Error | undefined;
  /** Started, and neither exited nor killed by a signal. */
  running(): boolean;
  /** What the process wrote to the captured streams so far (the last 100–200 kB). */
  output(): string;
}

export interface SpawnOwnedOptions {
  /** Which streams `output()` keeps; the others are ignored. @default 'stderr' */
  readonly capture?: 'stderr' | 'both';
}

/** Starts `binary` with `args`, owned by the current process. */
export function spawnOwned(binary: string, args: readonly string[], opts: SpawnOwnedOptions = {}): OwnedProcess {
  const both = (opts.capture ?? 'stderr') === 'both';
  const child = spawn(binary, args, { stdio: ['ignore', both ? 'pipe' : 'ignore', 'pipe'] });
  let output = '';
  const append = (b: Buffer): void => {
    output += b.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      process.removeListener('exit', killOnExit);
      resolve();
    });
    child.once('error', (e) => {
      spawnError = e;
      // a binary that never started emits no 'exit'
      if (child.pid === undefined) {
        process.removeListener('exit', killOnExit);
        resolve();
      }
    });
  });
  return {
    child,
    exited,
    spawnError: () => spawnError,
    running: () => child.pid !== undefined && child.exitCode === null && child.signalCode === null,
    output: () => output,
  };
}
