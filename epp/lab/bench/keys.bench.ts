/**
 * Block-key benchmark: `npx tsx bench/keys.bench.ts` (from epp/).
 *
 * Side by side in one run, for a 2,000-token prompt (125 full blocks of 16):
 *  1. the CBOR encoders: our CborWriter vs cbor-x (options that make it canonical for these types),
 *     encoding the 125 `sha256_cbor` preimages (byte equality is checked first). cbor-x is not a
 *     dependency (the EPP does not use it, see src/kvindex/keys/cbor.ts): this comparison runs
 *     only when it is installed, e.g. `npm install --no-save cbor-x`, and is skipped otherwise;
 *  2. the fast-mode hash candidates, FNV-1a-64 vs XXH64 (32-bit limbs), over the same 125 blocks;
 *  3. SHA-256 through createHash vs the one-shot crypto.hash;
 *  4. the whole block-key path per mode, plus sha256_cbor built on cbor-x (when installed).
 * Prints a table with the median time per prompt and ratios. Results feed the decisions recorded
 * at the top of src/kvindex/keys/cbor.ts and src/kvindex/keys/token-processor.ts.
 */
import { createHash, hash } from 'node:crypto';
import { CborWriter, encodeCanonical } from '../../src/kvindex/keys/cbor.js';
import { fnv1a64, u64Out, xxh64 } from '../../src/kvindex/keys/hash-fast.js';
import { createTokenProcessor } from '../../src/kvindex/keys/token-processor.js';

const N_TOKENS = 2000;
const BS = 16;
const SEED = '42';

// Deterministic pseudo-random token ids (Qwen-sized vocabulary), so runs are comparable.
let s = 1234;
const tokens: number[] = Array.from({ length: N_TOKENS }, () => {
  s = (Math.imul(s, 1103515245) + 12345) >>> 0;
  return (s % 151936) | 0; // small ints, as JSON.parse gives them
});
const nBlocks = Math.floor(N_TOKENS / BS);

/** The part of cbor-x's Encoder used here. */
interface CborXEncoder {
  encode(v: unknown): Buffer;
}
/** cbor-x's Encoder when the package is installed (optional: not a dependency), else undefined. */
async function optionalCborX(): Promise<CborXEncoder | undefined> {
  const name = 'cbor-x'; // a variable: type-checking must not need the package
  try {
    const mod = (await import(name)) as { Encoder: new (opts: object) => CborXEncoder };
    return new mod.Encoder({ useRecords: false, tagUint8Array: false, mapsAsObjects: true, variableMapSize: true });
  } catch {
    console.log('cbor-x is not installed: the CBOR encoder comparison is skipped (npm install --no-save cbor-x to run it)');
    return undefined;
  }
}
const cborx = await optionalCborX();
const root = new Uint8Array(createHash('sha256').update(encodeCanonical(SEED)).digest());

// Realistic parents: the actual sha256_cbor chain of the prompt.
const parents: Uint8Array[] = [];
{
  let prev = root;
  const w = new CborWriter();
  for (let b = 0; b < nBlocks; b++) {
    parents.push(prev);
    w.reset().array(3).bytes(prev).uintArray(tokens, b * BS, (b + 1) * BS).null();
    prev = new Uint8Array(createHash('sha256').update(w.view()).digest());
  }
}

// 0. Does cbor-x reproduce our preimages byte for byte?
if (cborx) {
  const w = new CborWriter();
  let same = 0;
  for (let b = 0; b < nBlocks; b++) {
    w.reset().array(3).bytes(parents[b]).uintArray(tokens, b * BS, (b + 1) * BS).null();
    const x = cborx.encode([parents[b], tokens.slice(b * BS, (b + 1) * BS), null]);
    if (Buffer.compare(Buffer.from(w.view()), x) === 0) same++;
  }
  const ext = cborx.encode(['sql-lora', ['f00dfeed', -6], 'tenant-a']).toString('hex');
  const big = cborx.encode([12n, 2 ** 32]).toString('hex');
  console.log(`cbor-x byte-equal preimages: ${same}/${nBlocks}; extra keys ${ext === Buffer.from(encodeCanonical(['sql-lora', ['f00dfeed', -6], 'tenant-a'])).toString('hex') ? 'equal' : 'DIFFER'}`);
  console.log(`cbor-x [12n, 2**32] -> ${big} (canonical: ${Buffer.from(encodeCanonical([12n, 2n ** 32n])).toString('hex')})`);
}

