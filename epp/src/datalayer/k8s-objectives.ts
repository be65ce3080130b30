/**
 * InferenceObjective priorities from the cluster (GIE `inference.networking.x-k8s.io/v1alpha2`):
 * a namespace-scoped informer keeps `name → spec.priority` for the objectives whose `spec.poolRef`
 * names this EPP's InferencePool (unset priority = 0). Admission looks a request's
 * `x-gateway-inference-objective` up here first, then in the config's `admission.objectives`.
 *
 * A cluster without the CRD (404) or an EPP without RBAC for it (403) is reported once and retried
 * slowly; admission then runs on the config alone.
 */
import { CustomObjectsApi, KubeConfig, makeInformer, type Informer, type KubernetesListObject, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { RateLimitedLog } from '../kvevents/observe.js';
import type { Logger } from '../util/logger.js';

export const InferenceObjectiveApi = { group: 'inference.networking.x-k8s.io', version: 'v1alpha2', plural: 'inferenceobjectives' } as const;

export interface InferenceObjectiveObject extends KubernetesObject {
  spec?: {
    priority?: number;
    poolRef?: { name?: string; group?: string; kind?: string };
  };
}

export interface ObjectiveWatchOptions {
  readonly logger: Logger;
  readonly poolName: string;
  readonly namespace: string;
  readonly kubeConfig: KubeConfig;
  /**
   * Delay before restarting a failed watch.
   * @default 1000
   */
  readonly restartDelayMs?: number;
  /**
   * Delay before retrying when the API answers 404 (no CRD) or 403 (no RBAC).
   * @default 60000
   */
  readonly unavailableRetryMs?: number;
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } } | undefined;
  for (const v of [e?.code, e?.statusCode, e?.response?.statusCode]) if (typeof v === 'number') return v;
  const m = /HTTP-Code: (\d{3})|status code (\d{3})/i.exec(err instanceof Error ? err.message : String(err));
  return m ? Number(m[1] ?? m[2]) : undefined;
}

/** The objectives of `poolName` among `objects`, as name → priority. */
export function objectivePriorities(objects: readonly InferenceObjectiveObject[], poolName: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const o of objects) {
    const name = o.metadata?.name;
    const ref = o.spec?.poolRef;
    if (!name || ref?.name !== poolName || (ref.kind ?? 'InferencePool') !== 'InferencePool') continue;
    const p = o.spec?.priority;
    out.set(name, typeof p === 'number' && Number.isInteger(p) ? p : 0);
  }
  return out;
}

export class InferenceObjectiveWatch {
  private informer: (Informer<InferenceObjectiveObject> & ObjectCache<InferenceObjectiveObject>) | undefined;
  private current = new Map<string, number>();
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** The list + watch start in progress (stop() waits for it, then stops the informer again). */
  private starting: Promise<void> | undefined;
  private reportedUnavailable = false;
  /** Consecutive failures since the last successful (re)connect, for the backoff. */
  private failures = 0;
  private readonly warnLog: RateLimitedLog;
  /** Watch restarts after errors (for tests). */
  restarts = 0;

  constructor(private readonly opts: ObjectiveWatchOptions) {
    this.warnLog = new RateLimitedLog(opts.logger, 60_000);
  }

  /** Priority of the objective `name` of this pool, or undefined when the cluster has none. */
  priorityOf(name: string): number | undefined {
    return this.current.get(name);
  }

  /** The objectives seen, name → priority. */
  get objectives(): ReadonlyMap<string, number> {
    return this.current;
  }

  /**
   * Starts watching. Resolves once the first list has been answered (or failed: a failing API is
   * retried in the background); never rejects. Callers that must not wait on the API server need
   * not await it.
   */
  async start(): Promise<void> {
    const { group, version, plural } = InferenceObjectiveApi;
    const custom = this.opts.kubeConfig.makeApiClient(CustomObjectsApi);
    const ns = this.opts.namespace;
    const inf = makeInformer<InferenceObjectiveObject>(
      this.opts.kubeConfig,
      `/apis/${group}/${version}/namespaces/${ns}/${plural}`,
      async () => (await custom.listNamespacedCustomObject({ group, version, namespace: ns, plural })) as KubernetesListObject<InferenceObjectiveObject>,
    );
    const sync = (): void => this.sync(inf);
    inf.on('add', sync);
    inf.on('update', sync);
    inf.on('delete', sync);
    // 'connect' comes before the list (client-node 1.4), so it says nothing about success
    inf.on('connect', sync);
    inf.on('error', (err) => this.restartLater(inf, err));
    this.informer = inf;
    await this.run(inf);
  }

  private sync(inf: Informer<InferenceObjectiveObject> & ObjectCache<InferenceObjectiveObject>): void {
    if (this.informer === inf && !this.stopped) this.current = objectivePriorities(inf.list(), this.opts.poolName);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    // A start still listing would open its watch after a stop() that ran meanwhile: wait, stop again.
    await this.starting?.catch(() => undefined);
    await this.informer?.stop().catch(() => undefined);
  }

  private run(inf: Informer<InferenceObjectiveObject> & ObjectCache<InferenceObjectiveObject>): Promise<void> {
    // A failed list is reported through 'error' and start() still resolves: success is a start
    // during which no error came.
    const before = this.restarts;
    const p = inf.start().then(
      () => {
        if (this.restarts === before) this.failures = 0;
        this.sync(inf);
      },
      (err: unknown) => this.restartLater(inf, err),
    );
    this.starting = p;
    return p;
  }

  private restartLater(inf: Informer<InferenceObjectiveObject> & ObjectCache<InferenceObjectiveObject>, err: unknown): void {
    if (this.stopped) return;
    this.restarts++;
    this.failures++;
    const status = statusOf(err);
    const unavailable = status === 404 || status === 403;
    if (unavailable) {
      // Priorities from a CRD or a grant that is gone must not linger over the config's.
      this.current = new Map();
      if (!this.reportedUnavailable) {
        this.reportedUnavailable = true;
        this.opts.logger.warn(
          { status, namespace: this.opts.namespace },
          status === 404
            ? 'InferenceObjective CRD (inference.networking.x-k8s.io/v1alpha2) not installed; admission uses admission.objectives from the config only'
            : 'no RBAC to list inferenceobjectives; admission uses admission.objectives from the config only (grant get/list/watch on inferenceobjectives.inference.networking.x-k8s.io)',
        );
      }
    } else {
      this.warnLog.warn('watch', { err: err instanceof Error ? err.message : err, watch: 'inferenceobjectives', failures: this.failures }, 'kubernetes watch failed; restarting from a fresh list');
    }
    // Other errors back off exponentially from restartDelayMs up to 30 s.
    const base = this.opts.restartDelayMs ?? 1000;
    const delay = unavailable ? (this.opts.unavailableRetryMs ?? 60_000) : Math.min(30_000, base * 2 ** Math.min(this.failures - 1, 10));
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) void this.run(inf);
    }, delay);
    this.timers.add(t);
  }
}
