import { at, broken, clean, drop } from './helpers.js';
import { get, miniDeployment, NS } from './fixtures.js';
import {
  envoyFilterRoutesToPick,
  eppServiceConsistency,
  eppServices,
  extProcBodyModeNeverNone,
  extProcFilters,
  extProcTarget,
  httpRouteRefsExist,
  inferencePoolMatchesPods,
} from './routing.js';
import type { Manifest } from './model.js';

/** The ext_proc filter value inside the fixture's EnvoyFilter. */
function extProc(find: (kind: string, name: string) => Manifest): Record<string, unknown> {
  const patches = at(find('EnvoyFilter', 'kv-ext-proc'), 'spec').configPatches as Record<string, unknown>[];
  const p = patches.find((x) => x.applyTo === 'HTTP_FILTER');
  if (p === undefined) throw new Error('fixture EnvoyFilter has no HTTP_FILTER patch');
  return at(p, 'patch', 'value', 'typed_config');
}

describe('inferencePoolMatchesPods', () => {
  it('holds for the fixture', () => expect(clean(inferencePoolMatchesPods)).toEqual([]));

  it('fails when the selector selects only prefill pods', () => {
    const m = broken(inferencePoolMatchesPods, (_, find) => {
      at(find('InferencePool', 'kv-pool'), 'spec', 'selector', 'matchLabels')['llm-d.ai/role'] = 'prefill';
    });
    expect(m).toEqual([expect.stringMatching(/selects no decode pod .*selected: Deployment llm-d\/kv-prefill/)]);
  });

  it('fails when the selector has a label the pods lack (selector ⊄ pod labels)', () => {
    const m = broken(inferencePoolMatchesPods, (_, find) => {
      at(find('InferencePool', 'kv-pool'), 'spec', 'selector', 'matchLabels')['llm-d.ai/guide'] = 'kv';
    });
    expect(m).toEqual([expect.stringMatching(/selects no decode pod.*selected: none/)]);
  });

  it('fails when a targetPort is not a port of the selected pods (vLLM 8200 behind the sidecar)', () => {
    const m = broken(inferencePoolMatchesPods, (_, find) => {
      at(find('InferencePool', 'kv-pool'), 'spec', 'targetPorts', 0).number = 8001;
    });
    expect(m).toEqual([expect.stringMatching(/targetPort 8001 is not a container port of selected Deployment llm-d\/kv-decode/)]);
  });

  it('fails when endpointPickerRef names a missing Service or a port that does not reach 9002', () => {
    expect(broken(inferencePoolMatchesPods, (_, find) => {
      at(find('InferencePool', 'kv-pool'), 'spec', 'endpointPickerRef').name = 'gaie-epp';
    })).toEqual([expect.stringMatching(/endpointPickerRef Service\/gaie-epp does not name a Service emitted in namespace llm-d/)]);
    expect(broken(inferencePoolMatchesPods, (_, find) => {
      at(find('InferencePool', 'kv-pool'), 'spec', 'endpointPickerRef', 'port').number = 9003;
    })).toEqual([expect.stringMatching(/endpointPickerRef.port.number 9003 is not a port of Service llm-d\/kv-epp that reaches the EPP container port 9002/)]);
  });

  it('fails when the pool also selects the EPP pods', () => {
    const m = broken(inferencePoolMatchesPods, (_, find) => {
      const pool = find('InferencePool', 'kv-pool');
      at(pool, 'spec').selector = { matchLabels: { 'app.kubernetes.io/instance': 'kv' } };
      const eppTpl = at(find('Deployment', 'kv-epp'), 'spec', 'template', 'metadata', 'labels');
      eppTpl['llm-d.ai/role'] = 'decode';
    });
    expect(m.some((x) => /also selects EPP pods \(Deployment llm-d\/kv-epp\)/.test(x))).toBe(true);
  });
});

