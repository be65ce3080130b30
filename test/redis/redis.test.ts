import { Testing } from 'cdk8s';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { Redis } from '../../constructs/redis/redis.js';
import { findObject, type K8sObject, objectsOfKind, synthObjects } from '../support/synth.js';

interface RedisContainer {
  image: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[];
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  readinessProbe: { exec: { command: string[] } };
}
const container = (d: K8sObject) => (d.spec as { template: { spec: { containers: RedisContainer[] } } }).template.spec.containers[0];

describe('Redis', () => {
  const objects = synthObjects(parseDeploymentConfig({ redis: { enabled: true } }));
  const dep = findObject(objects, 'Deployment', 'kvroute-redis');

  it('is absent unless enabled', () => {
    const off = synthObjects(parseDeploymentConfig({}));
    expect(off.some((o) => o.metadata.name === 'kvroute-redis')).toBe(false);
  });

  it('password only as a Secret reference, expanded by the kubelet', () => {
    const c = container(dep);
    expect(c.env.every((e) => e.value === undefined && e.valueFrom?.secretKeyRef.name === 'kvroute-redis')).toBe(true);
    expect(c.args.slice(c.args.indexOf('--requirepass'), c.args.indexOf('--requirepass') + 2)).toEqual(['--requirepass', '$(REDIS_PASSWORD)']);
    expect(c.readinessProbe.exec.command.join(' ')).not.toMatch(/-a /);
    expect(objectsOfKind(objects, 'Secret')).toHaveLength(0);
  });

  it('maxmemory with LRU eviction below the memory limit; no persistence', () => {
    const a = container(dep).args;
    expect(a[a.indexOf('--maxmemory') + 1]).toBe('768mb');
    expect(a[a.indexOf('--maxmemory-policy') + 1]).toBe('allkeys-lru');
    expect(a[a.indexOf('--appendonly') + 1]).toBe('no');
    expect(container(dep).resources).toEqual({ requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '1Gi' } });
  });

  it('Service port 6379 named redis', () => {
    const svc = findObject(objects, 'Service', 'kvroute-redis').spec as { ports: { name: string; port: number }[] };
    expect(svc.ports).toEqual([{ name: 'redis', port: 6379, targetPort: 'redis', protocol: 'TCP', appProtocol: 'redis' }]);
  });

  it('rejects maxmemory at or above the memory limit', () => {
    expect(
      () => new Redis(Testing.chart(), 'r', { name: 'r', image: 'redis:7', passwordSecret: { name: 's', key: 'k' }, podLabels: { a: 'b' }, resources: { cpu: '1', memory: '512Mi' }, maxMemoryMiB: 600 }),
    ).toThrow(/maxMemoryMiB 600 is not below the memory limit 512Mi/);
  });

  it('defaults: port 6379, uid 999, 500m/1Gi, maxmemory 768mb', () => {
    const chart = Testing.chart();
    const r = new Redis(chart, 'r', { name: 'r', image: 'redis:7', passwordSecret: { name: 's', key: 'k' }, podLabels: { a: 'b' } });
    expect(r.port).toBe(6379);
    const d = Testing.synth(chart).find((o: K8sObject) => o.kind === 'Deployment') as K8sObject;
    expect((d.spec as { template: { spec: { securityContext: { runAsUser: number } } } }).template.spec.securityContext.runAsUser).toBe(999);
    expect(container(d).resources.requests).toEqual({ cpu: '500m', memory: '1Gi' });
    expect(container(d).args).toContain('768mb');
  });
});
