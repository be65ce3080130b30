/**
 * Snapshots of the in-memory index, so an EPP restart does not start cold (`index.snapshot` in
 * the EPP config). The runtime writes one periodically and on shutdown, and loads it at start.
 *
 * What a snapshot holds: every request key (least recently used first, so loading restores the
 * LRU order) with its (pod, tier) holders and reference counts and the engine keys mapped onto it,
 * plus the KV-event sequence watermark of every pod (last applied seq per data-parallel rank).
 * Restoring the watermarks is what keeps a loaded snapshot exact: the first live batch of a pod
 * then shows the gap since the snapshot, which the pod's replay endpoint fills
 * (`events.podReplayPort`); a pod that restarted meanwhile (its seq went back) is cleared; without a
 * replay endpoint the gap marks the pod stale and its entries are dropped (never phantom hits).
 *
 * File format (version 1): `KVRSNAP1` magic, u32 LE header length, the JSON header (fingerprint:
 * model, blockSize, hashSeed, hashAlgo; the (pod, tier) table; the watermarks; counts), the
 * records, and a SHA-256 of everything before it. Records: key u64 LE, u16 holders × (u32 table
 * id, u32 count), u16 engine keys × u64 LE. Written to `<path>.tmp` and renamed, so a crash while
 * writing leaves the previous snapshot intact.
 *
 * Loading refuses, with a `SnapshotError` naming the file, the reason and the fix: a file that is
 * not a snapshot or of another version (`foreign`), a checksum or structure mismatch (`corrupt`),
 * and a snapshot of another model, block size, hash seed or hash algorithm (`foreign`): its keys
 * would never match this EPP's. Entries of pods `keepPod` rejects are dropped and counted.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BlockKey, PodEntry } from '../types.js';
import type { MemoryIndex } from './memory-index.js';

export const SNAPSHOT_MAGIC = 'KVRSNAP1';
export const SNAPSHOT_VERSION = 1;

/** What makes a snapshot's keys valid for an EPP: all four must match. */
export interface SnapshotFingerprint {
  readonly model: string;
  readonly blockSize: number;
  readonly hashSeed: string;
  readonly hashAlgo: string;
}

/** pod → data-parallel rank → last applied KV-event seq. */
export type SeqWatermarks = ReadonlyMap<string, ReadonlyMap<number, bigint>>;

export type SnapshotRefusal = 'foreign' | 'corrupt';

export class SnapshotError extends Error {
  constructor(
    readonly reason: SnapshotRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'SnapshotError';
  }
}

interface Header {
  readonly version: number;
  readonly createdAt: string;
  readonly fingerprint: SnapshotFingerprint;
  readonly pts: readonly PodEntry[];
  readonly seqs: Record<string, Record<string, string>>;
  readonly keys: number;
  readonly entries: number;
}

export interface SnapshotStats {
  readonly keys: number;
  readonly entries: number;
  readonly bytes: number;
}

/** Serializes `index` and `seqs` (synchronously: one consistent moment). */
export function encodeSnapshot(index: MemoryIndex, fp: SnapshotFingerprint, seqs: SeqWatermarks): { data: Buffer; stats: SnapshotStats } {
  const ptIds = new Map<PodEntry, number>();
  const pts: PodEntry[] = [];
  const chunks: Buffer[] = [];
  let buf = Buffer.alloc(1 << 16);
  let off = 0;
  const ensure = (n: number): void => {
    if (off + n <= buf.length) return;
    chunks.push(buf.subarray(0, off));
    buf = Buffer.alloc(Math.max(1 << 16, n));
    off = 0;
  };
  let keys = 0;
  let entries = 0;
  index.forEachRecord((key, holders, engineKeys) => {
    // holder lists are newest first and loading prepends: write them oldest first
    const hs = holders.slice(0, 0xffff).reverse();
    const es = engineKeys.slice(0, 0xffff);
    ensure(8 + 2 + hs.length * 8 + 2 + es.length * 8);
    buf.writeBigUInt64LE(key, off);
    off += 8;
    buf.writeUInt16LE(hs.length, off);
    off += 2;
    for (const h of hs) {
      let id = ptIds.get(h.entry);
      if (id === undefined) {
        id = pts.length;
        pts.push({ pod: h.entry.pod, tier: h.entry.tier });
        ptIds.set(h.entry, id);
      }
      buf.writeUInt32LE(id, off);
      buf.writeUInt32LE(h.count, off + 4);
      off += 8;
    }
    buf.writeUInt16LE(es.length, off);
    off += 2;
    for (const e of es) {
      buf.writeBigUInt64LE(e, off);
      off += 8;
    }
    keys++;
    entries += hs.length;
  });
  chunks.push(buf.subarray(0, off));
  const seqObj: Record<string, Record<string, string>> = {};
  for (const [pod, ranks] of seqs) {
    const r: Record<string, string> = {};
    for (const [rank, seq] of ranks) r[String(rank)] = seq.toString();
    seqObj[pod] = r;
  }
  const header: Header = { version: SNAPSHOT_VERSION, createdAt: new Date().toISOString(), fingerprint: { ...fp }, pts, seqs: seqObj, keys, entries };
  const hjson = Buffer.from(JSON.stringify(header), 'utf8');
  const head = Buffer.alloc(12);
  head.write(SNAPSHOT_MAGIC, 0, 'latin1');
  head.writeUInt32LE(hjson.length, 8);
  const body = Buffer.concat([head, hjson, ...chunks]);
  const sum = createHash('sha256').update(body).digest();
  const data = Buffer.concat([body, sum]);
  return { data, stats: { keys, entries, bytes: data.length } };
}

