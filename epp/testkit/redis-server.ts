/**
 * A real `redis-server` for tests and benchmarks: started on a free 127.0.0.1 port with a
 * temporary working directory, no persistence (`--save ''`, `--appendonly no`), an optional
 * password, and stopped (and its directory removed) by `stop()`.
 *
 *   const redis = await startRedisServer();          // or { password: 's3cret' }
 *   ... new Redis({ host: redis.host, port: redis.port }) ...
 *   await redis.stop();                              // kill it (e.g. to test an outage)
 *   await redis.restart();                           // same port again
 *   await redis.dispose();                           // stop and remove the temp dir
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../lab/demo/procs.js';
import { spawnOwned } from './owned-process.js';
import { ensureCommand } from './system-packages.js';

export interface RedisServerOptions {
  /** `requirepass` for the server. @default undefined (no password) */
  readonly password?: string;
  /** Port to listen on. @default a free port chosen by the OS */
  readonly port?: number;
  /** Path of the redis-server binary. @default redis-server from PATH or the system directories (ensureCommand: installed when root, else an error naming the install command) */
  readonly binary?: string;
  /** How long to wait for the port to accept connections. @default 10000 */
  readonly startTimeoutMs?: number;
}

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  readonly password: string | undefined;
  /** `redis://127.0.0.1:<port>` (no credentials). */
  readonly url: string;
  /** Whether the process is currently running. */
  readonly running: boolean;
  /** Kill the server (SIGKILL, like a crash) and wait until it has exited. */
  stop(): Promise<void>;
  /** Start the server again on the same port (after `stop`). */
  restart(): Promise<void>;
  /** Stop the server and remove its temporary directory. */
  dispose(): Promise<void>;
}

/** A port for redis-server to bind (see freePort in lab/demo/procs.ts). */
export { freePort };

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => {
      sock.destroy();
      resolve(false);
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Start a real redis-server on 127.0.0.1. */
export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServer> {
  const host = '127.0.0.1';
  const binary = opts.binary ?? ensureCommand('redis-server', 'redis-server');
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  const port = opts.port ?? (await freePort());
  const dir = await mkdtemp(join(tmpdir(), 'kvroute-redis-'));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    const args = ['--port', String(port), '--bind', host, '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes', '--loglevel', 'warning', '--enable-debug-command', 'local'];
    if (opts.password !== undefined) args.push('--requirepass', opts.password);
    // owned: never left orphaned when the test process exits without calling stop()
    const owned = spawnOwned(binary, args);
    const proc = owned.child;
    child = proc;
    exited = owned.exited;
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      const spawnError = owned.spawnError();
      if (spawnError !== undefined) throw new Error(`redis-server (${binary}) failed to start: ${spawnError.message}`);
      if (proc.exitCode !== null) throw new Error(`redis-server exited with code ${proc.exitCode} on port ${port}: ${owned.output().trim()}`);
      if (await canConnect(host, port)) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`redis-server did not accept connections on ${host}:${port} within ${startTimeoutMs} ms: ${owned.output().trim()}`);
      }
      await sleep(20);
    }
  };

  await launch();

  const server: RedisServer = {
    host,
    port,
    password: opts.password,
    url: `redis://${host}:${port}`,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async stop() {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      child = undefined;
    },
    async restart() {
      await server.stop();
      // The port may take a moment to be reusable after a kill.
      const deadline = Date.now() + startTimeoutMs;
      for (;;) {
        try {
          await launch();
          return;
        } catch (e) {
          if (Date.now() > deadline) throw e;
          await sleep(50);
        }
      }
    },
    async dispose() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}
