import { readFileSync } from 'node:fs';
import { PassThrough, Readable, Writable } from 'node:stream';
import { HASH_DEFAULTS, hashCommand } from '../../src/cli/hash.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.text += chunk.toString();
    cb();
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], input: string | Readable): Promise<Run> {
  const stdin = typeof input === 'string' ? Readable.from([Buffer.from(input)]) : input;
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await hashCommand(argv, { stdin, stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

interface VectorCase {
  name: string;
  block_size: number;
  PYTHONHASHSEED: string;
  tokens: number[];
  extra_keys_spec: { lora_name?: string; cache_salt?: string; mm_items?: unknown[] } | null;
  sha256_cbor: { blocks: { event_u64: { dec: string } }[] };
  sha256_cbor_64bit_legacy?: { blocks: { hash_u64: { dec: string } }[] };
}
const vectors = JSON.parse(readFileSync(new URL('../data/vllm-vectors.json', import.meta.url), 'utf8')) as { cases: VectorCase[] };
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('kvroute-epp hash: the vLLM vectors through the CLI', () => {
  const plain = vectors.cases.filter((c) => c.extra_keys_spec === null);

  test('there are plain (no extra keys) cases to run', () => {
    expect(plain.length).toBeGreaterThanOrEqual(3);
  });

  test.each(plain.map((c) => [c.name, c] as const))('%s: sha256_cbor event values', async (_n, c) => {
    const r = await run(['--algo', 'sha256_cbor', '--block-size', String(c.block_size), '--hash-seed', c.PYTHONHASHSEED], JSON.stringify(c.tokens));
    expect(r).toEqual({ code: 0, stdout: `${JSON.stringify(c.sha256_cbor.blocks.map((b) => b.event_u64.dec))}\n`, stderr: '' });
  });

  test.each(plain.map((c) => [c.name, c] as const))('%s: sha256_cbor_64bit chain', async (_n, c) => {
    const r = await run(['--algo=sha256_cbor_64bit', `--block-size=${c.block_size}`, `--hash-seed=${c.PYTHONHASHSEED}`], JSON.stringify(c.tokens));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual((c.sha256_cbor_64bit_legacy as NonNullable<VectorCase['sha256_cbor_64bit_legacy']>).blocks.map((b) => b.hash_u64.dec));
  });

  test('--lora-name and --cache-salt key the blocks like the library (vector case without its mm item)', async () => {
    const c = vectors.cases.find((x) => x.name.startsWith('extra_keys')) as VectorCase;
    const r = await run(['--hash-seed', '42', '--lora-name', 'sql-lora', '--cache-salt', 'tenant-a'], JSON.stringify(c.tokens));
    const lib = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '42' }).blockKeys(c.tokens, { loraName: 'sql-lora', cacheSalt: 'tenant-a' });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(lib.map(String));
    // Last block of that vector carries only the LoRA key, but its parent chain went through the mm block: must differ.
    expect(JSON.parse(r.stdout)[2]).not.toBe(c.sha256_cbor.blocks[2].event_u64.dec);
    const plainKeys = (await run(['--hash-seed', '42'], JSON.stringify(c.tokens))).stdout;
    expect(r.stdout).not.toBe(plainKeys);
  });
});

describe('kvroute-epp hash: defaults, input shapes, modes', () => {
  test(`defaults: --algo ${HASH_DEFAULTS.algo}, --block-size ${HASH_DEFAULTS.blockSize}, --hash-seed ${HASH_DEFAULTS.hashSeed}`, async () => {
    const toks = JSON.stringify(range(40));
    const r = await run([], toks);
    const explicit = await run(['--algo', 'sha256_cbor', '--block-size', '16', '--hash-seed', '42'], toks);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(explicit.stdout);
    // and the vector for range(40), seed 42:
    const v = vectors.cases.find((c) => c.name === 'range_0_40__bs16__seed42') as VectorCase;
    expect(JSON.parse(r.stdout)).toEqual(v.sha256_cbor.blocks.map((b) => b.event_u64.dec));
  });

  test('accepts {"token_ids": [...]} and whitespace around the JSON', async () => {
    const a = await run(['--block-size', '4'], `  {"token_ids": ${JSON.stringify(range(9))}}\n`);
    const b = await run(['--block-size', '4'], JSON.stringify(range(9)));
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout)).toHaveLength(2);
    expect(a.stdout).toBe(b.stdout);
  });

  test('reads input split over many chunks', async () => {
    const text = JSON.stringify(range(64));
    const chunks = text.match(/.{1,5}/g) as string[];
    const r = await run(['--block-size', '16'], Readable.from(chunks.map((c) => Buffer.from(c))));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveLength(4);
  });

  test('a 100,000-token input gives 6,250 keys equal to the library', async () => {
    const toks = Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 151936);
    const r = await run(['--block-size', '16'], JSON.stringify(toks));
    const lib = createTokenProcessor({ algo: 'sha256_cbor', blockSize: 16, hashSeed: '42' }).blockKeys(toks);
    expect(r.code).toBe(0);
    const got = JSON.parse(r.stdout) as string[];
    expect(got).toHaveLength(6250);
    expect(got).toEqual(lib.map(String));
  });

  test('--block-size 1 hashes every token', async () => {
    const r = await run(['--block-size', '1', '--algo', 'fast'], '[5,6,7]');
    expect(JSON.parse(r.stdout)).toHaveLength(3);
  });

  test('fewer tokens than a block print an empty array', async () => {
    expect(await run([], '[1,2,3]')).toEqual({ code: 0, stdout: '[]\n', stderr: '' });
  });

  test('fast mode: --model changes the keys; equals the library', async () => {
    const toks = range(32);
    const a = await run(['--algo', 'fast', '--model', 'a'], JSON.stringify(toks));
    const b = await run(['--algo', 'fast', '--model', 'b'], JSON.stringify(toks));
    expect(a.code).toBe(0);
    expect(a.stderr).toBe('');
    expect(a.stdout).not.toBe(b.stdout);
    const lib = createTokenProcessor({ algo: 'fast', blockSize: 16, hashSeed: '42', model: 'a' }).blockKeys(toks);
    expect(JSON.parse(a.stdout)).toEqual(lib.map(String));
  });

  test('--model with a vLLM algo prints a note and does not change the keys', async () => {
    const toks = JSON.stringify(range(32));
    const withModel = await run(['--model', 'm'], toks);
    const without = await run([], toks);
    expect(withModel.code).toBe(0);
    expect(withModel.stdout).toBe(without.stdout);
    expect(withModel.stderr).toMatch(/note: --model only changes --algo fast keys/);
  });

  test('--lora-id keys sha256_cbor_64bit blocks like the library', async () => {
    const toks = range(32);
    const r = await run(['--algo', 'sha256_cbor_64bit', '--lora-id', '7'], JSON.stringify(toks));
    const lib = createTokenProcessor({ algo: 'sha256_cbor_64bit', blockSize: 16, hashSeed: '42' }).blockKeys(toks, { loraId: 7 });
    expect(JSON.parse(r.stdout)).toEqual(lib.map(String));
  });

  test('--help and -h print the usage with every flag and exit 0', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await run([flag], '');
      expect(r.code).toBe(0);
      for (const f of ['--algo', '--block-size', '--hash-seed', '--lora-name', '--lora-id', '--cache-salt', '--model']) expect(r.stdout).toContain(f);
      expect(r.stderr).toBe('');
    }
  });
});

