import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { parseEppConfig } from '../../src/contract/config.js';
import type { Logger } from '../../src/util/logger.js';
import { Tokenization, TokenizationError, tokenizationMetrics, type TokenizationEvent } from '../../src/tokenization/index.js';
import { LLAMA3_DIR, TINY_DIR, randomText, rng } from './helpers.js';

let t: Tokenization; // workers (default 2), prefix store (default)
let ref: Tokenization; // in-thread, no prefix store: the reference "full tokenization"
const events: TokenizationEvent[] = [];
const errors: string[] = [];
const registry = new Registry();
const metrics = tokenizationMetrics(registry);

beforeAll(async () => {
  [t, ref] = await Promise.all([
    Tokenization.create({
      path: LLAMA3_DIR,
      observer: {
        onTokenized: (e) => {
          events.push(e);
          metrics.onTokenized?.(e);
        },
        onError: (k, e) => {
          errors.push(e.code);
          metrics.onError?.(k, e);
        },
      },
    }),
    Tokenization.create({ path: LLAMA3_DIR, workers: 0, prefixStoreBytes: 0 }),
  ]);
});
afterAll(async () => {
  await Promise.all([t.close(), ref.close()]);
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    expect(e).toBeInstanceOf(TokenizationError);
    return `${(e as TokenizationError).code}:${(e as TokenizationError).status}:${(e as Error).message}`;
  }
}

describe('defaults', () => {
  it('runs 2 workers with a 64 MiB prefix store and accepts any model name', async () => {
    expect(t.workers).toBe(2);
    expect(ref.workers).toBe(0);
    expect(t.prefixStore?.maxBytes).toBe(64 * 1024 * 1024);
    expect(ref.prefixStore).toBeUndefined();
    expect(Array.from(await t.tokenizeCompletion('any/model-name', 'Hello world'))).toEqual([128000, 9906, 1917]);
  });
});

describe('/v1/completions prompts', () => {
  it('adds BOS like vLLM (add_special_tokens defaults to true) and can leave it out', async () => {
    expect(Array.from(await t.tokenizeCompletion('m', 'Hello, world!'))).toEqual([128000, 9906, 11, 1917, 0]);
    expect(Array.from(await t.tokenizeCompletion('m', 'Hello, world!', { addSpecialTokens: false }))).toEqual([9906, 11, 1917, 0]);
    expect(Array.from(await t.tokenizeCompletion('m', ''))).toEqual([128000]);
  });

  it('passes token-id prompts through unchanged (no BOS added)', async () => {
    expect(Array.from(await t.tokenizeCompletion('m', [9906, 1917]))).toEqual([9906, 1917]);
    expect(Array.from(await t.tokenizeCompletion('m', [[128000, 9906]]))).toEqual([128000, 9906]);
  });

  it.each([
    [[-1], /"prompt"\[0\] = -1 is not a token id .*0\.\.128255/],
    [[1, 2.5], /"prompt"\[1\] = 2\.5/],
    [[128256], /128256 is not a token id/],
    [[], /"prompt" must be a string, an array of token ids/],
    [[[]], /"prompt" must be a string/],
    [{ text: 'x' }, /"prompt" must be a string/],
    [null, /"prompt" must be a string/],
    [[1, 'a'], /"prompt" must be a string/],
  ])('rejects prompt %j with a 400 naming the value', async (prompt, re) => {
    const c = await codeOf(t.tokenizeCompletion('m', prompt));
    expect(c).toMatch(/^bad_request:400:/);
    expect(c).toMatch(re);
  });

  it('routes a batch by its first prompt by default, or rejects it when configured', async () => {
    expect(Array.from(await t.tokenizeCompletion('m', ['Hello world', 'The quick brown fox']))).toEqual([128000, 9906, 1917]);
    expect(Array.from(await t.tokenizeCompletion('m', [[1, 2], [3]]))).toEqual([1, 2]);
    const strict = await Tokenization.create({ path: TINY_DIR, workers: 0, promptBatch: 'reject' });
    try {
      expect(await codeOf(strict.tokenizeCompletion('m', ['a', 'b']))).toMatch(/^bad_request:400:"prompt" holds 2 prompts.*separate requests/);
      expect(await codeOf(strict.tokenizeCompletion('m', ['a']))).toBe('ok');
    } finally {
      await strict.close();
    }
  });

  it('checks the model name', async () => {
    const only = await Tokenization.create({ path: TINY_DIR, workers: 0, models: ['llama', 'llama-lora'] });
    try {
      expect(await codeOf(only.tokenizeCompletion('llama-lora', 'x'))).toBe('ok');
      expect(await codeOf(only.tokenizeCompletion('gpt', 'x'))).toMatch(/^unknown_model:404:model "gpt" is not served here \(known: "llama", "llama-lora"\)/);
      expect(await codeOf(only.tokenizeCompletion('', 'x'))).toMatch(/^bad_request:400:"model" must be a non-empty string/);
    } finally {
      await only.close();
    }
  });
});

