/**
 * Engine key → request key mapping of an `add` (shared by every index backend).
 *
 * vLLM's block size can differ from the index's, so the two key lists of one stored run can have
 * different lengths. With n = max(|E|, |R|), position i maps E[i·|E|/n] → R[i·|R|/n] (integer
 * division), e.g. for 256 tokens:
 * - engine 64, index 64: 4 ↔ 4, one to one;
 * - engine 16, index 64: 16 → 4, many to one (E0..E3 → R0);
 * - engine 128, index 64: 2 → 4, one to many (E0 → [R0, R1]).
 */
import type { BlockKey } from '../types.js';

/** The largest key a u64 holds. */
export const MAX_BLOCK_KEY = (1n << 64n) - 1n;

/** One engine key and the request keys it maps to, in request order (the last is the newest). */
export interface EngineGroup {
  readonly engineKey: BlockKey;
  readonly requestKeys: BlockKey[];
}

/**
 * Group the mapping of `engineKeys` onto `requestKeys` by engine key, in first-appearance order.
 * Empty when either list is empty. A request key is listed once per engine key.
 */
export function engineGroups(engineKeys: readonly BlockKey[], requestKeys: readonly BlockKey[]): EngineGroup[] {
  const ne = engineKeys.length;
  const nr = requestKeys.length;
  if (ne === 0 || nr === 0) return [];
  const n = Math.max(ne, nr);
  const out: EngineGroup[] = [];
  let cur: EngineGroup | undefined;
  let curIdx = -1;
  for (let i = 0; i < n; i++) {
    const e = Math.floor((i * ne) / n);
    const r = Math.floor((i * nr) / n);
    if (e !== curIdx) {
      curIdx = e;
      cur = { engineKey: engineKeys[e] as BlockKey, requestKeys: [] };
      out.push(cur);
    }
    const rk = requestKeys[r] as BlockKey;
    const list = (cur as EngineGroup).requestKeys;
    if (list.length === 0 || list[list.length - 1] !== rk) list.push(rk);
  }
  return out;
}

/** Throw a clear error unless `key` is an unsigned 64-bit bigint. */
export function assertBlockKey(key: unknown, what: string): asserts key is BlockKey {
  if (typeof key !== 'bigint' || key < 0n || key > MAX_BLOCK_KEY) {
    const shown = typeof key === 'bigint' ? `${key}n` : `${String(key)} (${typeof key})`;
    throw new RangeError(`${what}: ${shown} is not a block key; pass an unsigned 64-bit bigint (0n..${MAX_BLOCK_KEY}n)`);
  }
}
