/**
 * The report's "kvroute vs peers" section: per workload and load stage, kvroute's metrics beside
 * every peer router's (lab/sim/peers/) and kvroute ÷ the best peer per metric; and the W2 sanity
 * check that the published order of llm-d's 2025-09 blog (precise ≫ approximate ≫ load-only ≈
 * random) reproduces on the simulator.
 */
import { findCell, ratio, type Cell, type Stat } from './aggregate.js';
import { fmtMs, fmtNum, fmtPct } from './markdown.js';
import { PEERS } from './targets.js';
import type { ValidationCheck } from './validate.js';

/** One metric of the peer tables: how to read it and which way is better. */
interface Metric {
  readonly head: string;
  readonly higherIsBetter: boolean;
  readonly fmt: (s: Stat) => string;
}

const METRICS = {
  hit: { head: 'token hit', higherIsBetter: true, fmt: fmtPct },
  p50: { head: 'TTFT p50', higherIsBetter: false, fmt: fmtMs },
  p90: { head: 'TTFT p90', higherIsBetter: false, fmt: fmtMs },
  p99: { head: 'TTFT p99', higherIsBetter: false, fmt: fmtMs },
  tput: { head: 'output tok/s', higherIsBetter: true, fmt: (s: Stat) => fmtNum(s, 0) },
  load: { head: 'load max/mean', higherIsBetter: false, fmt: (s: Stat) => fmtNum(s, 2) },
} as const satisfies Record<string, Metric>;
type MetricKey = keyof typeof METRICS;
const KEYS = Object.keys(METRICS) as MetricKey[];

/** The metrics of a cell (whole run) or of one of its stages. */
type Row = Record<MetricKey, Stat>;

function wholeRow(c: Cell): Row {
  return { hit: c.tokenHitRate, p50: c.ttftP50Ms, p90: c.ttftP90Ms, p99: c.ttftP99Ms, tput: c.outputTokensPerSec, load: c.loadMaxOverMean };
}

function stageRow(c: Cell, rate: number): Row | undefined {
  const s = c.stages.find((st) => st.rate === rate);
  return s && { hit: s.tokenHitRate, p50: s.ttftP50Ms, p90: s.ttftP90Ms, p99: s.ttftP99Ms, tput: s.outputTokensPerSec, load: s.loadMaxOverMean };
}

/** kvroute ÷ the best peer on each metric (best = highest or lowest mean, per metric). */
export function ratioToBestPeer(mine: Row, peers: readonly { readonly name: string; readonly row: Row }[]): Record<MetricKey, { ratio: number; best: string }> {
  const out = {} as Record<MetricKey, { ratio: number; best: string }>;
  for (const k of KEYS) {
    const m = METRICS[k];
    const cands = peers.filter((p) => Number.isFinite(p.row[k].mean));
    if (cands.length === 0) {
      out[k] = { ratio: NaN, best: '' };
      continue;
    }
    const best = cands.reduce((a, b) => ((m.higherIsBetter ? b.row[k].mean > a.row[k].mean : b.row[k].mean < a.row[k].mean) ? b : a));
    out[k] = { ratio: ratio(mine[k].mean, best.row[k].mean), best: best.name };
  }
  return out;
}

function table(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

const ratioText = (r: { ratio: number; best: string }): string => (Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}× (${r.best})` : 'n/a');

/** Rows of one block (whole run or one stage): every policy present, then kvroute ÷ best peer. */
function block(label: string, rows: readonly { readonly name: string; readonly row: Row }[], policy: string, peers: readonly string[]): string[][] {
  const out = rows.map((r) => [label, r.name, ...KEYS.map((k) => METRICS[k].fmt(r.row[k]))]);
  const mine = rows.find((r) => r.name === policy);
  const ps = rows.filter((r) => peers.includes(r.name));
  if (mine && ps.length > 0) {
    const q = ratioToBestPeer(mine.row, ps);
    out.push([label, `**${policy} ÷ best peer**`, ...KEYS.map((k) => ratioText(q[k]))]);
  }
  return out;
}

export interface PeerSectionInput {
  readonly cells: readonly Cell[];
  readonly workloads: readonly string[];
  /** @default 'kvroute' */
  readonly policy?: string;
  /** @default PEERS */
  readonly peers?: readonly string[];
  /** Other policies shown for reference (not counted as peers). @default ['kvroute-llmd', 'oracle'] */
  readonly references?: readonly string[];
  /** chart file per workload */
  readonly charts?: ReadonlyMap<string, string>;
}

/** Markdown lines of the "kvroute vs peers" section (empty when no peer ran). */
export function renderPeerSection(inp: PeerSectionInput): string[] {
  const policy = inp.policy ?? 'kvroute';
  const peers = inp.peers ?? PEERS;
  const shown = [policy, ...(inp.references ?? ['kvroute-llmd', 'oracle']), ...peers];
  if (!inp.cells.some((c) => peers.includes(c.policy))) return [];
  const L: string[] = [];
  L.push('## kvroute vs peers');
  L.push('');
  L.push(
    `The peer routers' policies (\`epp/lab/sim/peers/\`, each re-implemented from its specification) on the same simulated fleet, workloads and seeds as \`${policy}\`. Per workload: the whole run, then each measured load stage. "${policy} ÷ best peer" divides ${policy}'s mean by the best peer's mean on that metric (best = highest token hit and output tok/s, lowest TTFT and load max/mean; the peer is named); below 1 is better for TTFT and load, above 1 for hit and throughput. Reference rows (${(inp.references ?? ['kvroute-llmd', 'oracle']).join(', ')}) are not peers.`,
  );
  const head = ['stage', 'policy', ...KEYS.map((k) => METRICS[k].head)];
  for (const w of inp.workloads) {
    const cells = shown.flatMap((p) => {
      const c = findCell(inp.cells, w, p);
      return c ? [c] : [];
    });
    if (!cells.some((c) => peers.includes(c.policy))) continue;
    L.push('');
    L.push(`### ${w}: kvroute vs peers`);
    L.push('');
    const rows: string[][] = [];
    rows.push(...block('whole run', cells.map((c) => ({ name: c.policy, row: wholeRow(c) })), policy, peers));
    const rates = [...new Set(cells.flatMap((c) => c.stages.map((s) => s.rate)))].sort((a, b) => a - b);
    for (const rate of rates) {
      const unit = cells.flatMap((c) => c.stages).find((s) => s.rate === rate)?.unit ?? '';
      const rs = cells.flatMap((c) => {
        const r = stageRow(c, rate);
        return r ? [{ name: c.policy, row: r }] : [];
      });
      rows.push(...block(`${rate} ${unit}`, rs, policy, peers));
    }
    L.push(...table(head, rows));
    const chart = inp.charts?.get(w);
    if (chart) {
      L.push('');
      L.push(`![${w}: TTFT p90 vs offered load, kvroute and every peer](${chart})`);
    } else if (rates.length === 0) {
      L.push('');
      L.push('A trace replays at its own timestamps: one load level, so no TTFT-vs-load plot.');
    }
  }
  return L;
}