describe('/v1/chat/completions', () => {
  const messages = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is the capital of France?' },
  ];

  it('tokenizes the rendered template without adding a second BOS', async () => {
    const ids = Array.from(await t.tokenizeChat('m', messages));
    // <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n …
    expect(ids.slice(0, 5)).toEqual([128000, 128006, 9125, 128007, 271]);
    // … <|start_header_id|>assistant<|end_header_id|>\n\n
    expect(ids.slice(-4)).toEqual([128006, 78191, 128007, 271]);
    expect(ids.filter((x) => x === 128000)).toHaveLength(1);
    expect(ids).toEqual(Array.from(await ref.tokenizeChat('m', messages)));
    // vLLM's add_special_tokens=true on chat doubles the BOS; available but not the default.
    expect(Array.from(await t.tokenizeChat('m', messages, { addSpecialTokens: true })).slice(0, 2)).toEqual([128000, 128000]);
  });

  it('rejects a bad message shape with a 400', async () => {
    expect(await codeOf(t.tokenizeChat('m', [{ role: ['user'], content: 'x' }]))).toMatch(/^bad_request:400:messages\[0\]\.role must be a non-empty string/);
    expect(await codeOf(t.tokenizeChat('m', 'hi'))).toMatch(/^bad_request:400:"messages" must be a non-empty array/);
  });

  it('says so when the tokenizer has no chat template', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvroute-nochat-'));
    copyFileSync(join(TINY_DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const plain = await Tokenization.create({ path: dir, workers: 0 });
    try {
      expect(plain.chatTemplate).toBeUndefined();
      expect(await codeOf(plain.tokenizeChat('m', messages))).toMatch(/^bad_request:400:.*no chat_template in tokenizer_config\.json/);
      // No tokenizer_config.json: the post-processor still adds BOS.
      expect((await plain.tokenizeCompletion('m', 'hi'))[0]).toBe(128000);
    } finally {
      await plain.close();
    }
  });
});

describe('concurrency through the workers', () => {
  it('returns each caller its own ids for 40 parallel mixed requests', async () => {
    const jobs = Array.from({ length: 40 }, (_, i) => {
      const text = randomText(rng(700 + i), 100 + ((i * 131) % 2500));
      return i % 2 === 0
        ? { got: t.tokenizeCompletion('m', text), want: ref.tokenizeCompletion('m', text) }
        : { got: t.tokenizeChat('m', [{ role: 'user', content: text }]), want: ref.tokenizeChat('m', [{ role: 'user', content: text }]) };
    });
    for (const j of jobs) expect(Array.from(await j.got)).toEqual(Array.from(await j.want));
  });
});