describe('eppServiceConsistency', () => {
  it('holds for the fixture', () => expect(clean(eppServiceConsistency)).toEqual([]));

  it('finds the EPP Service and parses the Istio outbound cluster', () => {
    const objs = miniDeployment();
    expect(eppServices(objs).map((s) => s.metadata.name)).toEqual(['kv-epp']);
    const ef = get(objs, 'EnvoyFilter', 'kv-ext-proc');
    expect(extProcTarget(ef, extProcFilters(ef)[0])).toEqual({ host: `kv-epp.${NS}.svc.cluster.local`, port: 9002 });
  });

  it('fails when the EnvoyFilter cluster names another Service (the seed bug)', () => {
    const m = broken(eppServiceConsistency, (_, find) => {
      at(extProc(find), 'grpc_service', 'envoy_grpc').cluster_name = `outbound|9002||llm-d-gaie-epp.${NS}.svc.cluster.local`;
    });
    expect(m).toEqual([`EnvoyFilter llm-d/kv-ext-proc: ext_proc cluster host llm-d-gaie-epp.${NS}.svc.cluster.local is not the EPP Service (llm-d/kv-epp)`]);
  });

  it('fails when the EnvoyFilter cluster port is the health port', () => {
    const m = broken(eppServiceConsistency, (_, find) => {
      at(extProc(find), 'grpc_service', 'envoy_grpc').cluster_name = `outbound|9003||kv-epp.${NS}.svc.cluster.local`;
    });
    expect(m).toEqual([expect.stringMatching(/ext_proc cluster port 9003 is not a port of Service llm-d\/kv-epp that reaches the EPP container port 9002/)]);
  });

  it('fails when the InferencePool points at another name', () => {
    const m = broken(eppServiceConsistency, (_, find) => {
      at(find('InferencePool', 'kv-pool'), 'spec', 'endpointPickerRef').name = 'epp';
    });
    expect(m).toEqual(['InferencePool llm-d/kv-pool: endpointPickerRef.name is llm-d/epp, but the EPP Service is llm-d/kv-epp']);
  });

  it('reads google_grpc targets and a cluster added by the EnvoyFilter', () => {
    expect(broken(eppServiceConsistency, (_, find) => {
      const g = at(extProc(find), 'grpc_service');
      delete g.envoy_grpc;
      g.google_grpc = { target_uri: 'kv-epp.llm-d.svc:9002', stat_prefix: 'epp' };
    })).toEqual([]);
    expect(broken(eppServiceConsistency, (_, find) => {
      const ef = find('EnvoyFilter', 'kv-ext-proc');
      (at(ef, 'spec').configPatches as unknown[]).push({
        applyTo: 'CLUSTER',
        patch: { operation: 'ADD', value: { name: 'epp', load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'other-svc', port_value: 9002 } } } }] }] } } },
      });
      at(extProc(find), 'grpc_service', 'envoy_grpc').cluster_name = 'epp';
    })).toEqual(['EnvoyFilter llm-d/kv-ext-proc: ext_proc cluster host other-svc is not the EPP Service (llm-d/kv-epp)']);
  });

  it('fails when no Service fronts the EPP pods', () => {
    const m = broken(eppServiceConsistency, (objs) => drop(objs, 'Service', 'kv-epp'));
    expect(m).toEqual([expect.stringMatching(/no Service selects the EPP pods/)]);
  });
});

describe('extProcBodyModeNeverNone', () => {
  it('holds for the fixture (FULL_DUPLEX_STREAMED both ways)', () => expect(clean(extProcBodyModeNeverNone)).toEqual([]));

  it('fails for NONE and for an unset body mode', () => {
    const m = broken(extProcBodyModeNeverNone, (_, find) => {
      const mode = at(extProc(find), 'processing_mode');
      mode.request_body_mode = 'NONE';
      delete mode.response_body_mode;
    });
    expect(m).toEqual([
      expect.stringMatching(/processing_mode.request_body_mode is NONE/),
      expect.stringMatching(/processing_mode.response_body_mode is unset \(Envoy default NONE\)/),
    ]);
  });

  it('accepts BUFFERED', () => {
    expect(broken(extProcBodyModeNeverNone, (_, find) => {
      const mode = at(extProc(find), 'processing_mode');
      mode.request_body_mode = 'BUFFERED';
      mode.response_body_mode = 'BUFFERED';
    })).toEqual([]);
  });
});

