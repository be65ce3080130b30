/**
 * Runs scheduling profiles: the decode (primary) profile always; the prefill profile when P/D is
 * on and the part of the prompt the chosen decode pod has not cached is at least the threshold.
 */
import { ApiError } from '../contract/errors.js';
import type { EndpointState } from '../datalayer/endpoint-store.js';
import type { BlockKey } from '../kvindex/types.js';
import type { TtftTerms } from './predicted-ttft.js';
import { CycleState, type Filter, type Picker, type ProfileResult, type Reservation, type ScoredEndpoint, type SchedulingRequest, type WeightedScorer } from './types.js';

export interface Profile {
  readonly name: string;
  readonly filters: readonly Filter[];
  readonly scorers: readonly WeightedScorer[];
  readonly picker: Picker;
}

export interface PdOptions {
  /** Disaggregate prefill when the uncached prompt tokens are at least this many. */
  readonly nonCachedTokensThreshold: number;
}

export interface SchedulerOptions {
  /** Tokens per block (turns the pick's cached blocks into cached tokens). */
  readonly blockSize: number;
  readonly decode: Profile;
  /**
   * Prefill profile and the P/D rule; P/D is off when undefined.
   * @default undefined
   */
  readonly prefill?: { readonly profile: Profile; readonly pd: PdOptions };
}

export interface SchedulingResult {
  /** The decode (primary) profile's result: where the request goes. */
  readonly primary: ProfileResult;
  /** The prefill profile's result when P/D was decided. */
  readonly prefill?: ProfileResult;
  /** Prompt tokens the primary pick already holds (0 when unknown). */
  readonly cachedTokens: number;
  /** Prompt blocks (full). */
  readonly totalBlocks: number;
  /**
   * Request keys of the prompt blocks the index says the primary pick holds (its consecutive
   * prefix; empty when none or unknown). What the cache-accuracy check compares with the response.
   */
  readonly heldKeys: readonly BlockKey[];
  /** Predicted-TTFT terms per candidate of the primary profile, when that scorer ran. */
  readonly ttft?: ReadonlyMap<string, TtftTerms>;
  /**
   * What stateful scorers booked for the request on the primary pick (absent on a dry run or when
   * no scorer books): call `started` at the first response chunk and `finished` at the end.
   */
  readonly reservation?: Reservation;
}

export interface ScheduleOptions {
  /**
   * Score and pick without booking anything (for `/v1/score`).
   * @default false
   */
  readonly dryRun?: boolean;
}

/** One reservation releasing several. */
function allOf(rs: readonly Reservation[]): Reservation | undefined {
  if (rs.length <= 1) return rs[0];
  return { started: () => rs.forEach((r) => r.started()), finished: () => rs.forEach((r) => r.finished()) };
}

export async function runProfile(
  profile: Profile,
  req: SchedulingRequest,
  candidates: readonly EndpointState[],
  state: CycleState,
): Promise<ProfileResult> {
  let cands = [...candidates];
  for (const f of profile.filters) {
    cands = f.filter(req, cands, state);
    if (cands.length === 0) return { profile: profile.name, picked: [], scored: [] };
  }
  const totals = new Map<string, number>();
  const parts = new Map<string, Record<string, number>>();
  for (const c of cands) {
    totals.set(c.endpoint.address, 0);
    parts.set(c.endpoint.address, {});
  }
  // scorers reading the cycle state (no-hit-lru reads the prefix scorers' results) run after the others
  const late = profile.scorers.some((ws) => ws.scorer.readsCycleState);
  const results = await Promise.all(profile.scorers.map((ws) => (late && ws.scorer.readsCycleState ? undefined : ws.scorer.score(req, cands, state))));
  if (late) {
    for (let i = 0; i < results.length; i++) {
      const sc = profile.scorers[i].scorer;
      if (sc.readsCycleState) results[i] = await sc.score(req, cands, state);
    }
  }
  profile.scorers.forEach((ws, i) => {
    const scores = results[i] as Map<string, number>;
    for (const c of cands) {
      const a = c.endpoint.address;
      const raw = scores.get(a) ?? 0;
      const s = Number.isFinite(raw) ? Math.min(1, Math.max(0, raw)) : 0;
      totals.set(a, (totals.get(a) ?? 0) + ws.weight * s);
      (parts.get(a) as Record<string, number>)[ws.scorer.name] = s;
    }
  });
  const scored: ScoredEndpoint[] = cands.map((c) => ({
    state: c,
    total: totals.get(c.endpoint.address) ?? 0,
    parts: parts.get(c.endpoint.address) ?? {},
  }));
  const picked = profile.picker.pick(scored);
  return { profile: profile.name, picked, scored: [...scored].sort((a, b) => b.total - a.total) };
}

export class Scheduler {
  constructor(private readonly opts: SchedulerOptions) {}

  get pdEnabled(): boolean {
    return this.opts.prefill !== undefined;
  }

  /** Schedules one request over the candidates; throws ApiError('no_endpoint') when none fits. */
  async schedule(req: SchedulingRequest, candidates: readonly EndpointState[], opts: ScheduleOptions = {}): Promise<SchedulingResult> {
    if (candidates.length === 0) throw new ApiError('no_endpoint', 'no ready endpoint: the pool has no pods (or the subset hint matched none)');
    const state = new CycleState();
    const primary = await runProfile(this.opts.decode, req, candidates, state);
    if (primary.picked.length === 0) {
      throw new ApiError('no_endpoint', `no endpoint passed the ${this.opts.decode.name} profile's filters among ${candidates.length} candidates`);
    }
    const best = primary.picked[0].state.endpoint.address;
    const heldBlocks = state.prefix?.get(best)?.consecutiveBlocks ?? 0;
    const cachedTokens = heldBlocks * this.opts.blockSize;
    const totalBlocks = state.totalBlocks;
    const heldKeys = state.requestKeys?.slice(0, heldBlocks) ?? [];
    const booked: Reservation[] = [];
    if (!opts.dryRun) {
      for (const ws of this.opts.decode.scorers) {
        const r = ws.scorer.reserve?.(req, best, state);
        if (r) booked.push(r);
      }
    }
    const reservation = allOf(booked);
    const extra = { ...(state.ttft ? { ttft: state.ttft } : {}), ...(reservation ? { reservation } : {}) };
    const pre = this.opts.prefill;
    if (pre && req.tokens) {
      const promptTokens = req.tokens.length;
      const uncached = promptTokens - cachedTokens;
      const t = pre.pd.nonCachedTokensThreshold;
      if (promptTokens >= t && uncached >= t) {
        const prefillCands = candidates.filter((c) => c.endpoint.address !== best);
        const prefill = await runProfile(pre.profile, req, prefillCands, new CycleState());
        if (prefill.picked.length > 0) return { primary, prefill, cachedTokens, totalBlocks, heldKeys, ...extra };
      }
    }
    return { primary, cachedTokens, totalBlocks, heldKeys, ...extra };
  }
}
