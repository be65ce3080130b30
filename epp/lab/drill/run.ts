/**
 * The fault drill as a function (main.ts prints it; the CI test asserts on its JSON): starts the
 * stack, warms it up under the steady load, runs every fault in turn while the load keeps going,
 * and measures per fault what the clients got, the hit rate before / during / after, the time
 * until the hit rate is back within 5 % of its level before the fault, crashes and the EPP's RSS.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TOKENIZER_DIR } from '../demo/run.js';

/** The quick form's small tokenizer (fast process starts on a busy CI box). */
export const QUICK_TOKENIZER_DIR = fileURLToPath(new URL('../../test/data/tokenizers/tiny-llama3', import.meta.url));
import { FAULTS, type Fault, type FaultContext } from './faults.js';
import { hitRate, RequestLog, SteadyLoad, type RequestRecord } from './load.js';
import { DrillStack } from './stack.js';

export interface DrillOptions {
  /** Short form for CI (shorter faults and observation, smaller floods). @default false */
  readonly quick?: boolean;
  /** Only the faults with these names. @default every fault */
  readonly only?: readonly string[];
  /** Steady request rate, requests/s. @default 3 */
  readonly rate?: number;
  /** Simulated pods. @default 3 */
  readonly pods?: number;
  /** Progress lines. @default none */
  readonly log?: (line: string) => void;
}

export interface FaultResult {
  readonly name: string;
  readonly description: string;
  readonly index: 'memory' | 'redis';
  /** Requests sent from the fault's start to the end of its observation (all traffic kinds). */
  readonly sent: number;
  readonly answered: number;
  /** Explicit 429/503 answers. */
  readonly explicitErrors: number;
  /** No answer, a transport error, another status, or a cut stream. */
  readonly lost: number;
  /** Of `lost`: sent while the only EPP replica was restarting. */
  readonly lostInRestartWindow: number;
  readonly lostOutsideRestartWindow: number;
  /** Why requests were lost (error → count). */
  readonly lostReasons: Record<string, number>;
  /** Requests whose client disconnected on purpose (client-disconnects). */
  readonly aborted: number;
  readonly hitRateBefore: number | null;
  readonly hitRateDuring: number | null;
  readonly hitRateAfter: number | null;
  /** Seconds from the fault's end until a window's hit rate is ≥ 95 % of the before level; null = not within the observation. */
  readonly recoverySeconds: number | null;
  readonly faultSeconds: number;
  /** Unexpected exits of the EPP or a pod during the fault. */
  readonly crashes: number;
  /** EPP restarts the drill made during the fault. */
  readonly eppRestarts: number;
  readonly rssBeforeMiB: number;
  readonly rssAfterMiB: number;
  readonly extra: Record<string, unknown>;
}

export interface DrillResult {
  readonly quick: boolean;
  readonly startedAt: string;
  readonly rate: number;
  readonly pods: number;
  readonly faults: readonly FaultResult[];
  /** The first EPP process's RSS after the warm-up and just before the drill restarted it. */
  readonly rss: { readonly firstEppAfterWarmupMiB: number; readonly firstEppBeforeRestartMiB: number };
  readonly crashes: readonly { name: string; exit: number | string; at: number }[];
  readonly restartWindows: readonly { from: number; to: number }[];
  readonly totalSeconds: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const round = (x: number, d = 3): number | null => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);

/** Seconds from `t1` until a window [t, t + w) has hit rate ≥ 0.95 × before (null: not by `end`). */
export function recoverySeconds(records: readonly RequestRecord[], before: number, t1: number, end: number, windowMs: number, minRequests = 3): number | null {
  if (!Number.isFinite(before)) return null;
  for (let t = t1; t + windowMs <= end; t += 500) {
    const w = hitRate(records, t, t + windowMs);
    if (w.n >= minRequests && w.rate >= 0.95 * before) return (t - t1) / 1000;
  }
  return null;
}

