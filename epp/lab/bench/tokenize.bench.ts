/**
 * Tokenization benchmark: `npx tsx bench/tokenize.bench.ts [--prompts N]` (from epp/).
 *
 * Side by side in one run, with the real Llama-3.1 tokenizer (test/data/tokenizers/llama3_1):
 *  1. a cold 8 KB prompt (never seen; no prefix store), in-thread;
 *  1b. the same prompts tokenized again without a store (the tokenizer's word cache is warm then);
 *  2. the same prompts when their first 90 % is in the prefix store (target ≥ 5× faster than 1);
 *  3. an exact repeat (whole prompt in the store);
 *  4. event-loop lag (how late a 1 ms interval timer fires) while a burst of cold prompts is
 *     tokenized in-thread vs in 2 worker threads, with the burst's wall time.
 * Also the main-thread cost of rendering a ~8 KB chat template.
 * Every prompt is different (random words, numbers, identifiers), so the tokenizer's own word cache
 * does not make the cold case look warm; ids are checked equal to full tokenization first.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenization } from '../../src/tokenization/index.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'data', 'tokenizers', 'llama3_1');
const argPrompts = process.argv.indexOf('--prompts');
const N = argPrompts > 0 ? Number(process.argv[argPrompts + 1]) : 40;
const PROMPT_CHARS = 8192;

let seed = 20260601;
function rand(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 4294967296;
}
const WORDS =
  'the of and to in is that for it as with was on be by this are from at or an have not which but all can has their more one will would there been if other about into some than them these its only also time could new two may first any then like such way over through where after most between many well even because those while each should being very what before however both under own since same during without another against might'.split(
    ' ',
  );
function word(): string {
  const r = rand();
  if (r < 0.75) return WORDS[Math.floor(rand() * WORDS.length)]!;
  if (r < 0.85) return String(Math.floor(rand() * 100000));
  if (r < 0.95) return Math.floor(rand() * 2 ** 40).toString(36); // rare identifiers: cold BPE work
  return ['.', ',', ';', ':', '!', '?', '(', ')', '"'][Math.floor(rand() * 9)]!;
}
function prompt(chars: number): string {
  let s = '';
  while (s.length < chars) s += (rand() < 0.03 ? '\n\n' : ' ') + word();
  return s.slice(0, chars);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
const fmt = (x: number, d = 2): string => x.toFixed(d);

async function main(): Promise<void> {
  const prompts = Array.from({ length: N }, () => prompt(PROMPT_CHARS));
  const t0 = performance.now();
  const cold = await Tokenization.create({ path: DIR, workers: 0, prefixStoreBytes: 0 });
  const warm = await Tokenization.create({ path: DIR, workers: 0 });
  const pool = await Tokenization.create({ path: DIR, workers: 2, prefixStoreBytes: 0 });
  console.log(`loaded 3 tokenizers (1 in-thread ×2, 2 workers) in ${fmt((performance.now() - t0) / 1000, 1)} s; ${N} prompts of ${PROMPT_CHARS} chars`);

  // Correctness first: the store's answer equals full tokenization for every prompt.
  for (const p of prompts.slice(0, 5)) {
    await warm.encodeText(p.slice(0, Math.floor(p.length * 0.9)));
    const a = Array.from((await warm.encodeText(p)).ids);
    const b = Array.from((await cold.encodeText(p)).ids);
    if (a.length !== b.length || a.some((v, i) => v !== b[i])) throw new Error('prefix store result differs from full tokenization');
  }
  warm.prefixStore!.clear();

  // 1. cold
  const coldMs: number[] = [];
  let coldTokens = 0;
  for (const p of prompts) {
    const s = performance.now();
    coldTokens += (await cold.encodeText(p)).ids.length;
    coldMs.push(performance.now() - s);
  }
  // 1b. the same prompts again without a store: the tokenizer's word cache is now warm, the fair baseline
  const againMs: number[] = [];
  for (const p of prompts) {
    const s = performance.now();
    await cold.encodeText(p);
    againMs.push(performance.now() - s);
  }
  // 2. 90 % prefix in the store (the prefix is inserted untimed)
  const hitMs: number[] = [];
  let reused = 0;
  let total = 0;
  for (const p of prompts) {
    await warm.encodeText(p.slice(0, Math.floor(p.length * 0.9)));
    const s = performance.now();
    const r = await warm.encodeText(p);
    hitMs.push(performance.now() - s);
    reused += r.reused;
    total += r.ids.length;
  }
  // 3. exact repeat
  const repeatMs: number[] = [];
  for (const p of prompts) {
    const s = performance.now();
    await warm.encodeText(p);
    repeatMs.push(performance.now() - s);
  }

  const tokPerPrompt = coldTokens / N;
  const rows: [string, number][] = [
    ['cold 8 KB (no store, in-thread)', median(coldMs)],
    ['same prompt again, no store', median(againMs)],
    ['90 % prefix in store', median(hitMs)],
    ['exact repeat (100 % in store)', median(repeatMs)],
  ];
  console.log(`\n${'case'.padEnd(36)} ${'p50 ms'.padStart(8)} ${'tokens/s'.padStart(12)} ${'speedup'.padStart(8)}`);
  for (const [name, ms] of rows) {
    console.log(`${name.padEnd(36)} ${fmt(ms, 3).padStart(8)} ${Math.round((tokPerPrompt / ms) * 1000).toLocaleString('en-US').padStart(12)} ${fmt(median(coldMs) / ms, 1).padStart(7)}×`);
  }
  console.log(`(${Math.round(tokPerPrompt)} tokens per prompt; ${fmt((100 * reused) / total, 1)} % of tokens reused in the 90 % case; store ${warm.prefixStats.entries} entries, ${(warm.prefixStats.bytes / 1024 / 1024).toFixed(1)} MiB)`);

  // Chat rendering runs on the main thread (the prefix store needs the text): its cost for ~8 KB.
  const chat = Array.from({ length: 10 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: prompt(PROMPT_CHARS / 10) }));
  const renderMs: number[] = [];
  for (let i = 0; i < 50; i++) {
    const s = performance.now();
    warm.renderChat(chat);
    renderMs.push(performance.now() - s);
  }
  console.log(`chat template render, 10 messages / ~8 KB (main thread): p50 ${fmt(median(renderMs), 3)} ms`);

  // 4. event-loop lag: the same burst in-thread vs in workers, while a 1 ms timer ticks.
  async function lag(label: string, t: Tokenization): Promise<void> {
    const burst = Array.from({ length: N }, () => prompt(PROMPT_CHARS));
    // A 1 ms interval timer; lag = how late each tick fires. Started (and given one tick) before the burst.
    const gaps: number[] = [];
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      gaps.push(Math.max(0, now - last - 1));
      last = now;
    }, 1);
    await new Promise((r) => setTimeout(r, 10));
    gaps.length = 0;
    last = performance.now();
    const s = performance.now();
    await Promise.all(burst.map((p) => t.encodeText(p)));
    const wall = performance.now() - s;
    await new Promise((r) => setTimeout(r, 10)); // record the tick delayed by the burst
    clearInterval(timer);
    const sorted = [...gaps].sort((a, b) => a - b);
    const pct = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
    console.log(
      `${label.padEnd(36)} ${fmt(pct(0.5), 1).padStart(9)} ${fmt(pct(0.99), 1).padStart(9)} ${fmt(sorted.at(-1) ?? 0, 1).padStart(9)} ${fmt(wall, 0).padStart(9)}`,
    );
  }
  console.log(`\n${'event-loop lag, burst of ' + N + ' cold prompts'}`.padEnd(37) + `${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'max ms'.padStart(9)} ${'wall ms'.padStart(9)}`);
  await lag('in-thread (workers: 0)', cold);
  await lag('2 worker threads', pool);

  await Promise.all([cold.close(), warm.close(), pool.close()]);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