function median(xs: number[]): number {
  const a = [...xs].sort((p, q) => p - q);
  return a[Math.floor(a.length / 2)];
}

/**
 * Runs every registered case in interleaved rounds (case A batch, case B batch, …, repeat), so
 * that load from other processes on a shared machine hits all cases alike, and returns the median
 * µs per call of each. Each batch is sized to ~200 µs: short enough to fit in one scheduler
 * time slice on a busy box (the median then skips the preempted batches), long enough for the
 * timer. Warm-up first (JIT).
 */
function measure(cases: readonly [string, () => unknown][], rounds = 101, batchUs = 200): [string, number][] {
  const inner = cases.map(([, fn]) => {
    const t0 = process.hrtime.bigint();
    let n = 0;
    while (Number(process.hrtime.bigint() - t0) < 100e6 || n < 20) {
      fn();
      n++;
    }
    const perCallUs = Number(process.hrtime.bigint() - t0) / 1000 / n;
    return Math.max(1, Math.round(batchUs / perCallUs));
  });
  const xs = cases.map((): number[] => []);
  for (let r = 0; r < rounds; r++) {
    cases.forEach(([, fn], c) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < inner[c]; i++) fn();
      xs[c].push(Number(process.hrtime.bigint() - t0) / 1000 / inner[c]);
    });
  }
  return cases.map(([name], c) => [name, median(xs[c])]);
}

let sink = 0;
const w = new CborWriter();
const cases: [string, () => unknown][] = [];
const row = (name: string, fn: () => unknown): void => {
  cases.push([name, fn]);
};

// 1. Encoders.
row('cbor: own CborWriter, 125 preimages', () => {
  for (let b = 0; b < nBlocks; b++) {
    w.reset().array(3).bytes(parents[b]).uintArray(tokens, b * BS, (b + 1) * BS).null();
    sink += w.length;
  }
});
if (cborx) {
  row('cbor: cbor-x Encoder, 125 preimages', () => {
    for (let b = 0; b < nBlocks; b++) sink += cborx.encode([parents[b], tokens.slice(b * BS, (b + 1) * BS), null]).length;
  });
}

// 2. Fast-mode hash candidates over the fast-mode block layout (8-byte parent + 16 × u32).
const blockBuf = new Uint8Array(8 + 4 * BS);
const out = u64Out();
const fillBlock = (b: number): void => {
  const dv = new DataView(blockBuf.buffer);
  dv.setUint32(0, b, true);
  for (let i = 0; i < BS; i++) dv.setUint32(8 + 4 * i, tokens[b * BS + i], true);
};
const blocks: Uint8Array[] = [];
for (let b = 0; b < nBlocks; b++) {
  fillBlock(b);
  blocks.push(blockBuf.slice());
}
row('fast fn: FNV-1a-64, 125 blocks', () => {
  for (let b = 0; b < nBlocks; b++) {
    fnv1a64(blocks[b], blocks[b].length, out);
    sink += out[1];
  }
});
row('fast fn: XXH64, 125 blocks', () => {
  for (let b = 0; b < nBlocks; b++) {
    xxh64(blocks[b], blocks[b].length, out);
    sink += out[1];
  }
});
row('sha256: createHash, 125 preimages (+ own CBOR)', () => {
  for (let b = 0; b < nBlocks; b++) {
    w.reset().array(3).bytes(parents[b]).uintArray(tokens, b * BS, (b + 1) * BS).null();
    sink += createHash('sha256').update(w.view()).digest()[0];
  }
});
row('sha256: crypto.hash, 125 preimages (+ own CBOR)', () => {
  for (let b = 0; b < nBlocks; b++) {
    w.reset().array(3).bytes(parents[b]).uintArray(tokens, b * BS, (b + 1) * BS).null();
    sink += hash('sha256', w.view(), 'buffer')[0];
  }
});

