/**
 * Kubernetes endpoint discovery: watches one InferencePool (inference.networking.k8s.io/v1) and
 * the Ready pods its selector matches, in one namespace, with @kubernetes/client-node informers
 * (list, then watch; a watch that fails or ends with 410 Gone is restarted from a fresh list).
 * Every Ready pod yields one endpoint per pool target port (`podIP:port`, IPv6 bracketed).
 * Endpoints that leave (pod deleted, not Ready, no longer selected, pool gone) are removed from
 * the EndpointStore, whose listeners clear their index entries.
 */
import { CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer, type Informer, type KubernetesListObject, type KubernetesObject, type ObjectCache, type V1Pod } from '@kubernetes/client-node';
import { Labels, Roles, type Role } from '../contract/names.js';
import { joinHostPort } from '../util/host-port.js';
import type { Logger } from '../util/logger.js';
import type { Endpoint, EndpointStore } from './endpoint-store.js';

export const InferencePoolApi = { group: 'inference.networking.k8s.io', version: 'v1', plural: 'inferencepools' } as const;
/** The older InferencePool API (llm-d's `--pool-group inference.networking.x-k8s.io`). */
export const InferencePoolAlphaApi = { group: 'inference.networking.x-k8s.io', version: 'v1alpha2', plural: 'inferencepools' } as const;

/** The fields of an InferencePool the EPP uses (v1, and v1alpha2's `selector` map and `targetPortNumber`). */
export interface InferencePoolObject extends KubernetesObject {
  spec?: {
    selector?: { matchLabels?: Record<string, string> } | Record<string, string>;
    targetPorts?: { number: number }[];
    targetPortNumber?: number;
  };
}

/** A pool's pod labels and target ports, from either API version. */
export function poolTargets(pool: InferencePoolObject, group: string): { labels: Record<string, string> | undefined; ports: number[] } {
  const spec = pool.spec ?? {};
  if (group === InferencePoolAlphaApi.group) {
    const sel = spec.selector as Record<string, unknown> | undefined;
    const labels = sel && Object.values(sel).every((v) => typeof v === 'string') ? (sel as Record<string, string>) : undefined;
    const n = spec.targetPortNumber;
    return { labels, ports: typeof n === 'number' && Number.isInteger(n) && n > 0 ? [n] : [] };
  }
  const labels = (spec.selector as { matchLabels?: Record<string, string> } | undefined)?.matchLabels;
  return { labels, ports: (spec.targetPorts ?? []).map((p) => p.number).filter((n) => Number.isInteger(n) && n > 0) };
}

export interface KubernetesDiscoveryOptions {
  readonly store: EndpointStore;
  readonly logger: Logger;
  /** InferencePool to watch; unused with `selector`. */
  readonly poolName: string;
  readonly namespace: string;
  /**
   * API group of the pool: `inference.networking.k8s.io` (v1) or `inference.networking.x-k8s.io` (v1alpha2).
   * @default "inference.networking.k8s.io"
   */
  readonly poolGroup?: string;
  /**
   * Standalone mode (llm-d's `--endpoint-selector`/`--endpoint-target-ports`): watch the pods this
   * label selector matches, on these ports, without an InferencePool.
   * @default undefined (the pool's selector and target ports)
   */
  readonly selector?: { readonly labels: string; readonly ports: readonly number[] };
  /**
   * Metrics URL of an endpoint.
   * @default `http://<address>/metrics`
   */
  readonly metricsUrl?: (address: string, ip: string) => string;
  /**
   * Cluster access.
   * @default in-cluster config (service account), else ~/.kube/config
   */
  readonly kubeConfig?: KubeConfig;
  /**
   * Delay before restarting a failed watch.
   * @default 1000
   */
  readonly restartDelayMs?: number;
}


