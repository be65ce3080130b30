import { at, broken, clean } from './helpers.js';
import { eppLabels, NS } from './fixtures.js';
import { networkPoliciesAllowRequiredTraffic } from './network.js';
import { networkPolicyPeersExist } from './selectors.js';
import { modelServiceEnvSurvivesOperator, modelServiceInitContainersExit } from './vllm.js';
import type { Manifest } from './model.js';

type Find = (kind: string, name: string) => Manifest;
const eppPolicy = (find: Find): Record<string, unknown> => at(find('NetworkPolicy', 'kv-epp'), 'spec');

describe('networkPolicyPeersExist', () => {
  it('holds for the fixture', () => expect(clean(networkPolicyPeersExist)).toEqual([]));

  it('fails for a peer podSelector that selects no pod (a typo allows nothing)', () => {
    const m = broken(networkPolicyPeersExist, (_, find) => {
      at(find('NetworkPolicy', 'kv-redis'), 'spec', 'ingress', 0, 'from', 0, 'podSelector', 'matchLabels')['app.kubernetes.io/name'] = 'epp';
    });
    expect(m).toEqual([expect.stringMatching(/^NetworkPolicy llm-d\/kv-redis: ingress\[0\].from\[0\].podSelector .* selects no pod template in namespace llm-d/)]);
  });

  it('judges peers in a namespace named by kubernetes.io/metadata.name, skips other namespace selectors and gateway pods', () => {
    const named = broken(networkPolicyPeersExist, (_, find) => {
      at(find('NetworkPolicy', 'kv-redis'), 'spec', 'ingress', 0, 'from', 0).namespaceSelector = { matchLabels: { 'kubernetes.io/metadata.name': 'other' } };
    });
    expect(named).toEqual([expect.stringMatching(/selects no pod template in namespace other; templates there: none/)]);
    expect(broken(networkPolicyPeersExist, (_, find) => {
      at(find('NetworkPolicy', 'kv-redis'), 'spec', 'ingress', 0, 'from', 0).namespaceSelector = { matchLabels: { team: 'ml' } };
    })).toEqual([]);
    // the fixture's gateway peer (pods Istio creates from the Gateway) is not judged
    expect(JSON.stringify(clean(networkPolicyPeersExist))).not.toMatch(/gateway-name/);
  });
});

describe('networkPoliciesAllowRequiredTraffic', () => {
  it('holds for the fixture', () => expect(clean(networkPoliciesAllowRequiredTraffic)).toEqual([]));

  it('fails when the EPP policy admits KV events on the wrong port', () => {
    const m = broken(networkPoliciesAllowRequiredTraffic, (_, find) => {
      at(eppPolicy(find), 'ingress', 0, 'ports', 0).port = 5556;
    });
    expect(m).toHaveLength(3);
    expect(m[0]).toMatch(/^Deployment llm-d\/kv-epp: KV events Deployment llm-d\/kv-decode → Deployment llm-d\/kv-epp:5557 is blocked: ingress of Deployment llm-d\/kv-epp is restricted by NetworkPolicy llm-d\/kv-epp/);
  });

  it('fails when the EPP policy admits only the decode pods (prefill pods publish too)', () => {
    const m = broken(networkPoliciesAllowRequiredTraffic, (_, find) => {
      at(eppPolicy(find), 'ingress', 0).from = [{ podSelector: { matchLabels: { 'llm-d.ai/role': 'decode' } } }];
    });
    expect(m).toEqual([expect.stringMatching(/KV events Deployment llm-d\/kv-prefill → Deployment llm-d\/kv-epp:5557 is blocked/)]);
  });

  it('fails when Redis admits nobody but the EPP is configured to use it', () => {
    const m = broken(networkPoliciesAllowRequiredTraffic, (_, find) => {
      at(find('NetworkPolicy', 'kv-redis'), 'spec').ingress = [];
    });
    expect(m).toEqual([expect.stringMatching(/^StatefulSet llm-d\/kv-redis: Redis Deployment llm-d\/kv-epp → StatefulSet llm-d\/kv-redis:6379 is blocked/)]);
  });

  it('fails when an egress policy on the EPP forbids reaching the model servers', () => {
    const m = broken(networkPoliciesAllowRequiredTraffic, (objs) => {
      objs.push({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'epp-egress', namespace: NS },
        spec: { podSelector: { matchLabels: eppLabels }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'redis' } } }], ports: [{ port: 6379 }] }] },
      });
    });
    expect(m).toEqual([expect.stringMatching(/metrics scraping Deployment llm-d\/kv-epp → Deployment llm-d\/kv-decode:8000 is blocked: egress of Deployment llm-d\/kv-epp is restricted by NetworkPolicy llm-d\/epp-egress/)]);
  });

  it('an ingress policy on the model servers must admit the EPP on the pool targetPort', () => {
    const policy = (ports: unknown[]): Manifest => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'vllm', namespace: NS },
      spec: { podSelector: { matchLabels: { 'llm-d.ai/role': 'decode' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: eppLabels } }], ports }] },
    });
    expect(broken(networkPoliciesAllowRequiredTraffic, (objs) => objs.push(policy([{ port: 8000 }])))).toEqual([]);
    expect(broken(networkPoliciesAllowRequiredTraffic, (objs) => objs.push(policy([{ port: 8000, endPort: 8100 }])))).toEqual([]);
    expect(broken(networkPoliciesAllowRequiredTraffic, (objs) => objs.push(policy([{ port: 'http' }])))).toEqual([]);
    expect(broken(networkPoliciesAllowRequiredTraffic, (objs) => objs.push(policy([{ port: 8200 }])))).toEqual([expect.stringMatching(/metrics scraping .*kv-decode:8000 is blocked/)]);
  });
});

