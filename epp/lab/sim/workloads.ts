/**
 * Seeded workload generators W0–W3 (docs/benchmarks/method.md, "Workloads").
 *
 * Prompts are chained block ids at the engine block size: block j of a prompt gets an id
 * owned by its scope (global template / group / session / request), so equal ids ⇔ equal prefix.
 * Stage arrivals are Poisson conditioned on the stage's request count (count = rate × duration,
 * times uniform in the stage window, sorted), so every seed has the same stage sizes.
 */
import { PROFILE_A, PROFILE_B, PROFILE_C, type PodProfile } from './profiles.js';
import type { SimRequest } from './request.js';
import { Rng } from './rng.js';

export interface StageInfo {
  readonly index: number;
  /** Offered load of the stage, in `unit`. */
  readonly rate: number;
  readonly unit: 'req/s' | 'sessions/s' | 'closed-loop' | 'trace';
  readonly startMs: number;
  readonly endMs: number;
  readonly warmup: boolean;
}

export interface Workload {
  readonly name: string;
  readonly description: string;
  readonly profile: PodProfile;
  readonly pods: number;
  readonly stages: readonly StageInfo[];
  /** In arrival order for open-loop requests; closed-loop successors follow their predecessor. */
  readonly requests: readonly SimRequest[];
}

/** Unique id allocator for block ids. */
class Ids {
  private n = 1;
  take(k: number): number[] {
    const out = new Array<number>(k);
    for (let i = 0; i < k; i++) out[i] = this.n++;
    return out;
  }
}

/** Sorted uniform arrival times of `count` requests in [start, start + count/rate s). */
function poissonStage(rng: Rng, startMs: number, count: number, ratePerS: number): { times: number[]; endMs: number } {
  const dur = (count / ratePerS) * 1000;
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(startMs + rng.next() * dur);
  times.sort((a, b) => a - b);
  return { times, endMs: startMs + dur };
}

function blocksOf(tokens: number, bs: number): number {
  return Math.ceil(tokens / bs);
}

// ---- W0 --------------------------------------------------------------------------------------

export interface W0Options {
  /** @default 191 */
  readonly promptTokens?: number;
  /** Measured requests after the warm-up. @default 25 */
  readonly requests?: number;
  /** @default 300 */
  readonly sleepMs?: number;
  /** @default 16 */
  readonly outputTokens?: number;
}

/** W0 seed replay: 1 session, one fixed prompt, 1 warm-up + 25 closed-loop requests, 3 pods (A). */
export function generateW0(_seed: number, opts: W0Options = {}): Workload {
  const L = opts.promptTokens ?? 191;
  const n = opts.requests ?? 25;
  const out = opts.outputTokens ?? 16;
  const sleep = opts.sleepMs ?? 300;
  const bs = PROFILE_A.blockSize;
  const ids = new Ids();
  const prompt = ids.take(blocksOf(L, bs));
  const requests: SimRequest[] = [];
  for (let i = 0; i <= n; i++) {
    // the output is never reused: its blocks get request-unique ids
    const stream = prompt.concat(ids.take(blocksOf(L + out, bs) - prompt.length + 1));
    requests.push({
      id: i,
      sessionId: 'seed-session',
      ...(i === 0 ? { arrivalMs: 0 } : { afterPreviousMs: sleep }),
      inputLength: L,
      outputLength: out,
      stage: i === 0 ? 0 : 1,
      warmup: i === 0,
      content: { kind: 'ids', ids: Uint32Array.from(stream), idBlockSize: bs, coveredTokens: L },
    });
  }
  return {
    name: 'w0',
    description: `W0 seed replay: 1 session, identical ${L}-token prompt, 1 warm-up + ${n} closed-loop requests (sleep ${sleep} ms), output ${out}, 3 pods profile A`,
    profile: PROFILE_A,
    pods: 3,
    stages: [
      { index: 0, rate: 0, unit: 'closed-loop', startMs: 0, endMs: 0, warmup: true },
      { index: 1, rate: 0, unit: 'closed-loop', startMs: 0, endMs: 0, warmup: false },
    ],
    requests,
  };
}

