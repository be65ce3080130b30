/**
 * InferenceObjective priorities from a local HTTP server that speaks the Kubernetes list/watch API
 * (test/support/fake-kube-api.ts): the pool's objectives are followed through adds, updates and
 * deletes; a cluster without the CRD is reported once and leaves the config in charge.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { InferenceObjectiveWatch, objectivePriorities } from '../../src/datalayer/k8s-objectives.js';
import type { Logger } from '../../src/util/logger.js';
import { FakeKubeApi, type KubeObject } from '../../testkit/fake-kube-api.js';

const NS = 'llm-d';
const OBJECTIVES = `/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/${NS}/inferenceobjectives`;

function objective(name: string, pool: string, priority?: number): KubeObject {
  return {
    apiVersion: 'inference.networking.x-k8s.io/v1alpha2',
    kind: 'InferenceObjective',
    metadata: { name, namespace: NS },
    spec: { poolRef: { name: pool }, ...(priority === undefined ? {} : { priority }) },
  };
}

async function until(cond: () => boolean, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function warnings(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const none = (): void => undefined;
  const log: Logger & { lines: string[] } = { lines, trace: none, debug: none, info: none, error: none, warn: (_o: object, msg?: string) => void lines.push(msg ?? ''), child: () => log };
  return log;
}

describe('objectivePriorities', () => {
  it("keeps this pool's objectives; an unset priority is 0", () => {
    const objs = [objective('chat', 'kvroute', 10), objective('batch', 'kvroute', -1), objective('plain', 'kvroute'), objective('other', 'another-pool', -5)];
    expect([...objectivePriorities(objs as never, 'kvroute')]).toEqual([
      ['chat', 10],
      ['batch', -1],
      ['plain', 0],
    ]);
  });
});

describe('InferenceObjectiveWatch against a local list/watch API server', () => {
  let api: FakeKubeApi;
  let kc: KubeConfig;
  let watch: InferenceObjectiveWatch | undefined;

  beforeEach(async () => {
    api = new FakeKubeApi();
    await api.start();
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: api.url, skipTLSVerify: true }],
      users: [{ name: 'test' }],
      contexts: [{ name: 'test', cluster: 'test', user: 'test', namespace: NS }],
      currentContext: 'test',
    });
  });

  afterEach(async () => {
    await watch?.stop();
    watch = undefined;
    await api.stop();
  });

  it('lists the objectives of the pool and follows adds, updates and deletes', async () => {
    api.put(OBJECTIVES, objective('batch', 'kvroute', -1));
    api.put(OBJECTIVES, objective('elsewhere', 'another-pool', -3));
    watch = new InferenceObjectiveWatch({ logger: warnings(), poolName: 'kvroute', namespace: NS, kubeConfig: kc, restartDelayMs: 50 });
    await watch.start();
    await until(() => watch!.priorityOf('batch') === -1);
    expect(watch.priorityOf('elsewhere')).toBeUndefined();
    api.put(OBJECTIVES, objective('chat', 'kvroute', 5));
    await until(() => watch!.priorityOf('chat') === 5);
    api.put(OBJECTIVES, objective('batch', 'kvroute', 2));
    await until(() => watch!.priorityOf('batch') === 2);
    api.delete(OBJECTIVES, 'chat');
    await until(() => watch!.priorityOf('chat') === undefined);
    expect([...watch.objectives]).toEqual([['batch', 2]]);
  });

  it('objectives seen before the CRD went away (404 on the re-list) stop counting', async () => {
    api.put(OBJECTIVES, objective('batch', 'kvroute', -1));
    watch = new InferenceObjectiveWatch({ logger: warnings(), poolName: 'kvroute', namespace: NS, kubeConfig: kc, restartDelayMs: 10, unavailableRetryMs: 20 });
    await watch.start();
    await until(() => watch!.priorityOf('batch') === -1);
    api.markMissing(OBJECTIVES);
    api.endWatches();
    await until(() => watch!.priorityOf('batch') === undefined);
    expect(watch.objectives.size).toBe(0);
  });

  it('other failures back off exponentially (from restartDelayMs, capped at 30 s)', async () => {
    api.failWith(OBJECTIVES, 500);
    watch = new InferenceObjectiveWatch({ logger: warnings(), poolName: 'kvroute', namespace: NS, kubeConfig: kc, restartDelayMs: 20 });
    await watch.start();
    await new Promise((r) => setTimeout(r, 700));
    // 20, 40, 80, 160, 320 ms: at most 5 restarts in 700 ms (a fixed 20 ms delay would give ~30)
    expect(watch.restarts).toBeGreaterThanOrEqual(3);
    expect(watch.restarts).toBeLessThanOrEqual(6);
    api.failWith(OBJECTIVES, 0);
    api.put(OBJECTIVES, objective('chat', 'kvroute', 1));
    await until(() => watch!.priorityOf('chat') === 1);
  });

  it('stop() during a slow first list leaves no watch open', async () => {
    api.listDelayMs = 150;
    watch = new InferenceObjectiveWatch({ logger: warnings(), poolName: 'kvroute', namespace: NS, kubeConfig: kc });
    const started = watch.start();
    await new Promise((r) => setTimeout(r, 30));
    await watch.stop();
    await started;
    await new Promise((r) => setTimeout(r, 300));
    expect(api.openWatches).toBe(0);
  });

  it('without the CRD (404): start resolves, no objectives, one warning, retried slowly', async () => {
    api.markMissing(OBJECTIVES);
    const log = warnings();
    watch = new InferenceObjectiveWatch({ logger: log, poolName: 'kvroute', namespace: NS, kubeConfig: kc, restartDelayMs: 10, unavailableRetryMs: 30 });
    await watch.start();
    await until(() => watch!.restarts >= 3);
    expect(watch.objectives.size).toBe(0);
    expect(log.lines.filter((l) => l.includes('InferenceObjective CRD'))).toHaveLength(1);
  });
});
