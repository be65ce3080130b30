/* eslint-disable jest/no-export -- a shared suite module, not a test file (jest runs *.test.ts only) */
/**
 * The contract every `Index` backend must meet. Run it from a backend's test file:
 *
 *   runIndexContract('MemoryIndex', async () => new MemoryIndex());
 *
 * `factory` must return a fresh, empty index for every test; the suite closes it afterwards.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import type { BlockKey, Index, PodEntry } from '../../../src/kvindex/types.js';

const gpu = (pod: string): PodEntry => ({ pod, tier: 'gpu' });
const cpu = (pod: string): PodEntry => ({ pod, tier: 'cpu' });
const A = '10.0.0.1:8000';
const B = '10.0.0.2:8000';
const C = '10.0.0.3:8000';

/** Keys that look like real u64 hashes (spread over the whole range). */
function keys(seed: number, n: number): BlockKey[] {
  const out: BlockKey[] = [];
  let x = BigInt(seed) * 0x9e3779b97f4a7c15n;
  for (let i = 0; i < n; i++) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    out.push(x);
  }
  return out;
}

/** A lookup result as plain data: [decimal key, sorted "pod|tier" holders] in walk order. */
function plain(m: Map<BlockKey, PodEntry[]>): [string, string[]][] {
  return [...m].map(([k, es]) => [k.toString(), es.map((e) => `${e.pod}|${e.tier}`).sort()]);
}

