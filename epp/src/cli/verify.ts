/**
 * `kvroute-epp verify`: checks a live deployment the way an operator would, through its gateway.
 *
 * It sends a discriminating shared-prefix chat workload (sessions × turns over several prefix
 * groups: a long system prompt per group, each session's later turns repeating its earlier ones, so
 * a random router loses most hits and a prefix-aware one keeps them), streamed with
 * `stream_options.include_usage`, and reads vLLM's prefix-cache counters
 * (`vllm:prefix_cache_hits_total` / `vllm:prefix_cache_queries_total`, per pod) and the EPP's
 * predicted/actual counters before and after, from the pods' `/metrics` (`--pods`, `--epp`) or a
 * Prometheus HTTP API (`--prometheus`). It prints:
 *
 * - token hit rate (vLLM's definition: Δhits ÷ Δqueries over all pods) next to the workload's
 *   ceiling (what a perfect router with unlimited cache could get, estimated per request from the
 *   prefix it shares with an earlier request, characters → tokens at the request's own ratio, in
 *   whole blocks, never the last prompt token);
 * - per-pod request share and max/mean (from the gateway's `x-gateway-destination-endpoint`
 *   response header when it sends one, else Δ `vllm:request_success_total`, else Δ queried tokens);
 * - session stickiness: follow-up turns served by the pod of the session's previous turn (by the
 *   header; without it, a follow-up counts as sticky when vLLM reported ≥ 80 % of the previous
 *   turn's prompt as cached);
 * - client TTFT (first streamed chunk) of hits (cached_tokens > 0) and misses, p50/p90;
 * - the EPP's predicted and actual cached tokens over the run;
 * - PASS/FAIL against thresholds (exit 0 / 1; 2 for bad flags or an unreachable source).
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CachePredictionMetrics, VllmMetrics } from '../contract/metrics.js';
import { Headers } from '../contract/names.js';

export const VERIFY_USAGE = `Usage: kvroute-epp verify --gateway URL --model M [--prometheus URL | --pods ip:port,...] [flags]

Sends a shared-prefix chat workload through the gateway and checks prefix-cache routing.

Flags:
  --gateway <url>              OpenAI-compatible gateway base URL, e.g. http://gw:80   [required]
  --model <m>                  model name to request                                   [required]
  --prometheus <url>           Prometheus base URL: read vLLM's and the EPP's counters there
  --pods <ip:port,...>         read vLLM's counters from each pod's /metrics instead
  --epp <url>                  EPP HTTP base URL (its /metrics) for predicted vs actual, with --pods
  --sessions <n>               chat sessions                                           [24]
  --turns <k>                  turns per session                                       [3]
  --groups <n>                 prefix groups (distinct system prompts)                 [sessions/4, ≥ 2]
  --system-words <n>           words per system prompt                                 [400]
  --concurrency <n>            sessions in flight                                      [4]
  --max-tokens <n>             max_tokens per request                                  [16]
  --block-size <n>             vLLM block size (for the ceiling)                       [16]
  --seed <n>                   workload seed                                           [1]
  --settle-seconds <s>         wait before the last read (Prometheus scrape lag)       [30 with --prometheus, else 1]
  --timeout-seconds <s>        per request                                             [120]
  --min-hit-ratio <x>          FAIL below this share of the ceiling                    [0.7]
  --max-imbalance <x>          FAIL when max/mean request share is above               [2]
  --min-stickiness <x>         FAIL below this session stickiness                      [0.8]
  --max-prediction-error <x>   FAIL when |actual − predicted| ÷ predicted is above     [0.25]
  --max-error-rate <x>         FAIL when this share of requests fails                  [0]
  --json <file>                also write the result as JSON
  -h, --help                   this help
`;

export class VerifyUsageError extends Error {}

export interface VerifyOptions {
  readonly gateway: string;
  readonly model: string;
  readonly prometheus?: string;
  readonly pods?: readonly string[];
  readonly epp?: string;
  readonly sessions: number;
  readonly turns: number;
  readonly groups: number;
  readonly systemWords: number;
  readonly concurrency: number;
  readonly maxTokens: number;
  readonly blockSize: number;
  readonly seed: number;
  readonly settleSeconds: number;
  readonly timeoutSeconds: number;
  readonly thresholds: Thresholds;
  readonly json?: string;
}

export interface Thresholds {
  readonly minHitRatio: number;
  readonly maxImbalance: number;
  readonly minStickiness: number;
  readonly maxPredictionError: number;
  readonly maxErrorRate: number;
}

function num(flag: string, v: string | undefined, def: number, o: { integer?: boolean; min?: number } = {}): number {
  if (v === undefined) return def;
  const n = Number(v);
  const min = o.min ?? 0;
  if (v.trim() === '' || !Number.isFinite(n) || n < min || (o.integer === true && !Number.isInteger(n))) {
    throw new VerifyUsageError(`--${flag} "${v}" must be ${o.integer === true ? 'an integer' : 'a number'} ≥ ${min}`);
  }
  return n;
}

function url(flag: string, v: string): string {
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new VerifyUsageError(`--${flag} "${v}" is not an http(s) URL; e.g. --${flag} http://host:port`);
  }
  return v.replace(/\/+$/, '');
}

export function parseVerifyArgs(argv: readonly string[]): VerifyOptions | 'help' {
  let f;
  try {
    f = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        gateway: { type: 'string' },
        model: { type: 'string' },
        prometheus: { type: 'string' },
        pods: { type: 'string' },
        epp: { type: 'string' },
        sessions: { type: 'string' },
        turns: { type: 'string' },
        groups: { type: 'string' },
        'system-words': { type: 'string' },
        concurrency: { type: 'string' },
        'max-tokens': { type: 'string' },
        'block-size': { type: 'string' },
        seed: { type: 'string' },
        'settle-seconds': { type: 'string' },
        'timeout-seconds': { type: 'string' },
        'min-hit-ratio': { type: 'string' },
        'max-imbalance': { type: 'string' },
        'min-stickiness': { type: 'string' },
        'max-prediction-error': { type: 'string' },
        'max-error-rate': { type: 'string' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    throw new VerifyUsageError((e as Error).message);
  }
  if (f.help) return 'help';
  if (f.gateway === undefined) throw new VerifyUsageError('--gateway is required: the base URL clients use, e.g. --gateway http://inference-gateway:80');
  if (f.model === undefined || f.model === '') throw new VerifyUsageError('--model is required: the model name the pool serves');
  if (f.prometheus !== undefined && f.pods !== undefined) throw new VerifyUsageError('give --prometheus or --pods, not both: they are two sources of the same counters');
  let pods: string[] | undefined;
  if (f.pods !== undefined) {
    pods = f.pods.split(',').map((p) => p.trim()).filter((p) => p !== '');
    const bad = pods.find((p) => !/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(p));
    if (pods.length === 0 || bad !== undefined) throw new VerifyUsageError(`--pods "${f.pods}" must be ip:port,... (bad entry ${JSON.stringify(bad ?? '')})`);
  }
  const sessions = num('sessions', f.sessions, 24, { integer: true, min: 1 });
  return {
    gateway: url('gateway', f.gateway),
    model: f.model,
    ...(f.prometheus !== undefined ? { prometheus: url('prometheus', f.prometheus) } : {}),
    ...(pods !== undefined ? { pods } : {}),
    ...(f.epp !== undefined ? { epp: url('epp', f.epp) } : {}),
    sessions,
    turns: num('turns', f.turns, 3, { integer: true, min: 1 }),
    groups: num('groups', f.groups, Math.max(2, Math.ceil(sessions / 4)), { integer: true, min: 1 }),
    systemWords: num('system-words', f['system-words'], 400, { integer: true, min: 1 }),
    concurrency: num('concurrency', f.concurrency, 4, { integer: true, min: 1 }),
    maxTokens: num('max-tokens', f['max-tokens'], 16, { integer: true, min: 1 }),
    blockSize: num('block-size', f['block-size'], 16, { integer: true, min: 1 }),
    seed: num('seed', f.seed, 1, { integer: true }),
    settleSeconds: num('settle-seconds', f['settle-seconds'], f.prometheus !== undefined ? 30 : 1),
    timeoutSeconds: num('timeout-seconds', f['timeout-seconds'], 120, { min: 1 }),
    thresholds: {
      minHitRatio: num('min-hit-ratio', f['min-hit-ratio'], 0.7),
      maxImbalance: num('max-imbalance', f['max-imbalance'], 2, { min: 1 }),
      minStickiness: num('min-stickiness', f['min-stickiness'], 0.8),
      maxPredictionError: num('max-prediction-error', f['max-prediction-error'], 0.25),
      maxErrorRate: num('max-error-rate', f['max-error-rate'], 0),
    },
    ...(f.json !== undefined ? { json: f.json } : {}),
  };
}

// ---- workload ------------------------------------------------------------------------------

const WORDS = (
  'cluster node replica shard quorum lease token budget window latency throughput backlog queue ' +
  'invoice refund ledger audit policy region zone failover snapshot restore schema index vector ' +
  'prompt adapter kernel tensor cache block eviction warmup rollout canary review escalation'
).split(' ');

/** Small seeded generator (mulberry32): the same workload for the same seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0 || 1;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface VerifySession {
  readonly id: string;
  readonly group: number;
  readonly system: string;
  /** One user message per turn. */
  readonly users: readonly string[];
}

