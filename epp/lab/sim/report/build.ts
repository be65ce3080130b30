/**
 * From run results to the report: aggregation, targets, comparison, weight sweep, charts and
 * markdown. `writeReport` writes README.md and the SVGs into a directory.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { aggregateRuns, findCell, type Cell } from './aggregate.js';
import { hitRateSpec, podShareSpec, renderSvg, ttftVsLoadSpec, type ChartSpec } from './charts.js';
import { renderMarkdown, type ChartRef, type ReportData } from './markdown.js';
import type { JobResult } from './suite.js';
import { W2_APPROXIMATES, W2_ORDER, renderPeerSection, w2OrderCheck } from './peers.js';
import { bestWeights, compareDefaultWeights, evaluatePeerTargets, evaluateTargets, weightsLabel, DEFAULT_WEIGHTS, PEERS } from './targets.js';
import type { ValidationCheck } from './validate.js';

export const POLICY_DESCRIPTIONS: Readonly<Record<string, string>> = {
  random: 'uniform, seeded',
  'round-robin': 'cyclic (K8s Service)',
  'least-loaded': 'load only: fewest waiting at the last scrape, then fewest running',
  session: 'consistent hash of x-session-id',
  chwbl: 'consistent hashing with bounded loads (ε 0.25) on the first 256 tokens',
  'approx-prefix': 'llm-d/GIE estimated prefix as llm-d benchmarked it in 2025-09 (router-side LRU of 31,250 16-token blocks per pod, at most 256 blocks matched) + queue + kv-util, 1/1/1',
  precise: 'prefix only: the EPP index fed by KV events, argmax prefix score, no load term',
  kvroute: "the EPP's scheduler with the EPP config's defaults (epp/README.md)",
  'kvroute-llmd': "the EPP's scheduler, preset llm-d suite: precise prefix 3 / queue 2 / kv-util 2 / in-flight 1 (the previous default)",
  oracle: 'true cache and queue state, zero lag, argmin predicted TTFT',
  'llmd-precise': 'peer: llm-d precise-prefix-cache guide (precise prefix int(sum)/total 2, kv-util 1, queue 1; EPP index fed by KV events)',
  'llmd-precise-2025': 'peer: llm-d precise guide with the 2025 min-max prefix normalisation',
  'llmd-estimate': 'peer: llm-d optimized baseline (approximate prefix over 64-token blocks, affinity filter 0.80 + 18 s gate, token-load scorer)',
  'gie-default': 'peer: GIE/llm-d EPP with no config (queue 2, kv-util 2, approximate prefix 3, LRU per pod = num_gpu_blocks)',
  dynamo: 'peer: NVIDIA Dynamo KV router (argmin prefill blocks − overlap credit + decode blocks; KV events; router-side load)',
  sglang: 'peer: SGLang cache_aware (shared radix tree from routing, threshold 0.3, balance 64 / 1.5, in-flight counts)',
  aibrix: 'peer: AIBrix prefix-cache (4-byte blocks, LRU 200,000, imbalance 8, mean + 1σ gate, least-request fallback)',
};

export interface BuildInput {
  readonly results: readonly JobResult[];
  readonly validation: readonly ValidationCheck[];
  readonly generated: string;
  readonly command: string;
  readonly quick: boolean;
  readonly notes: readonly string[];
  readonly seeds: readonly number[];
  readonly workloads: readonly { readonly name: string; readonly description: string }[];
  readonly policies: readonly string[];
}

export interface BuiltReport {
  readonly markdown: string;
  readonly data: ReportData;
  /** file name → Vega-Lite spec */
  readonly charts: ReadonlyMap<string, ChartSpec>;
}

