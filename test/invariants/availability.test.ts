import { at, broken, clean } from './helpers.js';
import { eppConfigYaml } from './fixtures.js';
import { eppReplicasSeeAllEvents, pdbAllowsDrain } from './availability.js';
import type { Manifest } from './model.js';

type Find = (kind: string, name: string) => Manifest;
const memoryIndex = (find: Find, extra = ''): void => {
  const yaml = eppConfigYaml.replace(/index:\n {2}backend: redis\n {2}url: .*\n/, 'index:\n  backend: memory\n');
  at(find('ConfigMap', 'kv-epp-config'), 'data')['epp-config.yaml'] = yaml + extra;
};

describe('eppReplicasSeeAllEvents', () => {
  it('holds for the fixture (2 replicas sharing a Redis index)', () => expect(clean(eppReplicasSeeAllEvents)).toEqual([]));

  it('fails for several replicas with an in-memory index and vLLM connecting to the Service', () => {
    const m = broken(eppReplicasSeeAllEvents, (_, find) => memoryIndex(find));
    expect(m).toEqual([expect.stringMatching(/^Deployment llm-d\/kv-epp: 2 EPP replicas with an in-memory index and events.mode bind/)]);
  });

  it('accepts one replica, or connect mode, with an in-memory index', () => {
    expect(broken(eppReplicasSeeAllEvents, (_, find) => {
      memoryIndex(find);
      at(find('Deployment', 'kv-epp'), 'spec').replicas = 1;
    })).toEqual([]);
    expect(broken(eppReplicasSeeAllEvents, (_, find) => memoryIndex(find, 'events:\n  mode: connect\n'))).toEqual([]);
  });
});

describe('pdbAllowsDrain', () => {
  it('holds for the fixture (maxUnavailable 1)', () => expect(clean(pdbAllowsDrain)).toEqual([]));

  it('fails when minAvailable equals the replica count or maxUnavailable is 0', () => {
    expect(broken(pdbAllowsDrain, (_, find) => {
      const s = at(find('PodDisruptionBudget', 'kv-epp'), 'spec');
      delete s.maxUnavailable;
      s.minAvailable = 2;
    })).toEqual([expect.stringMatching(/^PodDisruptionBudget llm-d\/kv-epp: allows 0 disruptions for 2 pod\(s\) of Deployment llm-d\/kv-epp .*node drains would block forever/)]);
    expect(broken(pdbAllowsDrain, (_, find) => {
      at(find('PodDisruptionBudget', 'kv-epp'), 'spec').maxUnavailable = 0;
    })).toEqual([expect.stringMatching(/allows 0 disruptions/)]);
  });

  it('computes percentages like Kubernetes (rounding up)', () => {
    expect(broken(pdbAllowsDrain, (_, find) => {
      const s = at(find('PodDisruptionBudget', 'kv-epp'), 'spec');
      delete s.maxUnavailable;
      s.minAvailable = '50%';
    })).toEqual([]);
    expect(broken(pdbAllowsDrain, (_, find) => {
      const s = at(find('PodDisruptionBudget', 'kv-epp'), 'spec');
      delete s.maxUnavailable;
      s.minAvailable = '51%';
    })).toEqual([expect.stringMatching(/allows 0 disruptions for 2 pod/)]);
    expect(broken(pdbAllowsDrain, (_, find) => {
      at(find('PodDisruptionBudget', 'kv-epp'), 'spec').maxUnavailable = '10%';
    })).toEqual([]);
  });
});