export async function runDrill(o: DrillOptions = {}): Promise<DrillResult> {
  const quick = o.quick ?? false;
  const log = o.log ?? (() => undefined);
  const rate = o.rate ?? 3;
  const t00 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'kvroute-drill-'));
  const T = quick
    ? { warmup: 8000, before: 3000, observe: 5000, window: 2000, settle: 500 }
    : { warmup: 30_000, before: 10_000, observe: 30_000, window: 6000, settle: 3000 };
  const timeoutMs = 60_000;
  log(`starting ${o.pods ?? 3} pods, the EPP and the gateways in ${dir}`);
  const stack = await DrillStack.start({
    pods: o.pods ?? 3,
    tokenizerDir: quick ? QUICK_TOKENIZER_DIR : DEFAULT_TOKENIZER_DIR,
    numBlocks: 320,
    speedup: 2,
    dir,
    objectives: { 'drill-batch': -1, 'drill-chat': 1 },
    log,
  });
  const requests = new RequestLog({ systemPrompts: 9, systemWords: quick ? 400 : 900, maxTokens: 8, seed: 7, distinct: quick ? 1000 : 3000 });
  let steadyMode: 'FailOpen' | 'FailClose' = 'FailOpen';
  const load = new SteadyLoad(requests, { port: () => (steadyMode === 'FailOpen' ? stack.openPort : stack.closedPort), rate, timeoutMs });
  const restartWindows: { from: number; to: number }[] = [];
  const results: FaultResult[] = [];
  let rssWarm = NaN;
  let rssBeforeRestart = NaN;
  try {
    load.start();
    log(`warm-up ${T.warmup / 1000} s at ${rate} req/s`);
    await sleep(T.warmup);
    rssWarm = stack.eppRssMiB();
    const faults: readonly Fault[] = o.only ? FAULTS.filter((f) => o.only?.includes(f.name)) : FAULTS;
    for (const fault of faults) {
      if (fault.index !== stack.index) {
        log(`switching the EPP to the ${fault.index} index (pods idle, caches reset, warm-up)`);
        load.stop();
        await requests.drain();
        await stack.switchIndex(fault.index);
        await stack.resetPodCaches();
        load.start();
        await sleep(T.warmup);
      }
      const ctx: FaultContext = {
        stack,
        requests,
        quick,
        rate,
        timeoutMs,
        log,
        restartWindow: (from, to) => restartWindows.push({ from, to }),
        steadyVia: (mode) => {
          steadyMode = mode;
        },
      };
      if (fault.name === 'epp-restart-memory') rssBeforeRestart = stack.eppRssMiB();
      const rssBefore = stack.eppRssMiB();
      const crashes0 = stack.crashes.length;
      const restarts0 = stack.eppRestarts;
      const windows0 = restartWindows.length;
      const nrec0 = requests.records.length;
      const t0 = Date.now();
      log(`fault ${fault.name}: ${fault.description}`);
      const outcome = await fault.run(ctx);
      const t1 = Date.now();
      await sleep(fault.observeMs ? (quick ? fault.observeMs.quick : fault.observeMs.full) : T.observe);
      const end = Date.now();
      // answers of requests sent up to `end` that are still open are waited for (bounded by their timeout)
      const segment = requests.records.slice(nrec0);
      await waitDone(segment, end + timeoutMs);
      const mine = restartWindows.slice(windows0);
      const inRestart = (r: RequestRecord): boolean => mine.some((w) => r.sent >= w.from - 1000 && r.sent <= w.to + 1000);
      const before = hitRate(requests.records, t0 - T.before, t0);
      const during = hitRate(requests.records, t0, t1);
      const after = hitRate(requests.records, t1, end);
      const lost = segment.filter((r) => r.outcome === 'lost');
      const lostReasons: Record<string, number> = {};
      for (const r of lost) {
        const k = (r.error ?? 'unknown').replace(/\d+(\.\d+)?/g, 'N').slice(0, 80);
        lostReasons[k] = (lostReasons[k] ?? 0) + 1;
      }
      const res: FaultResult = {
        name: fault.name,
        description: fault.description,
        index: fault.index,
        sent: segment.length,
        answered: segment.filter((r) => r.outcome === 'answered').length,
        explicitErrors: segment.filter((r) => r.outcome === 'explicit').length,
        lost: lost.length,
        lostInRestartWindow: lost.filter(inRestart).length,
        lostOutsideRestartWindow: lost.filter((r) => !inRestart(r)).length,
        lostReasons,
        aborted: segment.filter((r) => r.outcome === 'aborted').length,
        hitRateBefore: round(before.rate),
        hitRateDuring: round(during.rate),
        hitRateAfter: round(after.rate),
        recoverySeconds: recoverySeconds(requests.records, before.rate, t1, end, T.window),
        faultSeconds: round((t1 - t0) / 1000, 1) ?? 0,
        crashes: stack.crashes.length - crashes0,
        eppRestarts: stack.eppRestarts - restarts0,
        rssBeforeMiB: round(rssBefore, 1) ?? NaN,
        rssAfterMiB: round(stack.eppRssMiB(), 1) ?? NaN,
        extra: outcome.extra,
      };
      results.push(res);
      log(
        `  sent ${res.sent}, answered ${res.answered}, 429/503 ${res.explicitErrors}, lost ${res.lost} (${res.lostInRestartWindow} in the EPP restart window), ` +
          `hit ${res.hitRateBefore} / ${res.hitRateDuring} / ${res.hitRateAfter}, recovery ${res.recoverySeconds ?? '-'} s, crashes ${res.crashes}; ${JSON.stringify(res.extra)}`,
      );
      await sleep(T.settle);
    }
  } finally {
    load.stop();
    await requests.drain();
    const exits = await stack.stop();
    log(`stopped: ${exits.map((e) => `${e.name}=${e.exit}`).join(' ')}`);
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    quick,
    startedAt: new Date(t00).toISOString(),
    rate,
    pods: o.pods ?? 3,
    faults: results,
    rss: { firstEppAfterWarmupMiB: round(rssWarm, 1) ?? NaN, firstEppBeforeRestartMiB: round(rssBeforeRestart, 1) ?? NaN },
    crashes: stack.crashes,
    restartWindows,
    totalSeconds: Math.round((Date.now() - t00) / 1000),
  };
}

async function waitDone(records: readonly RequestRecord[], deadline: number): Promise<void> {
  while (records.some((r) => r.outcome === 'pending') && Date.now() < deadline) await sleep(100);
}