/**
 * The seeded workload: `groups` system prompts, sessions spread over them round-robin. `run` (a
 * fresh random id per invocation by default) starts every system prompt, so a run never finds the
 * previous run's prompts cached: the ceiling is computed for cold caches.
 */
export function buildVerifyWorkload(o: Pick<VerifyOptions, 'sessions' | 'turns' | 'groups' | 'systemWords' | 'seed'>, run: string = randomUUID().slice(0, 8)): VerifySession[] {
  const r = rng(o.seed);
  const words = (n: number): string => Array.from({ length: n }, () => WORDS[Math.floor(r() * WORDS.length)]).join(' ');
  const systems = Array.from({ length: o.groups }, (_, g) => `Verify run ${run}. You are operations assistant ${g}. Runbook ${g} follows. ${words(o.systemWords)}`);
  return Array.from({ length: o.sessions }, (_, s) => ({
    id: `verify-${run}-${s}`,
    group: s % o.groups,
    system: systems[s % o.groups] as string,
    users: Array.from({ length: o.turns }, (_, t) => `Session ${s} turn ${t}: ${words(12)}?`),
  }));
}

// ---- counters ------------------------------------------------------------------------------

/** Per-pod values of the vLLM counters, and EPP totals (undefined when not read). */
export interface CounterSnapshot {
  readonly hits: ReadonlyMap<string, number>;
  readonly queries: ReadonlyMap<string, number>;
  readonly requests: ReadonlyMap<string, number> | undefined;
  readonly predicted: number | undefined;
  readonly actual: number | undefined;
}

