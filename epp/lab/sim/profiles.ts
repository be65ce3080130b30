/**
 * Server profiles of the step-level vLLM model (docs/benchmarks/method.md, "Server model"). Times in milliseconds.
 *
 * `t_step = alphaMs + betaPrefillMs·P + betaDecodeMs·D + gammaMs·K` with P prefill tokens in the
 * step, D decoding sequences and K context tokens those decodes read.
 */

export interface PodProfile {
  readonly name: string;
  /** Served model name (vLLM `--served-model-name`). */
  readonly model: string;
  /** Fixed cost per step (weights read + launch), ms. */
  readonly alphaMs: number;
  /** Cost per uncached prompt token computed in the step, ms. */
  readonly betaPrefillMs: number;
  /** Cost per decoding sequence in the step, ms. */
  readonly betaDecodeMs: number;
  /** Cost per context token read by the step's decodes, ms. */
  readonly gammaMs: number;
  /** Router + HTTP + tokenization overhead added to every TTFT, ms. */
  readonly overheadMs: number;
  /** vLLM `--block-size`. */
  readonly blockSize: number;
  /** KV blocks per pod (num_gpu_blocks). */
  readonly numBlocks: number;
  /** `--max-num-batched-tokens`: token budget per step (chunked prefill). */
  readonly maxBatchedTokens: number;
  /** `--max-num-seqs`. */
  readonly maxNumSeqs: number;
  /** `--max-model-len`: longer requests (prompt + output) are rejected, as vLLM returns 400. */
  readonly maxModelLen: number;
  /** `--gpu-memory-utilization` (reported in `vllm:cache_config_info` only). */
  readonly gpuMemoryUtilization: number;
}

/** A: Llama-3.2-1B BF16 on A100-40GB, the seed's flags (util 0.7, block 16, B 2048). */
export const PROFILE_A: PodProfile = Object.freeze({
  name: 'A',
  model: 'meta-llama/Llama-3.2-1B',
  alphaMs: 4,
  betaPrefillMs: 0.014,
  betaDecodeMs: 0.02,
  gammaMs: 2.8e-5,
  overheadMs: 2,
  blockSize: 16,
  numBlocks: 50_000,
  maxBatchedTokens: 2048,
  maxNumSeqs: 256,
  maxModelLen: 4096,
  gpuMemoryUtilization: 0.7,
});

/** B: Llama-3.1-8B BF16 on H100-80GB (util 0.9, block 16 → 28,000 blocks, B 8192). */
export const PROFILE_B: PodProfile = Object.freeze({
  name: 'B',
  model: 'meta-llama/Llama-3.1-8B-Instruct',
  alphaMs: 8,
  betaPrefillMs: 0.025,
  betaDecodeMs: 0.03,
  gammaMs: 5.2e-5,
  overheadMs: 5,
  blockSize: 16,
  numBlocks: 28_000,
  maxBatchedTokens: 8192,
  maxNumSeqs: 256,
  maxModelLen: 32_768,
  gpuMemoryUtilization: 0.9,
});

/** C: Qwen3-32B TP2 on 2×H100 (llm-d 73-capacity replica: 307,328 KV tokens = 4,802 blocks × 64). */
export const PROFILE_C: PodProfile = Object.freeze({
  name: 'C',
  model: 'Qwen/Qwen3-32B',
  alphaMs: 15,
  betaPrefillMs: 0.0488,
  betaDecodeMs: 0.1,
  gammaMs: 5.2e-5,
  overheadMs: 200,
  blockSize: 64,
  numBlocks: 4_802,
  maxBatchedTokens: 8192,
  maxNumSeqs: 256,
  maxModelLen: 40_960,
  gpuMemoryUtilization: 0.9,
});

export const PROFILES: Readonly<Record<'A' | 'B' | 'C', PodProfile>> = Object.freeze({ A: PROFILE_A, B: PROFILE_B, C: PROFILE_C });

/** Step duration in ms for a batch (the server model's step formula). */
export function stepCostMs(p: PodProfile, prefillTokens: number, decodeSeqs: number, contextTokens: number): number {
  return p.alphaMs + p.betaPrefillMs * prefillTokens + p.betaDecodeMs * decodeSeqs + p.gammaMs * contextTokens;
}

/** Validate a profile; throws naming the field, the value and the fix. */
export function checkProfile(p: PodProfile): PodProfile {
  const positiveInts: (keyof PodProfile)[] = ['blockSize', 'numBlocks', 'maxBatchedTokens', 'maxNumSeqs', 'maxModelLen'];
  for (const k of positiveInts) {
    const v = p[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new RangeError(`profile ${p.name}: ${k} is ${String(v)}; it must be a positive integer`);
    }
  }
  const nonNeg: (keyof PodProfile)[] = ['alphaMs', 'betaPrefillMs', 'betaDecodeMs', 'gammaMs', 'overheadMs'];
  for (const k of nonNeg) {
    const v = p[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new RangeError(`profile ${p.name}: ${k} is ${String(v)}; it must be a finite number ≥ 0 (ms)`);
    }
  }
  if (p.alphaMs <= 0) throw new RangeError(`profile ${p.name}: alphaMs is ${p.alphaMs}; a step must take time (> 0 ms)`);
  return p;
}
