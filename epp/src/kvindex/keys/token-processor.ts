/**
 * Block keys: token ids → one 64-bit key per full block, chained from a seed root.
 *
 * Modes (docs/facts/vllm-kv-events.md, "Block hashes"):
 * - `sha256_cbor` — vLLM ≥ 0.10.2. NONE_HASH = sha256(CBOR text(PYTHONHASHSEED)); block i =
 *   sha256(canonical CBOR [parent 32-byte bstr, [tokens], extra keys | null]); the key is the
 *   event value: digest bytes 24..31 read big-endian (`VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=1`).
 * - `sha256_cbor_64bit` — vLLM 0.10.0–0.10.1.x. The chain itself is the u64 low 64 bits of each
 *   digest: NONE_HASH = low64(sha256(CBOR text(seed))), parent is a CBOR uint, and a parent of 0
 *   (falsy in Python) is replaced by NONE_HASH as vLLM did.
 * - `fast` — the index's own request keys: FNV-1a-64 over [parent u64 LE ‖ tokens u32 LE ‖
 *   FNV-1a-64(CBOR extra keys) u64 LE when the block has extra keys]; root = FNV-1a-64(CBOR
 *   ["kvroute-fast-v1", hashSeed, model | null]), so different seeds or models never share keys.
 *   Only the EPP computes these keys (read path and write path), so they need not match vLLM.
 *
 *   Why FNV-1a-64: `npx tsx bench/keys.bench.ts` hashes the 125 blocks of a 2,000-token prompt
 *   (block 16) with both candidates, each written with 32-bit limb arithmetic in int32 registers
 *   (hash-fast.ts). Last 3 runs (2 shared cores, load ~16): FNV-1a-64 14–19 µs per prompt,
 *   XXH64 95–104 µs, so FNV takes 0.15–0.18× of XXH64's time. FNV's prime 2^40 + 0x1b3 turns the
 *   64-bit multiply into one Math.imul, two 16×9-bit products and a shift; XXH64 needs full
 *   64×64 multiplies split into 16-bit pieces (~30 per block). The whole `fast` path costs
 *   21–23 µs per prompt (0.17–0.19 µs per block, bigint key included), 5.6–5.8× less than
 *   sha256_cbor (117–131 µs). FNV-1a-64 is also what llm-d's Go indexer uses for its request
 *   keys, and any language reproduces it (Go hash/fnv New64a). Its weaker avalanche does not
 *   matter here: keys are only compared for equality, and the tables that hold them (JS Map,
 *   Redis) hash them again.
 *
 * Extra keys (vLLM `generate_block_hash_extra_keys`; docs/facts/vllm-kv-events.md, "Block hashes"), in this order:
 *   LoRA (`loraName`, or `loraId` where vLLM used `lora_int_id`), then every multimodal item that
 *   overlaps the block as `[identifier, offset - blockStart]` (negative when the item began in an
 *   earlier block; `sha256_cbor_64bit` uses the identifier alone, as vLLM 0.10 did), then
 *   `cacheSalt` on block 0 of the request only. No key → CBOR null. Or, with `engineExtraKeys`
 *   (a BlockStored event's `extra_keys`), each block's keys exactly as vLLM reported them.
 *
 * With a `parent` chain state the tokens continue an earlier sequence: block and multimodal
 * offsets are relative to `tokens[0]`, and `cacheSalt` is not applied (block 0 came before).
 */
import * as nodeCrypto from 'node:crypto';
import { CborWriter, encodeCanonical, type CborValue } from './cbor.js';
import { fnv1a64, toBigInt, u64Out } from './hash-fast.js';
import type { BlockExtraKeys, BlockKey, ChainState, KeyAlgo, TokenProcessor, TokenProcessorOptions } from '../types.js';

/** Key algorithms accepted by `createTokenProcessor`. */
export const KEY_ALGOS: readonly KeyAlgo[] = ['sha256_cbor', 'sha256_cbor_64bit', 'fast'];

/** Largest block size accepted (vLLM block sizes are 1..256 in practice). */
export const MAX_BLOCK_SIZE = 1 << 20;

const MAX_TOKEN_ID = 0xffffffff;
const UTF8 = new TextEncoder();