describe('kvroute-epp hash: bad flags and input exit 2 with a message naming the flag, value and fix', () => {
  test.each<[string, string[], string, RegExp]>([
    ['unknown algo', ['--algo', 'builtin'], '[]', /--algo: "builtin" is not a key algorithm; use one of sha256_cbor, sha256_cbor_64bit, fast/],
    ['block size not a number', ['--block-size', 'big'], '[]', /--block-size: "big" is not a non-negative integer; use the vLLM pods' --block-size, e\.g\. --block-size 16/],
    ['block size not a power of two', ['--block-size', '12'], '[]', /--block-size: 12 is not a power of two ≥ 1; use the vLLM pods' --block-size/],
    ['block size zero', ['--block-size', '0'], '[]', /--block-size: 0 is not a power of two/],
    ['block size huge', ['--block-size', '4194304'], '[]', /--block-size: 4194304 is not a power of two in \[1, 1048576\]/],
    ['lora id negative', ['--lora-id=-3'], '[]', /--lora-id: "-3" is not a non-negative integer; pass the adapter's lora_int_id/],
    ['lora id not a number', ['--lora-id', 'one'], '[]', /--lora-id: "one" is not a non-negative integer/],
    ['dash value without =', ['--lora-id', '-3'], '[]', /^kvroute-epp hash: Option '--lora-id' argument is ambiguous.*'--lora-id=-XYZ'.*see kvroute-epp hash --help/s],
    ['unknown flag', ['--seed', '1'], '[]', /Unknown option '--seed'.*; see kvroute-epp hash --help/],
    ['missing value', ['--hash-seed'], '[]', /--hash-seed.*argument missing.*see kvroute-epp hash --help/],
    ['positional', ['tokens.json'], '[]', /Unexpected argument 'tokens\.json'.*see kvroute-epp hash --help/],
    ['legacy LoRA by name', ['--algo', 'sha256_cbor_64bit', '--lora-name', 'x'], '[]', /--lora-name: "x" cannot key a sha256_cbor_64bit block.*pass extra\.loraId \(CLI --lora-id\)/],
    ['empty stdin', [], '', /stdin: empty input; pipe a JSON array of token ids/],
    ['not JSON', [], '[1,2', /stdin: not valid JSON \(.*\); pipe a JSON array of token ids, e\.g\. \[1,2,3\]/],
    ['not an array', [], '{"prompt":"hi"}', /stdin: \{"prompt":"hi"\} is not an array of token ids; pass \[1,2,3\] or \{"token_ids":\[1,2,3\]\}/],
    ['bad token id', [], '[1,2,-3]', /stdin tokens\[2\]: -3 is not a token id; token ids are integers in \[0, 4294967295\]/],
    ['string token id', [], '[1,"2"]', /stdin tokens\[1\]: "2" is not a token id/],
    ['token id too big', [], '[4294967296]', /stdin tokens\[0\]: 4294967296 is not a token id/],
  ])('%s', async (_n, argv, input, msg) => {
    const r = await run(argv, input);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^kvroute-epp hash: /);
    expect(r.stderr).not.toMatch(/TypeError|ERR_|\n./); // one clean line, no error class or code
    expect(r.stderr).toMatch(msg);
  });

  test('a terminal on stdin is refused instead of waiting for input', async () => {
    const tty = Object.assign(new PassThrough(), { isTTY: true });
    const r = await run([], tty);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/stdin is a terminal; pipe the token ids/);
  });
});
