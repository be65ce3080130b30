/**
 * `kvroute-epp hash`: block keys of token ids read from stdin, printed as a JSON array of decimal
 * strings (for the vLLM modes: the u64 values vLLM puts in its KV events).
 */
import { parseArgs } from 'node:util';
import { createTokenProcessor, KEY_ALGOS, TokenProcessorError } from '../kvindex/keys/token-processor.js';
import type { BlockExtraKeys, KeyAlgo } from '../kvindex/types.js';

/** Defaults match the EPP config defaults (contract/config.ts), so `hash` and `serve` agree. */
export const HASH_DEFAULTS = { algo: 'sha256_cbor' as KeyAlgo, blockSize: 16, hashSeed: '42' } as const;

export const HASH_USAGE = `Usage: kvroute-epp hash [flags] < token-ids.json

Reads token ids from stdin (a JSON array, or an object with "token_ids") and prints the key of
every full block as a JSON array of decimal strings. A trailing partial block is not hashed.

Flags:
  --algo <a>          ${KEY_ALGOS.join(' | ')}                 [${HASH_DEFAULTS.algo}]
                      sha256_cbor: vLLM >= 0.10.2 event values; sha256_cbor_64bit: vLLM
                      0.10.0-0.10.1; fast: the EPP's own request keys
  --block-size <n>    tokens per block, a power of two (vLLM --block-size)   [${HASH_DEFAULTS.blockSize}]
  --hash-seed <s>     PYTHONHASHSEED of the vLLM pods (string, verbatim)     [${HASH_DEFAULTS.hashSeed}]
  --lora-name <l>     LoRA adapter name (vLLM lora_name), keys every block
  --lora-id <n>       LoRA integer id (vLLM lora_int_id); needed by sha256_cbor_64bit
  --cache-salt <s>    request cache_salt (keys block 0 only)
  --model <m>         model name folded into the fast-mode root (fast only)
  -h, --help          this help

Example:
  echo '[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]' | kvroute-epp hash --hash-seed 42
`;

interface Io {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

class HashUsageError extends Error {}

/** The message of an error from any realm (node internals throw errors of their own realm under vm). */
function messageOf(err: unknown): string {
  if (err !== null && typeof err === 'object' && 'message' in err && typeof err.message === 'string') return err.message;
  return String(err);
}

/** TokenProcessorError fields → the flag that set them. */
const FLAG_OF_FIELD: Readonly<Record<string, string>> = {
  algo: '--algo',
  blockSize: '--block-size',
  hashSeed: '--hash-seed',
  model: '--model',
  'extra.loraName': '--lora-name',
  'extra.loraId': '--lora-id',
  'extra.cacheSalt': '--cache-salt',
};

async function readAll(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer | string));
  return Buffer.concat(chunks).toString('utf8');
}

function parseTokens(text: string): number[] {
  if (text.trim() === '') {
    throw new HashUsageError(`stdin: empty input; pipe a JSON array of token ids, e.g. echo '[1,2,3]' | kvroute-epp hash`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new HashUsageError(`stdin: not valid JSON (${messageOf(err)}); pipe a JSON array of token ids, e.g. [1,2,3]`);
  }
  const arr =
    doc !== null && typeof doc === 'object' && !Array.isArray(doc) && 'token_ids' in doc ? (doc as { token_ids: unknown }).token_ids : doc;
  if (!Array.isArray(arr)) {
    const shown = JSON.stringify(arr);
    throw new HashUsageError(
      `stdin: ${shown.length > 60 ? `${shown.slice(0, 60)}…` : shown} is not an array of token ids; pass [1,2,3] or {"token_ids":[1,2,3]}`,
    );
  }
  return arr as number[];
}

function parseIntFlag(flag: string, raw: string, fix: string): number {
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new HashUsageError(`--${flag}: "${raw}" is not a non-negative integer; ${fix}`);
  }
  return Number(raw);
}

export async function hashCommand(argv: string[], io: Io): Promise<number> {
  try {
    let values;
    try {
      ({ values } = parseArgs({
        args: argv,
        strict: true,
        allowPositionals: false,
        options: {
          algo: { type: 'string' },
          'block-size': { type: 'string' },
          'hash-seed': { type: 'string' },
          'lora-name': { type: 'string' },
          'lora-id': { type: 'string' },
          'cache-salt': { type: 'string' },
          model: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      }));
    } catch (err) {
      throw new HashUsageError(`${messageOf(err).replace(/\s*\n\s*/g, ' ')}; see kvroute-epp hash --help`);
    }
    if (values.help === true) {
      io.stdout.write(HASH_USAGE);
      return 0;
    }
    const algo = (values.algo ?? HASH_DEFAULTS.algo) as KeyAlgo;
    if (!KEY_ALGOS.includes(algo)) {
      throw new HashUsageError(`--algo: "${values.algo}" is not a key algorithm; use one of ${KEY_ALGOS.join(', ')}`);
    }
    const blockSize =
      values['block-size'] === undefined
        ? HASH_DEFAULTS.blockSize
        : parseIntFlag('block-size', values['block-size'], "use the vLLM pods' --block-size, e.g. --block-size 16");
    if (blockSize < 1 || (blockSize & (blockSize - 1)) !== 0) {
      throw new HashUsageError(`--block-size: ${blockSize} is not a power of two ≥ 1; use the vLLM pods' --block-size, e.g. --block-size 16`);
    }
    const hashSeed = values['hash-seed'] ?? HASH_DEFAULTS.hashSeed;
    const extra: { -readonly [K in keyof BlockExtraKeys]: BlockExtraKeys[K] } = {};
    if (values['lora-name'] !== undefined) extra.loraName = values['lora-name'];
    if (values['lora-id'] !== undefined) {
      extra.loraId = parseIntFlag('lora-id', values['lora-id'], "pass the adapter's lora_int_id, e.g. --lora-id 1");
    }
    if (values['cache-salt'] !== undefined) extra.cacheSalt = values['cache-salt'];
    if (values.model !== undefined && algo !== 'fast') {
      io.stderr.write(`kvroute-epp hash: note: --model only changes --algo fast keys; vLLM's ${algo} hashes do not include the model\n`);
    }
    const tp = createTokenProcessor({ algo, blockSize, hashSeed, ...(values.model !== undefined ? { model: values.model } : {}) });

    if ((io.stdin as { isTTY?: boolean }).isTTY === true) {
      throw new HashUsageError(`stdin is a terminal; pipe the token ids, e.g. echo '[1,2,3]' | kvroute-epp hash`);
    }
    const tokens = parseTokens(await readAll(io.stdin));
    const keys = tp.blockKeys(tokens, Object.keys(extra).length > 0 ? extra : undefined);
    io.stdout.write(`${JSON.stringify(keys.map((k) => k.toString()))}\n`);
    return 0;
  } catch (err) {
    if (err instanceof HashUsageError) {
      io.stderr.write(`kvroute-epp hash: ${err.message}\n`);
      return 2;
    }
    if (err instanceof TokenProcessorError) {
      const flag = FLAG_OF_FIELD[err.field];
      const where = flag !== undefined ? flag : err.field.startsWith('tokens') ? `stdin ${err.field}` : err.field;
      io.stderr.write(`kvroute-epp hash: ${where}: ${err.reason}\n`);
      return 2;
    }
    throw err;
  }
}
