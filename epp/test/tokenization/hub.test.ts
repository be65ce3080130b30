/**
 * Tokenizer download through @huggingface/hub into the Hugging Face cache layout, against a local
 * fake hub on 127.0.0.1 (no hub is reachable here): the model-info, paths-info and resolve
 * endpoints the library calls. Reuse of a cache laid out as huggingface_hub lays it out is tested
 * with a cache directory built by the test, and HF_HUB_OFFLINE with both a hit and a miss.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenization, defaultHubCacheDir, downloadTokenizer, hubOffline, hubRepoDir } from '../../src/tokenization/index.js';
import { TINY_DIR } from './helpers.js';

const FILES: Record<string, Buffer> = {
  'tokenizer.json': readFileSync(join(TINY_DIR, 'tokenizer.json')),
  'tokenizer_config.json': readFileSync(join(TINY_DIR, 'tokenizer_config.json')),
};
const sha1 = (b: Buffer | string): string => createHash('sha1').update(b).digest('hex');
/** The head commit of a fake repo. */
const commitOf = (repo: string): string => sha1(`commit of ${repo}`);

/** Fake hub: `org/tiny` public, `org/gated` needs "Bearer hf_secret", `org/noconfig` lacks tokenizer_config.json, `org/broken` answers 500. */
const seen: { method: string; path: string; auth: string | undefined }[] = [];
let server: Server;
let base: string;
let silent: Server;
let silentBase: string;

function filesOf(repo: string): Record<string, Buffer> | undefined {
  if (repo === 'org/noconfig') return { 'tokenizer.json': FILES['tokenizer.json']! };
  return ['org/tiny', 'org/gated'].includes(repo) ? FILES : undefined;
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    req.on('data', (d: Buffer) => (s += d.toString()));
    req.on('end', () => resolve(s));
  });
}

