/** Tokenization: prompt / chat → token ids like vLLM, in worker threads, with a prefix store. */
export { Tokenization } from './tokenization.js';
export type { TokenizationOptions, CompletionOptions, ChatOptions, TokenizationEvent, TokenizationObserver } from './tokenization.js';
export { ChatTemplate, detectContentFormat } from './chat.js';
export type { ChatMessage, ChatContentPart, ChatRenderOptions, ContentFormat } from './chat.js';
export { CoreTokenizer, readTokenizerAssets, readTokenizerConfig, NO_OFFSET } from './core.js';
export type { TokenizerAssets, TokenizerInfo, Encoded } from './core.js';
export { PrefixStore, isSafeBoundary } from './prefix-store.js';
export type { PrefixStoreOptions, PrefixHit, PrefixStoreStats } from './prefix-store.js';
export { TokenizerPool } from './pool.js';
export type { Encoder, TokenizerPoolOptions } from './pool.js';
export { defaultHubCacheDir, downloadTokenizer, hubOffline, hubRepoDir } from './hub.js';
export type { HubOptions } from './hub.js';
export { TokenizationError } from './errors.js';
export type { TokenizationErrorCode } from './errors.js';
export { tokenizationMetrics } from './metrics.js';
export { chatOptionsFromBody, completionOptionsFromBody } from './body.js';