/** Bad options, tokens or extra keys. `field` names the input that was wrong. */
export class TokenProcessorError extends Error {
  constructor(
    readonly field: string,
    /** What was wrong with the value, and the fix (the message without the field). */
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'TokenProcessorError';
  }
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  return String(v);
}

function validateOptions(opts: TokenProcessorOptions): void {
  if (opts === null || typeof opts !== 'object') {
    throw new TokenProcessorError('options', `${show(opts)} is not an object; pass { algo, blockSize, hashSeed }`);
  }
  if (!KEY_ALGOS.includes(opts.algo)) {
    throw new TokenProcessorError('algo', `${show(opts.algo)} is not a key algorithm; use one of ${KEY_ALGOS.join(', ')}`);
  }
  const bs = opts.blockSize;
  if (typeof bs !== 'number' || !Number.isInteger(bs) || bs < 1 || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) {
    throw new TokenProcessorError(
      'blockSize',
      `${show(bs)} is not a power of two in [1, ${MAX_BLOCK_SIZE}]; use the block size of the vLLM pods (vLLM's default is 16)`,
    );
  }
  if (typeof opts.hashSeed !== 'string') {
    throw new TokenProcessorError(
      'hashSeed',
      `${show(opts.hashSeed)} is not a string; pass the PYTHONHASHSEED value of the vLLM pods as a string, e.g. "42"`,
    );
  }
  if (opts.model !== undefined && typeof opts.model !== 'string') {
    throw new TokenProcessorError('model', `${show(opts.model)} is not a string; pass the served model name or leave it undefined`);
  }
}

interface MmItem {
  readonly id: Uint8Array;
  readonly offset: number;
  readonly end: number;
}

/** Extra keys validated and pre-encoded once per call. */
interface PreparedExtra {
  readonly lora: number | Uint8Array | undefined;
  readonly salt: Uint8Array | undefined;
  readonly mm: readonly MmItem[];
  /** engineExtraKeys: the verbatim per-block keys (null = none), replacing the fields above. */
  readonly raw?: readonly (readonly CborValue[] | null)[];
}

/** Why `v` is not a CBOR value this encoder writes, or undefined when it is one. */
function cborProblem(v: unknown, depth = 0): string | undefined {
  if (v === null || typeof v === 'string' || v instanceof Uint8Array) return undefined;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? undefined : `${show(v)} is not an integer`;
  if (typeof v === 'bigint') return v >= -(1n << 64n) && v < 1n << 64n ? undefined : `${show(v)} does not fit in 64 bits`;
  if (Array.isArray(v)) {
    if (depth > 8) return 'nests deeper than 8 arrays';
    for (const item of v as unknown[]) {
      const p = cborProblem(item, depth + 1);
      if (p !== undefined) return p;
    }
    return undefined;
  }
  return `${show(v)} is not a string, integer, bytes, null or array`;
}

function prepareRaw(raw: unknown, others: boolean): PreparedExtra {
  if (others) {
    throw new TokenProcessorError(
      'extra.engineExtraKeys',
      'is set together with loraName/loraId/cacheSalt/mmInputs; it replaces them, so pass one or the other',
    );
  }
  if (!Array.isArray(raw)) {
    throw new TokenProcessorError('extra.engineExtraKeys', `${show(raw)} is not an array; pass BlockStored.extra_keys (one entry per block)`);
  }
  (raw as unknown[]).forEach((entry, i) => {
    const problem = entry === null ? undefined : Array.isArray(entry) ? cborProblem(entry) : `${show(entry)} is neither null nor an array`;
    if (problem !== undefined) {
      throw new TokenProcessorError(`extra.engineExtraKeys[${i}]`, `${problem}; pass the entry of BlockStored.extra_keys as decoded`);
    }
  });
  return { lora: undefined, salt: undefined, mm: [], raw: raw as (readonly CborValue[] | null)[] };
}

