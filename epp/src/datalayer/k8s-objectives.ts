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
  private reportedUnavailable = false;
  /** Watch restarts after errors (for tests). */
  restarts = 0;

  constructor(private readonly opts: ObjectiveWatchOptions) {}

  /** Priority of the objective `name` of this pool, or undefined when the cluster has none. */
  priorityOf(name: string): number | undefined {
    return this.current.get(name);
  }

  /** The objectives seen, name → priority. */
  get objectives(): ReadonlyMap<string, number> {
    return this.current;
  }

  /** Starts watching; never rejects (a failing API is retried in the background). */
  async start(): Promise<void> {
    const { group, version, plural } = InferenceObjectiveApi;
    const custom = this.opts.kubeConfig.makeApiClient(CustomObjectsApi);
    const ns = this.opts.namespace;
    const inf = makeInformer<InferenceObjectiveObject>(
      this.opts.kubeConfig,
      `/apis/${group}/${version}/namespaces/${ns}/${plural}`,
      async () => (await custom.listNamespacedCustomObject({ group, version, namespace: ns, plural })) as KubernetesListObject<InferenceObjectiveObject>,
    );
    const sync = (): void => {
      if (this.informer === inf) this.current = objectivePriorities(inf.list(), this.opts.poolName);
    };
    inf.on('add', sync);
    inf.on('update', sync);
    inf.on('delete', sync);
    inf.on('connect', sync);
    inf.on('error', (err) => this.restartLater(inf, err));
    this.informer = inf;
    await inf.start().then(sync, (err: unknown) => this.restartLater(inf, err));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    await this.informer?.stop().catch(() => undefined);
  }

  private restartLater(inf: Informer<InferenceObjectiveObject>, err: unknown): void {
    if (this.stopped) return;
    this.restarts++;
    const status = statusOf(err);
    const unavailable = status === 404 || status === 403;
    if (unavailable) {
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
      this.opts.logger.warn({ err: err instanceof Error ? err.message : err, watch: 'inferenceobjectives' }, 'kubernetes watch failed; restarting from a fresh list');
    }
    const t = setTimeout(
      () => {
        this.timers.delete(t);
        if (!this.stopped) void inf.start().catch((e: unknown) => this.restartLater(inf, e));
      },
      unavailable ? (this.opts.unavailableRetryMs ?? 60_000) : (this.opts.restartDelayMs ?? 1000),
    );
    this.timers.add(t);
  }
}
