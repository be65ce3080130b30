/**
 * Child processes of the demo: started with `node --import tsx <script>`, ready when a line of
 * their output matches, stopped with SIGTERM (SIGKILL after a grace period), and all tracked so
 * one `stopAll` ends every child, also on Ctrl-C or an error. Children run in their own process
 * group, so only the demo's SIGTERM reaches them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface ChildHandle {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Output so far (stdout + stderr, capped), for error messages. */
  output(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
}

export interface StartChildOptions {
  readonly name: string;
  readonly script: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** A line of stdout or stderr that means ready; its match is returned. */
  readonly ready: RegExp;
  /** @default 30000 */
  readonly readyTimeoutMs?: number;
}

/**
 * The OS's ephemeral port range (ports it hands out for `listen(0)` and outgoing connections), from
 * /proc on Linux; Linux's default elsewhere.
 */
export function ephemeralPortRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi) && (lo as number) > 0 && (lo as number) <= (hi as number)) return [lo as number, hi as number];
  } catch {
    // not Linux: fall through
  }
  return [32768, 60999];
}

/** Ports freePort() returned in this process. */
const handedOut = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on 127.0.0.1 for a child process to bind later. It is picked at random below the
 * ephemeral range, so sockets other processes open meanwhile (`listen(0)`, outgoing connections)
 * cannot take it before the child binds; only a port the OS reports free is returned. When the
 * range leaves no room below it, the OS picks (`listen(0)`).
 */
export async function freePort(): Promise<number> {
  const [lo] = ephemeralPortRange();
  const min = 10_000;
  if (lo - min >= 1000) {
    for (let attempt = 0; attempt < 64; attempt++) {
      const port = min + Math.floor(Math.random() * (lo - min));
      // nothing binds between calls, so a port handed out before could come back
      if (handedOut.has(port)) continue;
      if (await canListen(port)) {
        handedOut.add(port);
        return port;
      }
    }
  }
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export class ProcessGroup {
  private readonly children: ChildHandle[] = [];

  get list(): readonly ChildHandle[] {
    return this.children;
  }

  async start(o: StartChildOptions): Promise<{ child: ChildHandle; match: RegExpExecArray }> {
    if (this.stopping) throw new Error(`cannot start ${o.name}: the process group is stopping`);
    // Own process group: a terminal Ctrl-C reaches only the demo, which then stops each child once
    // with SIGTERM (a second signal would cut a child's graceful shutdown short).
    const proc = spawn(process.execPath, ['--import', 'tsx', o.script, ...o.args], { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? 'unknown')));
    const child: ChildHandle = { name: o.name, proc, output: () => out, exited };
    this.children.push(child);
    const match = await new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${o.name} not ready within ${o.readyTimeoutMs ?? 30000} ms; output:\n${out.slice(-2000)}`)), o.readyTimeoutMs ?? 30000);
      const onData = (d: Buffer): void => {
        out = (out + d.toString()).slice(-20000);
        const m = o.ready.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${o.name} exited (${code}) before it was ready; output:\n${out.slice(-2000)}`));
      });
    });
    return { child, match };
  }

  private stopping: Promise<{ name: string; exit: number | string; killed: boolean }[]> | undefined;

  /**
   * SIGTERM to every live child (once: later calls wait for the same stop), SIGKILL to those
   * still alive after `graceMs`; resolves when all have exited.
   */
  stopAll(graceMs = 5000): Promise<{ name: string; exit: number | string; killed: boolean }[]> {
    this.stopping ??= Promise.all(
      this.children.map(async (c) => {
        let killed = false;
        if (c.proc.exitCode === null && c.proc.signalCode === null) {
          c.proc.kill('SIGTERM');
          const timer = setTimeout(() => {
            killed = true;
            c.proc.kill('SIGKILL');
          }, graceMs);
          await c.exited;
          clearTimeout(timer);
        }
        return { name: c.name, exit: await c.exited, killed };
      }),
    );
    return this.stopping;
  }

  /** Children that have not exited. */
  alive(): ChildHandle[] {
    return this.children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null);
  }
}