function prepareExtra(algo: KeyAlgo, extra: BlockExtraKeys | undefined): PreparedExtra | undefined {
  if (extra === undefined || extra === null) return undefined;
  if (typeof extra !== 'object') {
    throw new TokenProcessorError('extra', `${show(extra)} is not an object; pass { loraName?, loraId?, cacheSalt?, mmInputs? }, { engineExtraKeys } or undefined`);
  }
  const { loraName, loraId, cacheSalt, mmInputs, engineExtraKeys } = extra;
  if (engineExtraKeys !== undefined) {
    return prepareRaw(engineExtraKeys, loraName !== undefined || loraId !== undefined || cacheSalt !== undefined || mmInputs !== undefined);
  }
  if (loraName !== undefined && typeof loraName !== 'string') {
    throw new TokenProcessorError('extra.loraName', `${show(loraName)} is not a string; pass the LoRA adapter name (vLLM lora_name)`);
  }
  if (loraId !== undefined && (!Number.isSafeInteger(loraId) || loraId < 0)) {
    throw new TokenProcessorError('extra.loraId', `${show(loraId)} is not a non-negative integer; pass vLLM's lora_int_id`);
  }
  if (cacheSalt !== undefined && typeof cacheSalt !== 'string') {
    throw new TokenProcessorError('extra.cacheSalt', `${show(cacheSalt)} is not a string; pass the request's cache_salt`);
  }
  let lora: number | Uint8Array | undefined;
  if (algo === 'sha256_cbor_64bit') {
    if (loraName !== undefined && loraId === undefined) {
      throw new TokenProcessorError(
        'extra.loraName',
        `${show(loraName)} cannot key a sha256_cbor_64bit block: vLLM 0.10.0–0.10.1 hashed the adapter's integer lora_int_id; pass extra.loraId (CLI --lora-id)`,
      );
    }
    lora = loraId;
  } else {
    lora = loraName !== undefined ? UTF8.encode(loraName) : loraId;
  }
  const mm: MmItem[] = [];
  if (mmInputs !== undefined) {
    if (!Array.isArray(mmInputs)) {
      throw new TokenProcessorError('extra.mmInputs', `${show(mmInputs)} is not an array; pass [{ identifier, offset, length }, ...]`);
    }
    mmInputs.forEach((item, i) => {
      const where = `extra.mmInputs[${i}]`;
      if (item === null || typeof item !== 'object') {
        throw new TokenProcessorError(where, `${show(item)} is not an object; pass { identifier, offset, length }`);
      }
      if (typeof item.identifier !== 'string') {
        throw new TokenProcessorError(`${where}.identifier`, `${show(item.identifier)} is not a string; pass the mm hash (vLLM MultiModalFeatureSpec.identifier)`);
      }
      if (!Number.isSafeInteger(item.offset)) {
        throw new TokenProcessorError(`${where}.offset`, `${show(item.offset)} is not an integer; pass the index of the item's first placeholder token`);
      }
      if (!Number.isSafeInteger(item.length) || item.length < 1) {
        throw new TokenProcessorError(`${where}.length`, `${show(item.length)} is not a positive integer; pass the number of placeholder tokens of the item`);
      }
      mm.push({ id: UTF8.encode(item.identifier), offset: item.offset, end: item.offset + item.length });
    });
    // vLLM walks the items in placeholder order (its mm_features are sorted by offset).
    mm.sort((a, b) => a.offset - b.offset);
  }
  const salt = cacheSalt !== undefined && cacheSalt !== '' ? UTF8.encode(cacheSalt) : undefined; // Python: `and request.cache_salt`
  if (lora === undefined && salt === undefined && mm.length === 0) return undefined;
  return { lora, salt, mm };
}

/**
 * Writes the extra keys of block [start, end) (or null) and returns whether any key was written.
 * `first` is true for the request's block 0.
 */
function writeExtra(w: CborWriter, algo: KeyAlgo, ex: PreparedExtra | undefined, start: number, end: number, first: boolean, block: number): boolean {
  if (ex === undefined) {
    w.null();
    return false;
  }
  if (ex.raw !== undefined) {
    const v = ex.raw[block];
    if (v === null) {
      w.null();
      return false;
    }
    w.value(v);
    return true;
  }
  // MM items overlapping [start, end); they are sorted by offset, so stop at the first one past the block.
  let mmCount = 0;
  for (let j = 0; j < ex.mm.length && ex.mm[j].offset < end; j++) if (ex.mm[j].end > start) mmCount++;
  const withSalt = first && ex.salt !== undefined;
  const n = (ex.lora !== undefined ? 1 : 0) + mmCount + (withSalt ? 1 : 0);
  if (n === 0) {
    w.null();
    return false;
  }
  w.array(n);
  if (ex.lora !== undefined) {
    if (typeof ex.lora === 'number') w.uint(ex.lora);
    else w.utf8(ex.lora);
  }
  for (let j = 0; mmCount > 0 && j < ex.mm.length && ex.mm[j].offset < end; j++) {
    const it = ex.mm[j];
    if (it.end <= start) continue;
    if (algo === 'sha256_cbor_64bit') w.utf8(it.id);
    else w.array(2).utf8(it.id).int(it.offset - start);
  }
  if (withSalt) w.utf8(ex.salt as Uint8Array);
  return true;
}

