/**
 * "All the props" tests: typed `Required<Props>`, so adding an optional prop fails to compile until a
 * test sets it and checks where it lands.
 */
import { Testing } from 'cdk8s';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { DeploymentNames } from '../../constructs/config/names.js';
import { EndpointPicker, type EndpointPickerProps } from '../../constructs/epp/endpoint-picker.js';
import { buildEppConfig } from '../../constructs/epp/epp-config.js';
import { Redis, type RedisProps } from '../../constructs/redis/redis.js';
import type { K8sObject } from '../support/synth.js';

describe('EndpointPicker with every prop', () => {
  const config = parseDeploymentConfig({ redis: { enabled: true } });
  const props: Required<EndpointPickerProps> = {
    name: 'picker',
    configMapName: 'picker-cfg',
    image: 'registry.local/epp:9.9.9',
    eppConfig: buildEppConfig(config, DeploymentNames.of(config)),
    podLabels: { app: 'picker' },
    replicas: 3,
    resources: { cpu: '3', memory: '3Gi' },
    hfTokenSecret: { name: 'hf', key: 'tok' },
    redisPasswordSecret: { name: 'rp', key: 'pw' },
    runAsUser: 4242,
    labels: { team: 'ml' },
    imagePullSecrets: ['regcred'],
  };
  const chart = Testing.chart();
  new EndpointPicker(chart, 'e', props);
  const objs = Testing.synth(chart) as K8sObject[];
  const dep = objs.find((o) => o.kind === 'Deployment') as K8sObject;
  const spec = dep.spec as {
    replicas: number;
    template: { spec: { imagePullSecrets: { name: string }[]; securityContext: { runAsUser: number }; containers: { image: string; resources: unknown; env: { name: string; valueFrom: { secretKeyRef: { name: string; key: string } } }[] }[]; volumes: { configMap?: { name: string } }[] } };
  };

  it('every prop reaches the objects', () => {
    expect(spec.replicas).toBe(3);
    expect(spec.template.spec.containers[0].image).toBe('registry.local/epp:9.9.9');
    expect(spec.template.spec.containers[0].resources).toEqual({ requests: { cpu: '3', memory: '3Gi' }, limits: { memory: '3Gi' } });
    expect(spec.template.spec.securityContext.runAsUser).toBe(4242);
    expect(spec.template.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    expect(spec.template.spec.containers[0].env.map((e) => [e.name, e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key])).toEqual([
      ['HF_TOKEN', 'hf', 'tok'],
      ['KVROUTE_REDIS_PASSWORD', 'rp', 'pw'],
    ]);
    expect(spec.template.spec.volumes.find((v) => v.configMap)?.configMap?.name).toBe('picker-cfg');
    for (const o of objs) expect(o.metadata.labels).toMatchObject({ team: 'ml', app: 'picker' });
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      ['ConfigMap/picker-cfg', 'Deployment/picker', 'PodDisruptionBudget/picker', 'Role/picker', 'RoleBinding/picker', 'Service/picker', 'ServiceAccount/picker'].sort(),
    );
  });
});

describe('Redis with every prop', () => {
  const props: Required<RedisProps> = {
    name: 'kv',
    image: 'valkey/valkey:8.0.2',
    passwordSecret: { name: 's', key: 'k' },
    podLabels: { app: 'kv' },
    resources: { cpu: '2', memory: '4Gi' },
    maxMemoryMiB: 3000,
    port: 6380,
    runAsUser: 1001,
    labels: { team: 'ml' },
    imagePullSecrets: ['kv-pull'],
  };
  const chart = Testing.chart();
  const r = new Redis(chart, 'r', props);
  const objs = Testing.synth(chart) as K8sObject[];

  it('every prop reaches the objects', () => {
    expect(r.port).toBe(6380);
    const dep = objs.find((o) => o.kind === 'Deployment') as K8sObject;
    const c = (dep.spec as { template: { spec: { imagePullSecrets: { name: string }[]; securityContext: { runAsUser: number }; containers: { image: string; args: string[]; ports: { containerPort: number }[] }[] } } }).template.spec;
    expect(c.containers[0].image).toBe('valkey/valkey:8.0.2');
    expect(c.containers[0].args.slice(0, 2)).toEqual(['--port', '6380']);
    expect(c.containers[0].args).toContain('3000mb');
    expect(c.containers[0].ports[0].containerPort).toBe(6380);
    expect(c.securityContext.runAsUser).toBe(1001);
    expect(c.imagePullSecrets).toEqual([{ name: 'kv-pull' }]);
    const svc = objs.find((o) => o.kind === 'Service') as K8sObject;
    expect((svc.spec as { ports: { port: number }[] }).ports[0].port).toBe(6380);
    for (const o of objs) expect(o.metadata.labels).toMatchObject({ team: 'ml', app: 'kv' });
  });
});