function isReady(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  if (!pod.status?.podIP) return false;
  return (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

function roleOf(pod: V1Pod): Role {
  const r = pod.metadata?.labels?.[Labels.role];
  return r === Roles.decode || r === Roles.prefill ? r : Roles.both;
}

/** Label selector string of a matchLabels map, sorted for stability. */
export function selectorString(matchLabels: Record<string, string>): string {
  return Object.keys(matchLabels)
    .sort()
    .map((k) => `${k}=${matchLabels[k]}`)
    .join(',');
}

/** Endpoints of a set of pods for a pool's target ports. */
export function endpointsOf(pods: readonly V1Pod[], ports: readonly number[], metricsUrl?: (address: string, ip: string) => string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const pod of pods) {
    if (!isReady(pod)) continue;
    const ip = pod.status?.podIP as string;
    const name = pod.metadata?.name ?? ip;
    ports.forEach((port, i) => {
      const address = joinHostPort({ host: ip, port });
      out.push({ address, name: ports.length > 1 ? `${name}-rank-${i}` : name, role: roleOf(pod), metricsUrl: metricsUrl ? metricsUrl(address, ip) : `http://${address}/metrics` });
    });
  }
  return out;
}

export class KubernetesDiscovery {
  private readonly kc: KubeConfig;
  private poolInformer: (Informer<InferencePoolObject> & ObjectCache<InferencePoolObject>) | undefined;
  private podInformer: (Informer<V1Pod> & ObjectCache<V1Pod>) | undefined;
  private selector: string | undefined;
  private ports: number[] = [];
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Watch restarts after errors (for tests and metrics). */
  restarts = 0;

  constructor(private readonly opts: KubernetesDiscoveryOptions) {
    this.kc = opts.kubeConfig ?? KubernetesDiscovery.defaultConfig();
  }

  static defaultConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    return kc;
  }

  async start(): Promise<void> {
    if (this.opts.selector) {
      this.ports = [...this.opts.selector.ports];
      this.selector = this.opts.selector.labels;
      this.watchPods(this.opts.selector.labels);
      return;
    }
    const { group, version, plural } = this.opts.poolGroup === InferencePoolAlphaApi.group ? InferencePoolAlphaApi : InferencePoolApi;
    const custom = this.kc.makeApiClient(CustomObjectsApi);
    const ns = this.opts.namespace;
    const path = `/apis/${group}/${version}/namespaces/${ns}/${plural}`;
    const inf = makeInformer<InferencePoolObject>(
      this.kc,
      path,
      async () => (await custom.listNamespacedCustomObject({ group, version, namespace: ns, plural })) as KubernetesListObject<InferencePoolObject>,
    );
    const onPool = (): void => this.poolChanged();
    inf.on('add', onPool);
    inf.on('update', onPool);
    inf.on('delete', onPool);
    inf.on('error', (err) => this.restartLater('inferencepool', inf, err));
    this.poolInformer = inf;
    await inf.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    await this.poolInformer?.stop().catch(() => undefined);
    await this.podInformer?.stop().catch(() => undefined);
  }

  private restartLater(what: string, inf: Informer<KubernetesObject>, err: unknown): void {
    if (this.stopped) return;
    this.restarts++;
    this.opts.logger.warn({ err: err instanceof Error ? err.message : err, watch: what }, 'kubernetes watch failed; restarting from a fresh list');
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) void inf.start().catch((e: unknown) => this.restartLater(what, inf, e));
    }, this.opts.restartDelayMs ?? 1000);
    this.timers.add(t);
  }

  private poolChanged(): void {
    const pool = this.poolInformer?.list().find((p) => p.metadata?.name === this.opts.poolName);
    const { labels, ports } = pool ? poolTargets(pool, this.opts.poolGroup ?? InferencePoolApi.group) : { labels: undefined, ports: [] };
    if (!pool || !labels || Object.keys(labels).length === 0 || ports.length === 0) {
      if (pool) this.opts.logger.warn({ pool: this.opts.poolName }, 'InferencePool has no selector.matchLabels or targetPorts; no endpoints');
      this.selector = undefined;
      void this.podInformer?.stop().catch(() => undefined);
      this.podInformer = undefined;
      this.ports = [];
      this.opts.store.replaceAll([]);
      return;
    }
    const sel = selectorString(labels);
    this.ports = ports;
    if (sel !== this.selector) {
      this.selector = sel;
      void this.podInformer?.stop().catch(() => undefined);
      this.watchPods(sel);
    } else {
      this.sync();
    }
  }

  private watchPods(selector: string): void {
    const core = this.kc.makeApiClient(CoreV1Api);
    const ns = this.opts.namespace;
    const inf = makeInformer<V1Pod>(this.kc, `/api/v1/namespaces/${ns}/pods`, () => core.listNamespacedPod({ namespace: ns, labelSelector: selector }), selector);
    const onPod = (): void => {
      if (this.podInformer === inf) this.sync();
    };
    inf.on('add', onPod);
    inf.on('update', onPod);
    inf.on('delete', onPod);
    inf.on('connect', onPod);
    inf.on('error', (err) => this.restartLater('pods', inf, err));
    this.podInformer = inf;
    void inf.start().then(onPod, (e: unknown) => this.restartLater('pods', inf, e));
  }

  private sync(): void {
    const pods = this.podInformer?.list() ?? [];
    this.opts.store.replaceAll(endpointsOf(pods, this.ports, this.opts.metricsUrl));
  }
}