function checkTokens(tokens: ArrayLike<number>, n: number): void {
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') {
    throw new TokenProcessorError('tokens', `${show(tokens)} is not an array of token ids; pass number[] or Uint32Array`);
  }
  for (let i = 0; i < n; i++) {
    const v = tokens[i];
    if (v >>> 0 !== v) {
      throw new TokenProcessorError(`tokens[${i}]`, `${show(v)} is not a token id; token ids are integers in [0, ${MAX_TOKEN_ID}]`);
    }
  }
}

function isZero64(b: Uint8Array, at: number): boolean {
  for (let i = at; i < at + 8; i++) if (b[i] !== 0) return false;
  return true;
}

function u64ToBytes(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, false);
  return b;
}

function bytesToU64(b: Uint8Array, at = 0): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at, false);
}

/**
 * One-shot `crypto.hash` (node ≥ 20.12 / 21.7) skips the Hash object: 1.21× to 1.37× faster than
 * createHash().update().digest() per preimage in the bench (3 runs). Falls back to createHash on
 * older runtimes.
 */
type OneShotHash = (algorithm: string, data: Uint8Array, outputEncoding: 'buffer') => Buffer;
const oneShotHash = (nodeCrypto as unknown as { hash?: OneShotHash }).hash;

function sha256(data: Uint8Array): Buffer {
  return oneShotHash !== undefined ? oneShotHash('sha256', data, 'buffer') : nodeCrypto.createHash('sha256').update(data).digest();
}

abstract class BaseProcessor implements TokenProcessor {
  protected readonly w = new CborWriter(512);
  abstract readonly algo: KeyAlgo;

  constructor(readonly blockSize: number) {}

  blockKeys(tokens: ArrayLike<number>, extra?: BlockExtraKeys, parent?: ChainState): BlockKey[] {
    return this.blockChain(tokens, extra, parent).keys;
  }

  blockChain(tokens: ArrayLike<number>, extra?: BlockExtraKeys, parent?: ChainState): { keys: BlockKey[]; last: ChainState } {
    if (tokens === null || tokens === undefined || typeof tokens.length !== 'number') checkTokens(tokens, 0);
    const nBlocks = Math.floor(tokens.length / this.blockSize);
    checkTokens(tokens, tokens.length); // the unhashed tail too: bad input is bad input
    if (parent !== undefined) this.checkParent(parent);
    const ex = prepareExtra(this.algo, extra);
    if (ex?.raw !== undefined && ex.raw.length < nBlocks) {
      throw new TokenProcessorError(
        'extra.engineExtraKeys',
        `has ${ex.raw.length} entries for ${nBlocks} full blocks; pass one entry (null or an array) per block`,
      );
    }
    return this.run(tokens, nBlocks, ex, parent);
  }

  private checkParent(p: ChainState): void {
    const want = this.algo === 'sha256_cbor' ? 32 : 8;
    if (p === null || typeof p !== 'object' || p.algo !== this.algo || !(p.parent instanceof Uint8Array) || p.parent.length !== want) {
      const got = p !== null && typeof p === 'object' ? `algo ${show(p.algo)}, ${p.parent instanceof Uint8Array ? p.parent.length : 'no'} parent bytes` : show(p);
      throw new TokenProcessorError(
        'parent',
        `chain state (${got}) does not belong to a ${this.algo} processor (needs ${want} parent bytes); pass the "last" state returned by this processor or chainFromKey()`,
      );
    }
  }

  protected abstract run(
    tokens: ArrayLike<number>,
    nBlocks: number,
    ex: PreparedExtra | undefined,
    parent: ChainState | undefined,
  ): { keys: BlockKey[]; last: ChainState };

  abstract chainFromKey(key: BlockKey): ChainState | undefined;