// 4. Whole paths.
const procs = {
  sha256_cbor: createTokenProcessor({ algo: 'sha256_cbor', blockSize: BS, hashSeed: SEED }),
  sha256_cbor_64bit: createTokenProcessor({ algo: 'sha256_cbor_64bit', blockSize: BS, hashSeed: SEED }),
  fast: createTokenProcessor({ algo: 'fast', blockSize: BS, hashSeed: SEED, model: 'Qwen/Qwen3-0.6B' }),
};
for (const [name, tp] of Object.entries(procs)) {
  row(`keys: ${name} (2,000 tokens)`, () => {
    sink += tp.blockKeys(tokens).length;
  });
}
if (cborx) {
  row('keys: sha256_cbor on cbor-x (2,000 tokens)', () => {
    let prev: Uint8Array = root;
    const keys: bigint[] = [];
    for (let b = 0; b < nBlocks; b++) {
      const d = createHash('sha256').update(cborx.encode([prev, tokens.slice(b * BS, (b + 1) * BS), null])).digest();
      keys.push(d.readBigUInt64BE(24));
      prev = d;
    }
    sink += keys.length;
  });
}
{
  const withExtra = { loraName: 'sql-lora', cacheSalt: 'tenant-a', mmInputs: [{ identifier: 'f00dfeed', offset: 100, length: 300 }] };
  row('keys: sha256_cbor + LoRA/salt/mm (2,000 tokens)', () => {
    sink += procs.sha256_cbor.blockKeys(tokens, withExtra).length;
  });
  row('keys: fast + LoRA/salt/mm (2,000 tokens)', () => {
    sink += procs.fast.blockKeys(tokens, withExtra).length;
  });
}

const results = measure(cases);
const get = (prefix: string): number => (results.find(([n]) => n.startsWith(prefix)) as [string, number])[1];
const pad = (x: string, n: number): string => x.padEnd(n);
console.log(`\nnode ${process.version}, ${N_TOKENS} tokens, block ${BS}, ${nBlocks} blocks; median µs per prompt\n`);
console.log(`${pad('case', 50)} ${'µs'.padStart(9)} ${'µs/block'.padStart(9)}`);
for (const [name, us] of results) console.log(`${pad(name, 50)} ${us.toFixed(1).padStart(9)} ${(us / nBlocks).toFixed(3).padStart(9)}`);
console.log('\nratios');
if (cborx) console.log(`  cbor-x / own encoder               ${(get('cbor: cbor-x') / get('cbor: own')).toFixed(2)}×`);
console.log(`  FNV-1a-64 / XXH64                  ${(get('fast fn: FNV') / get('fast fn: XXH64')).toFixed(2)}×`);
if (cborx) console.log(`  sha256_cbor on cbor-x / on own     ${(get('keys: sha256_cbor on cbor-x') / get('keys: sha256_cbor (')).toFixed(2)}×`);
console.log(`  sha256_cbor / fast                 ${(get('keys: sha256_cbor (') / get('keys: fast (')).toFixed(2)}×`);
console.log(`  sha256_cbor_64bit / sha256_cbor    ${(get('keys: sha256_cbor_64bit') / get('keys: sha256_cbor (')).toFixed(2)}×`);
console.log(`  createHash / crypto.hash           ${(get('sha256: createHash') / get('sha256: crypto.hash')).toFixed(2)}×`);
if (sink === 42) console.log('');
