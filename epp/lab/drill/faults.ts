/**
 * The drill's faults, in the order they run. Each `run` injects its fault, waits while it lasts,
 * removes it, and returns when the disturbance is over (the recovery clock starts then), with
 * fault-specific findings in `extra`. Traffic other than the steady load (bursts, disconnecting
 * clients, the FailClose probe) is sent into the shared RequestLog with its own `kind`.
 */
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Publisher } from 'zeromq';
import { Headers } from '../../src/contract/names.js';
import { loadProtos, ServiceNames } from '../../src/extproc/proto.js';
import { BodySendMode, type ProcessingRequest, type ProcessingResponse } from '../../src/extproc/types.js';
import { sumMetric } from '../demo/run.js';
import { encodeKvBatch, seqFrame } from '../sim/server/publisher.js';
import type { RequestLog } from './load.js';
import { DRILL_MODEL, type DrillStack } from './stack.js';

export interface FaultContext {
  readonly stack: DrillStack;
  readonly requests: RequestLog;
  readonly quick: boolean;
  /** Steady request rate (requests/s). */
  readonly rate: number;
  readonly timeoutMs: number;
  readonly log: (line: string) => void;
  /** Marks [from, to] as a window in which the only EPP replica is restarting. */
  restartWindow(from: number, to: number): void;
  /** Sends the steady load through the FailOpen (default) or the FailClose gateway. */
  steadyVia(mode: 'FailOpen' | 'FailClose'): void;
}

export interface FaultOutcome {
  readonly extra: Record<string, unknown>;
}