  protected checkKey(key: BlockKey): void {
    if (typeof key !== 'bigint' || key < 0n || key > 0xffffffffffffffffn) {
      throw new TokenProcessorError('key', `${show(key)} is not a u64 block key; pass a bigint in [0, 2^64)`);
    }
  }
}

/** vLLM ≥ 0.10.2: 32-byte digest chain, key = low 64 bits. */
class Sha256CborProcessor extends BaseProcessor {
  readonly algo = 'sha256_cbor' as const;
  private readonly root: Uint8Array;

  constructor(blockSize: number, seed: string) {
    super(blockSize);
    this.root = new Uint8Array(sha256(encodeCanonical(seed)));
  }

  protected run(tokens: ArrayLike<number>, nBlocks: number, ex: PreparedExtra | undefined, parent: ChainState | undefined) {
    const keys: BlockKey[] = new Array<BlockKey>(nBlocks);
    let prev: Uint8Array = parent !== undefined ? parent.parent : this.root;
    const bs = this.blockSize;
    const w = this.w;
    for (let b = 0; b < nBlocks; b++) {
      const start = b * bs;
      w.reset().array(3).bytes(prev).uintArray(tokens, start, start + bs);
      writeExtra(w, this.algo, ex, start, start + bs, b === 0 && parent === undefined, b);
      const d = sha256(w.view());
      keys[b] = d.readBigUInt64BE(24);
      prev = d;
    }
    return { keys, last: { algo: this.algo, parent: new Uint8Array(prev) } };
  }

  chainFromKey(key: BlockKey): undefined {
    this.checkKey(key);
    return undefined;
  }
}

/** vLLM 0.10.0–0.10.1.x: the chain is the u64 itself. */
class Sha256Cbor64Processor extends BaseProcessor {
  readonly algo = 'sha256_cbor_64bit' as const;
  /** NONE_HASH as 8 big-endian bytes. */
  private readonly root: Uint8Array;

  constructor(blockSize: number, seed: string) {
    super(blockSize);
    this.root = new Uint8Array(sha256(encodeCanonical(seed)).subarray(24, 32));
  }

  protected run(tokens: ArrayLike<number>, nBlocks: number, ex: PreparedExtra | undefined, parent: ChainState | undefined) {
    const keys: BlockKey[] = new Array<BlockKey>(nBlocks);
    // The chain value = the low 64 bits of the previous digest, kept as its 8 bytes (no bigint math).
    let prev: Uint8Array = parent !== undefined ? parent.parent : this.root;
    let at = 0;
    const bs = this.blockSize;
    const w = this.w;
    for (let b = 0; b < nBlocks; b++) {
      const start = b * bs;
      // hash_block_tokens: `if not parent_block_hash: parent_block_hash = NONE_HASH`.
      if (isZero64(prev, at)) {
        prev = this.root;
        at = 0;
      }
      w.reset().array(3).uint64BE(prev, at).uintArray(tokens, start, start + bs);
      writeExtra(w, this.algo, ex, start, start + bs, b === 0 && parent === undefined, b);
      prev = sha256(w.view());
      at = 24;
      keys[b] = bytesToU64(prev, at);
    }
    return { keys, last: { algo: this.algo, parent: prev.slice(at, at + 8) } };
  }

  chainFromKey(key: BlockKey): ChainState {
    this.checkKey(key);
    return { algo: this.algo, parent: u64ToBytes(key) };
  }
}

/** The index's own request keys (FNV-1a-64 chain, see the header comment). */
class FastProcessor extends BaseProcessor {
  readonly algo = 'fast' as const;
  private readonly rootHi: number;
  private readonly rootLo: number;
  private readonly buf: Uint8Array;
  private readonly out = u64Out();
  private readonly exOut = u64Out();
  private chain = new Uint32Array(512);

  constructor(blockSize: number, seed: string, model: string | undefined) {
    super(blockSize);
    const r = encodeCanonical(['kvroute-fast-v1', seed, model ?? null]);
    fnv1a64(r, r.length, this.out);
    this.rootHi = this.out[0];
    this.rootLo = this.out[1];
    this.buf = new Uint8Array(8 + 4 * blockSize + 8);
  }

