import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreTokenizer, NO_OFFSET, TokenizationError, readTokenizerAssets } from '../../src/tokenization/index.js';
import { LLAMA3_DIR, TINY_DIR } from './helpers.js';

let tok: CoreTokenizer;
beforeAll(() => {
  tok = new CoreTokenizer(readTokenizerAssets(LLAMA3_DIR));
});

describe('CoreTokenizer with the real Llama-3.1 tokenizer', () => {
  // Expected ids read off tokenizer.json's vocab: Hello=9906, Ġworld=1917, ","=11, "!"=0,
  // The=791, Ġquick=4062, Ġbrown=14198, Ġfox=39935, "123"=4513, "4"=19; BOS <|begin_of_text|>=128000.
  it.each([
    ['Hello world', [9906, 1917]],
    ['Hello, world!', [9906, 11, 1917, 0]],
    ['The quick brown fox', [791, 4062, 14198, 39935]],
    ['1234', [4513, 19]],
    ['<|eot_id|>Hello', [128009, 9906]],
  ])('encodes %j without special tokens', (text, ids) => {
    expect(Array.from(tok.encode(text).ids)).toEqual(ids);
  });

  it('learns BOS as the post-processor prefix, like add_special_tokens=True', () => {
    expect(tok.info.specialPrefix).toEqual([128000]);
    expect(tok.info.specialSuffix).toEqual([]);
    expect(tok.encodeWithSpecial('Hello world')).toEqual([128000, 9906, 1917]);
  });

  it('reports vocabulary size and prefix-store safety', () => {
    expect(tok.info.vocabSize).toBe(128256);
    expect(tok.info.prefixSafe).toBe(true);
    expect(tok.info.maxAddedTokenChars).toBe('<|reserved_special_token_247|>'.length);
  });

  it('computes the UTF-16 end offset of every token', () => {
    const text = 'Zürich 日本語 and 🙂 plus <|eot_id|> end\n\nok';
    const { ids, charEnds } = tok.encode(text);
    expect(charEnds).toBeDefined();
    let prev = 0;
    for (let i = 0; i < ids.length; i++) {
      const end = charEnds![i]!;
      if (end === NO_OFFSET) continue; // token ends inside a multi-byte character
      expect(end).toBeGreaterThan(prev);
      // Decoding the tokens up to a boundary gives exactly the text up to that offset.
      expect(tok.decode(ids.subarray(0, i + 1))).toBe(text.slice(0, end));
      prev = end;
    }
    expect(charEnds![ids.length - 1]).toBe(text.length);
  });

  it('marks tokens that end inside a code point', () => {
    // A rare CJK character is split into byte tokens by byte-level BPE.
    const { ids, charEnds } = tok.encode('𝔘');
    expect(ids.length).toBeGreaterThan(1);
    expect(charEnds![0]).toBe(NO_OFFSET);
    expect(charEnds![ids.length - 1]).toBe(2);
  });
});

describe('tokenizer file errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvroute-tok-'));

  it('names the missing tokenizer.json and the fix', () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(() => readTokenizerAssets(empty)).toThrow(TokenizationError);
    expect(() => readTokenizerAssets(empty)).toThrow(/tokenizer\.json does not exist.*directory holding tokenizer\.json/);
  });

  it('names a file that is not JSON', () => {
    const bad = join(dir, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'tokenizer.json'), '{"model": {"type": "BPE",');
    expect(() => readTokenizerAssets(bad)).toThrow(/bad[/\\]tokenizer\.json is not valid JSON/);
  });

  it('rejects JSON that is not a tokenizers file', () => {
    const odd = join(dir, 'odd');
    mkdirSync(odd);
    writeFileSync(join(odd, 'tokenizer.json'), '[1, 2]');
    expect(() => readTokenizerAssets(odd)).toThrow(/not a JSON object/);
    writeFileSync(join(odd, 'tokenizer.json'), '{"version": "1.0"}');
    expect(() => readTokenizerAssets(odd)).toThrow(/has no "model" object/);
  });

  it('rejects a bad tokenizer_config.json, and accepts a directory without one', () => {
    const cfg = join(dir, 'cfg');
    mkdirSync(cfg);
    copyFileSync(join(TINY_DIR, 'tokenizer.json'), join(cfg, 'tokenizer.json'));
    expect(readTokenizerAssets(cfg).config).toEqual({});
    writeFileSync(join(cfg, 'tokenizer_config.json'), 'nope');
    expect(() => readTokenizerAssets(cfg)).toThrow(/tokenizer_config\.json is not valid JSON/);
  });

  it('marks non-byte-level tokenizers as unsafe for the prefix store', () => {
    const assets = readTokenizerAssets(TINY_DIR);
    const withNormalizer = new CoreTokenizer({ ...assets, tokenizerJson: { ...assets.tokenizerJson, normalizer: { type: 'NFC' } } });
    expect(withNormalizer.info.prefixSafe).toBe(false);
    expect(withNormalizer.info.prefixUnsafeReason).toMatch(/normalizer/);
    expect(withNormalizer.encode('Hello world').charEnds).toBeUndefined();
  });
});
