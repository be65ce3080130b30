/**
 * Tokenizer files from the Hugging Face hub: `GET <base>/<repo>/resolve/<revision>/<file>` with
 * `Authorization: Bearer <HF_TOKEN>`, written atomically into a cache directory, so the download
 * happens once per (repo, revision) and a restart with no network still starts.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TokenizationError, show } from './errors.js';

/** Options of `downloadTokenizer`; all but the repo optional. */
export interface HubOptions {
  /** Repo id `org/name`, e.g. `meta-llama/Llama-3.1-8B-Instruct`. */
  readonly repo: string;
  /**
   * Branch, tag or commit.
   * @default 'main'
   */
  readonly revision?: string;
  /**
   * Directory the files are cached in (`<cacheDir>/<org>--<name>/<revision>/`).
   * @default '/tmp/kvroute-tokenizers' (the config default `tokenizer.cacheDir`)
   */
  readonly cacheDir?: string;
  /**
   * Access token for gated or private repos.
   * @default process.env.HF_TOKEN
   */
  readonly token?: string;
  /**
   * Hub base URL (a mirror, or a local server in tests).
   * @default process.env.HF_ENDPOINT ?? 'https://huggingface.co'
   */
  readonly baseUrl?: string;
  /**
   * Timeout per file.
   * @default 30000
   */
  readonly timeoutMs?: number;
}

/** Files fetched; tokenizer_config.json may be absent from a repo (then no chat template). */
const FILES: readonly { name: string; required: boolean }[] = [
  { name: 'tokenizer.json', required: true },
  { name: 'tokenizer_config.json', required: false },
];

const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** Cache directory of a repo revision. */
export function hubCacheDir(cacheDir: string, repo: string, revision: string): string {
  return join(cacheDir, repo.replace('/', '--'), revision.replace(/[^\w.-]/g, '_'));
}

/**
 * Make sure tokenizer.json (and tokenizer_config.json when the repo has one) of `repo` are in the
 * cache; download what is missing. Returns the directory holding them.
 */
export async function downloadTokenizer(opts: HubOptions): Promise<string> {
  const { repo } = opts;
  if (!REPO_RE.test(repo)) {
    throw new TokenizationError('tokenizer_unavailable', `hfRepo ${show(repo)} is not a Hugging Face repo id: use "org/name", e.g. "meta-llama/Llama-3.1-8B-Instruct"`);
  }
  const revision = opts.revision ?? 'main';
  const base = (opts.baseUrl ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const token = opts.token ?? process.env.HF_TOKEN;
  const dir = hubCacheDir(opts.cacheDir ?? '/tmp/kvroute-tokenizers', repo, revision);
  const missingMarker = (name: string): string => join(dir, `${name}.absent`);
  await mkdir(dir, { recursive: true });
  for (const f of FILES) {
    if (existsSync(join(dir, f.name)) || existsSync(missingMarker(f.name))) continue;
    const url = `${base}/${repo}/resolve/${encodeURIComponent(revision)}/${f.name}`;
    const body = await fetchFile(url, token, opts.timeoutMs ?? 30_000, f.required);
    if (body === undefined) {
      await writeFile(missingMarker(f.name), '');
      continue;
    }
    const tmp = join(dir, `${f.name}.${process.pid}.${Date.now()}.tmp`);
    await writeFile(tmp, body);
    await rename(tmp, join(dir, f.name));
  }
  return dir;
}

async function fetchFile(url: string, token: string | undefined, timeoutMs: number, required: boolean): Promise<Buffer | undefined> {
  let res: Response;
  try {
    res = await fetch(url, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      redirect: 'follow',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = (err as Error).name === 'TimeoutError' ? `timed out after ${timeoutMs} ms` : (cause?.code ?? cause?.message ?? (err as Error).message);
    throw new TokenizationError(
      'tokenizer_unavailable',
      `cannot download ${url} (${why}): check network access to the hub, or copy tokenizer.json into a directory and set the tokenizer path instead`,
      { cause: err },
    );
  }
  if (res.status === 404 && !required) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok) {
    await res.body?.cancel();
    const hint =
      res.status === 401 || res.status === 403
        ? token
          ? 'the HF_TOKEN was refused: make sure it is valid and that its account has accepted the model license'
          : 'the repo is gated or private: set HF_TOKEN to a token whose account has access'
        : res.status === 404
          ? 'check the repo id and revision (and that the repo ships tokenizer.json)'
          : 'the hub answered with an error; retry later or use a local tokenizer path';
    throw new TokenizationError('tokenizer_unavailable', `downloading ${url} failed with HTTP ${res.status}: ${hint}`);
  }
  return Buffer.from(await res.arrayBuffer());
}