describe('envoyFilterRoutesToPick', () => {
  it('holds for the fixture', () => expect(clean(envoyFilterRoutesToPick)).toEqual([]));

  it('fails when the ORIGINAL_DST cluster keys on another header', () => {
    const m = broken(envoyFilterRoutesToPick, (_, find) => {
      const patches = at(find('EnvoyFilter', 'kv-ext-proc'), 'spec').configPatches as Record<string, unknown>[];
      at(patches[0], 'patch', 'value', 'original_dst_lb_config').http_header_name = 'target-pod';
    });
    expect(m).toEqual([expect.stringMatching(/no ORIGINAL_DST CLUSTER patch .*x-gateway-destination-endpoint/)]);
  });

  it('fails when no route goes to the ORIGINAL_DST cluster', () => {
    const m = broken(envoyFilterRoutesToPick, (_, find) => {
      const patches = at(find('EnvoyFilter', 'kv-ext-proc'), 'spec').configPatches as Record<string, unknown>[];
      at(patches[1], 'patch', 'value', 'route').cluster = 'outbound|8000||kv-decode';
    });
    expect(m).toEqual(['EnvoyFilter llm-d/kv-ext-proc: no route patch sends traffic to the ORIGINAL_DST cluster kv-original-dst']);
  });

  it('fails for an EnvoyFilter without ext_proc', () => {
    const m = broken(envoyFilterRoutesToPick, (_, find) => {
      at(find('EnvoyFilter', 'kv-ext-proc'), 'spec').configPatches = [];
    });
    expect(m).toEqual(['EnvoyFilter llm-d/kv-ext-proc: EnvoyFilter installs no envoy.filters.http.ext_proc filter']);
  });
});

describe('httpRouteRefsExist', () => {
  it('holds for the fixture', () => expect(clean(httpRouteRefsExist)).toEqual([]));

  it('fails when the parent Gateway name differs from the emitted Gateway (the seed had three names)', () => {
    const m = broken(httpRouteRefsExist, (_, find) => {
      at(find('HTTPRoute', 'kv-route'), 'spec', 'parentRefs', 0).name = 'llm-d-inference-gateway';
    });
    expect(m).toEqual(['HTTPRoute llm-d/kv-route: parentRef Gateway llm-d/llm-d-inference-gateway is not emitted (Gateways: llm-d/kv-gateway)']);
  });

  it('does not judge parentRefs when no Gateway is emitted (external gateway)', () => {
    expect(broken(httpRouteRefsExist, (objs, find) => {
      drop(objs, 'Gateway', 'kv-gateway');
      at(find('HTTPRoute', 'kv-route'), 'spec', 'parentRefs', 0).name = 'shared-gateway';
    })).toEqual([]);
  });

  it('fails for a sectionName or port the Gateway does not have', () => {
    const m = broken(httpRouteRefsExist, (_, find) => {
      const p = at(find('HTTPRoute', 'kv-route'), 'spec', 'parentRefs', 0);
      p.sectionName = 'https';
      p.port = 443;
    });
    expect(m).toEqual([expect.stringMatching(/sectionName https is not a listener/), expect.stringMatching(/port 443 is not a listener port/)]);
  });

  it('fails for a missing InferencePool backend and a pool of the wrong API group', () => {
    expect(broken(httpRouteRefsExist, (_, find) => {
      at(find('HTTPRoute', 'kv-route'), 'spec', 'rules', 0, 'backendRefs', 0).name = 'pool';
    })).toEqual(['HTTPRoute llm-d/kv-route: backendRef InferencePool inference.networking.k8s.io/llm-d/pool is not emitted']);
    expect(broken(httpRouteRefsExist, (_, find) => {
      at(find('HTTPRoute', 'kv-route'), 'spec', 'rules', 0, 'backendRefs', 0).group = 'inference.networking.x-k8s.io';
    })).toEqual([expect.stringMatching(/InferencePool inference.networking.x-k8s.io\/llm-d\/kv-pool is not emitted/)]);
  });

  it('checks Service backends and their ports', () => {
    const toService = (name: string, port: number) => (_: Manifest[], find: (k: string, n: string) => Manifest): void => {
      at(find('HTTPRoute', 'kv-route'), 'spec', 'rules', 0).backendRefs = [{ name, port }];
    };
    expect(broken(httpRouteRefsExist, toService('kv-redis', 6379))).toEqual([]);
    expect(broken(httpRouteRefsExist, toService('kv-redis', 80))).toEqual(['HTTPRoute llm-d/kv-route: backendRef port 80 is not a port of Service llm-d/kv-redis']);
    expect(broken(httpRouteRefsExist, toService('kv-decode', 8000))).toEqual(['HTTPRoute llm-d/kv-route: backendRef Service llm-d/kv-decode is not emitted']);
  });

  it('fails for a route with no parents, no rules or an empty backend list', () => {
    expect(broken(httpRouteRefsExist, (_, find) => {
      at(find('HTTPRoute', 'kv-route'), 'spec').parentRefs = [];
      at(find('HTTPRoute', 'kv-route'), 'spec', 'rules', 0).backendRefs = [];
    })).toEqual([expect.stringMatching(/has no parentRefs/), expect.stringMatching(/rules\[0\] has no backendRefs/)]);
  });
});
