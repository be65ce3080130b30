/**
 * The read path of the KV-block index: tokens → request keys → index lookup → per-pod
 * longest-prefix scores. The write path (KV events → index) lives in `kvevents/`; both derive
 * request keys from `requestKeyProcessor()`, so the two sides can never disagree on the key space.
 */
import type { HashAlgo } from '../contract/names.js';
import { PrefixScorer, type PodPrefixScore } from './scorer.js';
import { createTokenProcessor } from './keys/token-processor.js';
import type { BlockExtraKeys, BlockKey, Index, TokenProcessor } from './types.js';

export interface KeySpaceOptions {
  /** Tokens per block of the index (vLLM `--block-size`). */
  readonly blockSize: number;
  /** Seed of both key spaces (vLLM PYTHONHASHSEED for engine keys). */
  readonly hashSeed: string;
}

const requestProcessors = new Map<string, TokenProcessor>();

/**
 * The index's own request-key processor for a model (or LoRA adapter) name. Request keys are the
 * fast 64-bit chain seeded by hashSeed and the model, so models never share keys. Cached.
 */
export function requestKeyProcessor(opts: KeySpaceOptions, model: string): TokenProcessor {
  const id = `${opts.blockSize}\u0000${opts.hashSeed}\u0000${model}`;
  let tp = requestProcessors.get(id);
  if (!tp) {
    tp = createTokenProcessor({ algo: 'fast', blockSize: opts.blockSize, hashSeed: opts.hashSeed, model });
    if (requestProcessors.size > 1024) requestProcessors.clear();
    requestProcessors.set(id, tp);
  }
  return tp;
}

export interface IndexerOptions extends KeySpaceOptions {
  readonly index: Index;
  /** vLLM's hash algorithm, used to report engine keys. */
  readonly engineAlgo: HashAlgo;
  /**
   * Scorer for the lookup answer.
   * @default new PrefixScorer() (gpu 1.0, cpu 0.8)
   */
  readonly scorer?: PrefixScorer;
}

export interface TokenScores {
  /** Request keys of the full blocks of the prompt. */
  readonly requestKeys: readonly BlockKey[];
  /** Pods that hold block 0, best first. Pods absent here hold nothing of the prompt. */
  readonly pods: readonly PodPrefixScore[];
}

export class Indexer {
  readonly index: Index;
  private readonly scorer: PrefixScorer;
  private readonly engine: TokenProcessor;

  constructor(private readonly opts: IndexerOptions) {
    this.index = opts.index;
    this.scorer = opts.scorer ?? new PrefixScorer();
    this.engine = createTokenProcessor({ algo: opts.engineAlgo, blockSize: opts.blockSize, hashSeed: opts.hashSeed });
  }

  /** Request keys of `tokens` for `model` (the model or LoRA adapter name the request targets). */
  requestKeys(tokens: ArrayLike<number>, model: string): BlockKey[] {
    return requestKeyProcessor(this.opts, model).blockKeys(tokens);
  }

  /** The 64-bit values vLLM would publish in BlockStored for these tokens. */
  engineKeys(tokens: ArrayLike<number>, extra?: BlockExtraKeys): BlockKey[] {
    return this.engine.blockKeys(tokens, extra);
  }

  /** Longest-prefix scores of every pod for the prompt's tokens; `pods` restricts the candidates. */
  async scoreTokens(tokens: ArrayLike<number>, model: string, pods?: ReadonlySet<string>): Promise<TokenScores> {
    const requestKeys = this.requestKeys(tokens, model);
    if (requestKeys.length === 0) return { requestKeys, pods: [] };
    const hits = await this.index.lookup(requestKeys, pods);
    return { requestKeys, pods: this.scorer.score(requestKeys, hits) };
  }
}
