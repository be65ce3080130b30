import { at, broken, clean, decodeVllm, drop } from './helpers.js';
import { NS } from './fixtures.js';
import { eppAndRedisRestricted, noSecretLiterals, SECRET_ENV_NAME } from './security.js';
import type { Manifest } from './model.js';

type Find = (kind: string, name: string) => Manifest;
const eppContainer = (find: Find): Record<string, unknown> => at(find('Deployment', 'kv-epp'), 'spec', 'template', 'spec', 'containers', 0);
const redisPod = (find: Find): Record<string, unknown> => at(find('StatefulSet', 'kv-redis'), 'spec', 'template', 'spec');

describe('noSecretLiterals', () => {
  it('holds for the fixture (secrets only by reference)', () => expect(clean(noSecretLiterals)).toEqual([]));

  it('fails for a Secret with data or stringData', () => {
    const m = broken(noSecretLiterals, (objs) => {
      objs.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'hf', namespace: NS }, stringData: { token: 'x' } });
      objs.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'redis', namespace: NS }, data: { password: 'cGFzcw==' } });
    });
    expect(m).toEqual([
      'Secret llm-d/hf: Secret carries stringData (token); reference a Secret created outside dist/ instead',
      'Secret llm-d/redis: Secret carries data (password); reference a Secret created outside dist/ instead',
    ]);
  });

  it('an empty Secret shell (no values) is allowed', () => {
    expect(broken(noSecretLiterals, (objs) => {
      objs.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'placeholder', namespace: NS } });
    })).toEqual([]);
  });

  it('fails for credential-named env vars with a literal value, even an empty one', () => {
    const m = broken(noSecretLiterals, (_, find) => {
      (decodeVllm(find).env as unknown[]).push({ name: 'HF_TOKEN_2', value: 'abc' });
      (eppContainer(find).env as unknown[]).push({ name: 'REDIS_PASSWORD', value: '' });
      (at(find('ModelService', 'kv-ms'), 'spec', 'decode', 'containers', 0).env as unknown[]).push({ name: 'api_key', value: 'k' });
    });
    expect(m).toEqual([
      expect.stringMatching(/^Deployment llm-d\/kv-decode: container "vllm" .* env HF_TOKEN_2 has a literal value; use valueFrom.secretKeyRef/),
      expect.stringMatching(/^Deployment llm-d\/kv-epp: container "epp" .* env REDIS_PASSWORD has a literal value/),
      expect.stringMatching(/^ModelService llm-d\/kv-ms: .* env api_key has a literal value/),
    ]);
  });

  it('credential names are matched by name segment (TOKENIZERS_PARALLELISM is not a credential)', () => {
    expect(SECRET_ENV_NAME.test('TOKENIZERS_PARALLELISM')).toBe(false);
    expect(SECRET_ENV_NAME.test('MAX_TOKENS')).toBe(false);
    expect(['HF_TOKEN', 'token', 'REDIS_PASSWORD', 'AWS_SECRET_ACCESS_KEY', 'OPENAI_API_KEY', 'APIKEY', 'GCP_CREDENTIALS'].every((n) => SECRET_ENV_NAME.test(n))).toBe(true);
    expect(broken(noSecretLiterals, (_, find) => {
      (decodeVllm(find).env as unknown[]).push({ name: 'TOKENIZERS_PARALLELISM', value: 'false' });
    })).toEqual([]);
  });

  it('fails for token-looking strings anywhere (args, annotations, config)', () => {
    const m = broken(noSecretLiterals, (_, find) => {
      (decodeVllm(find).args as string[]).push('--hf-token=hf_abcdefghijklmnopqrstuvwxyz0123456789');
      at(find('ConfigMap', 'kv-epp-config'), 'data')['extra.yaml'] = 'url: redis://default:s3cret@kv-redis:6379';
      at(find('StatefulSet', 'kv-redis'), 'metadata').annotations = { cmd: 'redis-server --requirepass hunter2' };
    });
    expect(m).toEqual([
      'Deployment llm-d/kv-decode: /spec/template/spec/containers/0/args/10 contains a Hugging Face token (hf_...)',
      'ConfigMap llm-d/kv-epp-config: /data/extra.yaml contains a URL with an embedded password',
      'StatefulSet llm-d/kv-redis: /metadata/annotations/cmd contains a literal redis --requirepass',
    ]);
  });

  it('a password passed through an env variable reference is fine', () => {
    expect(broken(noSecretLiterals, (_, find) => {
      at(find('StatefulSet', 'kv-redis'), 'metadata').annotations = { cmd: 'redis-server --requirepass "$REDIS_PASSWORD"' };
    })).toEqual([]);
  });
});

