import { EppConfigPath, EppPortNames, EppPorts, parseEppConfig, RedisPasswordEnv } from '@kvroute/epp/contract';
import { Testing } from 'cdk8s';
import { parse } from 'yaml';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { eppPackageVersion } from '../../constructs/config/epp-version.js';
import { DeploymentNames } from '../../constructs/config/names.js';
import { EndpointPicker, EppConfigKey } from '../../constructs/epp/endpoint-picker.js';
import { buildEppConfig } from '../../constructs/epp/epp-config.js';
import { findObject, type K8sObject, synthObjects } from '../support/synth.js';

interface EppContainer {
  image: string;
  command: string[];
  args: string[];
  env: { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  ports: { name: string; containerPort: number }[];
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  startupProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { grpc: { port: number; service: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}
const container = (d: K8sObject) => (d.spec as { template: { spec: { containers: EppContainer[] } } }).template.spec.containers[0];
const podSpec = (d: K8sObject) => (d.spec as { template: { spec: Record<string, unknown> } }).template.spec;

describe('EPP (defaults)', () => {
  const config = parseDeploymentConfig({});
  const objects = synthObjects(config);
  const dep = findObject(objects, 'Deployment', 'kvroute-epp');
  const svc = findObject(objects, 'Service', 'kvroute-epp');
  const cm = findObject(objects, 'ConfigMap', 'kvroute-epp-config');
  const eppConfig = parseEppConfig(parse((cm.data as Record<string, string>)[EppConfigKey]));

  it('image tag = the epp package version', () => {
    expect(container(dep).image).toBe(`ghcr.io/kvroute/kvroute-epp:${eppPackageVersion()}`);
    expect(container(dep).args).toEqual(['serve', '--config', EppConfigPath]);
  });

  it('Service exposes grpc 9002, grpc-health 9003, metrics 9090 and ZMQ 5557 by name', () => {
    const ports = (svc.spec as { ports: { name: string; port: number; targetPort: string }[] }).ports;
    expect(ports.map((p) => [p.name, p.port, p.targetPort])).toEqual([
      [EppPortNames.grpc, 9002, EppPortNames.grpc],
      [EppPortNames.grpcHealth, 9003, EppPortNames.grpcHealth],
      [EppPortNames.http, 9090, EppPortNames.http],
      [EppPortNames.zmq, 5557, EppPortNames.zmq],
    ]);
    expect(container(dep).ports.map((p) => [p.name, p.containerPort])).toEqual(ports.map((p) => [p.name, p.port]));
  });

  it('ConfigMap holds a config the EPP schema accepts, with the vLLM-side values', () => {
    expect(eppConfig.model).toBe('meta-llama/Llama-3.2-1B');
    expect(eppConfig.blockSize).toBe(16);
    expect(eppConfig.hashAlgo).toBe('sha256_cbor');
    expect(eppConfig.hashSeed).toBe('42');
    expect(eppConfig.discovery).toEqual({ mode: 'kubernetes', poolName: 'kvroute-pool', poolNamespace: 'llm-d' });
    expect(eppConfig.events).toMatchObject({ mode: 'bind', zmqBind: 'tcp://*:5557', podReplayPort: 5556 });
    expect(eppConfig.index).toEqual({ backend: 'memory', memoryBudgetBytes: 512 * 1024 * 1024 });
    expect(eppConfig.scheduling.pd).toEqual({ enabled: true, nonCachedTokensThreshold: 256 });
    expect(eppConfig.server).toMatchObject({ grpcPort: EppPorts.grpc, healthPort: EppPorts.grpcHealth, httpPort: EppPorts.http });
  });

  it('equals buildEppConfig and is mounted at the contract path; a config hash annotation rolls the pods', () => {
    expect(eppConfig).toEqual(buildEppConfig(config, DeploymentNames.of(config)));
    expect(container(dep).volumeMounts).toContainEqual({ name: 'config', mountPath: '/etc/kvroute', readOnly: true });
    const ann = (dep.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations;
    expect(ann['kvroute.dev/config-sha256']).toMatch(/^[0-9a-f]{16}$/);
    expect(ann['sidecar.istio.io/inject']).toBe('false');
  });

  it('readiness = gRPC health on 9003; liveness and startup = /healthz on the metrics port', () => {
    const c = container(dep);
    expect(c.readinessProbe.grpc).toEqual({ port: EppPorts.grpcHealth, service: 'readiness' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: EppPortNames.http });
    expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: EppPortNames.http });
  });

  it('resources: 2 CPU / 2Gi requested, memory limited', () => {
    expect(container(dep).resources).toEqual({ requests: { cpu: '2', memory: '2Gi' }, limits: { memory: '2Gi' } });
  });

  it('least-privilege Role: get/list/watch pods, inferencepools and inferenceobjectives only, bound to the EPP ServiceAccount', () => {
    const role = findObject(objects, 'Role', 'kvroute-epp');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['inference.networking.k8s.io'], resources: ['inferencepools'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['inference.networking.x-k8s.io'], resources: ['inferenceobjectives'], verbs: ['get', 'list', 'watch'] },
    ]);
    const rb = findObject(objects, 'RoleBinding', 'kvroute-epp');
    expect(rb.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'kvroute-epp' });
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: 'kvroute-epp' }]);
    expect(podSpec(dep).serviceAccountName).toBe('kvroute-epp');
    expect(findObject(objects, 'ServiceAccount', 'kvroute-epp')).toBeDefined();
    expect(objects.some((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toBe(false);
  });

  it('PDB selects the EPP pods; one replica may be disrupted', () => {
    const pdb = findObject(objects, 'PodDisruptionBudget', 'kvroute-epp').spec as { maxUnavailable?: number; selector: { matchLabels: Record<string, string> } };
    expect(pdb.maxUnavailable).toBe(1);
    expect(pdb.selector.matchLabels).toEqual((svc.spec as { selector: Record<string, string> }).selector);
  });

  it('HF token from the Secret, optional (public tokenizers work without it); no Redis password env', () => {
    const env = container(dep).env;
    expect(env).toEqual([{ name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'llm-d-hf-token', key: 'HF_TOKEN', optional: true } } }]);
  });
});

