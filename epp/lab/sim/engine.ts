/**
 * Deterministic discrete-event simulation of a fleet of simulated vLLM pods behind a router.
 *
 * Events (min-heap on (time, insertion order), so equal times resolve in a fixed order):
 * - `arrival`: the policy picks a pod from its view of the fleet; the pod queues the request and
 *   starts a step if it was idle.
 * - `step`: a pod's step ends; first tokens (reported to the policy's `onFirstToken`, as a router
 *   sees the first response chunk) and completions are recorded; closed-loop successors
 *   (`afterPreviousMs`) are scheduled; the pod starts its next step.
 * - `kv`: a pod's KV-event batch reaches the router `eventLagMs` after the step that produced it.
 * - `scrape`: every `metricsIntervalMs` the router's copy of each pod's vLLM metrics is refreshed
 *   (0 = the router reads live values).
 *
 * Nothing reads the clock or Math.random: the same workload, policy and seed give the same run.
 */
import type { KvEventBatch } from '../../src/kvevents/types.js';
import { SimPod, type Seq } from './pod.js';
import type { FleetView, PodView, RoutingPolicy } from './policy.js';
import type { PodProfile } from './profiles.js';
import { BlockKeyer, type SimRequest } from './request.js';

export interface SimOptions {
  readonly profile: PodProfile;
  readonly pods: number;
  /**
   * Delay between a pod's step emitting KV events and the router seeing them, ms.
   * @default 50
   */
  readonly eventLagMs?: number;
  /**
   * Period of the router's metrics scrape, ms; 0 = the router sees live values.
   * @default 50
   */
  readonly metricsIntervalMs?: number;
  /** Shared keyer. @default new BlockKeyer() */
  readonly keyer?: BlockKeyer;
  /** Endpoint ids. @default 10.0.0.<i+1>:8000 */
  readonly podIds?: readonly string[];
  /** Called every 500 completed requests. @default none */
  readonly onProgress?: (done: number, total: number) => void;
  /** Receives the pods once created, before the first event (gives an oracle the ground truth). @default none */
  readonly onPods?: (pods: readonly SimPod[]) => void;
}

/** Outcome of one request. */
export interface RequestRecord {
  readonly req: SimRequest;
  readonly pod: number;
  readonly arrivalMs: number;
  /** undefined when rejected. */
  readonly firstTokenMs?: number;
  readonly finishedMs?: number;
  /** TTFT including the profile's fixed overhead (router + HTTP + tokenize), ms. */
  readonly ttftMs?: number;
  readonly queriedTokens: number;
  readonly hitTokens: number;
  /** Uncached prompt tokens of the first admission. */
  readonly uncachedTokens: number;
  readonly preemptions: number;
  readonly rejected?: string;
}

/** Output tokens produced by a pod step, with the step's end time (for throughput by window). */
export interface OutputSample {
  readonly atMs: number;
  readonly tokens: number;
}

export interface SimResult {
  readonly records: readonly RequestRecord[];
  readonly pods: readonly SimPod[];
  /** Output tokens per step end, in time order. */
  readonly output: readonly OutputSample[];
  readonly endMs: number;
  readonly kvBatches: number;
}

type SimEvent =
  | { readonly kind: 'arrival'; readonly req: SimRequest }
  | { readonly kind: 'step'; readonly pod: number }
  | { readonly kind: 'kv'; readonly pod: number; readonly batch: KvEventBatch }
  | { readonly kind: 'scrape' };

interface Entry {
  readonly t: number;
  readonly n: number;
  readonly ev: SimEvent;
}

/** Binary min-heap on (t, n). */
export class EventQueue {
  private readonly h: Entry[] = [];
  private n = 0;

  get size(): number {
    return this.h.length;
  }

  push(t: number, ev: SimEvent): void {
    if (!Number.isFinite(t)) throw new RangeError(`event time ${t} is not finite`);
    const h = this.h;
    h.push({ t, n: this.n++, ev });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[i] as Entry, h[p] as Entry)) {
        swap(h, i, p);
        i = p;
      } else break;
    }
  }

  pop(): Entry | undefined {
    const h = this.h;
    if (h.length === 0) return undefined;
    const top = h[0] as Entry;
    const last = h.pop() as Entry;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l] as Entry, h[m] as Entry)) m = l;
        if (r < h.length && less(h[r] as Entry, h[m] as Entry)) m = r;
        if (m === i) break;
        swap(h, i, m);
        i = m;
      }
    }
    return top;
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.t < b.t || (a.t === b.t && a.n < b.n);
}