export interface Fault {
  readonly name: string;
  readonly description: string;
  /** Index backend the EPP must run before this fault. */
  readonly index: 'memory' | 'redis';
  /** Observation after the fault, ms. @default the run's (30 s full, 5 s quick) */
  readonly observeMs?: { readonly full: number; readonly quick: number };
  run(ctx: FaultContext): Promise<FaultOutcome>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const dur = (ctx: FaultContext, fullMs: number, quickMs: number): number => (ctx.quick ? quickMs : fullMs);

/** Sum of a metric's samples; `label` (e.g. `result="invalid"`) keeps only samples carrying it. */
async function metric(ctx: FaultContext, name: string, label?: string): Promise<number> {
  const text = await ctx.stack.eppMetrics();
  if (label === undefined) return sumMetric(text, name);
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) && line.includes(label)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Sends requests of `kind` at `rate`/s for `ms` through `port`; resolves when all are answered. */
async function sendFor(ctx: FaultContext, o: { port: number; kind: string; rate: number; ms: number; headers?: Record<string, string>; abortAfterFirstChunk?: boolean; maxTokens?: number; until?: () => boolean }): Promise<void> {
  const sends: Promise<void>[] = [];
  const t0 = Date.now();
  for (let i = 0; o.until ? !o.until() : Date.now() - t0 < o.ms; i++) {
    sends.push(ctx.requests.send({ port: o.port, kind: o.kind, timeoutMs: ctx.timeoutMs, ...(o.headers ? { headers: o.headers } : {}), ...(o.abortAfterFirstChunk ? { abortAfterFirstChunk: true } : {}), ...(o.maxTokens !== undefined ? { maxTokens: o.maxTokens } : {}) }));
    await sleep(Math.max(0, t0 + ((i + 1) * 1000) / o.rate - Date.now()));
  }
  await Promise.all(sends);
}

function countKind(ctx: FaultContext, kind: string): Record<string, number> {
  const out: Record<string, number> = { sent: 0, answered: 0, explicit: 0, lost: 0 };
  for (const r of ctx.requests.records) {
    if (r.kind !== kind) continue;
    out.sent = (out.sent ?? 0) + 1;
    if (r.outcome === 'answered' || r.outcome === 'explicit' || r.outcome === 'lost') out[r.outcome] = (out[r.outcome] ?? 0) + 1;
  }
  return out;
}

/** The metric's value once it stopped changing for a second (the EPP works through a backlog), at most `maxMs`. */
async function settled(ctx: FaultContext, name: string, maxMs = 20_000): Promise<number> {
  const deadline = Date.now() + maxMs;
  let last = await metric(ctx, name);
  for (;;) {
    await sleep(1000);
    const v = await metric(ctx, name);
    if (v === last || Date.now() > deadline) return v;
    last = v;
  }
}

/** A ZMQ PUB connected to the EPP's SUB socket, given time to subscribe. */
async function publisher(ctx: FaultContext): Promise<Publisher> {
  const pub = new Publisher({ linger: 2000, sendHighWaterMark: 1_000_000 });
  pub.connect(`tcp://127.0.0.1:${ctx.stack.zmqPort}`);
  await sleep(300);
  return pub;
}

/**
 * Restarts the EPP. `steadyFailClose`: the steady load goes through the FailClose gateway while
 * the EPP is down, so no request reaches a pod unrouted and the pods' caches stay as they were
 * (nothing new to announce): what the restarted EPP knows is then only what it brought back.
 */
async function restartEpp(ctx: FaultContext, steadyFailClose = false): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  if (steadyFailClose) ctx.steadyVia('FailClose');
  // The FailClose probe runs while the EPP restarts (and 2 s around it), next to the FailOpen main traffic.
  let probing = true;
  const probe = sendFor(ctx, { port: ctx.stack.closedPort, kind: `failclose-probe:${ctx.stack.eppRestarts}`, rate: 2, ms: 0, until: () => !probing });
  await sleep(2000);
  const r = await ctx.stack.restartEpp();
  const ready = Date.now();
  ctx.restartWindow(t0 + 2000, ready);
  await sleep(2000);
  ctx.steadyVia('FailOpen');
  probing = false;
  await probe;
  // what the new EPP loaded (memory index with a snapshot), from its own metrics
  const text = await ctx.stack.eppMetrics();
  const loadedOk = text.split('\n').some((l) => l.startsWith('kvroute_index_snapshot_loads_total{result="ok"} 1'));
  const keys = sumMetric(text, 'kvroute_index_snapshot_keys');
  return {
    eppDownSeconds: (ready - t0 - 2000) / 1000,
    eppStopSeconds: r.stopMs / 1000,
    failCloseProbe: countKind(ctx, `failclose-probe:${ctx.stack.eppRestarts - 1}`),
    steadyGatewayDuringRestart: steadyFailClose ? 'FailClose' : 'FailOpen',
    snapshotLoaded: loadedOk,
    ...(loadedOk ? { snapshotKeys: keys } : {}),
  };
}

