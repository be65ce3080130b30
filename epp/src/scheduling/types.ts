/**
 * The scheduling framework, llm-d style: a profile runs filters, then scorers whose [0, 1] scores
 * are summed with absolute weights, then a picker. Plugins are small interfaces; the config picks
 * and weights them.
 */
import type { EndpointState } from '../datalayer/endpoint-store.js';
import type { PodPrefixScore } from '../kvindex/scorer.js';
import type { BlockKey } from '../kvindex/types.js';
import type { TtftTerms } from './predicted-ttft.js';

/** What scheduling knows about a request. */
export interface SchedulingRequest {
  /** Model (or LoRA adapter) the request targets. */
  readonly model: string;
  /** Prompt token ids, when the prompt could be tokenized. */
  readonly tokens?: ArrayLike<number>;
  /** Session affinity key (`x-session-id`). */
  readonly sessionId?: string;
  /** Prompt text (chat: the JSON of the messages), for scorers that hash characters. */
  readonly prompt?: string;
}

/** Per-cycle scratch space plugins share (e.g. the prefix scorer's result for the P/D decider). */
export class CycleState {
  /** Prefix scores by pod for the request, once the prefix scorer ran. */
  prefix: Map<string, PodPrefixScore> | undefined;
  /** Number of full blocks of the prompt (0 when not tokenized). */
  totalBlocks = 0;
  /** Blocks of the prompt each pod holds by the approximate prefix-cache scorer, once it ran. */
  approximatePrefix: Map<string, number> | undefined;
  /** Request keys of the prompt's full blocks, once the prefix scorer ran. */
  requestKeys: readonly BlockKey[] | undefined;
  /** Predicted-TTFT terms by pod, once the predicted-TTFT scorer ran. */
  ttft: Map<string, TtftTerms> | undefined;
}

/**
 * What a stateful scorer books for one routed request, released as the response arrives: the
 * director calls `started` at the first response chunk and `finished` when the request ends
 * (both idempotent; `finished` alone releases everything).
 */
export interface Reservation {
  started(): void;
  finished(): void;
}

export interface Filter {
  readonly name: string;
  filter(req: SchedulingRequest, candidates: readonly EndpointState[], state: CycleState): EndpointState[];
}

export interface Scorer {
  readonly name: string;
  /** Score in [0, 1] per candidate address (missing = 0). */
  score(req: SchedulingRequest, candidates: readonly EndpointState[], state: CycleState): Promise<Map<string, number>> | Map<string, number>;
  /** Reads what the profile's other scorers left in the cycle state, so it runs after them. @default false */
  readonly readsCycleState?: boolean;
  /** Books the request on the picked pod (scorers that track their own load). @default none */
  reserve?(req: SchedulingRequest, pod: string, state: CycleState): Reservation;
}

export interface ScoredEndpoint {
  readonly state: EndpointState;
  /** Weighted sum of the scorers' clamped scores. */
  readonly total: number;
  /** Each scorer's clamped score, by scorer name (for logs and /v1/score-style debugging). */
  readonly parts: Readonly<Record<string, number>>;
}

export interface Picker {
  readonly name: string;
  pick(scored: readonly ScoredEndpoint[]): ScoredEndpoint[];
}

export interface WeightedScorer {
  readonly scorer: Scorer;
  readonly weight: number;
}

export interface ProfileResult {
  readonly profile: string;
  /** Picked endpoints, best first (empty when filters left nothing). */
  readonly picked: readonly ScoredEndpoint[];
  /** Every candidate that passed the filters, scored, best first. */
  readonly scored: readonly ScoredEndpoint[];
}