// ---- W1 --------------------------------------------------------------------------------------

export interface W1Options {
  /** @default 398 */
  readonly sessions?: number;
  /** Requests per session. @default 12 */
  readonly perSession?: number;
  /** @default 192 */
  readonly templateTokens?: number;
  /** @default 3072 */
  readonly contextTokens?: number;
  /** @default 256 */
  readonly questionTokens?: number;
  /** @default 16 */
  readonly outputTokens?: number;
  /** Stage rates (req/s); the requests are split evenly over them. @default [10, 25, 50, 100, 150, 200] */
  readonly rates?: readonly number[];
}

/** W1 seed fleet, discriminating working set: 398 sessions × 12 on 3 pods (A). */
export function generateW1(seed: number, opts: W1Options = {}): Workload {
  const S = opts.sessions ?? 398;
  const per = opts.perSession ?? 12;
  const T = opts.templateTokens ?? 192;
  const C = opts.contextTokens ?? 3072;
  const Q = opts.questionTokens ?? 256;
  const O = opts.outputTokens ?? 16;
  const rates = opts.rates ?? [10, 25, 50, 100, 150, 200];
  const bs = PROFILE_A.blockSize;
  if (T % bs !== 0 || C % bs !== 0) throw new RangeError(`W1 template (${T}) and context (${C}) tokens must be multiples of the block size ${bs}`);
  const rng = Rng.derive(seed, 'w1');
  const ids = new Ids();
  const template = ids.take(T / bs);
  const contexts = Array.from({ length: S }, () => ids.take(C / bs));
  const pairs: { s: number; i: number }[] = [];
  for (let s = 0; s < S; s++) for (let i = 0; i < per; i++) pairs.push({ s, i });
  rng.shuffle(pairs);
  const L = T + C + Q;
  const tail = blocksOf(L + O, bs) - (T + C) / bs;
  const stages: StageInfo[] = [];
  const requests: SimRequest[] = [];
  let start = 0;
  let k = 0;
  rates.forEach((rate, si) => {
    const count = Math.floor(pairs.length / rates.length) + (si < pairs.length % rates.length ? 1 : 0);
    const { times, endMs } = poissonStage(rng, start, count, rate);
    stages.push({ index: si, rate, unit: 'req/s', startMs: start, endMs, warmup: false });
    for (const t of times) {
      const p = pairs[k] as { s: number; i: number };
      const stream = template.concat(contexts[p.s] as number[], ids.take(tail));
      requests.push({
        id: k,
        sessionId: `session-${p.s}`,
        arrivalMs: t,
        inputLength: L,
        outputLength: O,
        stage: si,
        warmup: false,
        content: { kind: 'ids', ids: Uint32Array.from(stream), idBlockSize: bs, coveredTokens: L + O },
      });
      k++;
    }
    start = endMs;
  });
  return {
    name: 'w1',
    description: `W1 seed fleet: ${S} sessions × ${per}, prompt ${T}+${C}+${Q}, output ${O}, stages ${rates.join('/')} req/s, 3 pods profile A`,
    profile: PROFILE_A,
    pods: 3,
    stages,
    requests,
  };
}

// ---- W2 --------------------------------------------------------------------------------------

/** llm-d b2b-saas stages (QPS × seconds); the first is the warm-up. */
export const W2_STAGES: readonly (readonly [number, number])[] = [
  [15, 50],
  [3, 20],
  [10, 20],
  [15, 20],
  [20, 38],
  [22, 34],
  [25, 30],
  [30, 25],
  [35, 21],
  [40, 38],
  [43, 36],
  [46, 33],
  [49, 30],
  [52, 29],
  [55, 27],
  [57, 26],
  [60, 25],
];