/** The ordered policies of the W2 sanity check, llm-d blog 2025-09 (precise, approximate, load-only, random). */
export const W2_ORDER = ['llmd-precise-2025', 'gie-default', 'least-loaded', 'random'] as const;

/**
 * The approximate router in the W2 check's second place: `gie-default` (the GIE EPP's no-config
 * default today: LRU per pod sized by num_gpu_blocks, blocks of the engine's block size, weights
 * 3/2/2), or `approx-prefix`, the configuration the blog's "estimated" row actually ran (16-token
 * blocks, at most 256 of them, LRU of 31,250 blocks per pod whatever the pod holds, weights 1/1/1).
 */
export const W2_APPROXIMATES = ['gie-default', 'approx-prefix'] as const;
export type W2Approximate = (typeof W2_APPROXIMATES)[number];

/** The W2 check's four policies with `approx` in second place. */
export function w2Order(approx: W2Approximate = 'gie-default'): readonly [string, string, string, string] {
  return [W2_ORDER[0], approx, W2_ORDER[2], W2_ORDER[3]];
}

/**
 * W2 sanity check: precise ≫ approximate ≫ load-only ≈ random on TTFT p90 of the whole run,
 * read as: approximate ≥ 2× precise's, both load-only and random ≥ 2× approximate's, and
 * load-only and random within 1.5× of each other. Also shows output tok/s. Not run → SKIP.
 * `approx` picks the approximate router (see `W2_APPROXIMATES`).
 */
export function w2OrderCheck(cells: readonly Cell[], workload = 'w2', approx: W2Approximate = 'gie-default'): ValidationCheck {
  const order = w2Order(approx);
  const name = `W2 published order: ${order.join(' ≫ ').replace(' ≫ random', ' ≈ random')} (TTFT p90)${approx === 'approx-prefix' ? ", approx-prefix = the blog's estimated config" : ''}`;
  const expected = 'approx ≥ 2× precise; load-only, random ≥ 2× approx; load-only ÷ random in [1/1.5, 1.5]';
  const cs = order.map((p) => findCell(cells, workload, p));
  if (cs.some((c) => c === undefined)) {
    return { name, measured: `not run (needs ${order.join(', ')} on ${workload})`, expected, pass: undefined };
  }
  const [pr, ap, lo, ra] = cs as Cell[] as [Cell, Cell, Cell, Cell];
  const p90 = (c: Cell): number => c.ttftP90Ms.mean;
  const ms = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`);
  const r1 = ratio(p90(ap), p90(pr));
  const r2 = ratio(Math.min(p90(lo), p90(ra)), p90(ap));
  const r3 = ratio(p90(lo), p90(ra));
  const pass = r1 >= 2 && r2 >= 2 && r3 >= 1 / 1.5 && r3 <= 1.5;
  const tput = (c: Cell): string => c.outputTokensPerSec.mean.toFixed(0);
  return {
    name,
    measured: `TTFT p90 ${ms(p90(pr))} / ${ms(p90(ap))} / ${ms(p90(lo))} / ${ms(p90(ra))} (approx ÷ precise ${r1.toFixed(1)}×, min(load, random) ÷ approx ${r2.toFixed(1)}×, load ÷ random ${r3.toFixed(2)}); output tok/s ${tput(pr)} / ${tput(ap)} / ${tput(lo)} / ${tput(ra)}`,
    expected,
    pass,
  };
}
