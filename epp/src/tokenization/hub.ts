/**
 * Tokenizer files from the Hugging Face hub, through @huggingface/hub, into a cache with the
 * Hugging Face hub cache layout (the one huggingface_hub / `huggingface-cli download` use):
 *
 *   <cacheDir>/models--<org>--<name>/blobs/<etag>                 the file contents
 *   <cacheDir>/models--<org>--<name>/snapshots/<commit>/<file>     symlinks to the blobs
 *   <cacheDir>/models--<org>--<name>/refs/<revision>               the commit a branch/tag pointed to
 *
 * So a cache filled by Python (or by another EPP) is reused as is, and what the EPP downloads is
 * usable by Python. A revision already in the cache (refs/<revision>, or a commit id, with
 * tokenizer.json in its snapshot) is served without any network access, so a restart without
 * network still starts. With `HF_HUB_OFFLINE=1` (huggingface_hub's switch; the library itself
 * does not read it) nothing is ever fetched: a cache miss is an error naming the fix.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { downloadFileToCacheDir, modelInfo, pathsInfo } from '@huggingface/hub';
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
   * Hugging Face hub cache directory (the layout above).
   * @default defaultHubCacheDir(): HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
   */
  readonly cacheDir?: string;
  /**
   * Access token for gated or private repos (Hugging Face tokens start with `hf_`).
   * @default process.env.HF_TOKEN
   */
  readonly token?: string;
  /**
   * Hub base URL (a mirror, or a local server in tests).
   * @default process.env.HF_ENDPOINT ?? 'https://huggingface.co'
   */
  readonly baseUrl?: string;
  /**
   * Timeout per request to the hub.
   * @default 30000
   */
  readonly timeoutMs?: number;
  /**
   * Never touch the network: serve from the cache or fail.
   * @default HF_HUB_OFFLINE is set to 1, true, yes or on
   */
  readonly offline?: boolean;
}

/** Files fetched; tokenizer_config.json may be absent from a repo (then no chat template). */
const REQUIRED = 'tokenizer.json';
const OPTIONAL = 'tokenizer_config.json';

const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;
const REVISION_RE = /^[\w.-]+$/;
const COMMIT_RE = /^[0-9a-f]{40}$/;

/** The Hugging Face hub cache directory from the environment, as huggingface_hub resolves it. */
export function defaultHubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  return join(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface'), 'hub');
}

/** Whether HF_HUB_OFFLINE asks for offline mode. */
export function hubOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? '');
}