  protected run(tokens: ArrayLike<number>, nBlocks: number, ex: PreparedExtra | undefined, parent: ChainState | undefined) {
    const keys: BlockKey[] = new Array<BlockKey>(nBlocks);
    let hi = this.rootHi;
    let lo = this.rootLo;
    if (parent !== undefined) {
      const p = parent.parent;
      hi = ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
      lo = ((p[4] << 24) | (p[5] << 16) | (p[6] << 8) | p[7]) >>> 0;
    }
    const bs = this.blockSize;
    if (ex === undefined && nBlocks > 0) {
      // No extra keys (the common case): hash from the integers, then one bigint per key.
      if (this.chain.length < 2 * nBlocks) this.chain = new Uint32Array(2 * nBlocks);
      const c = this.chain;
      fnvBlockChain(tokens, 0, nBlocks, bs, hi, lo, c, 0);
      for (let b = 0; b < nBlocks; b++) {
        this.out[0] = c[2 * b] as number;
        this.out[1] = c[2 * b + 1] as number;
        keys[b] = toBigInt(this.out);
      }
      hi = c[2 * nBlocks - 2] as number;
      lo = c[2 * nBlocks - 1] as number;
      return { keys, last: { algo: this.algo, parent: chainBytes(hi, lo) } };
    }
    const buf = this.buf;
    const out = this.out;
    const tokenBytes = 8 + 4 * bs;
    for (let b = 0; b < nBlocks; b++) {
      const start = b * bs;
      buf[0] = lo;
      buf[1] = lo >>> 8;
      buf[2] = lo >>> 16;
      buf[3] = lo >>> 24;
      buf[4] = hi;
      buf[5] = hi >>> 8;
      buf[6] = hi >>> 16;
      buf[7] = hi >>> 24;
      let p = 8;
      for (let i = start, e = start + bs; i < e; i++) {
        const t = tokens[i];
        buf[p] = t;
        buf[p + 1] = t >>> 8;
        buf[p + 2] = t >>> 16;
        buf[p + 3] = t >>> 24;
        p += 4;
      }
      let len = tokenBytes;
      if (ex !== undefined) {
        const w = this.w.reset();
        if (writeExtra(w, this.algo, ex, start, start + bs, b === 0 && parent === undefined, b)) {
          const v = w.view();
          fnv1a64(v, v.length, this.exOut);
          const eh = this.exOut[0];
          const el = this.exOut[1];
          buf[p] = el;
          buf[p + 1] = el >>> 8;
          buf[p + 2] = el >>> 16;
          buf[p + 3] = el >>> 24;
          buf[p + 4] = eh;
          buf[p + 5] = eh >>> 8;
          buf[p + 6] = eh >>> 16;
          buf[p + 7] = eh >>> 24;
          len += 8;
        }
      }
      fnv1a64(buf, len, out);
      hi = out[0];
      lo = out[1];
      keys[b] = toBigInt(out);
    }
    return { keys, last: { algo: this.algo, parent: chainBytes(hi, lo) } };
  }

  chainFromKey(key: BlockKey): ChainState {
    this.checkKey(key);
    return { algo: this.algo, parent: u64ToBytes(key) };
  }

  /**
   * The write path's allocation-free variant of `blockKeys` (no extra keys): the keys of the
   * `nBlocks` full blocks of `tokens[start, start + nBlocks·blockSize)` as [hi, lo] u32 pairs
   * into `out` from `outOff`, chained from the root (`parent` undefined) or from the 64-bit key
   * `parent` = [hi, lo]. Equal to `blockKeys` bit for bit (tests compare them); FNV-1a is fed the
   * same little-endian bytes straight from the integers, without the byte buffer or bigints.
   * Token ids must be uint32 (the caller has checked them; a Uint32Array guarantees it).
   */
  blockKeysInto(tokens: ArrayLike<number>, start: number, nBlocks: number, parentHi: number | undefined, parentLo: number, out: Uint32Array, outOff: number): void {
    fnvBlockChain(tokens, start, nBlocks, this.blockSize, parentHi === undefined ? this.rootHi : parentHi, parentHi === undefined ? this.rootLo : parentLo, out, outOff);
  }
}

