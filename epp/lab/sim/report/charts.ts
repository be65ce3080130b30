/**
 * The report's plots as Vega-Lite specs, rendered headlessly to SVG (vega-lite → vega, renderer
 * 'none'): hit rate by policy, TTFT p90 vs offered load per policy, per-pod request share.
 */
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { Cell } from './aggregate.js';

export type ChartSpec = vegaLite.TopLevelSpec;

/** Renders a Vega-Lite spec to an SVG string without a browser or canvas. */
export async function renderSvg(spec: ChartSpec): Promise<string> {
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const round = (x: number, d = 4): number => Number(x.toFixed(d));

/** Bar chart: token hit rate (mean over seeds, with min–max rule) per policy, H* as a dashed rule. */
export function hitRateSpec(workload: string, cells: readonly Cell[]): ChartSpec {
  const rows = cells.map((c) => ({ policy: c.policy, hit: round(c.tokenHitRate.mean), lo: round(c.tokenHitRate.min), hi: round(c.tokenHitRate.max) }));
  const hStar = cells.length === 0 ? 0 : round(cells.reduce((a, c) => a + c.oracleTokenHitRate.mean, 0) / cells.length);
  const order = rows.map((r) => r.policy);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${workload}: token hit rate by policy (H* dashed)`,
    width: 420,
    height: 240,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'bar', color: '#4c78a8' },
        encoding: {
          x: { field: 'policy', type: 'nominal', sort: order, title: 'policy' },
          y: { field: 'hit', type: 'quantitative', title: 'token hit rate', scale: { domain: [0, 1] }, axis: { format: '%' } },
        },
      },
      {
        data: { values: rows },
        mark: { type: 'rule', color: 'black' },
        encoding: { x: { field: 'policy', type: 'nominal', sort: order }, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
      },
      {
        data: { values: [{ h: hStar }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: '#e45756' },
        encoding: { y: { field: 'h', type: 'quantitative' } },
      },
    ],
  };
}

/** Line chart: TTFT p90 (mean over seeds) per measured stage's offered load, one line per policy (log y). */
export function ttftVsLoadSpec(workload: string, cells: readonly Cell[], sloMs = 2000): ChartSpec {
  const rows = cells.flatMap((c) => c.stages.filter((s) => s.ttftP90Ms.mean > 0).map((s) => ({ policy: c.policy, load: s.rate, p90: round(s.ttftP90Ms.mean / 1000, 5) })));
  const unit = cells.find((c) => c.stages.length > 0)?.stages[0]?.unit ?? 'req/s';
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${workload}: TTFT p90 vs offered load (SLO ${sloMs / 1000} s dashed)`,
    width: 420,
    height: 260,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'load', type: 'quantitative', title: `offered load (${unit})` },
          y: { field: 'p90', type: 'quantitative', title: 'TTFT p90 (s)', scale: { type: 'log' } },
          color: { field: 'policy', type: 'nominal', title: 'policy' },
        },
      },
      {
        data: { values: [{ slo: sloMs / 1000 }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' },
        encoding: { y: { field: 'slo', type: 'quantitative' } },
      },
    ],
  };
}

/** Grouped bars: each pod's share of requests per policy (1/N = even). */
export function podShareSpec(workload: string, cells: readonly Cell[]): ChartSpec {
  const rows = cells.flatMap((c) => c.podRequestShare.map((s, i) => ({ policy: c.policy, pod: `pod ${i}`, share: round(s) })));
  const order = cells.map((c) => c.policy);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${workload}: per-pod request share`,
    data: { values: rows },
    width: 420,
    height: 240,
    mark: 'bar',
    encoding: {
      x: { field: 'policy', type: 'nominal', sort: order, title: 'policy' },
      xOffset: { field: 'pod', type: 'nominal' },
      y: { field: 'share', type: 'quantitative', title: 'request share', axis: { format: '%' } },
      color: { field: 'pod', type: 'nominal', title: 'pod' },
    },
  };
}