beforeAll(async () => {
  server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      seen.push({ method: req.method ?? '', path, auth: req.headers.authorization });
      const json = (status: number, v: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      const repoOf = /^\/(?:api\/models\/)?(org\/[\w-]+)\//.exec(path)?.[1] ?? '';
      if (repoOf === 'org/broken') return json(500, { error: 'internal error' });
      if (repoOf === 'org/gated' && req.headers.authorization !== 'Bearer hf_secret') return json(req.headers.authorization ? 403 : 401, { error: 'Access to model org/gated is restricted' });
      const files = filesOf(repoOf);
      if (!files) return json(404, { error: 'Repository not found' });
      const info = /^\/api\/models\/org\/[\w-]+\/revision\/([\w.-]+)$/.exec(path);
      if (info) return json(200, { id: repoOf, sha: commitOf(repoOf) });
      const paths = /^\/api\/models\/org\/[\w-]+\/paths-info\/([0-9a-f]{40})$/.exec(path);
      if (paths && req.method === 'POST') {
        const asked = (JSON.parse(await body(req)) as { paths: string[] }).paths;
        return json(
          200,
          asked.filter((p) => files[p]).map((p) => ({ type: 'file', path: p, oid: sha1(files[p]!), size: files[p]!.length, lastCommit: { id: commitOf(repoOf), title: 'add', date: '2026-01-01T00:00:00Z' } })),
        );
      }
      const file = /^\/org\/[\w-]+\/resolve\/([0-9a-f]{40})\/(.+)$/.exec(path);
      const content = file ? files[file[2]!] : undefined;
      if (!content) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const headers = { etag: `"${sha1(content)}"`, 'content-type': 'application/octet-stream' };
      if (!range) return void res.writeHead(200, headers).end(content);
      const [from, to] = [Number(range[1]), Math.min(Number(range[2]), content.length - 1)];
      res.writeHead(206, { ...headers, 'content-range': `bytes ${from}-${to}/${content.length}` }).end(content.subarray(from, to + 1));
    })();
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
const online = { offline: false } as const;

/** A cache laid out as huggingface_hub writes it: blobs, a snapshot of symlinks, refs/<revision>. */
function pythonStyleCache(repo: string, revision: string, commit: string, files: Record<string, Buffer>): string {
  const cacheDir = cache();
  const repoDir = join(cacheDir, `models--${repo.replace('/', '--')}`);
  mkdirSync(join(repoDir, 'blobs'), { recursive: true });
  mkdirSync(join(repoDir, 'snapshots', commit), { recursive: true });
  mkdirSync(join(repoDir, 'refs'), { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(repoDir, 'blobs', sha1(content)), content);
    symlinkSync(join('..', '..', 'blobs', sha1(content)), join(repoDir, 'snapshots', commit, name));
  }
  writeFileSync(join(repoDir, 'refs', revision), commit);
  return cacheDir;
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  return port;
}

describe('downloadTokenizer', () => {
  it('downloads both files into the Hugging Face cache layout once, then serves them from the cache', async () => {
    const cacheDir = cache();
    seen.length = 0;
    const dir = await downloadTokenizer({ repo: 'org/tiny', baseUrl: base, cacheDir, token: 'hf_abc', ...online });
    const repoDir = hubRepoDir(cacheDir, 'org/tiny');
    expect(repoDir).toBe(join(cacheDir, 'models--org--tiny'));
    expect(dir).toBe(join(repoDir, 'snapshots', commitOf('org/tiny')));
    // snapshot entries are relative symlinks to content-addressed blobs; refs/main names the commit
    for (const name of ['tokenizer.json', 'tokenizer_config.json']) {
      expect(readFileSync(join(dir, name))).toEqual(FILES[name]);
      expect(readlinkSync(join(dir, name))).toBe(join('..', '..', 'blobs', sha1(FILES[name]!)));
    }
    expect(readFileSync(join(repoDir, 'refs', 'main'), 'utf8')).toBe(commitOf('org/tiny'));
    // revision defaults to main; the token goes in the Authorization header of every call
    expect(seen[0]).toEqual({ method: 'GET', path: '/api/models/org/tiny/revision/main', auth: 'Bearer hf_abc' });
    expect(seen.every((s) => s.auth === 'Bearer hf_abc')).toBe(true);
    expect(seen.some((s) => s.path === `/org/tiny/resolve/${commitOf('org/tiny')}/tokenizer.json`)).toBe(true);
    seen.length = 0;
    expect(await downloadTokenizer({ repo: 'org/tiny', baseUrl: base, cacheDir, ...online })).toBe(dir);
    expect(seen).toEqual([]);
  });

  it('reuses a cache laid out by huggingface_hub (refs + snapshot symlinks + blobs) without the network', async () => {
    const commit = sha1('python wrote this');
    const cacheDir = pythonStyleCache('meta/llama-tiny', 'v1.0', commit, FILES);
    const port = await closedPort();
    const dir = await downloadTokenizer({ repo: 'meta/llama-tiny', revision: 'v1.0', baseUrl: `http://127.0.0.1:${port}`, cacheDir, ...online });
    expect(dir).toBe(join(cacheDir, 'models--meta--llama-tiny', 'snapshots', commit));
    // a commit id as the revision needs no ref
    expect(await downloadTokenizer({ repo: 'meta/llama-tiny', revision: commit, baseUrl: `http://127.0.0.1:${port}`, cacheDir, ...online })).toBe(dir);
    const t = await Tokenization.create({ hfRepo: 'meta/llama-tiny', revision: 'v1.0', hubBaseUrl: `http://127.0.0.1:${port}`, cacheDir, workers: 0 });
    try {
      expect(t.dir).toBe(dir);
      expect((await t.tokenizeChat('m', [{ role: 'user', content: 'hi' }]))[0]).toBe(128000);
    } finally {
      await t.close();
    }
  });

  it('HF_HUB_OFFLINE: a cached revision is served, a missing one is an error naming the cache and the fix; the hub is never asked', async () => {
    const old = process.env.HF_HUB_OFFLINE;
    process.env.HF_HUB_OFFLINE = '1';
    try {
      const commit = sha1('cached');
      const cacheDir = pythonStyleCache('org/tiny', 'main', commit, FILES);
      seen.length = 0;
      expect(await downloadTokenizer({ repo: 'org/tiny', baseUrl: base, cacheDir })).toBe(join(cacheDir, 'models--org--tiny', 'snapshots', commit));
      const missing = downloadTokenizer({ repo: 'org/tiny', revision: 'v2', baseUrl: base, cacheDir });
      await expect(missing).rejects.toMatchObject({ code: 'tokenizer_unavailable' });
      await expect(downloadTokenizer({ repo: 'org/tiny', revision: 'v2', baseUrl: base, cacheDir })).rejects.toThrow(
        new RegExp(`HF_HUB_OFFLINE is set and org/tiny@v2 is not in the Hugging Face cache ${cacheDir} .*huggingface-cli download org/tiny tokenizer\\.json tokenizer_config\\.json --revision v2.*or unset HF_HUB_OFFLINE`),
      );
      expect(seen).toEqual([]);
    } finally {
      if (old === undefined) delete process.env.HF_HUB_OFFLINE;
      else process.env.HF_HUB_OFFLINE = old;
    }
  });

  it('offline @default: HF_HUB_OFFLINE set to 1, true, yes or on', () => {
    for (const v of ['1', 'true', 'YES', 'on']) expect(hubOffline({ HF_HUB_OFFLINE: v })).toBe(true);
    for (const v of [undefined, '', '0', 'false', 'no']) expect(hubOffline(v === undefined ? {} : { HF_HUB_OFFLINE: v })).toBe(false);
  });

  it('cacheDir @default: HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub', () => {
    expect(defaultHubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' })).toBe('/c');
    expect(defaultHubCacheDir({ HF_HOME: '/h', XDG_CACHE_HOME: '/x' })).toBe('/h/hub');
    expect(defaultHubCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/huggingface/hub');
    expect(defaultHubCacheDir({})).toBe(join(homedir(), '.cache', 'huggingface', 'hub'));
  });

  it('uses HF_TOKEN and HF_ENDPOINT from the environment by default', async () => {
    const old = { token: process.env.HF_TOKEN, ep: process.env.HF_ENDPOINT };
    process.env.HF_TOKEN = 'hf_secret';
    process.env.HF_ENDPOINT = `${base}/`;
    try {
      seen.length = 0;
      const dir = await downloadTokenizer({ repo: 'org/gated', revision: 'v1.0', cacheDir: cache(), ...online });
      expect(dir.endsWith(join('models--org--gated', 'snapshots', commitOf('org/gated')))).toBe(true);
      expect(seen[0]).toEqual({ method: 'GET', path: '/api/models/org/gated/revision/v1.0', auth: 'Bearer hf_secret' });
    } finally {
      if (old.token === undefined) delete process.env.HF_TOKEN;
      else process.env.HF_TOKEN = old.token;
      if (old.ep === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = old.ep;
    }
  });

  it('accepts a repo without tokenizer_config.json', async () => {
    const cacheDir = cache();
    const dir = await downloadTokenizer({ repo: 'org/noconfig', baseUrl: base, cacheDir, ...online });
    expect(existsSync(join(dir, 'tokenizer.json'))).toBe(true);
    expect(existsSync(join(dir, 'tokenizer_config.json'))).toBe(false);
    seen.length = 0;
    await downloadTokenizer({ repo: 'org/noconfig', baseUrl: base, cacheDir, ...online });
    expect(seen).toEqual([]);
  });

  it.each([
    ['org/gated', undefined, /org\/gated \(revision main\) failed with HTTP 401 .*: the repo is gated or private: set HF_TOKEN/],
    ['org/gated', 'hf_wrong', /HTTP 403 .*: the HF_TOKEN was refused/],
    ['org/missing', undefined, /org\/missing \(revision main\) failed with HTTP 404 .*: check the repo id and revision/],
    ['org/broken', undefined, /HTTP 500 .*: the hub answered with an error/],
  ])('explains a failed download of %s (token %s)', async (repo, token, re) => {
    const cacheDir = cache();
    const p = downloadTokenizer({ repo, baseUrl: base, cacheDir, ...(token ? { token } : {}), ...online });
    await expect(p).rejects.toMatchObject({ code: 'tokenizer_unavailable', status: 503 });
    await expect(downloadTokenizer({ repo, baseUrl: base, cacheDir, ...(token ? { token } : {}), ...online })).rejects.toThrow(re);
    expect(existsSync(hubRepoDir(cacheDir, repo))).toBe(false);
  });

  it('explains a network failure and a timeout', async () => {
    const port = await closedPort();
    await expect(downloadTokenizer({ repo: 'org/tiny', baseUrl: `http://127.0.0.1:${port}`, cacheDir: cache(), ...online })).rejects.toThrow(
      /cannot download http:\/\/127\.0\.0\.1:\d+\/org\/tiny \(revision main\) \(ECONNREFUSED\): check network access/,
    );
    await expect(downloadTokenizer({ repo: 'org/tiny', baseUrl: silentBase, cacheDir: cache(), timeoutMs: 300, ...online })).rejects.toThrow(/timed out after 300 ms/);
  });

  it('rejects a malformed repo id, revision or token before any request', async () => {
    seen.length = 0;
    await expect(downloadTokenizer({ repo: 'not a repo', baseUrl: base, cacheDir: cache() })).rejects.toThrow(/hfRepo "not a repo" is not a Hugging Face repo id: use "org\/name"/);
    await expect(downloadTokenizer({ repo: '../etc', baseUrl: base, cacheDir: cache() })).rejects.toThrow(/not a Hugging Face repo id/);
    await expect(downloadTokenizer({ repo: 'org/tiny', revision: '../x', baseUrl: base, cacheDir: cache() })).rejects.toThrow(/tokenizer revision "\.\.\/x" is not a branch, tag or commit name/);
    await expect(downloadTokenizer({ repo: 'org/tiny', token: 'abc', baseUrl: base, cacheDir: cache(), ...online })).rejects.toThrow(/HF_TOKEN\) does not start with "hf_"/);
    expect(seen).toEqual([]);
  });
});

describe('Tokenization from a hub repo', () => {
  it('downloads into the cache and tokenizes', async () => {
    const cacheDir = cache();
    const t = await Tokenization.create({ hfRepo: 'org/gated', hfToken: 'hf_secret', hubBaseUrl: base, cacheDir, workers: 0 });
    try {
      expect(t.dir).toBe(join(cacheDir, 'models--org--gated', 'snapshots', commitOf('org/gated')));
      expect((await t.tokenizeChat('m', [{ role: 'user', content: 'hi' }]))[0]).toBe(128000);
    } finally {
      await t.close();
    }
  });
});