export function buildReport(inp: BuildInput): BuiltReport {
  const main = aggregateRuns(inp.results.filter((r) => r.job.section === 'main'));
  const sensitivity = aggregateRuns(inp.results.filter((r) => r.job.section === 'sensitivity'));
  const weightSweep = aggregateRuns(inp.results.filter((r) => r.job.section === 'weights'));
  const best: Cell[] = [];
  for (const w of new Set(weightSweep.map((c) => c.workload))) {
    const cells = weightSweep.filter((c) => c.workload === w);
    const b = bestWeights(cells, findCell(cells, w, 'kvroute', weightsLabel(DEFAULT_WEIGHTS)));
    if (b) best.push(b);
  }
  const charts = new Map<string, ChartSpec>();
  const refs: ChartRef[] = [];
  const peerCharts = new Map<string, string>();
  for (const w of inp.workloads) {
    const cells = main.filter((c) => c.workload === w.name);
    if (cells.length === 0) continue;
    charts.set(`${w.name}-hit-rate.svg`, hitRateSpec(w.name, cells));
    refs.push({ title: `${w.name} token hit rate by policy`, file: `${w.name}-hit-rate.svg` });
    if (cells.some((c) => c.stages.length > 0)) {
      charts.set(`${w.name}-ttft-p90-vs-load.svg`, ttftVsLoadSpec(w.name, cells));
      refs.push({ title: `${w.name} TTFT p90 vs offered load`, file: `${w.name}-ttft-p90-vs-load.svg` });
    }
    const peerCells = cells.filter((c) => c.policy === 'kvroute' || c.policy === 'kvroute-llmd' || c.policy === 'oracle' || (PEERS as readonly string[]).includes(c.policy));
    if (peerCells.some((c) => (PEERS as readonly string[]).includes(c.policy)) && peerCells.some((c) => c.stages.length > 0)) {
      charts.set(`${w.name}-peers-ttft-p90-vs-load.svg`, ttftVsLoadSpec(`${w.name} kvroute vs peers`, peerCells));
      peerCharts.set(w.name, `${w.name}-peers-ttft-p90-vs-load.svg`);
    }
    if (w.name === 'w1') {
      charts.set('w1-pod-share.svg', podShareSpec('w1', cells));
      refs.push({ title: 'w1 per-pod request share', file: 'w1-pod-share.svg' });
    }
  }
  const data: ReportData = {
    generated: inp.generated,
    command: inp.command,
    quick: inp.quick,
    notes: inp.notes,
    seeds: inp.seeds,
    workloads: inp.workloads,
    policies: inp.policies.map((p) => ({ name: p, description: POLICY_DESCRIPTIONS[p] ?? p })),
    cells: main,
    targets: evaluateTargets(main),
    beats: compareDefaultWeights(main, inp.workloads.map((w) => w.name)),
    validation: main.some((c) => c.workload === 'w2' && (W2_ORDER as readonly string[]).includes(c.policy))
      ? [
          ...inp.validation,
          ...W2_APPROXIMATES.filter((a) => a === 'gie-default' || main.some((c) => c.workload === 'w2' && c.policy === a)).map((a) => {
            const c = w2OrderCheck(main, 'w2', a);
            return { ...c, name: `${c.name}, report W2 (seeds ${inp.seeds.join(', ')})` };
          }),
        ]
      : inp.validation,
    peerSection: renderPeerSection({ cells: main, workloads: inp.workloads.map((w) => w.name), charts: peerCharts }),
    peerTargets: evaluatePeerTargets(inp.results.filter((r) => r.job.section === 'main')),
    sensitivity,
    weightSweep,
    bestWeights: best,
    charts: refs,
  };
  return { markdown: renderMarkdown(data), data, charts };
}

/** Writes README.md and every chart's SVG into `dir` (created if missing). */
export async function writeReport(dir: string, report: BuiltReport): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [file, spec] of report.charts) {
    await writeFile(join(dir, file), (await renderSvg(spec)) + '\n');
    written.push(file);
  }
  await writeFile(join(dir, 'README.md'), report.markdown);
  written.push('README.md');
  return written;
}

/** The command line as shown in the report: no --out, trace paths as <file name>. */
export function displayCommand(argv: readonly string[]): string {
  const traces: Readonly<Record<string, string>> = { '--trace': '<mooncake-conversation.jsonl>', '--trace-synthetic': '<mooncake-synthetic.jsonl>' };
  const shown: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--out' || a in traces) {
      i++;
      if (a in traces) shown.push(`${a} ${traces[a] as string}`);
      continue;
    }
    if (a.startsWith('--out=')) continue;
    const eq = a.indexOf('=');
    const flag = eq < 0 ? a : a.slice(0, eq);
    shown.push(eq >= 0 && flag in traces ? `${flag} ${traces[flag] as string}` : a);
  }
  return `npm run bench:report -- ${shown.join(' ')}`.trim();
}
