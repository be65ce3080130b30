/**
 * The in-thread tokenizer: `@huggingface/tokenizers` over a local `tokenizer.json`, plus what the
 * rest of the layer needs from it: token ids as a `Uint32Array`, the character offset where each
 * token ends (for the prefix store), the special tokens the post-processor adds, and whether the
 * tokenizer belongs to the family for which suffix re-tokenization is provably exact.
 *
 * This module does CPU work synchronously; the pool runs it inside worker threads.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizationError, show } from './errors.js';

/** Parsed `tokenizer.json` and `tokenizer_config.json` of one tokenizer directory. */
export interface TokenizerAssets {
  readonly dir: string;
  readonly tokenizerJson: Record<string, unknown>;
  /** `{}` when the directory has no `tokenizer_config.json`. */
  readonly config: Record<string, unknown>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readJson(file: string, required: boolean): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return undefined;
    throw new TokenizationError(
      'tokenizer_unavailable',
      code === 'ENOENT'
        ? `tokenizer file ${file} does not exist: point the tokenizer path at a directory holding tokenizer.json (as in a Hugging Face model repo), or set hfRepo to download it`
        : `cannot read tokenizer file ${file} (${code ?? String(err)}): check the path and its permissions`,
      { cause: err },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TokenizationError(
      'tokenizer_unavailable',
      `tokenizer file ${file} is not valid JSON (${(err as Error).message}; starts with ${show(text.slice(0, 40))}): re-download it from the model repo`,
      { cause: err },
    );
  }
  if (!isRecord(parsed)) {
    throw new TokenizationError('tokenizer_unavailable', `tokenizer file ${file} holds ${show(parsed, 40)}, not a JSON object: re-download it from the model repo`);
  }
  return parsed;
}

/** Read and parse the tokenizer files of `dir`; throws TokenizationError naming the file and fix. */
export function readTokenizerAssets(dir: string): TokenizerAssets {
  const tokenizerJson = readJson(join(dir, 'tokenizer.json'), true) as Record<string, unknown>;
  if (!isRecord(tokenizerJson.model)) {
    throw new TokenizationError(
      'tokenizer_unavailable',
      `${join(dir, 'tokenizer.json')} has no "model" object, so it is not a Hugging Face tokenizers file (a slow tokenizer such as tokenizer.model is not supported): use a repo that ships tokenizer.json`,
    );
  }
  const config = readJson(join(dir, 'tokenizer_config.json'), false) ?? {};
  return { dir, tokenizerJson, config };
}

/** Only tokenizer_config.json of `dir` (`{}` when absent); tokenizer.json is left to the workers. */
export function readTokenizerConfig(dir: string): Record<string, unknown> {
  return readJson(join(dir, 'tokenizer_config.json'), false) ?? {};
}

/** A special token in tokenizer_config.json: a string or an AddedToken object `{content}`. */
export function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isRecord(v) && typeof v.content === 'string') return v.content;
  return undefined;
}

/** What the main thread learns about a loaded tokenizer. */
export interface TokenizerInfo {
  /** Ids the post-processor puts before the text with add_special_tokens (Llama-3: BOS). */
  readonly specialPrefix: readonly number[];
  /** Ids the post-processor puts after the text (e.g. EOS for some models). */
  readonly specialSuffix: readonly number[];
  /** Vocabulary size including added tokens (token ids must be below it). */
  readonly vocabSize: number;
  /** Whether suffix re-tokenization is exact for this tokenizer (see prefix-store.ts). */
  readonly prefixSafe: boolean;
  /** Why `prefixSafe` is false, for the log. */
  readonly prefixUnsafeReason?: string;
  /** Length in UTF-16 units of the longest added token (the prefix store's guard). */
  readonly maxAddedTokenChars: number;
}

/** Token ids and, per token, the UTF-16 offset where it ends (`NO_OFFSET` inside a code point). */
export interface Encoded {
  readonly ids: Uint32Array;
  /** Undefined when offsets could not be computed exactly (the result is then not cached). */
  readonly charEnds?: Uint32Array;
}

