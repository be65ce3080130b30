/**
 * Discovery the llm-d chart can ask for: an InferencePool of the older API group
 * (`--pool-group inference.networking.x-k8s.io`, v1alpha2: `selector` map, `targetPortNumber`) and
 * standalone pods by label selector (`--endpoint-selector`/`--endpoint-target-ports`), against a
 * local list/watch API server; metrics URLs follow the model-server metrics location.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { EndpointStore } from '../../src/datalayer/endpoint-store.js';
import { KubernetesDiscovery } from '../../src/datalayer/k8s-discovery.js';
import { metricsUrlFor } from '../../src/datalayer/metrics-scraper.js';
import { silentLogger } from '../../src/util/logger.js';
import { FakeKubeApi, type KubeObject } from '../../testkit/fake-kube-api.js';

const NS = 'llm-d';
const PODS = `/api/v1/namespaces/${NS}/pods`;
const ALPHA_POOLS = `/apis/inference.networking.x-k8s.io/v1alpha2/namespaces/${NS}/inferencepools`;

const pod = (name: string, ip: string, labels: Record<string, string>): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: NS, labels },
  status: { podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] },
});

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('llm-d discovery modes', () => {
  let api: FakeKubeApi;
  let kc: KubeConfig;
  let disc: KubernetesDiscovery | undefined;

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
    await disc?.stop();
    disc = undefined;
    await api.stop();
  });

  it('watches a v1alpha2 InferencePool (selector map, targetPortNumber)', async () => {
    api.put(ALPHA_POOLS, { apiVersion: 'inference.networking.x-k8s.io/v1alpha2', kind: 'InferencePool', metadata: { name: 'qwen', namespace: NS }, spec: { selector: { app: 'qwen' }, targetPortNumber: 8000, extensionRef: { name: 'epp' } } });
    api.put(PODS, pod('qwen-0', '10.2.0.1', { app: 'qwen', 'llm-d.ai/role': 'decode' }));
    api.put(PODS, pod('other-0', '10.2.0.9', { app: 'other' }));
    const store = new EndpointStore();
    disc = new KubernetesDiscovery({ store, logger: silentLogger(), poolName: 'qwen', poolGroup: 'inference.networking.x-k8s.io', namespace: NS, kubeConfig: kc, restartDelayMs: 50 });
    await disc.start();
    await until(() => store.size === 1);
    expect(store.list()).toEqual([{ address: '10.2.0.1:8000', name: 'qwen-0', role: 'decode', metricsUrl: 'http://10.2.0.1:8000/metrics' }]);
  });

  it('standalone: the pods a label selector matches, on every target port, metrics where the flags say', async () => {
    api.put(PODS, pod('a', '10.3.0.1', { app: 'vllm', tier: 'gpu' }));
    api.put(PODS, pod('b', '10.3.0.2', { app: 'vllm', tier: 'cpu' }));
    const store = new EndpointStore();
    const location = { scheme: 'http' as const, path: '/prometheus/metrics', port: 9400 };
    disc = new KubernetesDiscovery({
      store,
      logger: silentLogger(),
      poolName: '',
      selector: { labels: 'app=vllm,tier=gpu', ports: [8000, 8001] },
      metricsUrl: (address) => metricsUrlFor(address, location),
      namespace: NS,
      kubeConfig: kc,
      restartDelayMs: 50,
    });
    await disc.start();
    await until(() => store.size === 2);
    expect(store.list().map((e) => [e.address, e.name, e.metricsUrl]).sort()).toEqual([
      ['10.3.0.1:8000', 'a-rank-0', 'http://10.3.0.1:9400/prometheus/metrics'],
      ['10.3.0.1:8001', 'a-rank-1', 'http://10.3.0.1:9400/prometheus/metrics'],
    ]);
    api.put(PODS, pod('c', '10.3.0.3', { app: 'vllm', tier: 'gpu' }));
    await until(() => store.size === 4);
  });
});