/** Sum of a metric's samples in Prometheus text (all label sets); undefined when absent. */
export function metricSum(text: string, name: string): number | undefined {
  let sum: number | undefined;
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const m of text.matchAll(new RegExp(`^${esc}(?:\\{[^}]*\\})? (\\S+)`, 'gm'))) sum = (sum ?? 0) + Number(m[1]);
  return sum;
}

async function getText(u: string, timeoutMs: number): Promise<string> {
  const r = await fetch(u, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await r.text();
  if (!r.ok) throw new Error(`GET ${u} answered ${r.status}: ${text.slice(0, 200)}`);
  return text;
}

const REQUEST_SUCCESS = 'vllm:request_success_total';

async function fromPods(pods: readonly string[], epp: string | undefined): Promise<CounterSnapshot> {
  const hits = new Map<string, number>();
  const queries = new Map<string, number>();
  const requests = new Map<string, number>();
  let allRequests = true;
  for (const p of pods) {
    const text = await getText(`http://${p}/metrics`, 10_000).catch((e: unknown) => {
      throw new Error(`cannot read pod ${p}'s /metrics (${(e as Error).message}); check --pods`);
    });
    const h = metricSum(text, VllmMetrics.prefixCacheHits);
    const q = metricSum(text, VllmMetrics.prefixCacheQueries);
    if (h === undefined || q === undefined) throw new Error(`pod ${p}'s /metrics has no ${VllmMetrics.prefixCacheHits}/${VllmMetrics.prefixCacheQueries}: is it vLLM with --enable-prefix-caching?`);
    hits.set(p, h);
    queries.set(p, q);
    const n = metricSum(text, REQUEST_SUCCESS);
    if (n === undefined) allRequests = false;
    else requests.set(p, n);
  }
  let predicted: number | undefined;
  let actual: number | undefined;
  if (epp !== undefined) {
    const text = await getText(`${epp}/metrics`, 10_000).catch((e: unknown) => {
      throw new Error(`cannot read the EPP's /metrics at ${epp} (${(e as Error).message}); check --epp`);
    });
    predicted = metricSum(text, CachePredictionMetrics.predictedTokens.name) ?? 0;
    actual = metricSum(text, CachePredictionMetrics.actualTokens.name) ?? 0;
  }
  return { hits, queries, requests: allRequests ? requests : undefined, predicted, actual };
}

interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

async function promQuery(base: string, query: string): Promise<PromSample[]> {
  const text = await getText(`${base}/api/v1/query?query=${encodeURIComponent(query)}`, 15_000).catch((e: unknown) => {
    throw new Error(`Prometheus query ${query} failed (${(e as Error).message}); check --prometheus`);
  });
  const body = JSON.parse(text) as { status: string; error?: string; data?: { result?: PromSample[] } };
  if (body.status !== 'success') throw new Error(`Prometheus query ${query} failed: ${body.error ?? text.slice(0, 200)}`);
  return body.data?.result ?? [];
}

function byPod(samples: readonly PromSample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    const pod = s.metric.pod ?? s.metric.instance ?? '';
    out.set(pod, (out.get(pod) ?? 0) + Number(s.value[1]));
  }
  return out;
}