/** Marks a token that ends in the middle of a code point (no character boundary there). */
export const NO_OFFSET = 0xffffffff;

const BYTE_LEVEL_REGEX_MARKERS = ['\\p{L}+', '\\s+(?!\\S)'];

/**
 * Decide whether the tokenizer is a byte-level BPE of the GPT-2 / cl100k / Llama-3 family: no
 * normalizer, a regex split whose alternatives stop at every letter/space and newline/letter
 * transition, a ByteLevel step without prefix space, and added tokens without strip options.
 */
function prefixSafety(tj: Record<string, unknown>): { safe: boolean; reason?: string } {
  if (tj.normalizer !== null && tj.normalizer !== undefined) return { safe: false, reason: 'the tokenizer has a normalizer' };
  const model = tj.model as Record<string, unknown>;
  if (model.type !== 'BPE') return { safe: false, reason: `model type ${show(model.type)} is not BPE` };
  const pre = tj.pre_tokenizer;
  if (!isRecord(pre)) return { safe: false, reason: 'no pre-tokenizer' };
  const steps = pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? (pre.pretokenizers as unknown[]) : [pre];
  let regex: string | undefined;
  let byteLevel = false;
  for (const s of steps) {
    if (!isRecord(s)) return { safe: false, reason: 'malformed pre-tokenizer' };
    if (s.type === 'Split') {
      const p = isRecord(s.pattern) ? s.pattern.Regex : undefined;
      if (typeof p !== 'string' || s.behavior !== 'Isolated' || s.invert === true) return { safe: false, reason: 'Split pre-tokenizer is not an isolated regex' };
      if (regex !== undefined) return { safe: false, reason: 'more than one Split pre-tokenizer' };
      regex = p;
    } else if (s.type === 'ByteLevel') {
      if (s.add_prefix_space === true) return { safe: false, reason: 'ByteLevel adds a prefix space' };
      if (s.use_regex === true) regex ??= "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
      byteLevel = true;
    } else {
      return { safe: false, reason: `pre-tokenizer step ${show(s.type)} is not supported by the prefix store` };
    }
  }
  if (!byteLevel) return { safe: false, reason: 'no ByteLevel pre-tokenizer' };
  if (regex === undefined || !BYTE_LEVEL_REGEX_MARKERS.every((m) => regex!.includes(m))) {
    return { safe: false, reason: 'the split regex is not of the GPT-2/cl100k/Llama-3 family' };
  }
  const added = Array.isArray(tj.added_tokens) ? (tj.added_tokens as unknown[]) : [];
  for (const a of added) {
    if (isRecord(a) && (a.lstrip === true || a.rstrip === true || a.single_word === true)) {
      return { safe: false, reason: `added token ${show(a.content)} strips whitespace` };
    }
  }
  return { safe: true };
}

/** The byte-level alphabet: byte b is written as this code point in vocab strings (GPT-2). */
function byteLevelAlphabetSize(): Map<number, number> {
  const m = new Map<number, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    m.set(printable ? b : 256 + n++, b);
  }
  return m;
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** A loaded tokenizer; all methods are synchronous and CPU-bound. */
export class CoreTokenizer {
  readonly info: TokenizerInfo;
  private readonly tokenizer: Tokenizer;
  /** Bytes each token id stands for (byte-level tokenizers), or undefined when unknown. */
  private readonly byteLen: Uint16Array | undefined;