export const FAULTS: readonly Fault[] = [
  {
    name: 'pod-kill-restart',
    description: 'kill -9 pod-0, start it again on the same address (its KV-event seq restarts at 0, its cache is empty)',
    index: 'memory',
    async run(ctx) {
      const restarts0 = await metric(ctx, 'kvroute_kv_events_publisher_restarts_total');
      await ctx.stack.killPod(0);
      await sleep(dur(ctx, 2000, 1000));
      const t = Date.now();
      await ctx.stack.restartPod(0);
      const podDownSeconds = (Date.now() - t) / 1000;
      // The EPP clears the pod's entries on its first batch with a lower seq. The pod publishes only
      // when it stores blocks, and the steady load may not reach it soon (its cache is empty), so
      // one request goes straight to it; then wait (up to 20 s on a loaded box) for the EPP to see it.
      const primed = await ctx.stack.completeOnPod(0, 'The drill primes the restarted pod so that it publishes its first KV-event batch. '.repeat(8));
      if (primed !== 200) throw new Error(`pod-0 answered ${primed} to the priming request after its restart`);
      let cleared = 0;
      for (let i = 0; i < 200 && cleared === 0; i++) {
        cleared = (await metric(ctx, 'kvroute_kv_events_publisher_restarts_total')) - restarts0;
        if (cleared === 0) await sleep(100);
      }
      return { extra: { podStartSeconds: podDownSeconds, publisherRestartsSeen: cleared } };
    },
  },
  {
    name: 'pod-stall',
    description: 'pod-1 stops taking engine steps (alive, accepting requests, no progress), then resumes',
    index: 'memory',
    async run(ctx) {
      await ctx.stack.podFault(1, { stall: true });
      await sleep(dur(ctx, 8000, 3000));
      await ctx.stack.podFault(1, { stall: false });
      return { extra: {} };
    },
  },
  {
    name: 'pod-metrics-hang',
    description: "pod-2's /metrics never answers (scrapes time out), then answers again",
    index: 'memory',
    async run(ctx) {
      const before = await metric(ctx, 'kvroute_metrics_scrape_errors_total').catch(() => NaN);
      await ctx.stack.podFault(2, { metricsHang: true });
      await sleep(dur(ctx, 8000, 3000));
      await ctx.stack.podFault(2, { metricsHang: false });
      const after = await metric(ctx, 'kvroute_metrics_scrape_errors_total').catch(() => NaN);
      return { extra: { scrapeErrors: after - before } };
    },
  },
  {
    name: 'zmq-flood-garbage',
    description: 'a ZeroMQ publisher floods the EPP with malformed messages (wrong frame counts, bad seq frames, undecodable payloads)',
    index: 'memory',
    async run(ctx) {
      const n = dur(ctx, 60_000, 15_000);
      const dropped0 = await metric(ctx, 'kvroute_kv_events_dropped_total');
      const pub = await publisher(ctx);
      const t0 = Date.now();
      for (let i = 0; i < n; i++) {
        const topic = Buffer.from(`kv@10.66.${(i >> 8) & 255}.${i & 255}:8000@${DRILL_MODEL}`);
        const k = i % 3;
        if (k === 0) await pub.send([topic, randomBytes(8)]);
        else if (k === 1) await pub.send([topic, randomBytes(5), randomBytes(40)]);
        else await pub.send([topic, seqFrame(BigInt(i)), randomBytes(16 + (i % 200))]);
      }
      await sleep(1000); // let the queue reach the wire before closing
      pub.close();
      const dropped = (await settled(ctx, 'kvroute_kv_events_dropped_total')) - dropped0;
      return { extra: { messagesSent: n, sendSeconds: (Date.now() - t0) / 1000, droppedCounted: dropped } };
    },
  },
  {
    name: 'zmq-flood-unknown-pods',
    description: 'a ZeroMQ publisher floods well-formed BlockStored batches for 2,000 pods that are not endpoints (the EPP ignores pods that are not endpoints)',
    index: 'memory',
    async run(ctx) {
      const n = dur(ctx, 40_000, 10_000);
      const received0 = await metric(ctx, 'kvroute_kv_events_received_total');
      const ignored0 = await metric(ctx, 'kvroute_kv_events_dropped_total', 'reason="bad_topic"');
      const pub = await publisher(ctx);
      const t0 = Date.now();
      for (let i = 0; i < n; i++) {
        const pod = `10.77.${(i % 2000) >> 8}.${(i % 2000) & 255}:8000`;
        const hashes = Array.from({ length: 8 }, () => randomBytes(8).readBigUInt64BE(0));
        const payload = encodeKvBatch(
          { ts: Date.now() / 1000, events: [{ type: 'BlockStored', blockHashes: hashes, tokenIds: Array.from({ length: 8 * 16 }, (_, j) => (i * 7 + j) % 32000), blockSize: 16, medium: 'gpu' }] } as never,
          'map',
        );
        await pub.send([Buffer.from(`kv@${pod}@${DRILL_MODEL}`), seqFrame(BigInt(Math.floor(i / 2000))), payload]);
      }
      await sleep(1000);
      pub.close();
      const received = (await settled(ctx, 'kvroute_kv_events_received_total')) - received0;
      const ignored = (await metric(ctx, 'kvroute_kv_events_dropped_total', 'reason="bad_topic"')) - ignored0;
      return { extra: { batchesSent: n, sendSeconds: (Date.now() - t0) / 1000, eppReceivedDelta: received, ignoredAsNotEndpoints: ignored } };
    },
  },
  {
    name: 'extproc-streams-stop-mid-body',
    description: '1,000 ext_proc streams send request headers and half a body, then stop (held open, then cancelled)',
    index: 'memory',
    async run(ctx) {
      const ended0 = await metric(ctx, 'kvroute_extproc_streams_total');
      const def = loadProtos().extProcService.Process;
      if (!def) throw new Error('ext_proc proto has no Process method');
      const client = new grpc.Client(`127.0.0.1:${ctx.stack.grpcPort}`, grpc.credentials.createInsecure());
      const path = `/${ServiceNames.extProc}/Process`;
      const calls: grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>[] = [];
      const body = Buffer.from(JSON.stringify({ model: DRILL_MODEL, messages: [{ role: 'user', content: 'x'.repeat(4000) }], stream: true }));
      let statuses = 0;
      for (let i = 0; i < 1000; i++) {
        const call = client.makeBidiStreamRequest(path, def.requestSerialize as (m: ProcessingRequest) => Buffer, def.responseDeserialize as (b: Buffer) => ProcessingResponse);
        call.on('data', () => undefined);
        call.on('error', () => undefined);
        call.on('status', () => statuses++);
        const headers = { ':method': 'POST', ':path': '/v1/chat/completions', ':authority': 'drill', 'content-type': 'application/json' };
        call.write({
          request_headers: { headers: { headers: Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) }, end_of_stream: false },
          protocol_config: { request_body_mode: BodySendMode.FULL_DUPLEX_STREAMED, response_body_mode: BodySendMode.FULL_DUPLEX_STREAMED },
        } as ProcessingRequest);
        call.write({ request_body: { body: body.subarray(0, body.length >> 1), end_of_stream: false } } as ProcessingRequest);
        calls.push(call);
      }
      await sleep(dur(ctx, 8000, 3000));
      const endedByServer = statuses;
      for (const c of calls) c.cancel();
      client.close();
      // every abandoned stream must be accounted for by the EPP (the steady load's streams count too)
      const ended = (await settled(ctx, 'kvroute_extproc_streams_total')) - ended0;
      return { extra: { streams: 1000, endedByServerWhileHeld: endedByServer, eppStreamsEndedDelta: ended } };
    },
  },
  {
    name: 'client-disconnects',
    description: 'clients disconnect right after the first response chunk (4 per second)',
    index: 'memory',
    async run(ctx) {
      await sendFor(ctx, { port: ctx.stack.openPort, kind: 'disconnect', rate: 4, ms: dur(ctx, 8000, 3000), abortAfterFirstChunk: true });
      // the EPP's per-pod in-flight count must come back down (no leaked requests)
      let inflight = NaN;
      for (let i = 0; i < 40; i++) {
        await sleep(250);
        const text = await ctx.stack.eppMetrics();
        inflight = sumMetric(text, 'kvroute_endpoint_in_flight_requests');
        const steady = ctx.requests.records.filter((r) => r.kind === 'steady' && r.outcome === 'pending').length;
        if (inflight <= steady) break;
      }
      return { extra: { disconnects: countKind(ctx, 'disconnect').sent, eppInFlightAfter: inflight } };
    },
  },
  {
    name: 'burst-10x',
    description: 'a burst at 10x the steady rate of long answers (max_tokens 256), half sheddable (objective priority -1), half critical (priority 1)',
    index: 'memory',
    async run(ctx) {
      const ms = dur(ctx, 5000, 3000);
      const rate = (ctx.rate * 10) / 2;
      const shed0 = await metric(ctx, 'kvroute_admission_shed_total');
      // how saturated the pods get (the EPP sheds sheddable requests only while every pod is)
      let maxWaiting = 0;
      let maxKv = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          for (const a of ctx.stack.addresses) {
            const text = await (await fetch(`http://${a}/metrics`, { signal: AbortSignal.timeout(1000) })).text().catch(() => '');
            maxWaiting = Math.max(maxWaiting, sumMetric(text, 'vllm:num_requests_waiting'));
            maxKv = Math.max(maxKv, sumMetric(text, 'vllm:kv_cache_usage_perc'));
          }
          await sleep(200);
        }
      })();
      await Promise.all([
        sendFor(ctx, { port: ctx.stack.openPort, kind: 'burst-sheddable', rate, ms, maxTokens: 256, headers: { [Headers.inferenceObjective]: 'drill-batch' } }),
        sendFor(ctx, { port: ctx.stack.openPort, kind: 'burst-critical', rate, ms, maxTokens: 256, headers: { [Headers.inferenceObjective]: 'drill-chat' } }),
      ]);
      sampling = false;
      await sampler;
      const shed = (await metric(ctx, 'kvroute_admission_shed_total')) - shed0;
      return { extra: { sheddable: countKind(ctx, 'burst-sheddable'), critical: countKind(ctx, 'burst-critical'), shedCounted: shed, maxPodWaiting: maxWaiting, maxPodKvUsage: Number(maxKv.toFixed(2)) } };
    },
  },
  {
    name: 'config-reload-invalid',
    description: 'the EPP config file is replaced by an invalid one (kept on the old config, error logged and counted), then restored',
    index: 'memory',
    async run(ctx) {
      const invalid0 = await metric(ctx, 'kvroute_config_reloads_total', 'result="invalid"').catch(() => NaN);
      const valid = ctx.stack.config(ctx.stack.index);
      ctx.stack.writeConfigText(`model: ${DRILL_MODEL}\nblockSize: 12\nadmission:\n  queueDepthThreshold: -3\n`);
      await sleep(dur(ctx, 4000, 2500));
      const out = ctx.stack.epp?.output() ?? '';
      const errorLogged = /config reload of [^"]* failed; keeping the running config/.test(out);
      const invalid = (await metric(ctx, 'kvroute_config_reloads_total', 'result="invalid"').catch(() => NaN)) - invalid0;
      ctx.stack.writeConfig(valid);
      await sleep(1500);
      return { extra: { invalidReloadsCounted: invalid, errorLogged, stillServing: ctx.stack.epp?.proc.exitCode === null } };
    },
  },
  {
    name: 'epp-restart-memory',
    description: 'graceful restart of the only EPP replica, memory index (snapshot written on SIGTERM, loaded at start; gaps replayed from the pods); the steady load goes through the FailClose gateway meanwhile',
    index: 'memory',
    observeMs: { full: 60_000, quick: 5000 },
    async run(ctx) {
      return { extra: await restartEpp(ctx, true) };
    },
  },
  {
    name: 'epp-restart-memory-cold',
    description: 'the same restart (FailClose meanwhile) without index.snapshot and without the pods\' replay port: how an EPP restart behaved before, an empty index that only new KV events refill',
    index: 'memory',
    observeMs: { full: 90_000, quick: 8000 },
    async run(ctx) {
      ctx.stack.writeConfig(ctx.stack.config('memory', false));
      const extra = await restartEpp(ctx, true);
      ctx.stack.writeConfig(ctx.stack.config('memory'));
      return { extra };
    },
  },
  {
    name: 'redis-kill-restart',
    description: 'kill -9 the Redis under the Redis-backed index, start it again (empty: no persistence)',
    index: 'redis',
    async run(ctx) {
      const redis = ctx.stack.redis;
      if (!redis) throw new Error('redis-kill-restart needs the Redis index');
      await redis.stop();
      await sleep(dur(ctx, 5000, 2000));
      await redis.restart();
      return { extra: {} };
    },
  },
  {
    name: 'epp-restart-redis',
    description: 'graceful restart of the only EPP replica, Redis index (the index outlives the EPP); the steady load stays on the FailOpen gateway',
    index: 'redis',
    observeMs: { full: 60_000, quick: 5000 },
    async run(ctx) {
      return { extra: await restartEpp(ctx) };
    },
  },
];