describe('modelServiceInitContainersExit', () => {
  it('holds for the fixture (no init containers)', () => expect(clean(modelServiceInitContainersExit)).toEqual([]));

  it('fails for the routing sidecar as a ModelService init container', () => {
    const m = broken(modelServiceInitContainersExit, (_, find) => {
      at(find('ModelService', 'kv-ms'), 'spec', 'decode').initContainers = [{ name: 'routing-proxy', image: 'ghcr.io/llm-d/llm-d-routing-sidecar:v0.3.0', args: ['--port=8000', '--vllm-port=8200'] }];
    });
    expect(m).toEqual([expect.stringMatching(/^ModelService llm-d\/kv-ms: spec.decode.initContainers\[0\] "routing-proxy" runs a server \(--port=8000\) .* Init forever/)]);
  });

  it('accepts an init container that exits, and defers to a BaseConfig when one is referenced', () => {
    expect(broken(modelServiceInitContainersExit, (_, find) => {
      at(find('ModelService', 'kv-ms'), 'spec', 'decode').initContainers = [{ name: 'fetch', image: 'busybox:1.36', command: ['sh', '-c', 'true'] }];
    })).toEqual([]);
    expect(broken(modelServiceInitContainersExit, (_, find) => {
      const s = at(find('ModelService', 'kv-ms'), 'spec');
      s.baseConfigMapRef = { name: 'base' };
      at(s, 'decode').initContainers = [{ name: 'routing-proxy', args: ['--port=8000'] }];
    })).toEqual([]);
  });
});

describe('modelServiceEnvSurvivesOperator', () => {
  it('holds for the fixture (mountModelVolume: false keeps the env)', () => expect(clean(modelServiceEnvSurvivesOperator)).toEqual([]));

  it('fails when mountModelVolume: true would make the operator drop PYTHONHASHSEED and POD_IP', () => {
    const m = broken(modelServiceEnvSurvivesOperator, (_, find) => {
      at(find('ModelService', 'kv-ms'), 'spec', 'decode', 'containers', 0).mountModelVolume = true;
    });
    expect(m).toEqual([
      'ModelService llm-d/kv-ms: spec.decode.containers[0] "vllm" has mountModelVolume: true, so the operator replaces its env with [HF_TOKEN, HF_HOME] and drops ["PYTHONHASHSEED","POD_IP"] (PYTHONHASHSEED unset: vLLM block hashes no longer match the EPP; $(POD_IP) in args is left unexpanded); set mountModelVolume: false (and pass HF_TOKEN by secretKeyRef) or provide a BaseConfig',
    ]);
  });

  it('keeps nothing for pvc:// models, and nothing to report when only operator-set vars remain', () => {
    expect(broken(modelServiceEnvSurvivesOperator, (_, find) => {
      const ms = find('ModelService', 'kv-ms');
      at(ms, 'spec', 'modelArtifacts').uri = 'pvc://models/llama';
      const c = at(ms, 'spec', 'decode', 'containers', 0);
      c.mountModelVolume = true;
      c.env = [{ name: 'HF_HOME', value: '/model-cache' }];
    })).toEqual([expect.stringMatching(/replaces its env with \[\] and drops \["HF_HOME"\]/)]);
    expect(broken(modelServiceEnvSurvivesOperator, (_, find) => {
      const c = at(find('ModelService', 'kv-ms'), 'spec', 'decode', 'containers', 0);
      c.mountModelVolume = true;
      c.env = [{ name: 'HF_HOME', value: '/model-cache' }];
    })).toEqual([]);
  });
});
