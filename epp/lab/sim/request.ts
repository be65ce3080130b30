/**
 * Simulated requests and their content.
 *
 * A request's prompt is described either by token ids (workload files) or, compactly, by chained
 * block ids (`ids`, Mooncake style): id j stands for the j-th block of `idBlockSize` tokens, and an
 * equal id means an equal prefix up to the end of that block. `coveredTokens` says how many
 * tokens of the request's stream (prompt, then output when the workload knows the output, as in
 * multi-turn chat) the ids describe. Token ids are derived from (id, offset) on demand, so a
 * 17k-request workload does not hold 100M tokens in memory, yet every simulated pod publishes
 * real token ids in its BlockStored events.
 *
 * Engine block keys: for `ids` content the key of engine block i is a 64-bit mix of the id that
 * contains the block's last token and that token's offset in it (chained ids make this a prefix
 * hash at any engine block size); for `tokens` content the EPP's `fast` block-key chain
 * (kvblock/token-processor.ts) under the simulator's own seed.
 */
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';
import type { BlockKey, TokenProcessor } from '../../src/kvindex/types.js';
import { mix32 } from './rng.js';

/** Vocabulary of derived token ids (Llama-3's 128,256). */
export const SIM_VOCAB = 128_256;

export type RequestContent =
  | {
      readonly kind: 'ids';
      /** Chained block ids; id j covers tokens [j·idBlockSize, (j+1)·idBlockSize). */
      readonly ids: ArrayLike<number>;
      readonly idBlockSize: number;
      /** Tokens of the stream the ids describe (≤ ids.length · idBlockSize). */
      readonly coveredTokens: number;
    }
  | {
      readonly kind: 'tokens';
      /** Prompt token ids. */
      readonly tokens: ArrayLike<number>;
    };

export interface SimRequest {
  /** Position in the workload (0-based, unique). */
  readonly id: number;
  /** `x-session-id`. */
  readonly sessionId: string;
  /**
   * Absolute arrival time in ms of simulated time. Unset when the request is closed-loop
   * (`afterPreviousMs`).
   */
  readonly arrivalMs?: number;
  /**
   * Closed loop: the request arrives this many ms after the previous request of the same session
   * (in workload order) completes.
   */
  readonly afterPreviousMs?: number;
  readonly inputLength: number;
  /** Tokens generated (`ignore_eos`: always exactly this many). */
  readonly outputLength: number;
  /** Load stage the request belongs to (index into the workload's stages). */
  readonly stage: number;
  /** Warm-up requests are simulated but excluded from the summary's hit rate and latencies. */
  readonly warmup: boolean;
  readonly content: RequestContent;
}

/** Tokens of the request's stream whose content is known (prompt, plus output if known). */
export function coveredTokens(req: SimRequest): number {
  return req.content.kind === 'ids' ? req.content.coveredTokens : req.content.tokens.length;
}

/** Token id at stream position `pos` (must be < coveredTokens). */
export function tokenAt(req: SimRequest, pos: number): number {
  const c = req.content;
  if (c.kind === 'tokens') return c.tokens[pos] as number;
  const id = c.ids[Math.floor(pos / c.idBlockSize)] as number;
  return mix32(id, pos % c.idBlockSize) % SIM_VOCAB;
}

/** Token ids of stream positions [start, end). */
export function streamTokens(req: SimRequest, start: number, end: number): number[] {
  const out = new Array<number>(end - start);
  const c = req.content;
  if (c.kind === 'tokens') {
    for (let p = start; p < end; p++) out[p - start] = c.tokens[p] as number;
    return out;
  }
  const hb = c.idBlockSize;
  for (let p = start; p < end; p++) out[p - start] = mix32(c.ids[Math.floor(p / hb)] as number, p % hb) % SIM_VOCAB;
  return out;
}

/** The prompt's token ids (materialized; used by routers that hash prompts). */
export function promptTokens(req: SimRequest): number[] {
  return streamTokens(req, 0, Math.min(req.inputLength, coveredTokens(req)));
}

const ID_SALT_HI = 0x5bd1e995;
const ID_SALT_LO = 0x1b873593;

/** Key of the block whose last token is stream position `pos` of an ids request. */
function idKey(ids: ArrayLike<number>, hb: number, pos: number): BlockKey {
  const id = ids[Math.floor(pos / hb)] as number;
  const off = pos % hb;
  const hi = mix32(id ^ ID_SALT_HI, off);
  const lo = mix32(id, off ^ ID_SALT_LO);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * Keys of the full blocks of `bs` tokens in the request's known stream (`coveredTokens`),
 * at most `maxBlocks`. Memoized per request and block size.
 */
export class BlockKeyer {
  private readonly cache = new WeakMap<SimRequest, { bs: number; keys: BlockKey[] }>();
  private readonly processors = new Map<number, TokenProcessor>();

  /** @param hashSeed seed of the token-content key chain. */
  constructor(private readonly hashSeed = 'kvroute-sim') {}

  keys(req: SimRequest, bs: number): BlockKey[] {
    const hit = this.cache.get(req);
    if (hit && hit.bs === bs) return hit.keys;
    const keys = this.compute(req, bs, Math.floor(coveredTokens(req) / bs));
    this.cache.set(req, { bs, keys });
    return keys;
  }

  /** Keys of the first `maxBlocks` full blocks, not memoized (for routers with their own block size). */
  prefixKeys(req: SimRequest, bs: number, maxBlocks: number): BlockKey[] {
    return this.compute(req, bs, Math.min(maxBlocks, Math.floor(coveredTokens(req) / bs)));
  }

  private compute(req: SimRequest, bs: number, n: number): BlockKey[] {
    const c = req.content;
    if (c.kind === 'ids') {
      const keys = new Array<BlockKey>(n);
      for (let i = 0; i < n; i++) keys[i] = idKey(c.ids, c.idBlockSize, (i + 1) * bs - 1);
      return keys;
    }
    let tp = this.processors.get(bs);
    if (!tp) {
      tp = createTokenProcessor({ algo: 'fast', blockSize: bs, hashSeed: this.hashSeed, model: 'kvroute-sim-engine' });
      this.processors.set(bs, tp);
    }
    const tokens = n * bs === c.tokens.length ? c.tokens : Array.prototype.slice.call(c.tokens, 0, n * bs);
    return tp.blockKeys(tokens);
  }
}
