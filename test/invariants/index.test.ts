import { checkInvariants, formatViolation, INVARIANTS } from './index.js';
import { get, miniDeployment, NS } from './fixtures.js';
import { at, decodeVllm, setArg } from './helpers.js';

describe('checkInvariants', () => {
  it('every invariant holds for the consistent fixture', () => {
    expect(checkInvariants(miniDeployment()).map(formatViolation)).toEqual([]);
  });

  it('an empty object list fails the checks that need something to exist (no vacuous pass)', () => {
    expect([...new Set(checkInvariants([]).map((v) => v.invariant))].sort()).toEqual(['eppAndRedisRestricted', 'vllmMatchesEppConfig']);
  });

  it('formats violations with invariant, object and message', () => {
    expect(formatViolation({ invariant: 'x', object: 'Service ns/a', message: 'broken' })).toBe('[x] Service ns/a: broken');
  });

  it('lists the invariants by name', () => {
    expect(Object.keys(INVARIANTS)).toHaveLength(20);
  });
});

describe('the seed deployment\'s failures (listed in the README, "Deployment: what gets deployed") each trip an invariant', () => {
  it('builtin hash algo, no --kv-events-config, body mode NONE, wrong EPP Service name, mismatched gateway name', () => {
    const objs = miniDeployment();
    const find = (kind: string, name: string) => get(objs, kind, name);
    const vllm = decodeVllm(find);
    setArg(vllm, '--prefix-caching-hash-algo', '--prefix-caching-hash-algo=builtin');
    const args = vllm.args as string[];
    args.splice(args.indexOf('--kv-events-config'), 2);
    const patches = at(find('EnvoyFilter', 'kv-ext-proc'), 'spec').configPatches as Record<string, unknown>[];
    const extProc = at(patches.find((p) => p.applyTo === 'HTTP_FILTER'), 'patch', 'value', 'typed_config');
    at(extProc, 'processing_mode').request_body_mode = 'NONE';
    at(extProc, 'grpc_service', 'envoy_grpc').cluster_name = `outbound|9002||llm-d-gaie-epp.${NS}.svc.cluster.local`;
    at(find('HTTPRoute', 'kv-route'), 'spec', 'parentRefs', 0).name = 'llm-d-gateway';
    const hit = new Set(checkInvariants(objs).map((v) => v.invariant));
    expect([...hit].sort()).toEqual(['eppServiceConsistency', 'extProcBodyModeNeverNone', 'httpRouteRefsExist', 'kvEventsReachEpp', 'vllmMatchesEppConfig']);
  });
});