export function runIndexContract(name: string, factory: () => Promise<Index>): void {
  describe(`Index contract: ${name}`, () => {
    let open: Index[] = [];
    const make = async (): Promise<Index> => {
      const idx = await factory();
      open.push(idx);
      return idx;
    };
    afterEach(async () => {
      await Promise.all(open.map((i) => i.close()));
      open = [];
    });

    it('an empty index has no hits, and an empty lookup returns an empty map', async () => {
      const idx = await make();
      const [k] = keys(1, 1);
      expect((await idx.lookup([k as BlockKey])).size).toBe(0);
      expect((await idx.lookup([])).size).toBe(0);
      expect(await idx.requestKeyFor(k as BlockKey)).toBeUndefined();
    });

    it('returns the holders of every key in order, with the caller’s key values', async () => {
      const idx = await make();
      const r = keys(2, 4);
      const e = keys(3, 4);
      await idx.add(e, r, [gpu(A)]);
      await idx.add(e.slice(0, 2), r.slice(0, 2), [gpu(B)]);
      const got = await idx.lookup(r);
      expect(plain(got)).toEqual([
        [r[0]?.toString(), [`${A}|gpu`, `${B}|gpu`]],
        [r[1]?.toString(), [`${A}|gpu`, `${B}|gpu`]],
        [r[2]?.toString(), [`${A}|gpu`]],
        [r[3]?.toString(), [`${A}|gpu`]],
      ]);
      expect([...got.keys()]).toEqual(r);
    });

    it('stops the walk at the first key nobody holds', async () => {
      const idx = await make();
      const r = keys(4, 5);
      await idx.add([], [r[0], r[1], r[3], r[4]] as BlockKey[], [gpu(A)]);
      const got = await idx.lookup(r);
      expect([...got.keys()]).toEqual([r[0], r[1]]);
      // A missing first key means no hits at all.
      expect((await idx.lookup([r[2], r[3]] as BlockKey[])).size).toBe(0);
    });

    it('filters by pod set; a key held only by other pods stops the walk; empty set means all', async () => {
      const idx = await make();
      const r = keys(5, 3);
      await idx.add([], r, [gpu(A)]);
      await idx.add([], r.slice(0, 1), [gpu(B)]);
      await idx.add([], r.slice(1), [cpu(C)]);
      expect(plain(await idx.lookup(r, new Set([B])))).toEqual([[r[0]?.toString(), [`${B}|gpu`]]]);
      expect(plain(await idx.lookup(r, new Set([A, C])))).toEqual([
        [r[0]?.toString(), [`${A}|gpu`]],
        [r[1]?.toString(), [`${A}|gpu`, `${C}|cpu`]],
        [r[2]?.toString(), [`${A}|gpu`, `${C}|cpu`]],
      ]);
      expect((await idx.lookup(r, new Set(['10.9.9.9:1'])) ).size).toBe(0);
      expect((await idx.lookup(r, new Set())).size).toBe(3);
      expect((await idx.lookup(r, undefined)).size).toBe(3);
    });

    it('reference counts: a block stored twice must be removed twice', async () => {
      const idx = await make();
      const [r, e] = [keys(6, 1), keys(7, 1)];
      await idx.add(e, r, [gpu(A)]);
      await idx.add(e, r, [gpu(A)]);
      await idx.evict(e[0] as BlockKey, [gpu(A)]);
      expect(plain(await idx.lookup(r))).toEqual([[r[0]?.toString(), [`${A}|gpu`]]]);
      await idx.evict(e[0] as BlockKey, [gpu(A)]);
      expect((await idx.lookup(r)).size).toBe(0);
      // A third remove is a no-op, and a fresh store counts from one again.
      await idx.evict(e[0] as BlockKey, [gpu(A)]);
      await idx.add(e, r, [gpu(A)]);
      expect((await idx.lookup(r)).size).toBe(1);
      await idx.evict(e[0] as BlockKey, [gpu(A)]);
      expect((await idx.lookup(r)).size).toBe(0);
    });

    it('keeps exact reference counts under concurrent adds and evicts', async () => {
      const idx = await make();
      const [r, e] = [keys(30, 3), keys(31, 3)];
      await Promise.all(Array.from({ length: 20 }, () => idx.add(e, r, [gpu(A)])));
      await Promise.all(Array.from({ length: 19 }, () => idx.evict(e[1] as BlockKey, [gpu(A)])));
      expect((await idx.lookup(r)).size).toBe(3);
      await idx.evict(e[1] as BlockKey, [gpu(A)]);
      expect([...(await idx.lookup(r)).keys()]).toEqual([r[0]]);
    });

    it('evict removes only the named (pod, tier) entries', async () => {
      const idx = await make();
      const [r, e] = [keys(8, 2), keys(9, 2)];
      await idx.add(e, r, [gpu(A), gpu(B)]);
      await idx.evict(e[1] as BlockKey, [gpu(B), cpu(A), gpu('10.7.7.7:9')]);
      expect(plain(await idx.lookup(r))).toEqual([
        [r[0]?.toString(), [`${A}|gpu`, `${B}|gpu`]],
        [r[1]?.toString(), [`${A}|gpu`]],
      ]);
    });

    it('evicting an unknown engine key, or with no entries, is a no-op', async () => {
      const idx = await make();
      const [r, e] = [keys(10, 1), keys(11, 2)];
      await idx.add(e.slice(0, 1), r, [gpu(A)]);
      await expect(idx.evict(e[1] as BlockKey, [gpu(A)])).resolves.toBeUndefined();
      await idx.evict(e[0] as BlockKey, []);
      expect((await idx.lookup(r)).size).toBe(1);
    });

    it('keeps the engine mapping while another tier still holds the block (GPU remove after CPU offload)', async () => {
      const idx = await make();
      const [r, e] = [keys(12, 1), keys(13, 1)];
      const [rk, ek] = [r[0] as BlockKey, e[0] as BlockKey];
      await idx.add(e, r, [gpu(A)]);
      // CPU offload: the event carries only the engine hash; resolve it and add the cpu entry.
      const resolved = await idx.requestKeyFor(ek);
      expect(resolved).toBe(rk);
      await idx.add(e, [resolved as BlockKey], [cpu(A)]);
      await idx.evict(ek, [gpu(A)]);
      expect(plain(await idx.lookup(r))).toEqual([[rk.toString(), [`${A}|cpu`]]]);
      expect(await idx.requestKeyFor(ek)).toBe(rk);
      await idx.evict(ek, [cpu(A)]);
      expect((await idx.lookup(r)).size).toBe(0);
      expect(await idx.requestKeyFor(ek)).toBeUndefined();
    });

    it('maps engine keys many-to-one when the engine block is smaller (engine 16, index 64)', async () => {
      const idx = await make();
      const e = keys(14, 8); // 128 tokens at engine block size 16
      const r = keys(15, 2); // the same tokens at index block size 64
      await idx.add(e, r, [gpu(A)]);
      for (let i = 0; i < 8; i++) expect(await idx.requestKeyFor(e[i] as BlockKey)).toBe(r[Math.floor(i / 4)]);
      // Removing any engine block of the second index block removes that index block.
      await idx.evict(e[6] as BlockKey, [gpu(A)]);
      expect([...(await idx.lookup(r)).keys()]).toEqual([r[0]]);
      expect(await idx.requestKeyFor(e[1] as BlockKey)).toBe(r[0]);
    });

    it('maps engine keys one-to-many when the engine block is larger (engine 128, index 64)', async () => {
      const idx = await make();
      const e = keys(16, 2); // 256 tokens at engine block size 128
      const r = keys(17, 4); // at index block size 64
      await idx.add(e, r, [gpu(A)]);
      // requestKeyFor is the last request key mapped.
      expect(await idx.requestKeyFor(e[0] as BlockKey)).toBe(r[1]);
      expect(await idx.requestKeyFor(e[1] as BlockKey)).toBe(r[3]);
      await idx.evict(e[0] as BlockKey, [gpu(A)]);
      expect((await idx.lookup(r)).size).toBe(0);
      expect(plain(await idx.lookup(r.slice(2)))).toEqual([
        [r[2]?.toString(), [`${A}|gpu`]],
        [r[3]?.toString(), [`${A}|gpu`]],
      ]);
      expect(await idx.requestKeyFor(e[0] as BlockKey)).toBeUndefined();
    });

    it('requestKeyFor returns the newest mapping after a re-add', async () => {
      const idx = await make();
      const [r, e] = [keys(18, 2), keys(19, 1)];
      await idx.add(e, r.slice(0, 1), [gpu(A)]);
      await idx.add(e, r.slice(1, 2), [gpu(B)]);
      expect(await idx.requestKeyFor(e[0] as BlockKey)).toBe(r[1]);
      // Evict resolves through the current mapping.
      await idx.evict(e[0] as BlockKey, [gpu(B)]);
      expect((await idx.lookup(r.slice(1))).size).toBe(0);
      expect((await idx.lookup(r.slice(0, 1))).size).toBe(1);
    });

    it('add without engine keys writes entries but no mapping', async () => {
      const idx = await make();
      const r = keys(20, 3);
      await idx.add([], r, [gpu(A)]);
      expect((await idx.lookup(r)).size).toBe(3);
      for (const k of r) expect(await idx.requestKeyFor(k)).toBeUndefined();
    });

    it('clear(pod) drops every tier of that pod and nothing else', async () => {
      const idx = await make();
      const [r, e] = [keys(21, 50), keys(22, 50)];
      await idx.add(e, r, [gpu(A), cpu(A), gpu(B)]);
      await idx.add(e, r, [gpu(A)]);
      await idx.add([], keys(23, 10), [gpu(A)]);
      await idx.clear(A);
      expect(plain(await idx.lookup(r.slice(0, 2)))).toEqual([
        [r[0]?.toString(), [`${B}|gpu`]],
        [r[1]?.toString(), [`${B}|gpu`]],
      ]);
      expect((await idx.lookup(r, new Set([A]))).size).toBe(0);
      expect((await idx.lookup(keys(23, 10))).size).toBe(0);
      // The ref count of a cleared pod starts again from one.
      await idx.add(e.slice(0, 1), r.slice(0, 1), [gpu(A)]);
      await idx.evict(e[0] as BlockKey, [gpu(A)]);
      expect((await idx.lookup(r.slice(0, 1), new Set([A]))).size).toBe(0);
      // Unknown pods are a no-op.
      await idx.clear('10.9.9.9:1');
      expect((await idx.lookup(r)).size).toBe(50);
    });

    it('clear(pod) of the only holder removes the keys; a later store works normally', async () => {
      const idx = await make();
      const [r, e] = [keys(24, 3), keys(25, 3)];
      await idx.add(e, r, [gpu(A)]);
      await idx.clear(A);
      expect((await idx.lookup(r)).size).toBe(0);
      // (Whether the engine mapping of a cleared key survives is backend-defined; a new store replaces it.)
      await idx.add(e, r, [gpu(B)]);
      expect(await idx.requestKeyFor(e[2] as BlockKey)).toBe(r[2]);
      await idx.evict(e[2] as BlockKey, [gpu(B)]);
      expect([...(await idx.lookup(r)).keys()]).toEqual([r[0], r[1]]);
    });

    it('handles IPv6 endpoints and pod ids containing "|", ":" or "@"', async () => {
      const idx = await make();
      const r = keys(32, 2);
      const odd = ['[fd00::1]:8000', 'p|odd:1', 'a@b:2'];
      await idx.add([], r, odd.map(gpu));
      expect(plain(await idx.lookup(r, new Set(['p|odd:1'])))).toEqual([
        [r[0]?.toString(), ['p|odd:1|gpu']],
        [r[1]?.toString(), ['p|odd:1|gpu']],
      ]);
      await idx.clear('p|odd:1');
      expect((await idx.lookup(r, new Set(['p|odd:1']))).size).toBe(0);
      expect(plain(await idx.lookup(r.slice(0, 1)))).toEqual([[r[0]?.toString(), ['[fd00::1]:8000|gpu', 'a@b:2|gpu']]]);
    });

    it('round-trips the extreme key values 0 and 2^64-1', async () => {
      const idx = await make();
      const max = (1n << 64n) - 1n;
      await idx.add([max, 0n], [0n, max], [gpu(A)]);
      expect([...(await idx.lookup([0n, max])).keys()]).toEqual([0n, max]);
      expect(await idx.requestKeyFor(max)).toBe(0n);
      expect(await idx.requestKeyFor(0n)).toBe(max);
    });

    it('handles a 256-block prompt on 16 pods', async () => {
      const idx = await make();
      const r = keys(26, 256);
      const e = keys(27, 256);
      const pods = Array.from({ length: 16 }, (_, i) => `10.1.0.${i}:8000`);
      for (let p = 0; p < pods.length; p++) {
        // Pod p holds the first 16·(p+1) blocks.
        const n = 16 * (p + 1);
        await idx.add(e.slice(0, n), r.slice(0, n), [gpu(pods[p] as string)]);
      }
      const got = await idx.lookup(r);
      expect(got.size).toBe(256);
      for (let i = 0; i < 256; i++) expect(got.get(r[i] as BlockKey)?.length).toBe(16 - Math.floor(i / 16));
      const two = await idx.lookup(r, new Set([pods[0] as string, pods[1] as string]));
      expect(two.size).toBe(32);
    });

    it('rejects keys that are not unsigned 64-bit bigints with a clear error', async () => {
      const idx = await make();
      await expect(idx.add([], [-1n], [gpu(A)])).rejects.toThrow(/-1n is not a block key.*unsigned 64-bit/);
      await expect(idx.add([1n << 64n], [1n], [gpu(A)])).rejects.toThrow(/engineKeys\[0\]/);
      await expect(idx.add([], [5 as unknown as bigint], [gpu(A)])).rejects.toThrow(/5 \(number\)/);
      expect((await idx.lookup([1n])).size).toBe(0);
    });

    it('forget drops one pod’s entries of the keys (every tier and reference), keeps the others, and clear still works after it', async () => {
      const idx = await make();
      const forget = idx.forget?.bind(idx);
      expect(forget).toBeDefined();
      const r = keys(40, 3);
      await idx.add([], r, [gpu(A)]);
      await idx.add([], r, [gpu(A)]); // two references
      await idx.add([], r.slice(0, 1), [cpu(A), gpu(B)]);
      expect(await forget!([r[0] as BlockKey, r[1] as BlockKey, ...keys(41, 1)], A)).toBe(2);
      expect(plain(await idx.lookup(r))).toEqual([[(r[0] as BlockKey).toString(), [`${B}|gpu`]]]);
      expect((await idx.lookup(r.slice(2), new Set([A]))).size).toBe(1);
      expect(await forget!(r, C)).toBe(0);
      await idx.clear(A);
      await idx.clear(B);
      expect((await idx.lookup(r)).size).toBe(0);
    });
  });
}
