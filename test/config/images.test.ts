/**
 * images.registry and images.imagePullSecrets: the registry rewrite, the config's validation, and
 * where both land in every pod the chart renders (Deployments, Redis, EPP, ModelService templates).
 */
import { Testing } from 'cdk8s';
import { parse as parseYaml } from 'yaml';
import { DeploymentConfigError, parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { imagePullSecretRefs, parseImage, withRegistry } from '../../constructs/config/images.js';
import { ModelServiceBaseConfig } from '../../constructs/vllm/model-service-base-config.js';
import { ModelServerDeployment } from '../../constructs/vllm/model-server-deployment.js';
import { Accelerator } from '../../constructs/vllm/accelerator.js';
import { KvEventsWiring } from '../../constructs/vllm/kv-events.js';
import { vllmServer } from '../../constructs/vllm/vllm-server.js';
import { type K8sObject, synthObjects } from '../support/synth.js';

interface PodSpec {
  containers: { name: string; image: string }[];
  initContainers?: { name: string; image: string }[];
  imagePullSecrets?: { name: string }[];
}

/** Every pod template in the synthesized objects, keyed "Kind/name". */
function podSpecs(objs: readonly K8sObject[]): Map<string, PodSpec> {
  const out = new Map<string, PodSpec>();
  for (const o of objs) {
    const spec = (o.spec as { template?: { spec?: PodSpec } } | undefined)?.template?.spec;
    if (spec?.containers) out.set(`${o.kind}/${o.metadata.name}`, spec);
  }
  return out;
}

function errorOf(input: unknown): string {
  try {
    parseDeploymentConfig(input, 'test.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(DeploymentConfigError);
    return (e as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

describe('parseImage / withRegistry', () => {
  it.each([
    ['vllm/vllm-openai:v0.11.0', 'docker.io', 'vllm/vllm-openai', ':v0.11.0'],
    ['redis:7.4.2-alpine', 'docker.io', 'library/redis', ':7.4.2-alpine'],
    ['ghcr.io/llm-d/llm-d-routing-sidecar:v0.3.0', 'ghcr.io', 'llm-d/llm-d-routing-sidecar', ':v0.3.0'],
    ['localhost:5000/team/epp:1.2.3', 'localhost:5000', 'team/epp', ':1.2.3'],
    [`r.example.com:8443/a/b@sha256:${'c'.repeat(64)}`, 'r.example.com:8443', 'a/b', `@sha256:${'c'.repeat(64)}`],
  ])('%s → registry %s, repository %s, suffix %s', (image, registry, repository, suffix) => {
    expect(parseImage(image)).toEqual({ registry, repository, suffix });
  });

  it('keeps the repository path and tag under the new registry', () => {
    expect(withRegistry('vllm/vllm-openai:v0.11.0', 'mirror.example.com/proxy')).toBe('mirror.example.com/proxy/vllm/vllm-openai:v0.11.0');
    expect(withRegistry('redis:7.4.2-alpine', 'mirror.example.com')).toBe('mirror.example.com/library/redis:7.4.2-alpine');
    expect(withRegistry('ghcr.io/kvroute/kvroute-epp:0.1.0', 'localhost:5000')).toBe('localhost:5000/kvroute/kvroute-epp:0.1.0');
  });

  it('without a registry the image is unchanged', () => {
    expect(withRegistry('redis:7.4.2-alpine', undefined)).toBe('redis:7.4.2-alpine');
  });
});

describe('config: images.registry and images.imagePullSecrets', () => {
  it('default registry: none (every image from its own registry)', () => {
    expect(parseDeploymentConfig({}).images.registry).toBeUndefined();
  });
  it('default imagePullSecrets: none', () => {
    expect(parseDeploymentConfig({}).images.imagePullSecrets).toEqual([]);
  });

  it('the default synth has no imagePullSecrets and the upstream images', () => {
    const pods = podSpecs(synthObjects(parseDeploymentConfig({ redis: { enabled: true } })));
    expect(pods.size).toBeGreaterThanOrEqual(4);
    for (const [key, spec] of pods) expect([key, spec.imagePullSecrets]).toEqual([key, undefined]);
    const images = [...pods.values()].flatMap((s) => [...s.containers, ...(s.initContainers ?? [])].map((c) => c.image));
    expect(new Set(images)).toEqual(
      new Set(['vllm/vllm-openai:v0.11.0', 'ghcr.io/llm-d/llm-d-routing-sidecar:v0.3.0', parseDeploymentConfig({}).images.epp, 'redis:7.4.2-alpine']),
    );
  });

  it.each([
    ['https://registry.example.com', 'scheme'],
    ['registry.example.com/', 'trailing /'],
    ['myregistry', 'bare name: a Docker Hub account, not a registry'],
    ['Registry.Example.com', 'upper case'],
  ])('rejects registry %j (%s) naming field, value and fix', (registry) => {
    const msg = errorOf({ images: { registry } });
    expect(msg).toContain('images.registry');
    expect(msg).toContain(JSON.stringify(registry));
    expect(msg).toContain('e.g. "registry.example.com/mirror"');
  });

  it('rejects a bad Secret name and a repeated one, naming field, value and fix', () => {
    const bad = errorOf({ images: { imagePullSecrets: ['ok', 'Bad_Name'] } });
    expect(bad).toContain('images.imagePullSecrets.1');
    expect(bad).toContain('"Bad_Name"');
    expect(bad).toContain('must be a Secret name');
    const twice = errorOf({ images: { imagePullSecrets: ['regcred', 'regcred'] } });
    expect(twice).toContain('images.imagePullSecrets');
    expect(twice).toContain('list each Secret once');
  });

  it('with both set, every container of every pod comes from the registry and every pod has the Secrets', () => {
    const config = parseDeploymentConfig({ redis: { enabled: true }, images: { registry: 'registry.example.com:5000/mirror', imagePullSecrets: ['regcred', 'backup-cred'] } });
    const pods = podSpecs(synthObjects(config));
    expect([...pods.keys()].sort()).toEqual(['Deployment/kvroute-decode', 'Deployment/kvroute-epp', 'Deployment/kvroute-prefill', 'Deployment/kvroute-redis']);
    for (const [key, spec] of pods) {
      expect([key, spec.imagePullSecrets]).toEqual([key, [{ name: 'regcred' }, { name: 'backup-cred' }]]);
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) expect(c.image.startsWith('registry.example.com:5000/mirror/')).toBe(true);
    }
    const decode = pods.get('Deployment/kvroute-decode');
    expect(decode?.containers[0].image).toBe('registry.example.com:5000/mirror/vllm/vllm-openai:v0.11.0');
    expect(decode?.initContainers?.[0].image).toBe('registry.example.com:5000/mirror/llm-d/llm-d-routing-sidecar:v0.3.0');
    expect(pods.get('Deployment/kvroute-redis')?.containers[0].image).toBe('registry.example.com:5000/mirror/library/redis:7.4.2-alpine');
    expect(pods.get('Deployment/kvroute-epp')?.containers[0].image).toBe(`registry.example.com:5000/mirror/kvroute/kvroute-epp:${config.images.epp.split(':').pop()}`);
  });

  it('an explicit image is moved to the registry too', () => {
    const config = parseDeploymentConfig({ images: { registry: 'registry.example.com', epp: 'ghcr.io/someone/kvroute-epp:0.2.0' } });
    const pods = podSpecs(synthObjects(config));
    expect(pods.get('Deployment/kvroute-epp')?.containers[0].image).toBe('registry.example.com/someone/kvroute-epp:0.2.0');
  });

  it('ModelService mode: the BaseConfig templates carry the Secrets, the ModelService the moved images', () => {
    const config = parseDeploymentConfig({ workloadMode: 'modelservice', images: { registry: 'registry.example.com', imagePullSecrets: ['regcred'] } });
    const objs = synthObjects(config);
    const base = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'kvroute-base-config') as K8sObject & { data: Record<string, string> };
    for (const key of ['decodeDeployment', 'prefillDeployment']) {
      expect((parseYaml(base.data[key]) as { spec: { template: { spec: PodSpec } } }).spec.template.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    }
    const ms = objs.find((o) => o.kind === 'ModelService') as K8sObject;
    const images = JSON.stringify(ms.spec).match(/"image":"[^"]+"/g) ?? [];
    expect(images.length).toBeGreaterThan(0);
    for (const i of images) expect(i.startsWith('"image":"registry.example.com/')).toBe(true);
  });
});

describe('constructs: imagePullSecrets errors name construct, entry, value and fix', () => {
  it('imagePullSecretRefs: undefined or [] gives no field, names give references', () => {
    expect(imagePullSecretRefs(undefined, 'X')).toBeUndefined();
    expect(imagePullSecretRefs([], 'X')).toBeUndefined();
    expect(imagePullSecretRefs(['a', 'b.c'], 'X')).toEqual([{ name: 'a' }, { name: 'b.c' }]);
  });

  it('imagePullSecretRefs rejects a bad and a repeated name', () => {
    expect(() => imagePullSecretRefs(['ok', 'no/slash'], 'Redis kv')).toThrow('Redis kv: imagePullSecrets[1] "no/slash" is not a Secret name; use the name of a kubernetes.io/dockerconfigjson Secret');
    expect(() => imagePullSecretRefs(['a', 'a'], 'Redis kv')).toThrow('Redis kv: imagePullSecrets lists "a" twice; list each Secret once');
  });

  const parts = vllmServer({
    role: 'decode',
    model: 'm',
    image: 'vllm/vllm-openai:v0.11.0',
    sidecarImage: 'ghcr.io/llm-d/llm-d-routing-sidecar:v0.3.0',
    blockSize: 16,
    hashAlgo: 'sha256_cbor',
    hashSeed: '42',
    maxModelLen: 8192,
    maxNumSeqs: 256,
    gpuMemoryUtilization: 0.9,
    accelerator: Accelerator.nvidia(1),
    hfTokenSecret: { name: 'hf', key: 'HF_TOKEN' },
    kvEvents: KvEventsWiring.podBinds(5557),
    pd: false,
    cpu: '1',
    memory: '1Gi',
  });

  it('ModelServerDeployment names itself and the bad entry', () => {
    expect(
      () =>
        new ModelServerDeployment(Testing.chart(), 'd', { name: 'dec', replicas: 1, podLabels: { a: 'b' }, server: parts, accelerator: Accelerator.nvidia(1), serviceAccountName: 'sa', imagePullSecrets: ['UPPER'] }),
    ).toThrow('ModelServerDeployment dec: imagePullSecrets[0] "UPPER" is not a Secret name');
  });

  it('ModelServiceBaseConfig names itself and the bad entry', () => {
    expect(() => new ModelServiceBaseConfig(Testing.chart(), 'b', { name: 'base', decode: { server: parts, accelerator: Accelerator.nvidia(1) }, imagePullSecrets: [''] })).toThrow(
      'ModelServiceBaseConfig base: imagePullSecrets[0] "" is not a Secret name',
    );
  });

  it('ModelServerDeployment and ModelServiceBaseConfig default to no imagePullSecrets', () => {
    const chart = Testing.chart();
    new ModelServerDeployment(chart, 'd', { name: 'dec', replicas: 1, podLabels: { a: 'b' }, server: parts, accelerator: Accelerator.nvidia(1), serviceAccountName: 'sa' });
    new ModelServiceBaseConfig(chart, 'b', { name: 'base', decode: { server: parts, accelerator: Accelerator.nvidia(1) } });
    const objs = Testing.synth(chart) as K8sObject[];
    const dep = objs.find((o) => o.kind === 'Deployment') as K8sObject;
    expect((dep.spec as { template: { spec: PodSpec } }).template.spec.imagePullSecrets).toBeUndefined();
    const cm = objs.find((o) => o.kind === 'ConfigMap') as K8sObject & { data: Record<string, string> };
    expect(cm.data.decodeDeployment).not.toContain('imagePullSecrets');
  });

  it('ModelServerDeployment and ModelServiceBaseConfig render given Secrets', () => {
    const chart = Testing.chart();
    new ModelServerDeployment(chart, 'd', { name: 'dec', replicas: 1, podLabels: { a: 'b' }, server: parts, accelerator: Accelerator.nvidia(1), serviceAccountName: 'sa', imagePullSecrets: ['regcred'] });
    new ModelServiceBaseConfig(chart, 'b', { name: 'base', decode: { server: parts, accelerator: Accelerator.nvidia(1) }, imagePullSecrets: ['regcred'] });
    const objs = Testing.synth(chart) as K8sObject[];
    const dep = objs.find((o) => o.kind === 'Deployment') as K8sObject;
    expect((dep.spec as { template: { spec: PodSpec } }).template.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    const cm = objs.find((o) => o.kind === 'ConfigMap') as K8sObject & { data: Record<string, string> };
    expect((parseYaml(cm.data.decodeDeployment) as { spec: { template: { spec: PodSpec } } }).spec.template.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
  });
});
