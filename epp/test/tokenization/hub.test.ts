import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenization, downloadTokenizer, hubCacheDir } from '../../src/tokenization/index.js';
import { TINY_DIR } from './helpers.js';

/** A fake hub on 127.0.0.1: `org/tiny` public, `org/gated` needs "Bearer secret", `org/noconfig` lacks tokenizer_config.json. */
const seen: { url: string; auth: string | undefined }[] = [];
let server: Server;
let base: string;
let silent: Server;
let silentBase: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', auth: req.headers.authorization });
    const cdn = /^\/cdn\/(tokenizer(?:_config)?\.json)$/.exec(req.url ?? '');
    if (cdn) return void res.writeHead(200).end(readFileSync(join(TINY_DIR, cdn[1]!)));
    const redirect = /^\/org\/lfs\/resolve\/main\/(tokenizer(?:_config)?\.json)$/.exec(req.url ?? '');
    if (redirect) return void res.writeHead(302, { location: `/cdn/${redirect[1]}` }).end();
    const m = /^\/(org\/[\w-]+)\/resolve\/([\w.-]+)\/(tokenizer(?:_config)?\.json)$/.exec(req.url ?? '');
    if (!m) return void res.writeHead(404).end('Entry not found');
    const [, repo, , file] = m;
    if (repo === 'org/broken') return void res.writeHead(500).end('oops');
    if (repo === 'org/gated' && req.headers.authorization !== 'Bearer secret') {
      return void res.writeHead(req.headers.authorization ? 403 : 401).end('Access to model org/gated is restricted');
    }
    if (!['org/tiny', 'org/gated', 'org/noconfig'].includes(repo!)) return void res.writeHead(404).end('Repository not found');
    if (repo === 'org/noconfig' && file === 'tokenizer_config.json') return void res.writeHead(404).end('Entry not found');
    res.writeHead(200, { 'content-type': 'application/json' }).end(readFileSync(join(TINY_DIR, file!)));
  });
  silent = createServer(() => undefined); // accepts, never answers
  await Promise.all([new Promise<void>((r) => server.listen(0, '127.0.0.1', r)), new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))]);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  silentBase = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
});
afterAll(async () => {
  silent.closeAllConnections();
  await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => silent.close(r))]);
});

const cache = (): string => mkdtempSync(join(tmpdir(), 'kvroute-hub-'));

