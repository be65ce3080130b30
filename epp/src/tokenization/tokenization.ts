/**
 * The tokenization facade the scorer and `POST /v1/score` use: prompt or chat → token ids exactly
 * as vLLM computes them, off the event loop (worker threads), with a prefix store so that only the
 * new part of a known text is tokenized. A prompt seen for the first time is tokenized on the spot
 * (never an empty "tokenizing in the background" answer).
 *
 * Special tokens, as vLLM's OpenAI server does it:
 * - `/v1/completions` text prompt: `add_special_tokens` defaults to true, so the tokenizer's
 *   post-processor adds its tokens (Llama-3: `<|begin_of_text|>` before the text). Token-id
 *   prompts pass through unchanged (validated against the vocabulary).
 * - `/v1/chat/completions`: the chat template renders `bos_token` itself, so the rendered text is
 *   tokenized with `add_special_tokens` false (vLLM's ChatCompletionRequest default).
 * - A `prompt` array of several strings (OpenAI batch) is routed by its first prompt
 *   (`promptBatch: 'first'`, the default: every prompt of the batch goes to the chosen pod and the
 *   first one's prefix is the best single proxy) or rejected (`'reject'`) with a 400 error.
 */
import type { EppConfig } from '../contract/config.js';
import type { Logger } from '../util/logger.js';
import { ChatTemplate, type ChatMessage, type ChatRenderOptions } from './chat.js';
import { CoreTokenizer, type Encoded, type TokenizerInfo, readTokenizerAssets, readTokenizerConfig } from './core.js';
import { TokenizationError, show } from './errors.js';
import { downloadTokenizer } from './hub.js';
import { type Encoder, TokenizerPool } from './pool.js';
import { PrefixStore, type PrefixStoreStats } from './prefix-store.js';

/** What one tokenization did, for metrics (see `tokenizationMetrics`). */
export interface TokenizationEvent {
  readonly kind: 'completion' | 'chat' | 'token_ids';
  /** Tokens returned. */
  readonly tokens: number;
  /** Tokens taken from the prefix store instead of being computed. */
  readonly reusedTokens: number;
  /** Wall time including queueing, in seconds. */
  readonly seconds: number;
}

/** Receives tokenization events and failures (metrics decorator, logging). */
export interface TokenizationObserver {
  onTokenized?(e: TokenizationEvent): void;
  onError?(kind: TokenizationEvent['kind'], err: TokenizationError): void;
}

/** Options of `Tokenization.create`; set `path` or `hfRepo`. */
export interface TokenizationOptions {
  /**
   * Directory with tokenizer.json (+ tokenizer_config.json for the chat template and special tokens).
   * @default undefined (then `hfRepo` is required)
   */
  readonly path?: string;
  /**
   * Hugging Face repo to download tokenizer.json / tokenizer_config.json from when `path` is unset.
   * @default undefined
   */
  readonly hfRepo?: string;
  /**
   * Hub revision.
   * @default 'main'
   */
  readonly revision?: string;
  /**
   * Hugging Face hub cache directory the tokenizer is downloaded into (huggingface_hub's layout,
   * see hub.ts). The EPP config's `tokenizer.cacheDir` always sets it.
   * @default defaultHubCacheDir(): HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
   */
  readonly cacheDir?: string;
  /**
   * Hub token.
   * @default process.env.HF_TOKEN
   */
  readonly hfToken?: string;
  /**
   * Hub base URL.
   * @default process.env.HF_ENDPOINT ?? 'https://huggingface.co'
   */
  readonly hubBaseUrl?: string;
  /**
   * Worker threads; 0 tokenizes in the calling thread (tests and benchmarks only: it blocks the event loop).
   * @default 2
   */
  readonly workers?: number;
  /**
   * Waiting requests allowed before new ones fail with code `shed`.
   * @default 4096
   */
  readonly maxQueue?: number;
  /**
   * Prefix store budget in bytes; 0 disables it.
   * @default 67108864 (64 MiB)
   */
  readonly prefixStoreBytes?: number;
  /**
   * Model names this tokenizer serves (base model and LoRA adapters); others fail with `unknown_model`.
   * @default undefined (any model name)
   */
  readonly models?: readonly string[];
  /**
   * What to do with a `prompt` array holding several prompts: route by the first, or reject.
   * @default 'first'
   */
  readonly promptBatch?: 'first' | 'reject';
  /**
   * Metrics/logging hooks.
   * @default undefined
   */
  readonly observer?: TokenizationObserver;
  /**
   * Logger for startup facts (worker count, prefix-store support) and failures (debug for
   * rejected requests, warn for internal errors).
   * @default undefined (silent)
   */
  readonly logger?: Logger;
}

