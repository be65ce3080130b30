import { ChatTemplate, CoreTokenizer, PrefixStore, isSafeBoundary, readTokenizerAssets, readTokenizerConfig } from '../../src/tokenization/index.js';
import { LLAMA3_DIR, randomText, rng } from './helpers.js';

let core: CoreTokenizer;
beforeAll(() => {
  core = new CoreTokenizer(readTokenizerAssets(LLAMA3_DIR));
});

/** Tokenize through a store the way Tokenization.encodeText does (in-thread, synchronous). */
function viaStore(store: PrefixStore, text: string): { ids: Uint32Array; reused: number } {
  const hit = store.lookup(text);
  if (hit && hit.fromChar === text.length) return { ids: hit.ids.slice(), reused: hit.ids.length };
  const from = hit?.fromChar ?? 0;
  const r = core.encode(text.slice(from));
  const k = hit?.ids.length ?? 0;
  const ids = new Uint32Array(k + r.ids.length);
  const ends = new Uint32Array(k + r.ids.length);
  if (hit) {
    ids.set(hit.ids);
    ends.set(hit.charEnds);
  }
  ids.set(r.ids, k);
  r.charEnds!.forEach((e, i) => (ends[k + i] = e === 0xffffffff ? e : e + from));
  store.insert(text, ids.slice(), ends);
  return { ids, reused: k };
}

describe('isSafeBoundary', () => {
  it.each([
    ['word next', 4, true],
    ['word1 next', 5, true],
    ['line\nnext', 5, true],
    ['line\n7', 5, true],
    ['word  next', 4, true],
    ['word. next', 5, false], // punctuation run: " ?[^\\s\\p{L}\\p{N}]+" may absorb
    ['a,b', 2, false], // ",b" is one piece
    ['word\tnext', 4, false],
    ['word next', 0, false],
    ['word', 4, false],
    ['é next', 1, false], // non-ASCII letters are not trusted
  ])('%j at %d → %s', (text, c, safe) => {
    expect(isSafeBoundary(text, c)).toBe(safe);
  });
});

describe('PrefixStore equivalence with full tokenization (property)', () => {
  it('gives identical ids for 600 random prompts sharing prefixes, cut anywhere', () => {
    const store = new PrefixStore({ maxBytes: 8 * 1024 * 1024 });
    let reusedTotal = 0;
    let cases = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const next = rng(seed);
      const base = randomText(next, 300 + Math.floor(next() * 1500));
      const variants: string[] = [base];
      for (let v = 0; v < 9; v++) {
        const from = variants[Math.floor(next() * variants.length)]!;
        const r = next();
        // Extend (next turn), cut anywhere and diverge (shared system prompt), or cut mid-word.
        const cut = r < 0.4 ? from.length : Math.floor(next() * from.length);
        const suffix = randomText(next, 1 + Math.floor(next() * 400));
        variants.push(r < 0.2 ? from + suffix.trimStart() : from.slice(0, cut) + suffix);
      }
      for (const text of variants) {
        const got = viaStore(store, text);
        const want = core.encode(text).ids;
        if (got.ids.length !== want.length || got.ids.some((v, i) => v !== want[i])) {
          throw new Error(`seed ${seed}: prefix-store ids differ from full tokenization for ${JSON.stringify(text.slice(0, 200))}…`);
        }
        reusedTotal += got.reused;
        cases++;
      }
    }
    expect(cases).toBe(600);
    // The store must actually have been used, or the property proves nothing.
    expect(store.stats.hits).toBeGreaterThan(200);
    expect(reusedTotal).toBeGreaterThan(20_000);
  });

  it('stays exact over random chat sessions: shared system prompts, growing turns, edited history', () => {
    const tpl = ChatTemplate.fromConfig(readTokenizerConfig(LLAMA3_DIR))!;
    const store = new PrefixStore({ maxBytes: 4 * 1024 * 1024 });
    const systems = [randomText(rng(1), 1200), randomText(rng(2), 600)];
    let checked = 0;
    for (let session = 0; session < 25; session++) {
      const next = rng(9000 + session);
      const msgs: { role: string; content: string }[] = [{ role: 'system', content: systems[session % 2]! }];
      for (let turn = 0; turn < 6; turn++) {
        if (turn > 1 && next() < 0.25) msgs[msgs.length - 2]!.content += randomText(next, 20); // edited history: divergence
        msgs.push({ role: turn % 2 ? 'assistant' : 'user', content: randomText(next, 50 + Math.floor(next() * 400)) });
        const text = tpl.render(msgs, { addGenerationPrompt: turn % 2 === 0 });
        const got = viaStore(store, text).ids;
        const want = core.encode(text).ids;
        if (got.length !== want.length || got.some((v, i) => v !== want[i])) throw new Error(`session ${session} turn ${turn}: ids differ from full tokenization`);
        checked++;
      }
    }
    expect(checked).toBe(150);
    expect(store.stats.hits).toBeGreaterThan(100);
  });

  it('stays exact at every cut point of one text (exhaustive)', () => {
    const next = rng(4242);
    const text = randomText(next, 900);
    const tail = 'ing continuation with words, 123 numbers.\n\nAnd a <|eot_id|> special';
    let naiveWrong = 0;
    for (let cut = 256; cut <= text.length; cut += 5) {
      const store = new PrefixStore();
      const prefixIds = viaStore(store, text.slice(0, cut)).ids;
      const probe = text.slice(0, cut) + tail;
      const full = Array.from(core.encode(probe).ids);
      expect(Array.from(viaStore(store, probe).ids)).toEqual(full);
      // The trap the store avoids: reusing every cached token and tokenizing only the new text.
      const naive = [...prefixIds, ...core.encode(tail).ids];
      if (naive.length !== full.length || naive.some((v, j) => v !== full[j])) naiveWrong++;
    }
    expect(naiveWrong).toBeGreaterThan(10);
  });

  it('returns the complete stored ids for an exact repeat', () => {
    const store = new PrefixStore();
    const text = randomText(rng(7), 2000);
    const first = viaStore(store, text);
    const hit = store.lookup(text);
    expect(hit?.fromChar).toBe(text.length);
    expect(Array.from(hit!.ids)).toEqual(Array.from(first.ids));
  });

  it('reuses most of a 90 % prefix', () => {
    const store = new PrefixStore();
    const next = rng(99);
    const prefix = randomText(next, 7400);
    viaStore(store, prefix);
    const text = prefix + randomText(next, 800);
    const got = viaStore(store, text);
    expect(got.reused).toBeGreaterThan(0.85 * core.encode(prefix).ids.length);
  });
});