/** Writes a snapshot atomically (`<path>.tmp`, then rename). */
export async function saveSnapshot(path: string, index: MemoryIndex, fp: SnapshotFingerprint, seqs: SeqWatermarks): Promise<SnapshotStats> {
  const { data, stats } = encodeSnapshot(index, fp, seqs);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
  return stats;
}

export interface LoadResult {
  readonly keys: number;
  /** (key, pod, tier) holders restored. */
  readonly entries: number;
  /** Holders dropped because `keepPod` rejected their pod. */
  readonly droppedEntries: number;
  /** Pods whose entries were dropped. */
  readonly droppedPods: readonly string[];
  /** Watermarks of the kept pods. */
  readonly seqs: Map<string, Map<number, bigint>>;
  readonly createdAt: string;
}

function fpMismatch(a: SnapshotFingerprint, b: SnapshotFingerprint): string | undefined {
  for (const k of ['model', 'blockSize', 'hashSeed', 'hashAlgo'] as const) {
    if (a[k] !== b[k]) return `${k} ${JSON.stringify(a[k])} (this EPP: ${JSON.stringify(b[k])})`;
  }
  return undefined;
}

/**
 * Decodes `data` into `index` (which should be empty). Throws SnapshotError before touching the
 * index when the data is foreign or corrupt.
 */