function swap(h: Entry[], i: number, j: number): void {
  const t = h[i] as Entry;
  h[i] = h[j] as Entry;
  h[j] = t;
}

/** Default endpoint id of pod i. */
export function defaultPodId(i: number): string {
  return `10.0.${Math.floor((i + 1) / 256)}.${(i + 1) % 256}:8000`;
}

interface Snapshot {
  waiting: number;
  running: number;
  kvUsage: number;
  atMs: number;
}

/** Run `requests` through a fleet under `policy`. */
export async function simulate(requests: readonly SimRequest[], policy: RoutingPolicy, opts: SimOptions): Promise<SimResult> {
  const lag = opts.eventLagMs ?? 50;
  const interval = opts.metricsIntervalMs ?? 50;
  if (!(lag >= 0) || !Number.isFinite(lag)) throw new RangeError(`eventLagMs is ${lag}; use a finite number ≥ 0 (ms)`);
  if (!(interval >= 0) || !Number.isFinite(interval)) throw new RangeError(`metricsIntervalMs is ${interval}; use a finite number ≥ 0 (ms)`);
  if (!Number.isInteger(opts.pods) || opts.pods < 1) throw new RangeError(`pods is ${opts.pods}; use an integer ≥ 1`);
  const keyer = opts.keyer ?? new BlockKeyer();
  const q = new EventQueue();
  const wantsEvents = policy.onKvEvents !== undefined;
  const pods: SimPod[] = [];
  for (let i = 0; i < opts.pods; i++) {
    const id = opts.podIds?.[i] ?? defaultPodId(i);
    pods.push(
      new SimPod({
        id,
        profile: opts.profile,
        keyer,
        onKvEvents: wantsEvents ? (batch) => q.push(now + lag, { kind: 'kv', pod: i, batch }) : undefined,
      }),
    );
  }
  opts.onPods?.(pods);
  let now = 0;
  const inFlight = new Array<number>(opts.pods).fill(0);
  const snaps: Snapshot[] = pods.map(() => ({ waiting: 0, running: 0, kvUsage: 0, atMs: 0 }));
  const views: PodView[] = pods.map((p, i) => makeView(i, p, snaps, inFlight, interval, () => now));
  const fleet: FleetView = {
    get nowMs() {
      return now;
    },
    pods: views,
  };

  // closed-loop successors
  const next = new Map<SimRequest, SimRequest>();
  const lastOfSession = new Map<string, SimRequest>();
  let initial = 0;
  for (const r of requests) {
    if (r.afterPreviousMs !== undefined) {
      const prev = lastOfSession.get(r.sessionId);
      if (!prev) {
        throw new Error(`request ${r.id} (session "${r.sessionId}") has afterPreviousMs but no earlier request of its session; give it arrivalMs`);
      }
      next.set(prev, r);
    } else if (r.arrivalMs !== undefined) {
      q.push(r.arrivalMs, { kind: 'arrival', req: r });
      initial++;
    } else {
      throw new Error(`request ${r.id} has neither arrivalMs nor afterPreviousMs`);
    }
    lastOfSession.set(r.sessionId, r);
  }
  if (initial > 0 && interval > 0) q.push(0, { kind: 'scrape' });

  const records: RequestRecord[] = [];
  const output: OutputSample[] = [];
  const arrival = new Map<SimRequest, { pod: number; at: number }>();
  let kvBatches = 0;
  let pendingArrivals = initial;

  const complete = (req: SimRequest, pod: number, rec: RequestRecord): void => {
    records.push(rec);
    inFlight[pod] = (inFlight[pod] as number) - 1;
    policy.onComplete?.(req, pod);
    const succ = next.get(req);
    if (succ) {
      q.push(now + (succ.afterPreviousMs as number), { kind: 'arrival', req: succ });
      pendingArrivals++;
    }
    if (opts.onProgress && records.length % 500 === 0) opts.onProgress(records.length, requests.length);
  };

  const kick = (i: number): void => {
    const pod = pods[i] as SimPod;
    if (pod.busy) return;
    const ms = pod.beginStep();
    if (ms !== undefined) q.push(now + ms, { kind: 'step', pod: i });
  };

  for (let e = q.pop(); e; e = q.pop()) {
    now = e.t;
    const ev = e.ev;
    switch (ev.kind) {
      case 'arrival': {
        pendingArrivals--;
        const chosen = policy.pick(ev.req, fleet);
        const i = typeof chosen === 'number' ? chosen : await chosen;
        if (!Number.isInteger(i) || i < 0 || i >= pods.length) {
          throw new RangeError(`policy ${policy.name} picked pod ${String(i)} for request ${ev.req.id}; expected 0..${pods.length - 1}`);
        }
        const pod = pods[i] as SimPod;
        inFlight[i] = (inFlight[i] as number) + 1;
        const reason = pod.rejectReason(ev.req);
        if (reason) {
          complete(ev.req, i, {
            req: ev.req,
            pod: i,
            arrivalMs: now,
            queriedTokens: 0,
            hitTokens: 0,
            uncachedTokens: 0,
            preemptions: 0,
            rejected: reason,
          });
          break;
        }
        arrival.set(ev.req, { pod: i, at: now });
        pod.enqueue(ev.req, now);
        kick(i);
        break;
      }
      case 'step': {
        const pod = pods[ev.pod] as SimPod;
        const r = pod.endStep(now);
        if (r.outputTokens > 0) output.push({ atMs: now, tokens: r.outputTokens });
        if (policy.onFirstToken) for (const s of r.firstTokens) policy.onFirstToken(s.req, ev.pod);
        for (const s of r.finished) {
          const a = arrival.get(s.req) as { pod: number; at: number };
          arrival.delete(s.req);
          complete(s.req, ev.pod, recordOf(s, ev.pod, a.at, pod.profile.overheadMs));
        }
        kick(ev.pod);
        break;
      }
      case 'kv': {
        kvBatches++;
        const done = policy.onKvEvents?.(ev.pod, ev.batch);
        if (done) await done;
        break;
      }
      case 'scrape': {
        for (let i = 0; i < pods.length; i++) {
          const m = (pods[i] as SimPod).metrics();
          const s = snaps[i] as Snapshot;
          s.waiting = m.numRequestsWaiting;
          s.running = m.numRequestsRunning;
          s.kvUsage = m.kvCacheUsagePerc;
          s.atMs = now;
        }
        const busy = pendingArrivals > 0 || pods.some((p) => p.hasWork);
        if (busy) q.push(now + interval, { kind: 'scrape' });
        break;
      }
    }
  }
  const stuck = pods.filter((p) => p.hasWork);
  if (stuck.length > 0) throw new Error(`simulation ended with work left on ${stuck.map((p) => p.id).join(', ')} (bug)`);
  return { records, pods, output, endMs: now, kvBatches };
}