describe('EPP with Redis and several replicas', () => {
  const objects = synthObjects(parseDeploymentConfig({ epp: { replicas: 2 }, redis: { enabled: true } }));
  const dep = findObject(objects, 'Deployment', 'kvroute-epp');
  const cm = findObject(objects, 'ConfigMap', 'kvroute-epp-config');

  it('index backend redis at the Redis Service, password from the Secret', () => {
    const c = parseEppConfig(parse((cm.data as Record<string, string>)[EppConfigKey]));
    expect(c.index).toEqual({ backend: 'redis', url: 'redis://kvroute-redis.llm-d.svc.cluster.local:6379', passwordEnv: RedisPasswordEnv, keyPrefix: 'kvroute:kvroute:', commandTimeoutMs: 50 });
    expect(container(dep).env).toContainEqual({ name: RedisPasswordEnv, valueFrom: { secretKeyRef: { name: 'kvroute-redis', key: 'password' } } });
    expect(findObject(objects, 'Service', 'kvroute-redis')).toBeDefined();
  });

  it('2 replicas spread over nodes; PDB keeps one available', () => {
    expect((dep.spec as { replicas: number }).replicas).toBe(2);
    expect(podSpec(dep).affinity).toBeDefined();
    expect((findObject(objects, 'PodDisruptionBudget', 'kvroute-epp').spec as { minAvailable: number }).minAvailable).toBe(1);
  });
});

describe('EPP in connect (discovery) mode', () => {
  const objects = synthObjects(parseDeploymentConfig({ epp: { replicas: 2, eventsMode: 'connect' } }));
  it('EPP connects to each pod; no ZMQ port on the Service; no model-server → 5557 policy', () => {
    const c = parseEppConfig(parse((findObject(objects, 'ConfigMap', 'kvroute-epp-config').data as Record<string, string>)[EppConfigKey]));
    expect(c.events).toMatchObject({ mode: 'connect', podPublisherPort: 5557 });
    const ports = (findObject(objects, 'Service', 'kvroute-epp').spec as { ports: { name: string }[] }).ports.map((p) => p.name);
    expect(ports).not.toContain(EppPortNames.zmq);
    expect(objects.some((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'kvroute-epp-from-model-servers')).toBe(false);
  });
});

describe('EPP admission from the deployment config', () => {
  it('epp.admission reaches the EPP ConfigMap as is', () => {
    const config = parseDeploymentConfig({ epp: { admission: { objectives: { batch: -1, chat: 5 }, queueDepthThreshold: 8 } } });
    const cm = findObject(synthObjects(config), 'ConfigMap', 'kvroute-epp-config');
    const eppConfig = parseEppConfig(parse((cm.data as Record<string, string>)[EppConfigKey]));
    expect(eppConfig.admission).toEqual({ objectives: { batch: -1, chat: 5 }, queueDepthThreshold: 8, kvCacheUtilThreshold: 0.8, watchObjectives: true });
  });

  it('a bad threshold is refused naming the field', () => {
    expect(() => parseDeploymentConfig({ epp: { admission: { kvCacheUtilThreshold: 2 } } })).toThrow(/epp\.admission\.kvCacheUtilThreshold/);
  });
});

describe('EndpointPicker construct errors', () => {
  const config = parseDeploymentConfig({});
  const names = DeploymentNames.of(config);
  const base = { name: 'e', configMapName: 'e-config', image: 'x/y:1', podLabels: { a: 'b' } };
  it('rejects 0 replicas, redis without a password Secret, and non-contract ports', () => {
    const eppConfig = buildEppConfig(config, names);
    expect(() => new EndpointPicker(Testing.chart(), 'a', { ...base, eppConfig, replicas: 0 })).toThrow(/replicas 0 must be ≥ 1/);
    const redisConfig = buildEppConfig(parseDeploymentConfig({ redis: { enabled: true } }), names);
    expect(() => new EndpointPicker(Testing.chart(), 'b', { ...base, eppConfig: redisConfig })).toThrow(/index\.backend is "redis" but no redisPasswordSecret/);
    const odd = { ...eppConfig, server: { ...eppConfig.server, grpcPort: 9999 } };
    expect(() => new EndpointPicker(Testing.chart(), 'c', { ...base, eppConfig: odd })).toThrow(/9999.*differ from the contract/);
  });
  it('defaults: 1 replica, 2 CPU / 2Gi, uid 65532, no token env', () => {
    const chart = Testing.chart();
    new EndpointPicker(chart, 'd', { ...base, eppConfig: buildEppConfig(config, names) });
    const dep = Testing.synth(chart).find((o: K8sObject) => o.kind === 'Deployment') as K8sObject;
    expect((dep.spec as { replicas: number }).replicas).toBe(1);
    expect(container(dep).resources.requests).toEqual({ cpu: '2', memory: '2Gi' });
    expect((podSpec(dep).securityContext as { runAsUser: number }).runAsUser).toBe(65532);
    expect(container(dep).env).toEqual([]);
  });
});
