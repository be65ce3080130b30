import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { CoreTokenizer, TokenizationError, TokenizerPool, readTokenizerAssets } from '../../src/tokenization/index.js';
import { workerLaunch } from '../../src/tokenization/pool.js';
import { TINY_DIR, randomText, rng } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const srcDir = join(here, '..', '..', 'src', 'tokenization');

let pool: TokenizerPool;
let core: CoreTokenizer;
beforeAll(async () => {
  // The small derived tokenizer keeps worker start-up fast; the real Llama-3.1 files go through
  // the workers in tokenization.test.ts.
  pool = await TokenizerPool.start({ dir: TINY_DIR, maxQueue: 200 }); // workers: default 2
  core = new CoreTokenizer(readTokenizerAssets(TINY_DIR));
});
afterAll(async () => {
  await pool.close();
});

describe('worker launch', () => {
  it('starts worker.ts through tsx when running from TypeScript source', () => {
    const l = workerLaunch(pathToFileURL(join(srcDir, 'pool.ts')).href);
    expect(l.eval).toBe(true);
    expect(l.file).toBe(join(srcDir, 'worker.ts'));
    expect(l.code).toContain('tsx');
  });

  it('starts worker.js directly when running from compiled JavaScript', () => {
    const l = workerLaunch('file:///app/dist/tokenization/pool.js');
    expect(l).toEqual({ file: '/app/dist/tokenization/pool.js'.replace('pool.js', 'worker.js'), eval: false, code: '/app/dist/tokenization/worker.js' });
  });
});

describe('TokenizerPool', () => {
  it('answers many parallel requests, each with its own text’s ids', async () => {
    const texts = Array.from({ length: 48 }, (_, i) => randomText(rng(500 + i), 100 + ((i * 97) % 900)));
    const results = await Promise.all(texts.map((t) => pool.encode(t)));
    results.forEach((r, i) => {
      expect(Array.from(r.ids)).toEqual(Array.from(core.encode(texts[i]!).ids));
      expect(r.charEnds?.length).toBe(r.ids.length);
    });
    expect(pool.queued).toBe(0);
    expect(pool.busy).toBe(0);
  });

  it('sheds requests beyond maxQueue with a 429-style error', async () => {
    const text = randomText(rng(1), 300); // all 230 are enqueued before any worker can answer
    const all = Array.from({ length: 230 }, () => pool.encode(text).then(
      () => 'ok',
      (e: TokenizationError) => e.code,
    ));
    const outcomes = await Promise.all(all);
    expect(outcomes.filter((o) => o === 'shed').length).toBeGreaterThan(0);
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThanOrEqual(200);
    expect(outcomes.every((o) => o === 'ok' || o === 'shed')).toBe(true);
  });

  it('queues up to 4096 requests by default', async () => {
    const p = await TokenizerPool.start({ dir: TINY_DIR, workers: 1 });
    try {
      const all = Array.from({ length: 4100 }, () => p.encode('a b').then(() => 'ok', (e: TokenizationError) => e.code));
      const outcomes = await Promise.all(all);
      // 1 request goes straight to the worker, 4096 wait, the rest are shed.
      expect(outcomes.filter((o) => o === 'ok')).toHaveLength(4097);
      expect(outcomes.filter((o) => o === 'shed')).toHaveLength(3);
    } finally {
      await p.close();
    }
  });

  it('replaces a worker that dies and keeps serving', async () => {
    await pool.terminateOne();
    const r = await Promise.all([pool.encode('Hello world'), pool.encode('The quick brown fox')]);
    expect(Array.from(r[0].ids)).toEqual(Array.from(core.encode('Hello world').ids));
    expect(Array.from(r[1].ids)).toEqual(Array.from(core.encode('The quick brown fox').ids));
    await new Promise((res) => setTimeout(res, 50));
    expect(pool.size).toBe(2);
  });

  it('fails to start with the loader error when tokenizer.json is missing', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'kvroute-pool-'));
    await expect(TokenizerPool.start({ dir: empty, workers: 1 })).rejects.toThrow(/tokenizer\.json does not exist/);
  });

  it('rejects a bad worker count and defaults to 2 workers', async () => {
    await expect(TokenizerPool.start({ dir: TINY_DIR, workers: 0 })).rejects.toThrow(/workers must be an integer from 1 to 64, got 0/);
    await expect(TokenizerPool.start({ dir: TINY_DIR, workers: 65 })).rejects.toThrow(/got 65/);
    expect(pool.size).toBe(2); // started without `workers`
  });

  it('fails queued requests on close', async () => {
    const p = await TokenizerPool.start({ dir: TINY_DIR, workers: 1 });
    expect(Array.from((await p.encode('Hello world')).ids)).toEqual(Array.from(core.encode('Hello world').ids));
    const text = randomText(rng(2), 20000);
    const pending = Array.from({ length: 5 }, () => p.encode(text).then(() => 'ok', (e: TokenizationError) => e.code));
    await p.close();
    expect((await Promise.all(pending)).filter((o) => o === 'closed').length).toBeGreaterThanOrEqual(4);
    await expect(p.encode('x')).rejects.toThrow(/closed/);
  });
});

describe('compiled JavaScript', () => {
  it('runs the worker from .js output exactly like dist/', () => {
    // Transpile src/tokenization/*.ts to .js beside a copy (what tsc puts in dist/), then run it in a
    // plain node process: the pool must pick worker.js and need no TypeScript loader.
    const out = join(here, `.build-${process.pid}`);
    const tokDir = join(out, 'tokenization');
    mkdirSync(tokDir, { recursive: true });
    try {
      for (const f of readdirSync(srcDir).filter((n) => n.endsWith('.ts'))) {
        const js = ts.transpileModule(readFileSync(join(srcDir, f), 'utf8'), {
          compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
        }).outputText;
        writeFileSync(join(tokDir, f.replace(/\.ts$/, '.js')), js);
      }
      // The metric names come from the contract (tokenization/metrics.ts imports it).
      mkdirSync(join(out, 'contract'), { recursive: true });
      for (const f of ['metrics.ts', 'errors.ts']) {
        const js = ts.transpileModule(readFileSync(join(srcDir, '..', 'contract', f), 'utf8'), {
          compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
        }).outputText;
        writeFileSync(join(out, 'contract', f.replace(/\.ts$/, '.js')), js);
      }
      const script = `
        import { Tokenization } from ${JSON.stringify(pathToFileURL(join(tokDir, 'index.js')).href)};
        const t = await Tokenization.create({ path: ${JSON.stringify(TINY_DIR)}, workers: 1, prefixStoreBytes: 0 });
        const ids = await t.tokenizeCompletion('m', 'Hello world, the quick brown fox');
        await t.close();
        console.log(JSON.stringify(Array.from(ids)));`;
      writeFileSync(join(out, 'run.mjs'), script);
      const r = spawnSync(process.execPath, [join(out, 'run.mjs')], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } });
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout.trim())).toEqual(core.encodeWithSpecial('Hello world, the quick brown fox'));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
