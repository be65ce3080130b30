import { EppPorts } from '@kvroute/epp/contract';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { PodPeer } from '../../constructs/security/network-policies.js';
import { RestrictedSecurity } from '../../constructs/security/pod-security.js';
import { findObject, type K8sObject, objectsOfKind, synthObjects } from '../support/synth.js';

interface Pod {
  securityContext: Record<string, unknown>;
  containers: { name: string; securityContext: Record<string, unknown> }[];
}
const pod = (d: K8sObject) => (d.spec as { template: { spec: Pod } }).template.spec;
interface NetPol {
  podSelector: { matchLabels: Record<string, string> };
  policyTypes: string[];
  ingress: { from: { podSelector?: { matchLabels: Record<string, string> }; namespaceSelector?: { matchLabels: Record<string, string> } }[]; ports: { protocol: string; port: number | string }[] }[];
}

const objects = synthObjects(parseDeploymentConfig({ redis: { enabled: true }, epp: { replicas: 2 } }));
const eppLabels = (findObject(objects, 'Deployment', 'kvroute-epp').spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;

describe('Pod Security "restricted" for EPP and Redis', () => {
  it.each(['kvroute-epp', 'kvroute-redis'])('%s', (name) => {
    const p = pod(findObject(objects, 'Deployment', name));
    expect(p.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    for (const c of p.containers) {
      expect(c.securityContext).toMatchObject({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        privileged: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(c.securityContext.runAsUser).not.toBe(0);
    }
  });

  it('RestrictedSecurity refuses root and defaults to a read-only root filesystem', () => {
    expect(() => RestrictedSecurity.forUser(0)).toThrow(/uid 0 is not allowed/);
    expect(RestrictedSecurity.forUser(10).readOnlyRootFilesystem).toBe(true);
    expect(RestrictedSecurity.forUser(10, { readOnlyRootFilesystem: false }).container().readOnlyRootFilesystem).toBe(false);
  });
});

describe('NetworkPolicies', () => {
  const pol = (name: string) => findObject(objects, 'NetworkPolicy', name).spec as NetPol;

  it('only the gateway pods reach EPP 9002', () => {
    const p = pol('kvroute-epp-from-gateway');
    expect(p.podSelector.matchLabels).toEqual(eppLabels);
    expect(p.policyTypes).toEqual(['Ingress']);
    expect(p.ingress).toEqual([
      {
        from: [{ podSelector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': 'kvroute-gateway' } }, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'llm-d' } } }],
        ports: [{ protocol: 'TCP', port: EppPorts.grpc }],
      },
    ]);
  });

  it('only model-server pods reach EPP 5557', () => {
    const p = pol('kvroute-epp-from-model-servers');
    expect(p.ingress[0].from).toEqual([{ podSelector: { matchLabels: (findObject(objects, 'InferencePool', 'kvroute-pool').spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels } }]);
    expect(p.ingress[0].ports).toEqual([{ protocol: 'TCP', port: EppPorts.zmq }]);
  });

  it('Prometheus namespace reaches the EPP metrics port', () => {
    const p = pol('kvroute-epp-from-prometheus');
    expect(p.ingress[0]).toEqual({ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: EppPorts.http }] });
  });

  it('only the EPP reaches Redis', () => {
    const p = pol('kvroute-redis-from-epp');
    expect(p.ingress).toEqual([{ from: [{ podSelector: { matchLabels: eppLabels } }], ports: [{ protocol: 'TCP', port: 6379 }] }]);
  });

  it('every policy targets EPP or Redis pods only (model servers stay reachable by the gateway)', () => {
    for (const np of objectsOfKind(objects, 'NetworkPolicy')) {
      const sel = (np.spec as NetPol).podSelector.matchLabels;
      expect(['endpoint-picker', 'kv-index']).toContain(sel['app.kubernetes.io/component']);
    }
  });

  it('gateway pod labels and namespace are configurable', () => {
    const o = synthObjects(parseDeploymentConfig({ gateway: { podLabels: { app: 'istio-ingressgateway' }, podNamespace: 'istio-system' } }));
    const p = findObject(o, 'NetworkPolicy', 'kvroute-epp-from-gateway').spec as NetPol;
    expect(p.ingress[0].from).toEqual([{ podSelector: { matchLabels: { app: 'istio-ingressgateway' } }, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'istio-system' } } }]);
  });

  it('PodPeer refuses an empty label set', () => {
    expect(() => PodPeer.pods({})).toThrow(/empty label set/);
  });
});