/** The 8-byte big-endian chain state of the key (hi, lo). */
function chainBytes(hi: number, lo: number): Uint8Array {
  const last = new Uint8Array(8);
  last[0] = hi >>> 24;
  last[1] = hi >>> 16;
  last[2] = hi >>> 8;
  last[3] = hi;
  last[4] = lo >>> 24;
  last[5] = lo >>> 16;
  last[6] = lo >>> 8;
  last[7] = lo;
  return last;
}

/**
 * The `fast` chain without extra keys, straight from the token integers: block b's key is
 * FNV-1a-64 over [previous key lo word LE, hi word LE, each token u32 LE] (the layout of
 * `FastProcessor.run`), written as [hi, lo] into `out` from `outOff`. One step per byte, unrolled
 * per word (hash-fast.ts fnv1a64 explains the limb arithmetic); ~20 % faster than the byte-buffer
 * loop in bench/keys.bench.ts.
 */
function fnvBlockChain(tokens: ArrayLike<number>, start: number, nBlocks: number, bs: number, hi: number, lo: number, out: Uint32Array, outOff: number): void {
  let t = start;
  let o = outOff;
  for (let b = 0; b < nBlocks; b++) {
    let h = 0xcbf29ce4 | 0;
    let l = 0x84222325 | 0;
    for (let k = -2; k < bs; k++) {
      const w = k === -2 ? lo : k === -1 ? hi : (tokens[t++] as number);
      let m0: number;
      let c: number;
      l ^= w & 0xff;
      m0 = (l & 0xffff) * 0x1b3;
      c = ((l >>> 16) * 0x1b3 + (m0 >>> 16)) >>> 16;
      h = (Math.imul(h, 0x1b3) + c + (l << 8)) | 0;
      l = Math.imul(l, 0x1b3);
      l ^= (w >>> 8) & 0xff;
      m0 = (l & 0xffff) * 0x1b3;
      c = ((l >>> 16) * 0x1b3 + (m0 >>> 16)) >>> 16;
      h = (Math.imul(h, 0x1b3) + c + (l << 8)) | 0;
      l = Math.imul(l, 0x1b3);
      l ^= (w >>> 16) & 0xff;
      m0 = (l & 0xffff) * 0x1b3;
      c = ((l >>> 16) * 0x1b3 + (m0 >>> 16)) >>> 16;
      h = (Math.imul(h, 0x1b3) + c + (l << 8)) | 0;
      l = Math.imul(l, 0x1b3);
      l ^= w >>> 24;
      m0 = (l & 0xffff) * 0x1b3;
      c = ((l >>> 16) * 0x1b3 + (m0 >>> 16)) >>> 16;
      h = (Math.imul(h, 0x1b3) + c + (l << 8)) | 0;
      l = Math.imul(l, 0x1b3);
    }
    hi = h >>> 0;
    lo = l >>> 0;
    out[o++] = hi;
    out[o++] = lo;
  }
}

/** The `fast` processor's allocation-free write path (see `FastProcessor.blockKeysInto`). */
export interface RawKeyProcessor {
  blockKeysInto(tokens: ArrayLike<number>, start: number, nBlocks: number, parentHi: number | undefined, parentLo: number, out: Uint32Array, outOff: number): void;
}

/** `tp`'s raw write path when it is a built-in `fast` processor, else undefined. */
export function rawKeyProcessor(tp: TokenProcessor): RawKeyProcessor | undefined {
  return tp instanceof FastProcessor ? tp : undefined;
}

/**
 * A TokenProcessor for `opts.algo`. Throws TokenProcessorError (naming the field, the value and
 * the fix) on bad options; `blockKeys` throws the same for bad token ids, extra keys or chain state.
 */
export function createTokenProcessor(opts: TokenProcessorOptions): TokenProcessor {
  validateOptions(opts);
  switch (opts.algo) {
    case 'sha256_cbor':
      return new Sha256CborProcessor(opts.blockSize, opts.hashSeed);
    case 'sha256_cbor_64bit':
      return new Sha256Cbor64Processor(opts.blockSize, opts.hashSeed);
    case 'fast':
      return new FastProcessor(opts.blockSize, opts.hashSeed, opts.model);
  }
}

/** NONE_HASH of `sha256_cbor` for a PYTHONHASHSEED value (32 bytes), e.g. for diagnostics. */
export function noneHash(hashSeed: string): Uint8Array {
  return new Uint8Array(sha256(encodeCanonical(hashSeed)));
}