describe('prefix store through the facade', () => {
  it('matches full tokenization over a growing conversation and reports reuse', async () => {
    const before = t.prefixStats;
    const messages: { role: string; content: string }[] = [{ role: 'system', content: randomText(rng(21), 2000) }];
    for (let turn = 0; turn < 6; turn++) {
      messages.push({ role: turn % 2 ? 'assistant' : 'user', content: randomText(rng(100 + turn), 300) });
      const opts = { addGenerationPrompt: turn % 2 === 0 };
      expect(Array.from(await t.tokenizeChat('m', messages, opts))).toEqual(Array.from(await ref.tokenizeChat('m', messages, opts)));
    }
    const after = t.prefixStats;
    expect(after.hits - before.hits).toBeGreaterThanOrEqual(5);
    expect(after.reusedChars - before.reusedChars).toBeGreaterThan(5 * 2000);
    expect(events.some((e) => e.kind === 'chat' && e.reusedTokens > 400)).toBe(true);
  });

  it('is off for tokenizers where suffix re-tokenization is not provably exact, and says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvroute-unsafe-'));
    const tj = JSON.parse(readFileSync(join(TINY_DIR, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...tj, normalizer: { type: 'NFC' } }));
    const logged: object[] = [];
    const debugged: object[] = [];
    const logger: Logger = {
      trace: () => undefined,
      debug: (o) => void debugged.push(o),
      info: (o) => void logged.push(o),
      warn: () => undefined,
      error: () => undefined,
      child: () => logger,
    };
    const u = await Tokenization.create({ path: dir, workers: 0, logger });
    try {
      expect(u.prefixStore).toBeUndefined();
      expect(logged).toEqual([expect.objectContaining({ prefixStoreDisabled: 'the tokenizer has a normalizer', prefixStoreBytes: 0 })]);
      // A rejected request is logged at debug with its code (and still answered with the error).
      await expect(u.tokenizeCompletion('m', [-1])).rejects.toThrow(/is not a token id/);
      expect(debugged).toEqual([expect.objectContaining({ kind: 'token_ids', code: 'bad_request' })]);
    } finally {
      await u.close();
    }
  });
});

describe('observer and metrics', () => {
  it('reports successes and failures to the observer and the registry', async () => {
    const chat = [{ role: 'user', content: randomText(rng(31337), 1500) }];
    await t.tokenizeChat('m', chat);
    await t.tokenizeChat('m', chat); // exact repeat: every token from the prefix store
    expect(events.at(-1)!.reusedTokens).toBe(events.at(-1)!.tokens);
    await t.tokenizeCompletion('m', 'Hello world');
    await codeOf(t.tokenizeCompletion('m', [-5]));
    expect(events.at(-1)).toEqual(expect.objectContaining({ kind: 'completion', tokens: 3 }));
    expect(errors.at(-1)).toBe('bad_request');
    const text = await registry.metrics();
    expect(text).toMatch(/kvroute_tokenization_requests_total\{kind="completion",result="ok"\} \d+/);
    expect(text).toMatch(/kvroute_tokenization_requests_total\{kind="token_ids",result="bad_request"\} [1-9]/);
    expect(text).toMatch(/kvroute_tokenization_tokens_total\{source="reused"\} [1-9]\d*/);
    expect(text).toMatch(/kvroute_tokenization_duration_seconds_count\{kind="chat"\} [1-9]/);
  });
});

describe('lifecycle and config', () => {
  it('needs a tokenizer source', async () => {
    await expect(Tokenization.create({})).rejects.toThrow(/no tokenizer source: set tokenizer\.path .* or tokenizer\.hfRepo/);
  });

  it('fails to start on bad files, with or without workers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvroute-badfiles-'));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% for m in messages %}' }));
    // tokenizer.json missing: reported by the in-thread loader and by the workers alike.
    await expect(Tokenization.create({ path: dir, workers: 0 })).rejects.toThrow(/tokenizer\.json does not exist/);
    await expect(Tokenization.create({ path: dir, workers: 1 })).rejects.toThrow(/chat template does not parse/);
    copyFileSync(join(TINY_DIR, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    await expect(Tokenization.create({ path: dir, workers: 1 })).rejects.toMatchObject({ code: 'tokenizer_unavailable', message: expect.stringMatching(/tokenizer\.json does not exist/) });
  });

  it('builds from the EPP config', async () => {
    const cfg = parseEppConfig({ model: 'm', tokenizer: { path: TINY_DIR, workers: 1, prefixStoreBytes: 0 } });
    const c = await Tokenization.fromConfig(cfg);
    try {
      expect(c.workers).toBe(1);
      expect(c.prefixStore).toBeUndefined();
      expect((await c.tokenizeCompletion('m', 'hello'))[0]).toBe(128000);
    } finally {
      await c.close();
    }
  });

  it('fails calls after close with code closed', async () => {
    const c = await Tokenization.create({ path: TINY_DIR, workers: 0 });
    await c.close();
    expect(await codeOf(c.tokenizeCompletion('m', 'x'))).toMatch(/^closed:503:/);
  });
});
