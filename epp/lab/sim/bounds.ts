/**
 * Offline bounds on a request sequence (docs/benchmarks/method.md, "Metrics"): H*, the token hit rate of one
 * infinite cache that sees every request in order (bounds any router), and the block reuse of a
 * trace at its own block granularity (the Mooncake check: 36.6 % for the conversation trace).
 */
import type { BlockKey } from '../../src/kvindex/types.js';
import { BlockKeyer, coveredTokens, type SimRequest } from './request.js';

export interface HitTotals {
  readonly queried: number;
  readonly hits: number;
  /** hits / queried (0 when nothing was queried). */
  readonly rate: number;
}

interface ExtentTable {
  get(id: number): number | undefined;
  set(id: number, v: number): void;
}

/** A dense typed array when ids are small integers (the generators'), else a Map. */
function extentTable(requests: readonly SimRequest[]): ExtentTable {
  let maxId = -1;
  let maxHb = 0;
  for (const r of requests) {
    const c = r.content;
    if (c.kind !== 'ids') continue;
    maxHb = Math.max(maxHb, c.idBlockSize);
    for (let j = 0; j < c.ids.length; j++) maxId = Math.max(maxId, c.ids[j] as number);
  }
  if (maxId >= 0 && maxId < 64 * 1024 * 1024 && maxHb <= 0xffff) {
    const a = new Uint16Array(maxId + 1);
    return {
      get: (id) => a[id],
      set: (id, v) => {
        a[id] = v;
      },
    };
  }
  return new Map<number, number>();
}

/**
 * Token hit rate of one infinite cache with vLLM's rules (full engine blocks only, at most
 * ⌊(L−1)/bs⌋ blocks), every request's computed blocks (prompt, and output when its content is
 * known) added after it. `measured(req)` selects the requests counted (all by default); the others
 * still fill the cache.
 */
export function infiniteCacheHitRate(
  requests: readonly SimRequest[],
  bs: number,
  measured: (req: SimRequest) => boolean = () => true,
  keyer: BlockKeyer = new BlockKeyer(),
): HitTotals {
  const extent = extentTable(requests); // ids content: id → tokens of it known to be cached
  const keys = new Set<BlockKey>(); // tokens content
  let queried = 0;
  let hits = 0;
  for (const req of requests) {
    const L = req.inputLength;
    const computedEnd = Math.floor(Math.min(coveredTokens(req), L + req.outputLength - 1) / bs) * bs;
    let hitTok = 0;
    const c = req.content;
    if (c.kind === 'ids') {
      const hb = c.idBlockSize;
      for (let j = 0; j < c.ids.length; j++) {
        const e = extent.get(c.ids[j] as number) ?? 0;
        hitTok += Math.min(e, hb);
        if (e < hb) break;
      }
      for (let j = 0; j * hb < computedEnd; j++) {
        const id = c.ids[j] as number;
        const e = Math.min(hb, computedEnd - j * hb);
        if ((extent.get(id) ?? 0) < e) extent.set(id, e);
      }
    } else {
      const ks = keyer.keys(req, bs);
      let h = 0;
      while (h < ks.length && keys.has(ks[h] as BlockKey)) h++;
      hitTok = h * bs;
      for (let i = 0; i < computedEnd / bs && i < ks.length; i++) keys.add(ks[i] as BlockKey);
    }
    const hit = Math.floor(Math.min(hitTok, L - 1) / bs) * bs;
    if (measured(req)) {
      queried += L;
      hits += hit;
    }
  }
  return { queried, hits, rate: queried === 0 ? 0 : hits / queried };
}

/**
 * Block reuse of an ids workload at its own id granularity: the fraction of all ids (blocks) of
 * all prompts, in order, whose id appeared before (an infinite cache of whole blocks).
 */
export function blockReuse(requests: readonly SimRequest[]): { blocks: number; reused: number; rate: number } {
  const seen = new Set<number>();
  let blocks = 0;
  let reused = 0;
  for (const req of requests) {
    const c = req.content;
    if (c.kind !== 'ids') throw new Error(`blockReuse: request ${req.id} has token ids, not hash ids`);
    const n = Math.ceil(req.inputLength / c.idBlockSize);
    for (let j = 0; j < n; j++) {
      const id = c.ids[j] as number;
      blocks++;
      if (seen.has(id)) reused++;
      else seen.add(id);
    }
  }
  return { blocks, reused, rate: blocks === 0 ? 0 : reused / blocks };
}
