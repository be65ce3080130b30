/** Progress on stderr: a redrawn bar on a TTY, one plain line per job otherwise. */
export interface ProgressSink {
  readonly isTTY: boolean;
  write(s: string): void;
}

export interface ProgressOptions {
  /** Bar width in characters. @default 24 */
  readonly width?: number;
  /** Minimum ms between TTY redraws. @default 100 */
  readonly redrawMs?: number;
  /** @default performance.now */
  readonly now?: () => number;
}

/** Renders `[#####-----] 50 %` for a fraction in [0, 1] (clamped). */
export function bar(fraction: number, width = 24): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'-'.repeat(width - n)}] ${Math.round(100 * f)} %`;
}

export class Progress {
  private lastDraw = -Infinity;
  private lastJob = -1;
  private readonly width: number;
  private readonly redrawMs: number;
  private readonly now: () => number;
  private readonly t0: number;

  constructor(
    private readonly sink: ProgressSink,
    private readonly totalJobs: number,
    opts: ProgressOptions = {},
  ) {
    this.width = opts.width ?? 24;
    this.redrawMs = opts.redrawMs ?? 100;
    this.now = opts.now ?? (() => performance.now());
    this.t0 = this.now();
  }

  /** A job's progress: `job` is 0-based, `done`/`total` are its requests. */
  update(job: number, label: string, done: number, total: number): void {
    const elapsed = `${Math.round((this.now() - this.t0) / 1000)} s`;
    if (!this.sink.isTTY) {
      if (job !== this.lastJob) {
        this.lastJob = job;
        this.sink.write(`[${job + 1}/${this.totalJobs}] ${label} (${total} requests; ${elapsed} elapsed)\n`);
      }
      return;
    }
    const t = this.now();
    if (job === this.lastJob && done < total && t - this.lastDraw < this.redrawMs) return;
    this.lastJob = job;
    this.lastDraw = t;
    const frac = total > 0 ? done / total : 0;
    const overall = this.totalJobs > 0 ? (job + frac) / this.totalJobs : 1;
    this.sink.write(`\r\x1b[2K${bar(overall, this.width)} job ${job + 1}/${this.totalJobs} ${label} ${done}/${total} req, ${elapsed}`);
  }

  /** A non-job step (e.g. validation). */
  step(label: string): void {
    if (this.sink.isTTY) this.sink.write(`\r\x1b[2K${label}`);
    else this.sink.write(`${label}\n`);
  }

  end(): void {
    if (this.sink.isTTY) this.sink.write('\n');
  }
}
