/** Shared fixtures of the tokenization tests. */
import { seededRandom } from '../../src/util/random.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Llama-3.1 tokenizer files copied into the repo (see test/data/tokenizers/README.md). */
export const LLAMA3_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'tokenizers', 'llama3_1');

/** A small tokenizer derived from llama3_1 (first 3,000 merges) that loads in milliseconds. */
export const TINY_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'tokenizers', 'tiny-llama3');

/** Deterministic PRNG (mulberry32) so a failing property case can be replayed from its seed. */
export const rng = seededRandom;

/** Pieces that stress BPE and the split regex: words, digits, punctuation, whitespace runs, unicode, specials. */
const PIECES = [
  'the', 'The', ' quick', 'brown', 'fox', "it's", "WE'LL", 'don\'t', 'tokenization', 'cache', 'KV', 'vLLM', 'Llama',
  '0', '7', '42', '1234', '98765', '3.14159', ' 2026',
  '.', ',', '!', '?', '...', '--', '()', '{}', '[]', '"', "'", ':', ';', '=>', '/*', '*/', '#', '@', '$', '%',
  ' ', ' ', ' ', '  ', '   ', '\t', '\n', '\n', '\n\n', ' \n', '\r\n', '\n  ', '    ',
  'é', 'naïve', 'Zürich', 'проверка', '日本語のテキスト', '中文', 'ß', '🙂', '👩‍💻', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  '<|eot_id|>', '<|start_header_id|>', '<|begin_of_text|>', '<|eot_id', '|>',
  '\uD800', '\r', 'a\u00A0b', '\u3000', '\n7', '\n\nX', ' \t ', '\f',
  'function f(x) { return x * 2; }', 'SELECT * FROM t WHERE id = 1;', 'https://example.com/a?b=c',
];

/** Random text of about `chars` UTF-16 units built from PIECES and separators. */
export function randomText(next: () => number, chars: number): string {
  let s = '';
  while (s.length < chars) {
    const p = PIECES[Math.floor(next() * PIECES.length)]!;
    const r = next();
    s += r < 0.55 ? ` ${p}` : r < 0.8 ? p : `${p}\n`;
  }
  return s;
}