export interface W2Options {
  /** @default 150 */
  readonly groups?: number;
  /** @default 5 */
  readonly promptsPerGroup?: number;
  /** @default 6000 */
  readonly systemPromptTokens?: number;
  /** @default 1200 */
  readonly questionTokens?: number;
  /** @default 1000 (245 = the published effective mean) */
  readonly outputTokens?: number;
  /** (QPS, seconds) per stage, the first being warm-up. @default W2_STAGES */
  readonly stages?: readonly (readonly [number, number])[];
}

/** W2 b2b-saas: inference-perf shared_prefix 150 × 5, 6000 + 1200, output 1000, 8 pods (C). */
export function generateW2(seed: number, opts: W2Options = {}): Workload {
  const G = opts.groups ?? 150;
  const P = opts.promptsPerGroup ?? 5;
  const SYS = opts.systemPromptTokens ?? 6000;
  const Q = opts.questionTokens ?? 1200;
  const O = opts.outputTokens ?? 1000;
  const plan = opts.stages ?? W2_STAGES;
  const bs = PROFILE_C.blockSize;
  const rng = Rng.derive(seed, 'w2');
  const ids = new Ids();
  const L = SYS + Q;
  const sysBlocks = Math.floor(SYS / bs); // blocks entirely inside the system prompt
  const promptBlocks = Math.floor(L / bs); // full blocks of the prompt
  const streamBlocks = blocksOf(L + O, bs);
  const corpus: { g: number; p: number; ids: number[] }[] = [];
  for (let g = 0; g < G; g++) {
    const sys = ids.take(sysBlocks);
    for (let p = 0; p < P; p++) corpus.push({ g, p, ids: sys.concat(ids.take(promptBlocks - sysBlocks)) });
  }
  rng.shuffle(corpus);
  const stages: StageInfo[] = [];
  const requests: SimRequest[] = [];
  let start = 0;
  let k = 0;
  plan.forEach(([qps, secs], si) => {
    const { times, endMs } = poissonStage(rng, start, Math.round(qps * secs), qps);
    stages.push({ index: si, rate: qps, unit: 'req/s', startMs: start, endMs, warmup: si === 0 });
    for (const t of times) {
      const c = corpus[k % corpus.length] as { g: number; p: number; ids: number[] };
      const stream = c.ids.concat(ids.take(streamBlocks - promptBlocks));
      requests.push({
        id: k,
        sessionId: `g${c.g}-u${c.p}`,
        arrivalMs: t,
        inputLength: L,
        outputLength: O,
        stage: si,
        warmup: si === 0,
        content: { kind: 'ids', ids: Uint32Array.from(stream), idBlockSize: bs, coveredTokens: L + O },
      });
      k++;
    }
    start = endMs;
  });
  return {
    name: 'w2',
    description: `W2 b2b-saas: ${G} groups × ${P}, system ${SYS} + question ${Q}, output ${O}, ${plan.length} Poisson stages (first = warm-up), 8 pods profile C`,
    profile: PROFILE_C,
    pods: 8,
    stages,
    requests,
  };
}

// ---- W3 --------------------------------------------------------------------------------------

export interface W3Options {
  /** Sessions per stage. @default 480 */
  readonly sessionsPerStage?: number;
  /** Session arrival rates. @default [2, 4, 8, 12, 16] */
  readonly rates?: readonly number[];
  /** Number of app system prompts (Zipf α = 1). @default 10 */
  readonly apps?: number;
  /** @default 1000 */
  readonly systemPromptTokens?: number;
  /** Mean think time between turns (log-normal, sd 6 s, [1, 60] s). @default 8000 */
  readonly thinkMeanMs?: number;
}