/** A model repo's folder in the cache: `<cacheDir>/models--<org>--<name>`. */
export function hubRepoDir(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split('/').join('--')}`);
}

/** The cached snapshot directory of `revision` holding tokenizer.json, or undefined. */
function cachedSnapshot(repoDir: string, revision: string): string | undefined {
  let commit = revision;
  if (!COMMIT_RE.test(revision)) {
    const ref = join(repoDir, 'refs', revision);
    if (!existsSync(ref)) return undefined;
    commit = readFileSync(ref, 'utf8').trim();
  }
  const dir = join(repoDir, 'snapshots', commit);
  return existsSync(join(dir, REQUIRED)) ? dir : undefined;
}

/**
 * Make sure tokenizer.json (and tokenizer_config.json when the repo has one) of `repo` at
 * `revision` are in the cache; download what is missing. Returns the snapshot directory holding
 * them.
 */
export async function downloadTokenizer(opts: HubOptions): Promise<string> {
  const { repo } = opts;
  if (!REPO_RE.test(repo)) {
    throw new TokenizationError('tokenizer_unavailable', `hfRepo ${show(repo)} is not a Hugging Face repo id: use "org/name", e.g. "meta-llama/Llama-3.1-8B-Instruct"`);
  }
  const revision = opts.revision ?? 'main';
  if (!REVISION_RE.test(revision)) {
    throw new TokenizationError('tokenizer_unavailable', `tokenizer revision ${show(revision)} is not a branch, tag or commit name: use letters, digits, '.', '_' or '-', e.g. "main"`);
  }
  const cacheDir = opts.cacheDir ?? defaultHubCacheDir();
  const repoDir = hubRepoDir(cacheDir, repo);
  const hit = cachedSnapshot(repoDir, revision);
  if (hit !== undefined) return hit;
  if (opts.offline ?? hubOffline()) {
    throw new TokenizationError(
      'tokenizer_unavailable',
      `HF_HUB_OFFLINE is set and ${repo}@${revision} is not in the Hugging Face cache ${cacheDir} (no ${REQUIRED} under ${repoDir}): ` +
        `fill that cache where the hub is reachable (huggingface-cli download ${repo} ${REQUIRED} ${OPTIONAL} --revision ${revision}, with HF_HUB_CACHE=${cacheDir}), ` +
        `set the tokenizer path to a directory holding ${REQUIRED}, or unset HF_HUB_OFFLINE`,
    );
  }
  const hubUrl = (opts.baseUrl ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const token = opts.token ?? process.env.HF_TOKEN;
  if (token !== undefined && token !== '' && !token.startsWith('hf_')) {
    throw new TokenizationError('tokenizer_unavailable', `the Hugging Face token (HF_TOKEN) does not start with "hf_": set it to a user access token from huggingface.co/settings/tokens`);
  }
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const common = {
    hubUrl,
    ...(token ? { accessToken: token } : {}),
    fetch: (input: string | URL | Request, init?: RequestInit): Promise<Response> => fetch(input, { ...init, signal: AbortSignal.timeout(timeoutMs) }),
  };
  try {
    // The commit the revision points to now: both files come from that one snapshot.
    const { sha } = await modelInfo({ name: repo, revision, additionalFields: ['sha'], ...common });
    if (typeof sha !== 'string' || !COMMIT_RE.test(sha)) throw new Error(`the hub answered no commit id for ${repo}@${revision}`);
    const present = new Set((await pathsInfo({ repo, paths: [REQUIRED, OPTIONAL], revision: sha, ...common })).map((p) => p.path));
    if (!present.has(REQUIRED)) {
      throw new TokenizationError('tokenizer_unavailable', `${repo}@${revision} (commit ${sha}) has no ${REQUIRED}: pick a repo that ships a fast tokenizer, or set the tokenizer path to a directory holding one`);
    }
    for (const path of [REQUIRED, OPTIONAL]) {
      if (present.has(path)) await downloadFileToCacheDir({ repo, path, revision: sha, cacheDir, ...common });
    }
    if (revision !== sha) {
      await mkdir(join(repoDir, 'refs'), { recursive: true });
      await writeFile(join(repoDir, 'refs', revision), sha);
    }
    return join(repoDir, 'snapshots', sha);
  } catch (err) {
    if (err instanceof TokenizationError) throw err;
    throw explain(err, `${hubUrl}/${repo}`, revision, token, timeoutMs);
  }
}

/** A failed hub call as a TokenizationError naming the cause and the fix. */
function explain(err: unknown, what: string, revision: string, token: string | undefined, timeoutMs: number): TokenizationError {
  const e = err as { name?: string; message?: string; statusCode?: number; url?: string; cause?: { code?: string; message?: string; name?: string } };
  const status = e.statusCode;
  if (typeof status === 'number') {
    const hint =
      status === 401 || status === 403
        ? token
          ? 'the HF_TOKEN was refused: make sure it is valid and that its account has accepted the model license'
          : 'the repo is gated or private: set HF_TOKEN to a token whose account has access'
        : status === 404
          ? 'check the repo id and revision'
          : 'the hub answered with an error; retry later or use a local tokenizer path';
    return new TokenizationError('tokenizer_unavailable', `downloading ${what} (revision ${revision}) failed with HTTP ${status} at ${e.url ?? what}: ${hint}`, { cause: err });
  }
  const timedOut = e.name === 'TimeoutError' || e.cause?.name === 'TimeoutError';
  const why = timedOut ? `timed out after ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message ?? String(err));
  return new TokenizationError(
    'tokenizer_unavailable',
    `cannot download ${what} (revision ${revision}) (${why}): check network access to the hub, or copy tokenizer.json into a directory and set the tokenizer path instead`,
    { cause: err },
  );
}