export function decodeSnapshot(data: Buffer, index: MemoryIndex, fp: SnapshotFingerprint, source: string, keepPod: (pod: string) => boolean = () => true): LoadResult {
  const fix = `delete ${source} (the EPP writes a new one) or point index.snapshot.path elsewhere`;
  if (data.length < 12 + 32 || data.toString('latin1', 0, 8) !== SNAPSHOT_MAGIC) {
    const what = data.length >= 8 && data.toString('latin1', 0, 7) === SNAPSHOT_MAGIC.slice(0, 7) ? `snapshot format ${JSON.stringify(data.toString('latin1', 0, 8))}, this EPP reads ${SNAPSHOT_MAGIC}` : `it does not start with ${SNAPSHOT_MAGIC}`;
    throw new SnapshotError('foreign', `index snapshot ${source} is not a kvroute index snapshot (${what}); ${fix}`);
  }
  const body = data.subarray(0, data.length - 32);
  const sum = createHash('sha256').update(body).digest();
  if (!sum.equals(data.subarray(data.length - 32))) {
    throw new SnapshotError('corrupt', `index snapshot ${source} is corrupt (SHA-256 mismatch: truncated or modified); ${fix}`);
  }
  const hlen = body.readUInt32LE(8);
  if (12 + hlen > body.length) throw new SnapshotError('corrupt', `index snapshot ${source} is corrupt (header length ${hlen} past the end); ${fix}`);
  let header: Header;
  try {
    header = JSON.parse(body.toString('utf8', 12, 12 + hlen)) as Header;
  } catch (e) {
    throw new SnapshotError('corrupt', `index snapshot ${source} is corrupt (header is not JSON: ${(e as Error).message}); ${fix}`);
  }
  if (header.version !== SNAPSHOT_VERSION) throw new SnapshotError('foreign', `index snapshot ${source} has version ${header.version}; this EPP reads version ${SNAPSHOT_VERSION}; ${fix}`);
  const mismatch = fpMismatch(header.fingerprint, fp);
  if (mismatch) throw new SnapshotError('foreign', `index snapshot ${source} was written for another configuration: ${mismatch}, so its keys would never match; ${fix}`);
  if (!Array.isArray(header.pts) || typeof header.seqs !== 'object' || header.seqs === null) {
    throw new SnapshotError('corrupt', `index snapshot ${source} is corrupt (header has no pod table or watermarks); ${fix}`);
  }
  // First pass: validate the structure without touching the index.
  const records: { key: BlockKey; holders: { pt: number; count: number }[]; engine: BlockKey[] }[] = [];
  let off = 12 + hlen;
  const need = (n: number): void => {
    if (off + n > body.length) throw new SnapshotError('corrupt', `index snapshot ${source} is corrupt (record ${records.length} runs past the end); ${fix}`);
  };
  while (off < body.length) {
    need(10);
    const key = body.readBigUInt64LE(off);
    const nh = body.readUInt16LE(off + 8);
    off += 10;
    need(nh * 8 + 2);
    const holders: { pt: number; count: number }[] = [];
    for (let i = 0; i < nh; i++) {
      const pt = body.readUInt32LE(off);
      const count = body.readUInt32LE(off + 4);
      if (pt >= header.pts.length || count < 1) throw new SnapshotError('corrupt', `index snapshot ${source} is corrupt (record ${records.length}: holder ${pt} × ${count}); ${fix}`);
      holders.push({ pt, count });
      off += 8;
    }
    const ne = body.readUInt16LE(off);
    off += 2;
    need(ne * 8);
    const engine: BlockKey[] = [];
    for (let i = 0; i < ne; i++) {
      engine.push(body.readBigUInt64LE(off));
      off += 8;
    }
    records.push({ key, holders, engine });
  }
  if (records.length !== header.keys) throw new SnapshotError('corrupt', `index snapshot ${source} is corrupt (${records.length} records, header says ${header.keys}); ${fix}`);
  const keep = header.pts.map((p) => keepPod(p.pod));
  const droppedPods = new Set<string>();
  header.pts.forEach((p, i) => {
    if (!keep[i]) droppedPods.add(p.pod);
  });
  let entries = 0;
  let droppedEntries = 0;
  let keys = 0;
  for (const r of records) {
    const kept = r.holders.filter((h) => keep[h.pt]);
    droppedEntries += r.holders.length - kept.length;
    if (kept.length === 0) continue;
    index.addSync(r.engine, [r.key], kept.map((h) => header.pts[h.pt] as PodEntry));
    for (const h of kept) for (let c = 1; c < h.count; c++) index.addSync([], [r.key], [header.pts[h.pt] as PodEntry]);
    entries += kept.length;
    keys++;
  }
  const seqs = new Map<string, Map<number, bigint>>();
  for (const [pod, ranks] of Object.entries(header.seqs)) {
    if (!keepPod(pod)) continue;
    const m = new Map<number, bigint>();
    for (const [rank, seq] of Object.entries(ranks)) {
      if (!/^\d+$/.test(rank) || !/^\d+$/.test(seq)) throw new SnapshotError('corrupt', `index snapshot ${source} is corrupt (watermark ${pod}/${rank} = ${seq}); ${fix}`);
      m.set(Number(rank), BigInt(seq));
    }
    seqs.set(pod, m);
  }
  return { keys, entries, droppedEntries, droppedPods: [...droppedPods], seqs, createdAt: header.createdAt };
}

/** Reads and decodes the snapshot at `path`; undefined when there is none. Throws SnapshotError. */
export async function loadSnapshot(path: string, index: MemoryIndex, fp: SnapshotFingerprint, keepPod?: (pod: string) => boolean): Promise<LoadResult | undefined> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SnapshotError('corrupt', `index snapshot ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix its permissions or point index.snapshot.path elsewhere`);
  }
  return decodeSnapshot(data, index, fp, path, keepPod);
}
