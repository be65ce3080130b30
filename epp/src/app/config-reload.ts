/**
 * Config file reload: `kvroute-epp serve --config FILE` watches FILE (polling its stat, which also
 * sees a Kubernetes ConfigMap's symlink swap) and, when it changes, loads and validates it again.
 * - Invalid (unreadable, not YAML, fails the schema): the running config is kept, the error is
 *   logged with the validator's message, and `kvroute_config_reloads_total{result="invalid"}` counts it.
 * - Valid: the fields that can change at run time are swapped in (`admission`: objective
 *   priorities and saturation thresholds, read by the director on every request) and
 *   counted as `applied`; any other changed field is logged by name as needing a restart and
 *   counted as `restart_required` (the running value stays).
 * - Unchanged content: counted as `unchanged`.
 */
import { watchFile, unwatchFile, type Stats } from 'node:fs';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { EppConfig } from '../contract/config.js';
import type { Logger } from '../util/logger.js';
import { ConfigReloadMetrics } from '../contract/metrics.js';

/** Top-level config fields the runtime applies without a restart. */
export const LIVE_CONFIG_FIELDS = ['admission'] as const;

export type ReloadResult = 'applied' | 'unchanged' | 'invalid' | 'restart_required';

export interface ConfigReloaderOptions {
  /** The watched file. */
  readonly file: string;
  /** Reads and validates the file (with the command-line flags on top); throws on a bad config. */
  readonly load: () => EppConfig;
  /** The config running now. */
  readonly current: EppConfig;
  /** Swaps in the live fields of a valid new config. */
  readonly apply: (next: EppConfig) => void;
  readonly logger: Logger;
  /** @default undefined (no metrics) */
  readonly registry?: Registry;
  /** Stat polling interval. @default 1000 */
  readonly intervalMs?: number;
}

const stable = (v: unknown): string => JSON.stringify(v);

export class ConfigReloader {
  private current: EppConfig;
  private readonly reloads: Counter<'result'> | undefined;
  private readonly lastOk: Gauge | undefined;
  private watching = false;
  private readonly onStat = (cur: Stats, prev: Stats): void => {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
    this.reload();
  };
  /** Results so far (also in the metric). */
  readonly counts: Record<ReloadResult, number> = { applied: 0, unchanged: 0, invalid: 0, restart_required: 0 };

  constructor(private readonly opts: ConfigReloaderOptions) {
    this.current = opts.current;
    if (opts.registry) {
      this.reloads = new Counter({
        name: ConfigReloadMetrics.reloads.name,
        help: 'Config file reloads by result: applied, unchanged, invalid (old config kept), restart_required (changed fields that only a restart applies).',
        labelNames: ['result'],
        registers: [opts.registry],
      });
      for (const r of Object.keys(this.counts)) this.reloads.inc({ result: r }, 0);
      this.lastOk = new Gauge({
        name: ConfigReloadMetrics.lastReloadSuccess.name,
        help: 'When the config file was last loaded successfully (start or reload).',
        registers: [opts.registry],
      });
      this.lastOk.set(Date.now() / 1000);
    }
  }

  /** The config in effect (live fields of the latest valid file, the rest as started). */
  get config(): EppConfig {
    return this.current;
  }

  start(): void {
    if (this.watching) return;
    this.watching = true;
    watchFile(this.opts.file, { interval: this.opts.intervalMs ?? 1000, persistent: false }, this.onStat);
  }

  stop(): void {
    if (!this.watching) return;
    this.watching = false;
    unwatchFile(this.opts.file, this.onStat);
  }

  private count(r: ReloadResult): ReloadResult {
    this.counts[r]++;
    this.reloads?.inc({ result: r });
    return r;
  }

  /** Loads the file now (the watcher calls this on a change). Never throws. */
  reload(): ReloadResult {
    const log = this.opts.logger;
    let next: EppConfig;
    try {
      next = this.opts.load();
    } catch (err) {
      log.error({ file: this.opts.file, err: (err as Error).message }, `config reload of ${this.opts.file} failed; keeping the running config: ${(err as Error).message}`);
      return this.count('invalid');
    }
    this.lastOk?.set(Date.now() / 1000);
    const changed = (Object.keys(next) as (keyof EppConfig)[]).filter((k) => stable(next[k]) !== stable(this.current[k]));
    if (changed.length === 0) {
      log.info({ file: this.opts.file }, 'config file changed on disk but its content is the running config');
      return this.count('unchanged');
    }
    const live = changed.filter((k) => (LIVE_CONFIG_FIELDS as readonly string[]).includes(k));
    const restart = changed.filter((k) => !(LIVE_CONFIG_FIELDS as readonly string[]).includes(k));
    if (live.length > 0) {
      const merged = { ...this.current } as Record<string, unknown>;
      for (const k of live) merged[k] = next[k];
      this.current = merged as EppConfig;
      try {
        this.opts.apply(this.current);
      } catch (err) {
        log.error({ file: this.opts.file, err: (err as Error).message }, 'applying the reloaded config failed');
        return this.count('invalid');
      }
      log.info({ file: this.opts.file, fields: live }, `config reloaded: ${live.join(', ')} applied`);
    }
    if (restart.length > 0) {
      log.warn({ file: this.opts.file, fields: restart }, `config fields ${restart.join(', ')} changed; they take effect after a restart (running values kept)`);
      return this.count(live.length > 0 ? 'applied' : 'restart_required');
    }
    return this.count('applied');
  }
}