  constructor(assets: TokenizerAssets) {
    try {
      this.tokenizer = new Tokenizer(assets.tokenizerJson, assets.config);
    } catch (err) {
      throw new TokenizationError(
        'tokenizer_unavailable',
        `cannot build a tokenizer from ${join(assets.dir, 'tokenizer.json')}: ${(err as Error).message}; the file may be truncated or from an unsupported tokenizers version`,
        { cause: err },
      );
    }
    const safety = prefixSafety(assets.tokenizerJson);
    const vocab = this.tokenizer.get_vocab(true);
    let vocabSize = 0;
    for (const [tok, id] of vocab) if (typeof tok === 'string') vocabSize = Math.max(vocabSize, id + 1);

    let maxAddedTokenChars = 0;
    const added = Array.isArray(assets.tokenizerJson.added_tokens) ? (assets.tokenizerJson.added_tokens as unknown[]) : [];
    const addedIds = new Map<number, string>();
    for (const a of added) {
      if (isRecord(a) && typeof a.id === 'number' && typeof a.content === 'string') {
        addedIds.set(a.id, a.content);
        maxAddedTokenChars = Math.max(maxAddedTokenChars, a.content.length);
      }
    }

    let byteLen: Uint16Array | undefined;
    if (safety.safe) {
      const alphabet = byteLevelAlphabetSize();
      byteLen = new Uint16Array(vocabSize);
      for (const [tok, id] of vocab) {
        if (typeof tok !== 'string') continue; // holes in a sparse vocabulary
        const content = addedIds.get(id);
        if (content !== undefined) {
          byteLen[id] = utf8Length(content);
          continue;
        }
        let n = 0;
        for (const ch of tok) {
          if (!alphabet.has(ch.codePointAt(0)!)) {
            n = -1;
            break;
          }
          n++;
        }
        if (n < 0) {
          byteLen = undefined;
          safety.safe = false;
          safety.reason = `vocab entry ${show(tok)} is not byte-level`;
          break;
        }
        byteLen[id] = n;
      }
    }
    this.byteLen = byteLen;

    const probe = 'kvroute probe';
    const withSpecial: number[] = this.tokenizer.encode(probe, { add_special_tokens: true }).ids;
    const without: number[] = this.tokenizer.encode(probe, { add_special_tokens: false }).ids;
    let at = -1;
    for (let i = 0; i + without.length <= withSpecial.length && at < 0; i++) {
      if (without.every((v: number, j: number) => withSpecial[i + j] === v)) at = i;
    }
    const specialPrefix = at < 0 ? [] : withSpecial.slice(0, at);
    const specialSuffix = at < 0 ? [] : withSpecial.slice(at + without.length);

    this.info = {
      specialPrefix,
      specialSuffix,
      vocabSize,
      prefixSafe: safety.safe,
      ...(safety.reason !== undefined ? { prefixUnsafeReason: safety.reason } : {}),
      maxAddedTokenChars,
    };
  }

  /** Ids of `text` without special tokens, plus per-token end offsets when computable. */
  encode(text: string): Encoded {
    const ids = Uint32Array.from(this.tokenizer.encode(text, { add_special_tokens: false }).ids);
    return { ids, ...this.offsets(text, ids) };
  }

  /** Ids with the post-processor's special tokens (what `add_special_tokens=True` gives). */
  encodeWithSpecial(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: true }).ids;
  }

  /** Text of `ids` (tests and diagnostics). */
  decode(ids: ArrayLike<number>): string {
    return this.tokenizer.decode(Array.from(ids));
  }

  private offsets(text: string, ids: Uint32Array): { charEnds?: Uint32Array } {
    const byteLen = this.byteLen;
    if (byteLen === undefined) return {};
    const ends = new Uint32Array(ids.length);
    let target = 0;
    let bytePos = 0;
    let charPos = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const n = id < byteLen.length ? byteLen[id]! : 0;
      if (n === 0) return {};
      target += n;
      while (bytePos < target && charPos < text.length) {
        const cp = text.codePointAt(charPos)!;
        bytePos += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        charPos += cp > 0xffff ? 2 : 1;
      }
      ends[i] = bytePos === target ? charPos : NO_OFFSET;
    }
    // The tokens must account for exactly the text's bytes, else the offsets are wrong.
    if (bytePos !== target || charPos !== text.length) return {};
    return { charEnds: ends };
  }
}
