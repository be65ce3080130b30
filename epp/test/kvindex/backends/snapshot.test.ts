import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryIndex } from '../../../src/kvindex/backends/memory-index.js';
import { decodeSnapshot, encodeSnapshot, loadSnapshot, saveSnapshot, SnapshotError, SNAPSHOT_MAGIC } from '../../../src/kvindex/backends/snapshot.js';
import type { PodEntry } from '../../../src/kvindex/types.js';

const FP = { model: 'm', blockSize: 16, hashSeed: '42', hashAlgo: 'sha256_cbor' };
const A: PodEntry = { pod: '10.0.0.1:8000', tier: 'gpu' };
const B: PodEntry = { pod: '10.0.0.2:8000', tier: 'gpu' };
const Bc: PodEntry = { pod: '10.0.0.2:8000', tier: 'cpu' };

function holders(ix: MemoryIndex): string[] {
  const out: string[] = [];
  ix.forEachRecord((key, hs, eks) => out.push(`${key}:${hs.map((h) => `${h.entry.pod}/${h.entry.tier}x${h.count}`).join(',')}:${eks.join(',')}`));
  return out;
}

function filled(): MemoryIndex {
  const ix = new MemoryIndex({ memoryBudgetBytes: 1 << 20 });
  ix.addSync([101n, 102n, 103n], [1n, 2n, 3n], [A]);
  ix.addSync([101n, 102n], [1n, 2n], [B]);
  ix.addSync([], [2n], [B]); // a second reference of (2, B)
  ix.addSync([0xffffffffffffffffn], [0xfedcba9876543210n], [Bc]);
  ix.lookupSync([1n]); // 1 becomes the most recently used key
  return ix;
}

describe('index snapshot', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvroute-snap-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips keys, holders with reference counts, engine keys, LRU order and watermarks', async () => {
    const src = filled();
    const seqs = new Map([[A.pod, new Map([[0, 41n]])], [B.pod, new Map([[0, 7n], [1, 2n ** 63n]])]]);
    const path = join(dir, 'sub', 'index.snapshot');
    const stats = await saveSnapshot(path, src, FP, seqs);
    expect(stats).toEqual({ keys: 4, entries: 6, bytes: readFileSync(path).length });
    const dst = new MemoryIndex({ memoryBudgetBytes: 1 << 20 });
    const r = await loadSnapshot(path, dst, FP);
    expect(r).toMatchObject({ keys: 4, entries: 6, droppedEntries: 0, droppedPods: [] });
    expect(r?.seqs).toEqual(seqs);
    expect(holders(dst)).toEqual(holders(src));
    // behaviour, not only structure: lookups, engine mapping, and reference counts
    expect((await dst.lookup([1n, 2n, 3n])).get(3n)).toEqual([A]);
    expect(dst.requestKeyForSync(102n)).toBe(2n);
    expect(dst.requestKeyForSync(0xffffffffffffffffn)).toBe(0xfedcba9876543210n);
    dst.evictSync(102n, [B]);
    expect(dst.lookupSync([2n]).get(2n)).toEqual(expect.arrayContaining([A, B])); // one reference of (2, B) left
    dst.evictSync(102n, [B]);
    expect(dst.lookupSync([2n]).get(2n)).toEqual([A]);
  });

  it('drops the entries and watermarks of pods keepPod rejects, and counts them', () => {
    const { data } = encodeSnapshot(filled(), FP, new Map([[A.pod, new Map([[0, 1n]])], [B.pod, new Map([[0, 2n]])]]));
    const dst = new MemoryIndex({ memoryBudgetBytes: 1 << 20 });
    const r = decodeSnapshot(data, dst, FP, 'mem', (pod) => pod === A.pod);
    expect(r).toMatchObject({ keys: 3, entries: 3, droppedEntries: 3, droppedPods: [B.pod] });
    expect([...r.seqs.keys()]).toEqual([A.pod]);
    expect(dst.lookupSync([0xfedcba9876543210n]).size).toBe(0);
    expect(dst.lookupSync([1n, 2n, 3n]).get(2n)).toEqual([A]);
  });

  it('an empty index round-trips', () => {
    const { data, stats } = encodeSnapshot(new MemoryIndex({ memoryBudgetBytes: 1 << 20 }), FP, new Map());
    expect(stats.keys).toBe(0);
    const r = decodeSnapshot(data, new MemoryIndex({ memoryBudgetBytes: 1 << 20 }), FP, 'mem');
    expect(r.keys).toBe(0);
  });

  it('a missing file is no snapshot (undefined), not an error', async () => {
    await expect(loadSnapshot(join(dir, 'none'), new MemoryIndex(), FP)).resolves.toBeUndefined();
  });

  const refused = (data: Buffer, fp = FP): SnapshotError => {
    const dst = new MemoryIndex({ memoryBudgetBytes: 1 << 20 });
    try {
      decodeSnapshot(data, dst, fp, '/var/kvroute/index.snapshot');
    } catch (e) {
      expect(e).toBeInstanceOf(SnapshotError);
      expect(dst.size).toBe(0); // refused before touching the index
      return e as SnapshotError;
    }
    throw new Error('snapshot was not refused');
  };

  it('refuses a corrupt snapshot (one flipped byte, truncation) with a clear error', () => {
    const { data } = encodeSnapshot(filled(), FP, new Map());
    const flipped = Buffer.from(data);
    flipped[flipped.length - 40] = (flipped[flipped.length - 40] as number) ^ 1;
    const e1 = refused(flipped);
    expect(e1.reason).toBe('corrupt');
    expect(e1.message).toMatch(/index snapshot \/var\/kvroute\/index.snapshot is corrupt \(SHA-256 mismatch.*delete \/var\/kvroute\/index.snapshot/);
    expect(refused(data.subarray(0, data.length - 10)).reason).toBe('corrupt');
  });

  it('refuses a foreign file, another format version, and a snapshot of another model, block size, seed or algo', () => {
    const e1 = refused(Buffer.from('{"this is": "json, not a snapshot", "padding": "..............................."}'));
    expect(e1.reason).toBe('foreign');
    expect(e1.message).toContain(`not a kvroute index snapshot (it does not start with ${SNAPSHOT_MAGIC})`);
    const { data } = encodeSnapshot(filled(), FP, new Map());
    const v2 = Buffer.from(data);
    v2.write('KVRSNAP2', 0, 'latin1');
    expect(refused(v2).message).toContain('snapshot format "KVRSNAP2", this EPP reads KVRSNAP1');
    for (const [k, v] of [['model', 'other'], ['blockSize', 32], ['hashSeed', '0'], ['hashAlgo', 'sha256_cbor_64bit']] as const) {
      const e = refused(data, { ...FP, [k]: v });
      expect(e.reason).toBe('foreign');
      expect(e.message).toContain(`written for another configuration: ${k} ${JSON.stringify(FP[k])} (this EPP: ${JSON.stringify(v)})`);
    }
  });

  it('a write leaves no temp file and replaces the previous snapshot atomically', async () => {
    const path = join(dir, 'index.snapshot');
    writeFileSync(path, 'old');
    await saveSnapshot(path, filled(), FP, new Map());
    expect(readFileSync(path).toString('latin1', 0, 8)).toBe(SNAPSHOT_MAGIC);
    await expect(loadSnapshot(`${path}.tmp`, new MemoryIndex(), FP)).resolves.toBeUndefined();
  });
});