/** Options of one completion tokenization. */
export interface CompletionOptions {
  /**
   * Add the post-processor's special tokens (vLLM `add_special_tokens`, true for /v1/completions).
   * @default true
   */
  readonly addSpecialTokens?: boolean;
}

/** Options of one chat tokenization. */
export interface ChatOptions extends ChatRenderOptions {
  /**
   * Add the post-processor's special tokens to the rendered text (vLLM default false for chat:
   * the template already writes BOS).
   * @default false
   */
  readonly addSpecialTokens?: boolean;
}

/** Tokenizer running in the calling thread (workers: 0). */
class InThreadEncoder implements Encoder {
  readonly queued = 0;
  readonly info: TokenizerInfo;
  constructor(private readonly core: CoreTokenizer) {
    this.info = core.info;
  }
  encode(text: string): Promise<Encoded> {
    try {
      return Promise.resolve(this.core.encode(text));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  async close(): Promise<void> {}
}

function isIntArray(v: readonly unknown[]): v is readonly number[] {
  return v.every((x) => typeof x === 'number');
}

/** Prompt → token ids, like vLLM, off the event loop. */
export class Tokenization {
  /** The chat template of tokenizer_config.json, if any. */
  readonly chatTemplate: ChatTemplate | undefined;
  /** The prefix store, when enabled and exact for this tokenizer. */
  readonly prefixStore: PrefixStore | undefined;
  private closed = false;

  private constructor(
    private readonly encoder: Encoder,
    chatTemplate: ChatTemplate | undefined,
    prefixStore: PrefixStore | undefined,
    private readonly opts: TokenizationOptions,
    /** Directory the tokenizer was loaded from (downloaded into, for hfRepo). */
    readonly dir: string,
  ) {
    this.chatTemplate = chatTemplate;
    this.prefixStore = prefixStore;
  }

  /** Load (or download) the tokenizer and start the workers. */
  static async create(opts: TokenizationOptions): Promise<Tokenization> {
    let dir: string;
    if (opts.path !== undefined) dir = opts.path;
    else if (opts.hfRepo !== undefined) {
      dir = await downloadTokenizer({
        repo: opts.hfRepo,
        ...(opts.revision !== undefined ? { revision: opts.revision } : {}),
        ...(opts.cacheDir !== undefined ? { cacheDir: opts.cacheDir } : {}),
        ...(opts.hfToken !== undefined ? { token: opts.hfToken } : {}),
        ...(opts.hubBaseUrl !== undefined ? { baseUrl: opts.hubBaseUrl } : {}),
      });
    } else {
      throw new TokenizationError('tokenizer_unavailable', 'no tokenizer source: set tokenizer.path (a directory with tokenizer.json) or tokenizer.hfRepo ("org/name")');
    }
    // In-thread: load everything here. With workers: the main thread only needs the chat template
    // (tokenizer_config.json); each worker parses tokenizer.json and a bad file fails the start.
    const workers = opts.workers ?? 2;
    const assets = workers === 0 ? readTokenizerAssets(dir) : undefined;
    const chatTemplate = ChatTemplate.fromConfig(assets?.config ?? readTokenizerConfig(dir));
    const encoder: Encoder = assets
      ? new InThreadEncoder(new CoreTokenizer(assets))
      : await TokenizerPool.start({ dir, workers, ...(opts.maxQueue !== undefined ? { maxQueue: opts.maxQueue } : {}) });
    const info = encoder.info;
    const bytes = opts.prefixStoreBytes ?? 64 * 1024 * 1024;
    let store: PrefixStore | undefined;
    if (bytes > 0 && info.prefixSafe) store = new PrefixStore({ maxBytes: bytes, guardChars: Math.max(32, info.maxAddedTokenChars + 1) });
    opts.logger?.info(
      {
        dir,
        workers,
        vocabSize: info.vocabSize,
        chatTemplate: chatTemplate !== undefined,
        prefixStoreBytes: store ? bytes : 0,
        ...(info.prefixSafe ? {} : { prefixStoreDisabled: info.prefixUnsafeReason }),
      },
      'tokenizer loaded',
    );
    return new Tokenization(encoder, chatTemplate, store, opts, dir);
  }

  /** Options from the EPP config (`tokenizer.*`, `model`). */
  static fromConfig(cfg: EppConfig, extra: Omit<TokenizationOptions, 'path' | 'hfRepo' | 'cacheDir' | 'workers' | 'prefixStoreBytes'> = {}): Promise<Tokenization> {
    const t = cfg.tokenizer;
    return Tokenization.create({
      ...extra,
      ...(t.path !== undefined ? { path: t.path } : {}),
      ...(t.hfRepo !== undefined ? { hfRepo: t.hfRepo } : {}),
      cacheDir: t.cacheDir,
      workers: t.workers,
      prefixStoreBytes: t.prefixStoreBytes,
    });
  }

  /** Facts about the loaded tokenizer. */
  get info(): TokenizerInfo {
    return this.encoder.info;
  }

  /** Requests waiting for a worker. */
  get queued(): number {
    return this.encoder.queued;
  }

  /** Live worker threads (0 when tokenizing in-thread). */
  get workers(): number {
    return this.encoder instanceof TokenizerPool ? this.encoder.size : 0;
  }

  /** Prefix-store counters (zeros when disabled). */
  get prefixStats(): PrefixStoreStats {
    return this.prefixStore?.stats ?? { entries: 0, bytes: 0, lookups: 0, hits: 0, reusedChars: 0, evictions: 0 };
  }

  /**
   * Token ids of a /v1/completions `prompt`: a string, an array of token ids (passed through), or
   * an OpenAI batch (array of strings or of id arrays; see `promptBatch`).
   */
  async tokenizeCompletion(model: string, prompt: unknown, opts: CompletionOptions = {}): Promise<Uint32Array> {
    const kind = typeof prompt === 'string' || (Array.isArray(prompt) && typeof prompt[0] === 'string') ? 'completion' : 'token_ids';
    return this.observe(kind, async () => {
      this.checkModel(model);
      const p = this.singlePrompt(prompt);
      if (typeof p !== 'string') return { ids: this.checkIds(p), reused: 0 };
      const { ids, reused } = await this.encodeText(p);
      return { ids: opts.addSpecialTokens ?? true ? this.wrapSpecial(ids) : ids, reused };
    });
  }

  /** Token ids of a /v1/chat/completions conversation, rendered with the model's chat template. */
  async tokenizeChat(model: string, messages: readonly ChatMessage[] | unknown, opts: ChatOptions = {}): Promise<Uint32Array> {
    return this.observe('chat', async () => {
      this.checkModel(model);
      const text = this.renderChat(messages, opts);
      const { ids, reused } = await this.encodeText(text);
      return { ids: opts.addSpecialTokens ?? false ? this.wrapSpecial(ids) : ids, reused };
    });
  }

  /** The prompt text vLLM would build for `messages` (synchronous; no tokenization). */
  renderChat(messages: readonly ChatMessage[] | unknown, opts: ChatRenderOptions = {}): string {
    if (this.chatTemplate === undefined) {
      throw new TokenizationError(
        'bad_request',
        `the tokenizer in ${this.dir} has no chat_template in tokenizer_config.json, so chat requests cannot be tokenized: use /v1/completions or a tokenizer with a chat template`,
      );
    }
    return this.chatTemplate.render(messages, opts);
  }

  /** Ids of `text` with no special tokens, through the prefix store. */
  async encodeText(text: string): Promise<{ ids: Uint32Array; reused: number }> {
    if (this.closed) throw new TokenizationError('closed', 'the tokenizer is closed');
    const store = this.prefixStore;
    const hit = store?.lookup(text);
    if (hit !== undefined && hit.fromChar === text.length) return { ids: hit.ids.slice(), reused: hit.ids.length };
    const from = hit?.fromChar ?? 0;
    const r = await this.encoder.encode(from === 0 ? text : text.slice(from));
    if (hit === undefined) {
      if (store && r.charEnds) store.insert(text, r.ids.slice(), r.charEnds);
      return { ids: r.ids, reused: 0 };
    }
    const k = hit.ids.length;
    const ids = new Uint32Array(k + r.ids.length);
    ids.set(hit.ids, 0);
    ids.set(r.ids, k);
    if (store && r.charEnds) {
      const ends = new Uint32Array(ids.length);
      ends.set(hit.charEnds, 0);
      for (let i = 0; i < r.charEnds.length; i++) {
        const e = r.charEnds[i]!;
        ends[k + i] = e === 0xffffffff ? e : e + from;
      }
      store.insert(text, ids.slice(), ends);
    }
    return { ids, reused: k };
  }

  /** Stop the workers; pending requests fail with code `closed`. */
  async close(): Promise<void> {
    this.closed = true;
    await this.encoder.close();
  }

  private async observe(kind: TokenizationEvent['kind'], fn: () => Promise<{ ids: Uint32Array; reused: number }>): Promise<Uint32Array> {
    const t0 = performance.now();
    try {
      const { ids, reused } = await fn();
      this.opts.observer?.onTokenized?.({ kind, tokens: ids.length, reusedTokens: reused, seconds: (performance.now() - t0) / 1000 });
      return ids;
    } catch (err) {
      const e = err instanceof TokenizationError ? err : new TokenizationError('internal', `tokenization failed: ${(err as Error).message}`, { cause: err });
      this.opts.observer?.onError?.(kind, e);
      // Client mistakes at debug (they are counted by the observer); our own failures at warn.
      if (e.status >= 500) this.opts.logger?.warn({ kind, code: e.code, err: e.message }, 'tokenization failed');
      else this.opts.logger?.debug({ kind, code: e.code, err: e.message }, 'tokenization request rejected');
      throw e;
    }
  }

  private checkModel(model: string): void {
    if (typeof model !== 'string' || model.length === 0) {
      throw new TokenizationError('bad_request', `"model" must be a non-empty string, got ${show(model)}`);
    }
    const models = this.opts.models;
    if (models !== undefined && !models.includes(model)) {
      throw new TokenizationError('unknown_model', `model ${show(model)} is not served here (known: ${models.map((m) => show(m)).join(', ')}): use one of those names`);
    }
  }

  private singlePrompt(prompt: unknown): string | readonly number[] {
    if (typeof prompt === 'string') return prompt;
    if (!Array.isArray(prompt) || prompt.length === 0) {
      throw new TokenizationError('bad_request', `"prompt" must be a string, an array of token ids, or an array of those, got ${show(prompt)}`);
    }
    const arr: readonly unknown[] = prompt;
    if (isIntArray(arr)) return arr;
    if (arr.length > 1 && (this.opts.promptBatch ?? 'first') === 'reject') {
      throw new TokenizationError('bad_request', `"prompt" holds ${arr.length} prompts; the router needs one prompt per request: send them as separate requests`);
    }
    const first: unknown = arr[0];
    if (typeof first === 'string') return first;
    if (Array.isArray(first) && first.length > 0 && isIntArray(first)) return first;
    throw new TokenizationError('bad_request', `"prompt" must be a string, an array of token ids, or an array of those, got ${show(prompt)}`);
  }

  private checkIds(ids: readonly number[]): Uint32Array {
    const n = this.encoder.info.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i]!;
      if (!Number.isInteger(v) || v < 0 || v >= n) {
        throw new TokenizationError('bad_request', `"prompt"[${i}] = ${show(v)} is not a token id of this tokenizer (valid: integers 0..${n - 1}): send token ids from the served model's tokenizer`);
      }
    }
    return Uint32Array.from(ids);
  }

  private wrapSpecial(ids: Uint32Array): Uint32Array {
    const { specialPrefix: pre, specialSuffix: post } = this.encoder.info;
    if (pre.length === 0 && post.length === 0) return ids;
    const out = new Uint32Array(pre.length + ids.length + post.length);
    out.set(pre, 0);
    out.set(ids, pre.length);
    out.set(post, pre.length + ids.length);
    return out;
  }
}