/** W3 multi-turn chat: 2,400 sessions, inference-perf interactive-chat distributions, 8 pods (B). */
export function generateW3(seed: number, opts: W3Options = {}): Workload {
  const perStage = opts.sessionsPerStage ?? 480;
  const rates = opts.rates ?? [2, 4, 8, 12, 16];
  const apps = opts.apps ?? 10;
  const SYS = opts.systemPromptTokens ?? 1000;
  const think = opts.thinkMeanMs ?? 8000;
  const profile = PROFILE_B;
  const bs = profile.blockSize;
  const rng = Rng.derive(seed, 'w3');
  const ids = new Ids();
  const appBlocks = Math.floor(SYS / bs);
  const appIds = Array.from({ length: apps }, () => ids.take(appBlocks));
  interface Turn {
    readonly user: number;
    readonly out: number;
    readonly thinkMs: number;
  }
  interface Session {
    readonly arrivalMs: number;
    readonly stage: number;
    readonly app: number;
    readonly context: number;
    readonly turns: Turn[];
  }
  const sessions: Session[] = [];
  const stages: StageInfo[] = [];
  let start = 0;
  rates.forEach((rate, si) => {
    const { times, endMs } = poissonStage(rng, start, perStage, rate);
    stages.push({ index: si, rate, unit: 'sessions/s', startMs: start, endMs, warmup: false });
    for (const t of times) {
      const app = rng.zipf(apps, 1);
      const context = Math.round(rng.lognormal(4000, 2500, 500, 15000));
      const nTurns = Math.round(rng.lognormal(4, 2.5, 1, 15));
      const turns: Turn[] = [];
      let len = SYS + context;
      for (let j = 0; j < nTurns; j++) {
        const user = Math.round(rng.lognormal(50, 40, 10, 1000));
        const out = Math.round(rng.normal(300, 150, 10, 1000));
        const thinkMs = rng.lognormal(think, 6000, 1000, 60000);
        if (len + user + out > profile.maxModelLen) break;
        turns.push({ user, out, thinkMs });
        len += user + out;
      }
      sessions.push({ arrivalMs: t, stage: si, app, context, turns });
    }
    start = endMs;
  });
  // requests: first turns in arrival order; each later turn right after its predecessor
  const requests: SimRequest[] = [];
  sessions.forEach((s, sIdx) => {
    let total = SYS + s.context;
    for (const t of s.turns) total += t.user + t.out;
    const nBlocks = blocksOf(total, bs);
    const stream = new Uint32Array(nBlocks);
    const app = appIds[s.app] as number[];
    for (let j = 0; j < nBlocks; j++) stream[j] = j < appBlocks ? (app[j] as number) : (ids.take(1)[0] as number);
    let prefix = SYS + s.context;
    s.turns.forEach((t, j) => {
      const input = prefix + t.user;
      requests.push({
        id: requests.length,
        sessionId: `chat-${sIdx}`,
        ...(j === 0 ? { arrivalMs: s.arrivalMs } : { afterPreviousMs: (s.turns[j - 1] as Turn).thinkMs }),
        inputLength: input,
        outputLength: t.out,
        stage: s.stage,
        warmup: false,
        content: { kind: 'ids', ids: stream.subarray(0, blocksOf(input + t.out, bs)), idBlockSize: bs, coveredTokens: input + t.out },
      });
      prefix = input + t.out;
    });
  });
  return {
    name: 'w3',
    description: `W3 multi-turn chat: ${sessions.length} sessions, ${requests.length} requests, stages ${rates.join('/')} sessions/s, 8 pods profile B`,
    profile,
    pods: 8,
    stages,
    requests,
  };
}

export const WORKLOAD_NAMES = ['w0', 'w1', 'w2', 'w3'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

export function generateWorkload(name: WorkloadName, seed: number): Workload {
  switch (name) {
    case 'w0':
      return generateW0(seed);
    case 'w1':
      return generateW1(seed);
    case 'w2':
      return generateW2(seed);
    case 'w3':
      return generateW3(seed);
  }
}
