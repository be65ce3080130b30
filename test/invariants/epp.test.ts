import { at, broken, clean, drop } from './helpers.js';
import { eppConfigYaml } from './fixtures.js';
import { eppWiring } from './epp.js';
import type { Manifest } from './model.js';

type Find = (kind: string, name: string) => Manifest;
const eppPodSpec = (find: Find): Record<string, unknown> => at(find('Deployment', 'kv-epp'), 'spec', 'template', 'spec');
const eppContainer = (find: Find): Record<string, unknown> => at(eppPodSpec(find), 'containers', 0);

describe('eppWiring', () => {
  it('holds for the fixture', () => expect(clean(eppWiring)).toEqual([]));

  it('fails when --config points outside the mounted ConfigMap', () => {
    const m = broken(eppWiring, (_, find) => {
      eppContainer(find).args = ['serve', '--config', '/config/epp.yaml'];
    });
    expect(m).toEqual(['Deployment llm-d/kv-epp: container "epp": config file /config/epp.yaml is not under any volumeMount (/etc/kvroute)']);
  });

  it('fails when the file name is not a key of the ConfigMap, and follows items and subPath', () => {
    expect(broken(eppWiring, (_, find) => {
      eppContainer(find).args = ['serve', '--config', '/etc/kvroute/config.yaml'];
    })).toEqual([expect.stringMatching(/resolves to ConfigMap llm-d\/kv-epp-config key "config.yaml", which is not an emitted, valid EPP config/)]);
    expect(broken(eppWiring, (_, find) => {
      eppContainer(find).args = ['serve', '--config', '/etc/kvroute/config.yaml'];
      at(eppPodSpec(find), 'volumes', 0, 'configMap').items = [{ key: 'epp-config.yaml', path: 'config.yaml' }];
    })).toEqual([]);
    expect(broken(eppWiring, (_, find) => {
      at(eppContainer(find), 'volumeMounts', 0).mountPath = '/etc/kvroute/epp-config.yaml';
      at(eppContainer(find), 'volumeMounts', 0).subPath = 'epp-config.yaml';
    })).toEqual([]);
  });

  it('defaults to the contract path when --config is absent', () => {
    expect(broken(eppWiring, (_, find) => {
      eppContainer(find).args = ['serve'];
    })).toEqual([]);
    expect(broken(eppWiring, (_, find) => {
      eppContainer(find).args = ['serve'];
      at(eppContainer(find), 'volumeMounts', 0).mountPath = '/config';
    })).toEqual([expect.stringMatching(/config file \/etc\/kvroute\/epp-config.yaml is not under any volumeMount/)]);
  });

  it('fails when the config volume is not a ConfigMap', () => {
    const m = broken(eppWiring, (_, find) => {
      (eppPodSpec(find).volumes as unknown[]).splice(0, 1, { name: 'config', emptyDir: {} });
    });
    expect(m).toEqual([expect.stringMatching(/volume "config" mounted at \/etc\/kvroute is not a ConfigMap volume/)]);
  });

  it('fails when the container lacks a server port of the config', () => {
    const m = broken(eppWiring, (_, find) => {
      at(find('ConfigMap', 'kv-epp-config'), 'data')['epp-config.yaml'] = `${eppConfigYaml}server:\n  httpPort: 8080\n`;
    });
    expect(m).toEqual(['Deployment llm-d/kv-epp: EPP config server.httpPort 8080 is not a container port of "epp" ([9002,9003,9090,5557])']);
  });

  it('fails for a missing pool, ServiceAccount or RBAC rule', () => {
    expect(broken(eppWiring, (objs) => drop(objs, 'InferencePool', 'kv-pool'))).toEqual([
      'Deployment llm-d/kv-epp: EPP config discovery.poolName llm-d/kv-pool is not an emitted InferencePool: the EPP would discover no endpoints',
    ]);
    expect(broken(eppWiring, (objs) => drop(objs, 'ServiceAccount', 'kv-epp'))).toEqual(['Deployment llm-d/kv-epp: serviceAccountName kv-epp is not an emitted ServiceAccount in llm-d']);
    expect(broken(eppWiring, (_, find) => {
      at(find('Role', 'kv-epp'), 'rules', 1).verbs = ['get'];
    })).toEqual([expect.stringMatching(/ServiceAccount kv-epp is not bound to get\/list\/watch inferencepools/)]);
    expect(broken(eppWiring, (_, find) => {
      at(find('RoleBinding', 'kv-epp'), 'subjects', 0).name = 'default';
    })).toEqual([
      expect.stringMatching(/not bound to get\/list\/watch pods/),
      expect.stringMatching(/not bound to get\/list\/watch inferencepools/),
      expect.stringMatching(/not bound to get\/list\/watch inferenceobjectives/),
    ]);
  });

  it('fails without the inferenceobjectives rule while admission.watchObjectives is on (its default), passes with it off', () => {
    const dropRule = (find: (kind: string, name: string) => Record<string, unknown>): void => {
      (find('Role', 'kv-epp').rules as unknown[]).splice(2, 1);
    };
    expect(broken(eppWiring, (_, find) => dropRule(find))).toEqual([
      'Deployment llm-d/kv-epp: ServiceAccount kv-epp is not bound to get/list/watch inferenceobjectives.inference.networking.x-k8s.io (admission.watchObjectives); grant it or set admission.watchObjectives: false',
    ]);
    expect(
      broken(eppWiring, (_, find) => {
        dropRule(find);
        at(find('ConfigMap', 'kv-epp-config'), 'data')['epp-config.yaml'] = `${eppConfigYaml}admission:\n  watchObjectives: false\n`;
      }),
    ).toEqual([]);
  });

  it('fails when the Redis URL names no Redis Service port', () => {
    const m = broken(eppWiring, (_, find) => {
      at(find('ConfigMap', 'kv-epp-config'), 'data')['epp-config.yaml'] = eppConfigYaml.replace('kv-redis.llm-d.svc.cluster.local:6379', 'redis-master.llm-d.svc.cluster.local:8100');
    });
    expect(m).toEqual([expect.stringMatching(/index.url redis:\/\/redis-master.llm-d.svc.cluster.local:8100 does not name an emitted Service port in front of Redis pods/)]);
  });

  it('fails when the Redis password env is missing or comes from another Secret than Redis uses', () => {
    expect(broken(eppWiring, (_, find) => {
      eppContainer(find).env = [];
    })).toEqual([expect.stringMatching(/index.passwordEnv KVROUTE_REDIS_PASSWORD is not an env var of "epp" from a secretKeyRef/)]);
    expect(broken(eppWiring, (_, find) => {
      at(eppContainer(find), 'env', 0, 'valueFrom', 'secretKeyRef').key = 'redis-password';
    })).toEqual(['Deployment llm-d/kv-epp: EPP Redis password comes from Secret redis-auth/redis-password but StatefulSet llm-d/kv-redis uses redis-auth/password']);
  });
});
