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
import { bestWeights, compareDefaultWeights, evaluateTargets, weightsLabel, DEFAULT_WEIGHTS } from './targets.js';
import type { ValidationCheck } from './validate.js';

export const POLICY_DESCRIPTIONS: Readonly<Record<string, string>> = {
  random: 'uniform, seeded',
  'round-robin': 'cyclic (K8s Service)',
  'least-loaded': 'load only: fewest waiting at the last scrape, then fewest running',
  session: 'consistent hash of x-session-id',
  chwbl: 'consistent hashing with bounded loads (ε 0.25) on the first 256 tokens',
  'approx-prefix': 'llm-d/GIE estimated prefix (router-side LRU) + queue + kv-util, 1/1/1',
  precise: 'prefix only: the EPP index fed by KV events, argmax prefix score, no load term',
  kvroute: "the EPP's scheduler, default weights prefix 3 / queue 2 / kv-util 2 / in-flight 1",
  oracle: 'true cache and queue state, zero lag, argmin predicted TTFT',
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
  for (const w of inp.workloads) {
    const cells = main.filter((c) => c.workload === w.name);
    if (cells.length === 0) continue;
    charts.set(`${w.name}-hit-rate.svg`, hitRateSpec(w.name, cells));
    refs.push({ title: `${w.name} token hit rate by policy`, file: `${w.name}-hit-rate.svg` });
    if (cells.some((c) => c.stages.length > 0)) {
      charts.set(`${w.name}-ttft-p90-vs-load.svg`, ttftVsLoadSpec(w.name, cells));
      refs.push({ title: `${w.name} TTFT p90 vs offered load`, file: `${w.name}-ttft-p90-vs-load.svg` });
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
    validation: inp.validation,
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

/** The command line as shown in the report: no --out, the trace path as <trace>. */
export function displayCommand(argv: readonly string[]): string {
  const shown: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--out' || a === '--trace') {
      i++;
      if (a === '--trace') shown.push('--trace <mooncake-conversation.jsonl>');
      continue;
    }
    if (a.startsWith('--out=')) continue;
    shown.push(a.startsWith('--trace=') ? '--trace <mooncake-conversation.jsonl>' : a);
  }
  return `npm run bench:report -- ${shown.join(' ')}`.trim();
}