describe('downloadTokenizer', () => {
  it('downloads both files once, then serves them from the cache', async () => {
    const cacheDir = cache();
    seen.length = 0;
    const dir = await downloadTokenizer({ repo: 'org/tiny', baseUrl: base, cacheDir, token: 'abc' });
    expect(dir).toBe(hubCacheDir(cacheDir, 'org/tiny', 'main'));
    expect(dir).toBe(join(cacheDir, 'org--tiny', 'main'));
    expect(readFileSync(join(dir, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(TINY_DIR, 'tokenizer.json'), 'utf8'));
    expect(existsSync(join(dir, 'tokenizer_config.json'))).toBe(true);
    // revision defaults to main; the token goes in the Authorization header.
    expect(seen).toEqual([
      { url: '/org/tiny/resolve/main/tokenizer.json', auth: 'Bearer abc' },
      { url: '/org/tiny/resolve/main/tokenizer_config.json', auth: 'Bearer abc' },
    ]);
    seen.length = 0;
    expect(await downloadTokenizer({ repo: 'org/tiny', baseUrl: base, cacheDir })).toBe(dir);
    expect(seen).toEqual([]);
  });

  it('follows the hub\'s redirects to its file CDN', async () => {
    seen.length = 0;
    const dir = await downloadTokenizer({ repo: 'org/lfs', baseUrl: base, cacheDir: cache() });
    expect(readFileSync(join(dir, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(TINY_DIR, 'tokenizer.json'), 'utf8'));
    expect(seen.map((s) => s.url)).toEqual(['/org/lfs/resolve/main/tokenizer.json', '/cdn/tokenizer.json', '/org/lfs/resolve/main/tokenizer_config.json', '/cdn/tokenizer_config.json']);
  });

  it('uses HF_TOKEN and HF_ENDPOINT from the environment by default', async () => {
    const old = { token: process.env.HF_TOKEN, ep: process.env.HF_ENDPOINT };
    process.env.HF_TOKEN = 'secret';
    process.env.HF_ENDPOINT = `${base}/`;
    try {
      const dir = await downloadTokenizer({ repo: 'org/gated', revision: 'v1.0', cacheDir: cache() });
      expect(dir.endsWith(join('org--gated', 'v1.0'))).toBe(true);
      expect(seen.at(-1)).toEqual({ url: '/org/gated/resolve/v1.0/tokenizer_config.json', auth: 'Bearer secret' });
    } finally {
      if (old.token === undefined) delete process.env.HF_TOKEN;
      else process.env.HF_TOKEN = old.token;
      if (old.ep === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = old.ep;
    }
  });

  it('accepts a repo without tokenizer_config.json and remembers that', async () => {
    const cacheDir = cache();
    const dir = await downloadTokenizer({ repo: 'org/noconfig', baseUrl: base, cacheDir });
    expect(existsSync(join(dir, 'tokenizer.json'))).toBe(true);
    expect(existsSync(join(dir, 'tokenizer_config.json'))).toBe(false);
    seen.length = 0;
    await downloadTokenizer({ repo: 'org/noconfig', baseUrl: base, cacheDir });
    expect(seen).toEqual([]);
  });

  it.each([
    ['org/gated', undefined, /HTTP 401: the repo is gated or private: set HF_TOKEN/],
    ['org/gated', 'wrong', /HTTP 403: the HF_TOKEN was refused/],
    ['org/missing', undefined, /org\/missing\/resolve\/main\/tokenizer\.json failed with HTTP 404: check the repo id and revision/],
    ['org/broken', undefined, /HTTP 500: the hub answered with an error/],
  ])('explains a failed download of %s (token %s)', async (repo, token, re) => {
    const cacheDir = cache();
    const p = downloadTokenizer({ repo, baseUrl: base, cacheDir, ...(token ? { token } : {}) });
    await expect(p).rejects.toMatchObject({ code: 'tokenizer_unavailable', status: 503 });
    await expect(downloadTokenizer({ repo, baseUrl: base, cacheDir, ...(token ? { token } : {}) })).rejects.toThrow(re);
    expect(existsSync(join(hubCacheDir(cacheDir, repo, 'main'), 'tokenizer.json'))).toBe(false);
  });

  it('explains a network failure and a timeout', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await expect(downloadTokenizer({ repo: 'org/tiny', baseUrl: `http://127.0.0.1:${port}`, cacheDir: cache() })).rejects.toThrow(
      /cannot download http:\/\/127\.0\.0\.1:\d+\/org\/tiny\/resolve\/main\/tokenizer\.json \(ECONNREFUSED\): check network access/,
    );
    await expect(downloadTokenizer({ repo: 'org/tiny', baseUrl: silentBase, cacheDir: cache(), timeoutMs: 300 })).rejects.toThrow(/timed out after 300 ms/);
  });

  it('rejects a malformed repo id', async () => {
    await expect(downloadTokenizer({ repo: 'not a repo', baseUrl: base, cacheDir: cache() })).rejects.toThrow(/hfRepo "not a repo" is not a Hugging Face repo id: use "org\/name"/);
    await expect(downloadTokenizer({ repo: '../etc', baseUrl: base, cacheDir: cache() })).rejects.toThrow(/not a Hugging Face repo id/);
  });

  it('caches under /tmp/kvroute-tokenizers by default', async () => {
    const repo = `org/tiny`;
    const expected = join('/tmp/kvroute-tokenizers', 'org--tiny', `rev-${process.pid}`);
    try {
      expect(await downloadTokenizer({ repo, revision: `rev-${process.pid}`, baseUrl: base })).toBe(expected);
      expect(existsSync(join(expected, 'tokenizer.json'))).toBe(true);
    } finally {
      rmSync(expected, { recursive: true, force: true });
    }
  });

  it('documents the default cache directory layout', () => {
    expect(hubCacheDir('/tmp/kvroute-tokenizers', 'meta-llama/Llama-3.1-8B', 'main')).toBe('/tmp/kvroute-tokenizers/meta-llama--Llama-3.1-8B/main');
  });
});

describe('Tokenization from a hub repo', () => {
  it('downloads into the cache and tokenizes', async () => {
    const cacheDir = cache();
    const t = await Tokenization.create({ hfRepo: 'org/gated', hfToken: 'secret', hubBaseUrl: base, cacheDir, workers: 0 });
    try {
      expect(t.dir).toBe(join(cacheDir, 'org--gated', 'main'));
      expect((await t.tokenizeChat('m', [{ role: 'user', content: 'hi' }]))[0]).toBe(128000);
    } finally {
      await t.close();
    }
  });
});