async function fromPrometheus(base: string, model: string): Promise<CounterSnapshot> {
  const sel = `{model_name=${JSON.stringify(model)}}`;
  const q = (name: string): string => `sum by (pod, instance) (${name}${sel})`;
  const hits = byPod(await promQuery(base, q(VllmMetrics.prefixCacheHits)));
  const queries = byPod(await promQuery(base, q(VllmMetrics.prefixCacheQueries)));
  if (queries.size === 0) throw new Error(`Prometheus has no ${VllmMetrics.prefixCacheQueries}${sel}: does it scrape the vLLM pods, and is --model the served name?`);
  const req = byPod(await promQuery(base, q(REQUEST_SUCCESS)));
  const total = async (name: string): Promise<number | undefined> => {
    const r = await promQuery(base, `sum(${name})`);
    return r.length === 0 ? undefined : Number(r[0]?.value[1]);
  };
  return {
    hits,
    queries,
    requests: req.size > 0 ? req : undefined,
    predicted: await total(CachePredictionMetrics.predictedTokens.name),
    actual: await total(CachePredictionMetrics.actualTokens.name),
  };
}

function delta(after: ReadonlyMap<string, number>, before: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) out.set(k, Math.max(0, v - (before.get(k) ?? 0)));
  return out;
}

// ---- one request ----------------------------------------------------------------------------

export interface TurnResult {
  readonly session: string;
  readonly turn: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly ttftMs: number;
  readonly promptTokens: number;
  readonly cachedTokens: number | undefined;
  /** `x-gateway-destination-endpoint` of the response, when the gateway sends it. */
  readonly pod: string | undefined;
  readonly reply: string;
  /** Estimated ceiling of cached tokens (see the file comment). */
  ceilingTokens: number;
  readonly promptChars: number;
  readonly promptText: string;
}

function promptText(messages: readonly { role: string; content: string }[]): string {
  return messages.map((m) => `${m.role}\u0000${m.content}\u0001`).join('');
}

