/**
 * `POST /v1/score`: "where is this prompt cached?". Body `{model, prompt}`, `{model, messages}` or
 * `{model, token_ids}`; answer `{model, blockKeys, pods: [{endpoint, name, consecutiveBlocks, score}]}`
 * where blockKeys are the 64-bit values vLLM publishes for these blocks (decimal strings). With the
 * scheduler's dry run (`explain`), also `pick` (where the request would go now) and, per pod, the
 * predicted-TTFT terms behind that choice (`predicted`); nothing is booked.
 */
import type { Indexer } from '../kvindex/indexer.js';
import type { TtftTerms } from '../scheduling/predicted-ttft.js';
import { ApiError } from '../contract/errors.js';

/**
 * A chat message as the API layers hand it to tokenization: a role is checked, the content (string
 * or parts) and any other fields are the chat template's business.
 */
export interface ChatMessage {
  readonly role: string;
  readonly [field: string]: unknown;
}

/** What the score API needs from tokenization. */
export interface PromptTokenizer {
  /** Token ids of a /v1/completions prompt, with special tokens added as vLLM does. */
  tokenizeCompletion(model: string, prompt: string): Promise<ArrayLike<number>>;
  /** Token ids of a rendered /v1/chat/completions conversation. */
  tokenizeChat(model: string, messages: readonly ChatMessage[]): Promise<ArrayLike<number>>;
}

/** A known endpoint (name from discovery). */
export interface EndpointInfo {
  readonly address: string;
  readonly name: string;
}

export interface ScoreRequest {
  readonly model: string;
  readonly tokens: ArrayLike<number>;
}

export interface ScoreResponse {
  model: string;
  /** Number of prompt tokens. */
  tokens: number;
  /** vLLM engine keys of the full blocks (decimal strings). */
  blockKeys: string[];
  /** The index's own request keys of the same blocks (decimal strings). */
  requestKeys: string[];
  pods: { endpoint: string; name: string; consecutiveBlocks: number; score: number; predicted?: TtftTerms }[];
  /** Where the scheduler would send the request now (dry run), when `explain` is configured. */
  pick?: string;
}

/** The scheduler's dry run for a prompt. */
export interface ScheduleExplanation {
  /** The pod it would pick. */
  readonly pick: string;
  /** Predicted-TTFT terms per candidate (absent with the llmd-suite preset). */
  readonly ttft?: ReadonlyMap<string, TtftTerms>;
}

export interface ScoreServiceOptions {
  readonly indexer: Indexer;
  /** Base model served by the fleet; other model names are treated as LoRA adapters. */
  readonly model: string;
  /**
   * Model names accepted besides the base model (LoRA adapters). Empty accepts any name.
   * @default [] (any)
   */
  readonly allowedModels?: readonly string[];
  readonly tokenizer?: PromptTokenizer;
  /** Current endpoints; pods seen only in events are reported under their address. */
  readonly endpoints: () => readonly EndpointInfo[];
  /**
   * The scheduler's dry run (no booking), for `pick` and the per-pod `predicted` terms.
   * @default undefined (prefix scores only)
   */
  readonly explain?: (model: string, tokens: ArrayLike<number>) => Promise<ScheduleExplanation | undefined>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class ScoreService {
  constructor(private readonly opts: ScoreServiceOptions) {}

  /** Validates the body and turns it into tokens (throws ApiError on bad input). */
  async parse(body: unknown): Promise<ScoreRequest> {
    if (!isRecord(body)) {
      throw new ApiError('bad_request', `body must be a JSON object like {"model": "...", "prompt": "..."}; got ${JSON.stringify(body)?.slice(0, 80)}`);
    }
    const model = body.model;
    if (typeof model !== 'string' || model.length === 0) {
      throw new ApiError('missing_model', `"model" must be a non-empty string (the served model name, e.g. "${this.opts.model}"); got ${JSON.stringify(model)}`);
    }
    const allowed = this.opts.allowedModels ?? [];
    if (model !== this.opts.model && allowed.length > 0 && !allowed.includes(model)) {
      throw new ApiError('unknown_model', `model "${model}" is not served here; known models: ${[this.opts.model, ...allowed].join(', ')}`);
    }
    if (body.token_ids !== undefined) {
      const ids = body.token_ids;
      if (!Array.isArray(ids) || !ids.every((t) => Number.isInteger(t) && t >= 0 && t <= 0xffffffff)) {
        throw new ApiError('bad_request', '"token_ids" must be an array of integers in [0, 2^32-1]');
      }
      return { model, tokens: ids as number[] };
    }
    const tokenizer = this.opts.tokenizer;
    if (typeof body.prompt === 'string') {
      if (!tokenizer) throw new ApiError('bad_request', 'no tokenizer is configured: send "token_ids", or start the EPP with --tokenizer <dir>');
      return { model, tokens: await tokenizer.tokenizeCompletion(model, body.prompt) };
    }
    if (Array.isArray(body.messages)) {
      if (!tokenizer) throw new ApiError('bad_request', 'no tokenizer is configured: send "token_ids", or start the EPP with --tokenizer <dir>');
      for (const [i, m] of body.messages.entries()) {
        if (!isRecord(m) || typeof m.role !== 'string') {
          throw new ApiError('bad_request', `messages[${i}] must be an object with a string "role" and a "content"; got ${JSON.stringify(m)?.slice(0, 80)}`);
        }
      }
      return { model, tokens: await tokenizer.tokenizeChat(model, body.messages as ChatMessage[]) };
    }
    throw new ApiError('missing_prompt', 'send one of "prompt" (string), "messages" (chat array) or "token_ids" (integer array)');
  }

  async score(body: unknown): Promise<ScoreResponse> {
    const req = await this.parse(body);
    const { indexer } = this.opts;
    const extra = req.model === this.opts.model ? undefined : { loraName: req.model };
    const engineKeys = indexer.engineKeys(req.tokens, extra);
    const result = await indexer.scoreTokens(req.tokens, req.model);
    const byPod = new Map(result.pods.map((p) => [p.pod, p]));
    const names = new Map(this.opts.endpoints().map((e) => [e.address, e.name]));
    const pods: ScoreResponse['pods'] = [];
    for (const [address, name] of names) {
      const s = byPod.get(address);
      pods.push({ endpoint: address, name, consecutiveBlocks: s?.consecutiveBlocks ?? 0, score: s?.score ?? 0 });
    }
    for (const s of result.pods) {
      if (!names.has(s.pod)) pods.push({ endpoint: s.pod, name: s.pod, consecutiveBlocks: s.consecutiveBlocks, score: s.score });
    }
    pods.sort((a, b) => b.score - a.score || (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0));
    const explained = await this.opts.explain?.(req.model, req.tokens);
    if (explained?.ttft) {
      for (const p of pods) {
        const t = explained.ttft.get(p.endpoint);
        if (t) p.predicted = t;
      }
    }
    return {
      model: req.model,
      tokens: req.tokens.length,
      blockKeys: engineKeys.map(String),
      requestKeys: result.requestKeys.map(String),
      pods,
      ...(explained ? { pick: explained.pick } : {}),
    };
  }
}
