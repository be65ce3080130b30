import { KubeConfig } from '@kubernetes/client-node';
import { EndpointStore } from '../../src/datalayer/endpoint-store.js';
import { endpointsOf, KubernetesDiscovery } from '../../src/datalayer/k8s-discovery.js';
import { joinHostPort } from '../../src/util/host-port.js';
import { silentLogger } from '../../src/util/logger.js';
import { FakeKubeApi, type KubeObject } from '../../testkit/fake-kube-api.js';

const NS = 'llm-d';
const PODS = `/api/v1/namespaces/${NS}/pods`;
const POOLS = `/apis/inference.networking.k8s.io/v1/namespaces/${NS}/inferencepools`;

function pool(name: string, matchLabels: Record<string, string>, ports: number[]): KubeObject {
  return { apiVersion: 'inference.networking.k8s.io/v1', kind: 'InferencePool', metadata: { name, namespace: NS }, spec: { selector: { matchLabels }, targetPorts: ports.map((number) => ({ number })), endpointPickerRef: { name: 'epp', port: { number: 9002 } } } };
}

function pod(name: string, ip: string | undefined, labels: Record<string, string>, ready = true): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels },
    status: { podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

async function until(cond: () => boolean, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('KubernetesDiscovery against a local list/watch API server', () => {
  let api: FakeKubeApi;
  let store: EndpointStore;
  let disc: KubernetesDiscovery;
  const removed: string[] = [];

  beforeEach(async () => {
    api = new FakeKubeApi();
    await api.start();
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: api.url, skipTLSVerify: true }],
      users: [{ name: 'test' }],
      contexts: [{ name: 'test', cluster: 'test', user: 'test', namespace: NS }],
      currentContext: 'test',
    });
    store = new EndpointStore();
    removed.length = 0;
    store.onChange((e, ep) => {
      if (e === 'removed') removed.push(ep.address);
    });
    disc = new KubernetesDiscovery({ store, logger: silentLogger(), poolName: 'kvroute', namespace: NS, kubeConfig: kc, restartDelayMs: 50 });
  });

  afterEach(async () => {
    await disc.stop();
    await api.stop();
  });

  const addresses = (): string[] => store.list().map((e) => e.address).sort();

  it('lists the pool and its Ready pods, one endpoint per target port, roles from labels', async () => {
    api.put(POOLS, pool('kvroute', { 'llm-d.ai/inference-serving': 'true' }, [8000]));
    api.put(PODS, pod('decode-0', '10.1.0.1', { 'llm-d.ai/inference-serving': 'true', 'llm-d.ai/role': 'decode' }));
    api.put(PODS, pod('prefill-0', '10.1.0.2', { 'llm-d.ai/inference-serving': 'true', 'llm-d.ai/role': 'prefill' }));
    api.put(PODS, pod('starting', '10.1.0.3', { 'llm-d.ai/inference-serving': 'true' }, false));
    api.put(PODS, pod('other', '10.1.0.4', { app: 'other' }));
    api.put(POOLS, pool('another-pool', { app: 'other' }, [9000]));
    await disc.start();
    await until(() => store.size === 2);
    expect(addresses()).toEqual(['10.1.0.1:8000', '10.1.0.2:8000']);
    expect(store.get('10.1.0.1:8000')).toEqual({ address: '10.1.0.1:8000', name: 'decode-0', role: 'decode', metricsUrl: 'http://10.1.0.1:8000/metrics' });
    expect(store.get('10.1.0.2:8000')?.role).toBe('prefill');
  });

  it('follows pods becoming Ready, losing readiness and being deleted', async () => {
    api.put(POOLS, pool('kvroute', { serve: 'yes' }, [8000]));
    api.put(PODS, pod('a', '10.1.0.1', { serve: 'yes' }));
    await disc.start();
    await until(() => store.size === 1);
    api.put(PODS, pod('b', '10.1.0.2', { serve: 'yes' }, false));
    api.put(PODS, pod('b', '10.1.0.2', { serve: 'yes' }, true));
    await until(() => store.size === 2);
    api.put(PODS, pod('a', '10.1.0.1', { serve: 'yes' }, false));
    await until(() => store.size === 1);
    expect(removed).toEqual(['10.1.0.1:8000']);
    api.delete(PODS, 'b');
    await until(() => store.size === 0);
    expect(removed).toEqual(['10.1.0.1:8000', '10.1.0.2:8000']);
  });

  it('re-selects pods when the pool selector or ports change, and empties when the pool is deleted', async () => {
    api.put(POOLS, pool('kvroute', { tier: 'a' }, [8000]));
    api.put(PODS, pod('a', '10.1.0.1', { tier: 'a' }));
    api.put(PODS, pod('b', '10.1.0.2', { tier: 'b' }));
    await disc.start();
    await until(() => addresses().join() === '10.1.0.1:8000');
    api.put(POOLS, pool('kvroute', { tier: 'b' }, [8000, 8001]));
    await until(() => addresses().join() === '10.1.0.2:8000,10.1.0.2:8001');
    expect(store.get('10.1.0.2:8001')?.name).toBe('b-rank-1');
    api.delete(POOLS, 'kvroute');
    await until(() => store.size === 0);
  });

  it('recovers when watches end, expire (410 in-stream) or are refused with 410 Gone', async () => {
    api.put(POOLS, pool('kvroute', { serve: 'yes' }, [8000]));
    api.put(PODS, pod('a', '10.1.0.1', { serve: 'yes' }));
    await disc.start();
    await until(() => store.size === 1 && api.openWatches === 2);
    api.endWatches();
    api.put(PODS, pod('b', '10.1.0.2', { serve: 'yes' }));
    await until(() => store.size === 2);
    await until(() => api.openWatches === 2);
    api.expireWatches();
    api.put(PODS, pod('c', '10.1.0.3', { serve: 'yes' }));
    await until(() => store.size === 3);
    await until(() => api.openWatches === 2);
    api.failNextWatches(2);
    api.endWatches();
    api.delete(PODS, 'a');
    await until(() => store.size === 2);
    expect(addresses()).toEqual(['10.1.0.2:8000', '10.1.0.3:8000']);
    expect(api.requests.filter((r) => r.startsWith(`GET ${PODS}`) && !r.includes('watch=true')).length).toBeGreaterThan(1);
  });

  it('brackets IPv6 pod addresses', () => {
    expect(joinHostPort({ host: 'fd00::1', port: 8000 })).toBe('[fd00::1]:8000');
    expect(joinHostPort({ host: '10.0.0.1', port: 8000 })).toBe('10.0.0.1:8000');
    const eps = endpointsOf([{ metadata: { name: 'v6' }, status: { podIP: 'fd00::7', conditions: [{ type: 'Ready', status: 'True' }] } }], [8000]);
    expect(eps.map((e) => e.address)).toEqual(['[fd00::7]:8000']);
  });

  it('skips terminating pods and pods without an IP', () => {
    const eps = endpointsOf(
      [
        { metadata: { name: 'gone', deletionTimestamp: new Date() }, status: { podIP: '10.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] } },
        { metadata: { name: 'noip' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } },
      ],
      [8000],
    );
    expect(eps).toEqual([]);
  });
});