async function sendTurn(o: VerifyOptions, session: VerifySession, turn: number, messages: { role: string; content: string }[]): Promise<TurnResult> {
  const started = performance.now();
  const text = promptText(messages);
  const base = { session: session.id, turn, promptChars: text.length, promptText: text, ceilingTokens: 0 };
  try {
    const res = await fetch(`${o.gateway}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [Headers.sessionId]: session.id },
      body: JSON.stringify({ model: o.model, messages, max_tokens: o.maxTokens, stream: true, stream_options: { include_usage: true } }),
      signal: AbortSignal.timeout(o.timeoutSeconds * 1000),
    });
    if (!res.ok || !res.body) {
      const body = await res.text();
      return { ...base, ok: false, error: `HTTP ${res.status}: ${body.slice(0, 200)}`, ttftMs: NaN, promptTokens: 0, cachedTokens: undefined, pod: undefined, reply: '' };
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let ttft = NaN;
    let reply = '';
    let usage: { prompt_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } | null } | undefined;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (Number.isNaN(ttft)) ttft = performance.now() - started;
      buf += dec.decode(value, { stream: true });
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        nl = buf.indexOf('\n');
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') continue;
        try {
          const ev = JSON.parse(data) as { choices?: { delta?: { content?: string } }[]; usage?: typeof usage };
          for (const c of ev.choices ?? []) reply += c.delta?.content ?? '';
          if (ev.usage) usage = ev.usage;
        } catch {
          // not JSON: ignored
        }
      }
    }
    return {
      ...base,
      ok: true,
      ttftMs: ttft,
      promptTokens: usage?.prompt_tokens ?? 0,
      cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? undefined,
      pod: res.headers.get(Headers.destinationEndpoint) ?? undefined,
      reply,
    };
  } catch (e) {
    return { ...base, ok: false, error: (e as Error).message, ttftMs: NaN, promptTokens: 0, cachedTokens: undefined, pod: undefined, reply: '' };
  }
}

// ---- report --------------------------------------------------------------------------------

export interface Check {
  readonly name: string;
  readonly value: number | undefined;
  readonly threshold: string;
  /** undefined: not measurable here (skipped, does not fail). */
  readonly pass: boolean | undefined;
}

export interface VerifyReport {
  readonly requests: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly tokenHitRate: number;
  readonly hitTokens: number;
  readonly queriedTokens: number;
  readonly ceiling: number;
  readonly shareSource: 'gateway-header' | 'vllm-requests' | 'vllm-queried-tokens';
  readonly share: Readonly<Record<string, number>>;
  readonly imbalance: number;
  readonly stickiness: number | undefined;
  readonly stickinessSource: 'gateway-header' | 'cached-tokens';
  readonly ttftHitsP50: number;
  readonly ttftHitsP90: number;
  readonly ttftMissesP50: number;
  readonly ttftMissesP90: number;
  readonly hits: number;
  readonly misses: number;
  readonly predictedTokens: number | undefined;
  readonly actualTokens: number | undefined;
  readonly clientCachedTokens: number;
  readonly checks: readonly Check[];
  readonly pass: boolean;
}

function quantile(xs: readonly number[], q: number): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

function commonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** Fills each turn's `ceilingTokens` (in send order: what earlier requests could have cached). */
export function estimateCeilings(turns: TurnResult[], blockSize: number): void {
  const seen: string[] = [];
  for (const t of turns) {
    if (!t.ok || t.promptTokens <= 0) continue;
    let shared = 0;
    for (const s of seen) shared = Math.max(shared, commonPrefix(t.promptText, s));
    seen.push(t.promptText);
    const tokens = Math.floor((shared * t.promptTokens) / Math.max(1, t.promptChars));
    const reachable = Math.floor((t.promptTokens - 1) / blockSize) * blockSize;
    t.ceilingTokens = Math.min(Math.floor(tokens / blockSize) * blockSize, reachable);
  }
}

export function buildReport(o: VerifyOptions, turns: readonly TurnResult[], before: CounterSnapshot, after: CounterSnapshot): VerifyReport {
  const ok = turns.filter((t) => t.ok);
  const errors = turns.length - ok.length;
  const dHits = delta(after.hits, before.hits);
  const dQueries = delta(after.queries, before.queries);
  const hitTokens = [...dHits.values()].reduce((a, b) => a + b, 0);
  const queriedTokens = [...dQueries.values()].reduce((a, b) => a + b, 0);
  const promptSum = ok.reduce((a, t) => a + t.promptTokens, 0);
  const ceiling = promptSum > 0 ? ok.reduce((a, t) => a + t.ceilingTokens, 0) / promptSum : 0;
  const tokenHitRate = queriedTokens > 0 ? hitTokens / queriedTokens : 0;

  // request share
  let shareSource: VerifyReport['shareSource'];
  const counts = new Map<string, number>();
  for (const p of after.queries.keys()) counts.set(p, 0);
  if (ok.length > 0 && ok.every((t) => t.pod !== undefined)) {
    shareSource = 'gateway-header';
    for (const t of ok) counts.set(t.pod as string, (counts.get(t.pod as string) ?? 0) + 1);
  } else if (after.requests && before.requests) {
    shareSource = 'vllm-requests';
    for (const [p, v] of delta(after.requests, before.requests)) counts.set(p, v);
  } else {
    shareSource = 'vllm-queried-tokens';
    for (const [p, v] of dQueries) counts.set(p, v);
  }
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const share: Record<string, number> = {};
  for (const [p, v] of counts) share[p] = total > 0 ? v / total : 0;
  const shares = Object.values(share);
  const mean = shares.length > 0 ? 1 / shares.length : 0;
  const imbalance = mean > 0 && total > 0 ? Math.max(...shares) / mean : NaN;

  // stickiness: follow-up turns on the previous turn's pod
  const bySession = new Map<string, TurnResult[]>();
  for (const t of turns) bySession.set(t.session, [...(bySession.get(t.session) ?? []), t]);
  const useHeader = shareSource === 'gateway-header';
  let follow = 0;
  let sticky = 0;
  for (const list of bySession.values()) {
    const sorted = [...list].sort((a, b) => a.turn - b.turn);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as TurnResult;
      const cur = sorted[i] as TurnResult;
      if (!prev.ok || !cur.ok) continue;
      if (useHeader) {
        follow++;
        if (cur.pod === prev.pod) sticky++;
      } else if (cur.cachedTokens !== undefined) {
        follow++;
        if (cur.cachedTokens >= 0.8 * prev.promptTokens) sticky++;
      }
    }
  }
  const stickiness = follow > 0 ? sticky / follow : undefined;

  const withUsage = ok.filter((t) => t.cachedTokens !== undefined);
  const hitTurns = withUsage.filter((t) => (t.cachedTokens ?? 0) > 0);
  const missTurns = withUsage.filter((t) => (t.cachedTokens ?? 0) === 0);
  const predicted = before.predicted !== undefined && after.predicted !== undefined ? after.predicted - before.predicted : undefined;
  const actual = before.actual !== undefined && after.actual !== undefined ? after.actual - before.actual : undefined;
  const predictionError = predicted !== undefined && actual !== undefined && predicted > 0 ? Math.abs(actual - predicted) / predicted : undefined;

  const th = o.thresholds;
  const errorRate = turns.length > 0 ? errors / turns.length : 1;
  const hitRatio = ceiling > 0 ? tokenHitRate / ceiling : undefined;
  const checks: Check[] = [
    { name: 'request errors (share)', value: errorRate, threshold: `≤ ${th.maxErrorRate}`, pass: errorRate <= th.maxErrorRate },
    { name: 'token hit rate ÷ ceiling', value: hitRatio, threshold: `≥ ${th.minHitRatio}`, pass: hitRatio === undefined ? undefined : hitRatio >= th.minHitRatio },
    { name: 'request share max/mean', value: imbalance, threshold: `≤ ${th.maxImbalance}`, pass: Number.isFinite(imbalance) ? imbalance <= th.maxImbalance : undefined },
    { name: 'session stickiness', value: stickiness, threshold: `≥ ${th.minStickiness}`, pass: stickiness === undefined ? undefined : stickiness >= th.minStickiness },
    {
      name: 'EPP prediction error |actual − predicted| ÷ predicted',
      value: predictionError,
      threshold: `≤ ${th.maxPredictionError}`,
      pass: predictionError === undefined ? undefined : predictionError <= th.maxPredictionError,
    },
  ];
  return {
    requests: turns.length,
    errors,
    ...(errors > 0 ? { firstError: turns.find((t) => !t.ok)?.error ?? '' } : {}),
    tokenHitRate,
    hitTokens,
    queriedTokens,
    ceiling,
    shareSource,
    share,
    imbalance,
    stickiness,
    stickinessSource: useHeader ? 'gateway-header' : 'cached-tokens',
    ttftHitsP50: quantile(hitTurns.map((t) => t.ttftMs), 0.5),
    ttftHitsP90: quantile(hitTurns.map((t) => t.ttftMs), 0.9),
    ttftMissesP50: quantile(missTurns.map((t) => t.ttftMs), 0.5),
    ttftMissesP90: quantile(missTurns.map((t) => t.ttftMs), 0.9),
    hits: hitTurns.length,
    misses: missTurns.length,
    predictedTokens: predicted,
    actualTokens: actual,
    clientCachedTokens: withUsage.reduce((a, t) => a + (t.cachedTokens ?? 0), 0),
    checks,
    pass: checks.every((c) => c.pass !== false),
  };
}

const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const ms = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(1)} ms` : 'n/a');
const fix = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(3));

export function formatReport(o: VerifyOptions, r: VerifyReport): string {
  const lines = [
    `kvroute verify: ${r.requests} requests (${o.sessions} sessions × ${o.turns} turns, ${o.groups} prefix groups) through ${o.gateway}, model ${o.model}`,
    `errors                        ${r.errors}${r.firstError ? ` (first: ${r.firstError})` : ''}`,
    `token hit rate (vLLM)         ${pct(r.tokenHitRate)}  (${r.hitTokens} / ${r.queriedTokens} tokens)`,
    `workload ceiling (estimate)   ${pct(r.ceiling)}`,
    `request share (${r.shareSource})  max/mean ${fix(r.imbalance)}`,
    ...Object.entries(r.share).map(([p, s]) => `  ${p.padEnd(28)}${pct(s)}`),
    `session stickiness (${r.stickinessSource})  ${pct(r.stickiness)}`,
    `TTFT hits   (${r.hits})  p50 ${ms(r.ttftHitsP50)}  p90 ${ms(r.ttftHitsP90)}`,
    `TTFT misses (${r.misses})  p50 ${ms(r.ttftMissesP50)}  p90 ${ms(r.ttftMissesP90)}`,
    `EPP cached tokens             predicted ${r.predictedTokens ?? 'n/a'}, actual ${r.actualTokens ?? 'n/a'} (client saw ${r.clientCachedTokens})`,
    '',
    ...r.checks.map((c) => `${c.pass === undefined ? 'SKIP' : c.pass ? 'ok  ' : 'FAIL'}  ${c.name}: ${fix(c.value)} (${c.threshold})`),
    '',
    r.pass ? 'PASS' : 'FAIL',
  ];
  return `${lines.join('\n')}\n`;
}

/** Runs the workload and reads the counters; the report and the raw turns. */
export async function runVerify(o: VerifyOptions, log: (line: string) => void = () => undefined): Promise<{ report: VerifyReport; turns: TurnResult[] }> {
  const read = async (): Promise<CounterSnapshot> => {
    if (o.prometheus !== undefined) return fromPrometheus(o.prometheus, o.model);
    if (o.pods !== undefined) return fromPods(o.pods, o.epp);
    throw new VerifyUsageError("give --prometheus URL or --pods ip:port,...: verify needs vLLM's prefix-cache counters");
  };
  const before = await read();
  const sessions = buildVerifyWorkload(o);
  log(`sending ${sessions.length} sessions × ${o.turns} turns (${o.groups} prefix groups, concurrency ${o.concurrency}) to ${o.gateway}`);
  const turns: TurnResult[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(o.concurrency, sessions.length) }, async () => {
      for (let i = next++; i < sessions.length; i = next++) {
        const s = sessions[i] as VerifySession;
        const messages: { role: string; content: string }[] = [{ role: 'system', content: s.system }];
        for (let t = 0; t < o.turns; t++) {
          messages.push({ role: 'user', content: s.users[t] as string });
          const r = await sendTurn(o, s, t, messages);
          turns.push(r);
          if (!r.ok) break;
          messages.push({ role: 'assistant', content: r.reply });
        }
      }
    }),
  );
  await new Promise((r) => setTimeout(r, o.settleSeconds * 1000));
  const after = await read();
  estimateCeilings(turns, o.blockSize);
  return { report: buildReport(o, turns, before, after), turns };
}