describe('PrefixStore bounds and defaults', () => {
  it('has the documented defaults', () => {
    const s = new PrefixStore();
    expect(s.maxBytes).toBe(64 * 1024 * 1024);
    expect(s.blockChars).toBe(256);
    expect(s.guardChars).toBe(32);
    expect(s.maxBoundarySearchTokens).toBe(4096);
    expect(s.maxIndexedChars).toBe(1024 * 1024);
  });

  it('reuses a shared prefix longer than the indexed part, exactly', () => {
    const store = new PrefixStore({ maxIndexedChars: 512 });
    const next = rng(77);
    const prefix = randomText(next, 3000);
    viaStore(store, prefix);
    const text = `${prefix} and then some more words at the end`;
    const got = viaStore(store, text);
    expect(Array.from(got.ids)).toEqual(Array.from(core.encode(text).ids));
    expect(got.reused).toBeGreaterThan(0.9 * core.encode(prefix).ids.length); // found past char 512
  });

  it('keeps its memory under the budget, evicting least recently used texts', () => {
    const store = new PrefixStore({ maxBytes: 200_000 });
    const texts = Array.from({ length: 40 }, (_, i) => randomText(rng(1000 + i), 3000));
    for (const t of texts) {
      viaStore(store, t);
      expect(store.stats.bytes).toBeLessThanOrEqual(200_000);
    }
    expect(store.stats.evictions).toBeGreaterThan(0);
    expect(store.lookup(texts[0]!)).toBeUndefined(); // oldest gone
    expect(store.lookup(texts[39]!)?.fromChar).toBe(texts[39]!.length); // newest kept
  });

  it('drops a stored text when a text extending it is stored', () => {
    const store = new PrefixStore();
    const a = randomText(rng(5), 1000);
    viaStore(store, a);
    viaStore(store, `${a} and more words`);
    expect(store.stats.entries).toBe(1);
  });

  it('is disabled by maxBytes 0 and ignores texts shorter than one block', () => {
    const off = new PrefixStore({ maxBytes: 0 });
    const t = randomText(rng(3), 1000);
    viaStore(off, t);
    expect(off.lookup(t)).toBeUndefined();
    const on = new PrefixStore({ blockChars: 64 });
    viaStore(on, 'short text');
    expect(on.stats.entries).toBe(0);
    expect(on.lookup('short text')).toBeUndefined();
  });

  it('rejects bad options with the value', () => {
    expect(() => new PrefixStore({ maxBytes: -1 })).toThrow(/maxBytes must be an integer ≥ 0, got -1/);
    expect(() => new PrefixStore({ blockChars: 0 })).toThrow(/blockChars must be an integer ≥ 1, got 0/);
  });

  it('never reuses tokens across a hash collision (texts are compared)', () => {
    const store = new PrefixStore({ blockChars: 256 });
    const a = randomText(rng(11), 1200);
    viaStore(store, a);
    // Same length, differs in the first block: no block hash matches, no reuse.
    const b = `X${a.slice(1)}`;
    expect(store.lookup(b)).toBeUndefined();
  });
});