function makeView(i: number, pod: SimPod, snaps: Snapshot[], inFlight: number[], interval: number, clock: () => number): PodView {
  if (interval === 0) {
    return {
      index: i,
      id: pod.id,
      get waiting() {
        return pod.metrics().numRequestsWaiting;
      },
      get running() {
        return pod.metrics().numRequestsRunning;
      },
      get kvUsage() {
        return pod.metrics().kvCacheUsagePerc;
      },
      get inFlight() {
        return inFlight[i] as number;
      },
      metricsAgeMs: 0,
    };
  }
  const s = snaps[i] as Snapshot;
  return {
    index: i,
    id: pod.id,
    get waiting() {
      return s.waiting;
    },
    get running() {
      return s.running;
    },
    get kvUsage() {
      return s.kvUsage;
    },
    get inFlight() {
      return inFlight[i] as number;
    },
    get metricsAgeMs() {
      return clock() - s.atMs;
    },
  };
}

function recordOf(s: Seq, pod: number, arrivalMs: number, overheadMs: number): RequestRecord {
  const first = s.firstTokenMs as number;
  return {
    req: s.req,
    pod,
    arrivalMs,
    firstTokenMs: first,
    finishedMs: s.finishedMs,
    ttftMs: first - arrivalMs + overheadMs,
    queriedTokens: s.queriedTokens,
    hitTokens: s.hitTokens,
    uncachedTokens: s.req.inputLength - (s.firstHitTokens ?? 0),
    preemptions: s.preemptions,
  };
}