export async function verifyCommand(argv: readonly string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): Promise<number> {
  let o: VerifyOptions | 'help';
  try {
    o = parseVerifyArgs(argv);
  } catch (e) {
    if (e instanceof VerifyUsageError) {
      io.stderr.write(`kvroute-epp verify: ${e.message}\n\n${VERIFY_USAGE}`);
      return 2;
    }
    throw e;
  }
  if (o === 'help') {
    io.stdout.write(VERIFY_USAGE);
    return 0;
  }
  if (o.prometheus === undefined && o.pods === undefined) {
    io.stderr.write(`kvroute-epp verify: give --prometheus URL or --pods ip:port,...: verify needs vLLM's prefix-cache counters\n\n${VERIFY_USAGE}`);
    return 2;
  }
  let result: { report: VerifyReport; turns: TurnResult[] };
  try {
    result = await runVerify(o, (l) => io.stderr.write(`[verify] ${l}\n`));
  } catch (e) {
    io.stderr.write(`kvroute-epp verify: ${(e as Error).message}\n`);
    return 2;
  }
  io.stdout.write(formatReport(o, result.report));
  if (o.json !== undefined) {
    const { thresholds, ...opts } = o;
    writeFileSync(o.json, `${JSON.stringify({ options: opts, thresholds, ...result.report }, null, 2)}\n`);
  }
  return result.report.pass ? 0 : 1;
}
