/**
 * A simulated vLLM pod as a process:
 *
 *   tsx lab/sim/server/main.ts --port 8001 --zmq-endpoint tcp://127.0.0.1:5557 \
 *     --topic-pod 127.0.0.1:8001 --model meta-llama/Llama-3.1-8B-Instruct --profile B \
 *     --tokenizer test/data/tokenizers/llama3_1 [--encoding map|array] [--replay-port 5558] \
 *     [--event-lag-ms 0] [--speedup 1] [--hash-seed 42] [--block-size 16] [--num-blocks N]
 *     [--host 127.0.0.1]
 *
 * Prints one JSON line `{"ready":true,"port":P,...}` on stdout once it serves; exits 0 on
 * SIGTERM/SIGINT after closing its sockets; exits 2 on bad flags.
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { PROFILES, type PodProfile } from '../profiles.js';
import { SimPodServer } from './pod-server.js';
import { KvPublisher, type WireEncoding } from './publisher.js';

export const POD_USAGE = `Usage: tsx lab/sim/server/main.ts --port P --tokenizer DIR [flags]
  --port <n>            HTTP port (0 = any)                                   [required]
  --host <addr>         bind address                                          [127.0.0.1]
  --tokenizer <dir>     tokenizer directory (the EPP's)                       [required]
  --model <name>        served model name                                     [profile's model]
  --profile <A|B|C>     step-cost profile (epp/lab/sim/profiles.ts)           [A]
  --block-size <n>      override the profile's block size                     [profile's]
  --num-blocks <n>      override the profile's KV blocks (small = evictions)  [profile's]
  --hash-seed <s>       PYTHONHASHSEED of the block keys                      [42]
  --zmq-endpoint <url>  the EPP's KV-event bind address (PUB connects)        [none: no events]
  --topic-pod <ip:port> pod id in the topic kv@<ip:port>@<model>              [127.0.0.1:<port>]
  --encoding <e>        map (vLLM >= 0.24) | array (<= 0.23)                  [map]
  --replay-port <n>     ROUTER replay port on --host                          [none]
  --event-lag-ms <n>    delay before publishing a step's events               [0]
  --speedup <k>         simulated ms per wall ms                              [1]
`;

export class PodUsageError extends Error {}

export interface PodArgs {
  port: number;
  host: string;
  tokenizer: string;
  model: string;
  profile: PodProfile;
  hashSeed: string;
  zmqEndpoint?: string;
  topicPod?: string;
  encoding: WireEncoding;
  replayPort?: number;
  eventLagMs: number;
  speedup: number;
}

function num(flag: string, v: string | undefined, def: number, integer = true): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
    throw new PodUsageError(`--${flag} "${v}" is not a ${integer ? 'non-negative integer' : 'non-negative number'}`);
  }
  return n;
}

export function parsePodArgs(argv: readonly string[]): PodArgs {
  let f;
  try {
    f = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        tokenizer: { type: 'string' },
        model: { type: 'string' },
        profile: { type: 'string' },
        'block-size': { type: 'string' },
        'num-blocks': { type: 'string' },
        'hash-seed': { type: 'string' },
        'zmq-endpoint': { type: 'string' },
        'topic-pod': { type: 'string' },
        encoding: { type: 'string' },
        'replay-port': { type: 'string' },
        'event-lag-ms': { type: 'string' },
        speedup: { type: 'string' },
      },
    }).values;
  } catch (e) {
    throw new PodUsageError((e as Error).message);
  }
  if (f.port === undefined) throw new PodUsageError('--port is required (0 picks a free port)');
  if (f.tokenizer === undefined) throw new PodUsageError('--tokenizer is required: the directory the EPP tokenizes with (e.g. test/data/tokenizers/llama3_1)');
  const pname = (f.profile ?? 'A').toUpperCase();
  if (pname !== 'A' && pname !== 'B' && pname !== 'C') throw new PodUsageError(`--profile "${f.profile}" is not one of A, B, C`);
  let profile: PodProfile = PROFILES[pname];
  if (f['block-size'] !== undefined) profile = { ...profile, blockSize: num('block-size', f['block-size'], profile.blockSize) };
  if (f['num-blocks'] !== undefined) profile = { ...profile, numBlocks: num('num-blocks', f['num-blocks'], profile.numBlocks) };
  const encoding = f.encoding ?? 'map';
  if (encoding !== 'map' && encoding !== 'array') throw new PodUsageError(`--encoding "${encoding}" is not map or array`);
  const speedup = num('speedup', f.speedup, 1, false);
  if (speedup <= 0) throw new PodUsageError(`--speedup "${f.speedup}" must be > 0`);
  return {
    port: num('port', f.port, 0),
    host: f.host ?? '127.0.0.1',
    tokenizer: f.tokenizer,
    model: f.model ?? profile.model,
    profile,
    hashSeed: f['hash-seed'] ?? '42',
    zmqEndpoint: f['zmq-endpoint'],
    topicPod: f['topic-pod'],
    encoding,
    replayPort: f['replay-port'] === undefined ? undefined : num('replay-port', f['replay-port'], 0),
    eventLagMs: num('event-lag-ms', f['event-lag-ms'], 0),
    speedup,
  };
}

async function main(): Promise<number> {
  let args: PodArgs;
  try {
    args = parsePodArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`sim pod: ${(e as Error).message}\n${POD_USAGE}`);
    return 2;
  }
  // Subscribed before anything else (a parent may signal as soon as it reads the ready line) and
  // for good: a repeated signal during shutdown must not kill the process half way.
  const stop = new Promise<void>((resolve) => {
    process.on('SIGTERM', () => resolve());
    process.on('SIGINT', () => resolve());
  });
  let pub: KvPublisher | undefined;
  const server = await SimPodServer.create({
    id: args.topicPod ?? `${args.host}:${args.port}`,
    model: args.model,
    profile: args.profile,
    tokenizerDir: args.tokenizer,
    hashSeed: args.hashSeed,
    speedup: args.speedup,
    eventLagMs: args.eventLagMs,
    onKvEvents: (b) => void pub?.publish(b),
  });
  const port = await server.listen(args.port, args.host);
  const topic = `kv@${args.topicPod ?? `${args.host}:${port}`}@${args.model}`;
  if (args.zmqEndpoint) {
    pub = new KvPublisher({
      endpoint: args.zmqEndpoint,
      topic,
      encoding: args.encoding,
      ...(args.replayPort !== undefined ? { replayEndpoint: `tcp://${args.host}:${args.replayPort}` } : {}),
    });
    await pub.start();
  }
  process.stdout.write(`${JSON.stringify({ ready: true, port, topic, model: args.model, profile: args.profile.name })}\n`);
  await stop;
  await server.close();
  await pub?.close();
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`sim pod failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