describe('eppAndRedisRestricted', () => {
  it('holds for the fixture', () => expect(clean(eppAndRedisRestricted)).toEqual([]));

  it('fails for each missing restricted setting of the EPP container', () => {
    const m = broken(eppAndRedisRestricted, (_, find) => {
      const sc = at(eppContainer(find), 'securityContext');
      delete sc.allowPrivilegeEscalation;
      sc.capabilities = { drop: ['NET_RAW'], add: ['SYS_ADMIN'] };
      delete sc.seccompProfile;
      delete sc.runAsNonRoot;
    });
    // runAsNonRoot and seccomp still come from the pod securityContext
    expect(m).toEqual([
      'Deployment llm-d/kv-epp: Pod Security restricted: containers "epp" securityContext.allowPrivilegeEscalation is undefined, must be false',
      'Deployment llm-d/kv-epp: Pod Security restricted: containers "epp" securityContext.capabilities.drop does not include ALL',
      'Deployment llm-d/kv-epp: Pod Security restricted: containers "epp" adds capabilities ["SYS_ADMIN"]',
    ]);
  });

  it('pod-level runAsNonRoot/seccomp are required when the container does not set them', () => {
    const m = broken(eppAndRedisRestricted, (_, find) => {
      const sc = at(eppContainer(find), 'securityContext');
      delete sc.seccompProfile;
      delete sc.runAsNonRoot;
      at(find('Deployment', 'kv-epp'), 'spec', 'template', 'spec').securityContext = {};
    });
    expect(m).toEqual([
      expect.stringMatching(/containers "epp" runAsNonRoot is not true/),
      expect.stringMatching(/containers "epp" seccompProfile.type is undefined, must be RuntimeDefault/),
    ]);
  });

  it('fails for Redis running as root, privileged, with hostPath and hostNetwork', () => {
    const m = broken(eppAndRedisRestricted, (_, find) => {
      const pod = redisPod(find);
      pod.hostNetwork = true;
      pod.volumes = [{ name: 'data', hostPath: { path: '/data' } }];
      at(pod, 'securityContext').runAsUser = 0;
      const sc = at(pod, 'containers', 0, 'securityContext');
      sc.privileged = true;
      sc.seccompProfile = { type: 'Unconfined' };
    });
    expect(m.map((x) => x.replace('StatefulSet llm-d/kv-redis: Pod Security restricted: ', ''))).toEqual([
      'spec.hostNetwork is true',
      'volume "data" has type hostPath',
      'pod securityContext.runAsUser is 0',
      'containers "redis" is privileged',
      'containers "redis" runs as UID 0',
      'containers "redis" seccompProfile.type is "Unconfined", must be RuntimeDefault (container or pod securityContext)',
    ]);
  });

  it('covers init containers and hostPorts', () => {
    const m = broken(eppAndRedisRestricted, (_, find) => {
      const pod = at(find('Deployment', 'kv-epp'), 'spec', 'template', 'spec');
      pod.initContainers = [{ name: 'wait', image: 'busybox:1.36' }];
      at(eppContainer(find), 'ports', 0).hostPort = 9002;
    });
    expect(m).toEqual([
      expect.stringMatching(/initContainers "wait" securityContext.allowPrivilegeEscalation is undefined/),
      expect.stringMatching(/initContainers "wait" securityContext.capabilities.drop does not include ALL/),
      expect.stringMatching(/containers "epp" uses hostPort 9002/),
    ]);
  });

  it('does not judge model-server pods (vLLM needs GPUs and shared memory)', () => {
    expect(broken(eppAndRedisRestricted, (_, find) => {
      delete decodeVllm(find).securityContext;
    })).toEqual([]);
  });

  it('fails when no EPP pod exists at all', () => {
    expect(broken(eppAndRedisRestricted, (objs) => drop(objs, 'Deployment', 'kv-epp'))).toEqual(['EPP: no EPP pod template found (a container exposing port 9002)']);
  });
});
