import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import {
  DeploymentConfigError,
  type DeploymentConfigInput,
  loadDeploymentConfig,
  parseDeploymentConfig,
} from '../../constructs/config/deployment-config.js';
import { vllmImageVersion } from '../../constructs/config/cross-field-rules.js';
import { eppPackageVersion } from '../../constructs/config/epp-version.js';
import { DeploymentNames } from '../../constructs/config/names.js';

/** The error message of parsing `input`, or fail. */
function errorOf(input: unknown): string {
  try {
    parseDeploymentConfig(input, 'test.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(DeploymentConfigError);
    return (e as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

describe('parseDeploymentConfig defaults (reproduce the seed)', () => {
  const c = parseDeploymentConfig({});
  it('model meta-llama/Llama-3.2-1B', () => expect(c.model.name).toBe('meta-llama/Llama-3.2-1B'));
  it('namespace llm-d', () => expect(c.namespace).toBe('llm-d'));
  it('name kvroute', () => expect(c.name).toBe('kvroute'));
  it('IPv4 pod IPs', () => expect(c.ipFamily).toBe('IPv4'));
  it('3 decode replicas, 1 GPU each', () => expect([c.decode.replicas, c.decode.gpusPerPod]).toEqual([3, 1]));
  it('2 prefill replicas, 1 GPU each', () => expect([c.prefill.replicas, c.prefill.gpusPerPod]).toEqual([2, 1]));
  it('P/D on with threshold 256', () => expect(c.pd).toEqual({ enabled: true, nonCachedTokensThreshold: 256 }));
  it('block size 16, sha256_cbor, hash seed "42"', () => expect(c.kvCache).toEqual({ blockSize: 16, hashAlgo: 'sha256_cbor', hashSeed: '42' }));
  it('vLLM sizing: max-model-len 8192, max-num-seqs 256, gpu-memory-utilization 0.9, TP 1', () =>
    expect([c.model.maxModelLen, c.model.maxNumSeqs, c.model.gpuMemoryUtilization, c.model.tensorParallelSize]).toEqual([8192, 256, 0.9, 1]));
  it('startup timeout 1800 s', () => expect(c.model.startupTimeoutSeconds).toBe(1800));
  it('HF token from Secret llm-d-hf-token/HF_TOKEN', () => expect(c.model.hfTokenSecret).toEqual({ name: 'llm-d-hf-token', key: 'HF_TOKEN' }));
  it('model cache emptyDir 50Gi', () => expect(c.model.cache).toEqual({ type: 'emptyDir', sizeLimit: '50Gi' }));
  it('no extra vLLM args', () => expect(c.model.extraArgs).toEqual([]));
  it('model-server pods: 4 CPU, 16Gi, 2Gi /dev/shm', () => expect([c.decode.resources, c.decode.shmSize]).toEqual([{ cpu: '4', memory: '16Gi' }, '2Gi']));
  it('workload mode deployments', () => expect(c.workloadMode).toBe('deployments'));
  it('accelerator: nvidia.com/gpu on nvidia.com/gpu.present=true nodes, tolerating the nvidia.com/gpu taint', () =>
    expect(c.accelerator).toEqual({
      resourceName: 'nvidia.com/gpu',
      nodeLabelKey: 'nvidia.com/gpu.present',
      nodeLabelValues: ['true'],
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
    }));
  it('gateway name defaults to <name>-gateway', () => expect(DeploymentNames.of(c).gateway).toBe('kvroute-gateway'));
  it('gateway: inferencepool mode, Gateway created, class istio, port 80, /v1, 600s, FULL_DUPLEX_STREAMED, FailOpen', () =>
    expect(c.gateway).toEqual({
      mode: 'inferencepool',
      create: true,
      className: 'istio',
      listenerPort: 80,
      hostnames: [],
      pathPrefix: '/v1',
      requestTimeout: '600s',
      bodyMode: 'FULL_DUPLEX_STREAMED',
      failureMode: 'FailOpen',
    }));
  it('EPP: 1 replica, events bind, 2 CPU / 2Gi, 512 MiB index, log info', () =>
    expect(c.epp).toEqual({
      replicas: 1,
      eventsMode: 'bind',
      resources: { cpu: '2', memory: '2Gi' },
      indexMemoryMiB: 512,
      logLevel: 'info',
      admission: { objectives: {}, queueDepthThreshold: 5, kvCacheUtilThreshold: 0.8, watchObjectives: true },
    }));
  it('EPP image tag = epp package version', () => expect(c.images.epp).toBe(`ghcr.io/kvroute/kvroute-epp:${eppPackageVersion()}`));
  it('images pinned by tag', () => {
    expect(c.images.vllm).toBe('vllm/vllm-openai:v0.11.0');
    expect(c.images.routingSidecar).toBe('ghcr.io/llm-d/llm-d-routing-sidecar:v0.3.0');
    expect(c.images.redis).toBe('redis:7.4.2-alpine');
  });
  it('Redis off; password Secret kvroute-redis/password; 500m/1Gi; maxmemory 768 MiB', () =>
    expect(c.redis).toEqual({ enabled: false, passwordSecret: { name: 'kvroute-redis', key: 'password' }, resources: { cpu: '500m', memory: '1Gi' }, maxMemoryMiB: 768 }));
  it('monitoring on, monitors labelled release=prometheus, Prometheus in namespace monitoring, dashboard on', () =>
    expect(c.monitoring).toEqual({ enabled: true, monitorLabels: { release: 'prometheus' }, prometheusNamespace: 'monitoring', dashboard: true }));
  it('Argo CD Application on: main branch, path dist, project default, namespace argocd, automated', () =>
    expect(c.argocd).toEqual({
      enabled: true,
      repoURL: 'https://github.com/kvroute/kvroute.git',
      targetRevision: 'main',
      path: 'dist',
      namespace: 'argocd',
      project: 'default',
      automated: true,
    }));
  it('verify Job off; 24 sessions × 3 turns, 900 s; gateway and Prometheus URLs derived at synth', () =>
    expect(c.verify).toEqual({ enabled: false, sessions: 24, turns: 3, activeDeadlineSeconds: 900 }));
});

describe('epp image version', () => {
  it('is the version in epp/package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../epp/package.json', import.meta.url), 'utf8')) as { version: string };
    expect(eppPackageVersion()).toBe(pkg.version);
  });
});

describe('parseDeploymentConfig errors name field, value and fix', () => {
  const cases: [string, DeploymentConfigInput | Record<string, unknown>, RegExp[]][] = [
    ['block size not a power of two', { kvCache: { blockSize: 24 } }, [/kvCache\.blockSize/, /power of two/, /got 24/, /16, 32 or 64/]],
    ['decode replicas < 1', { decode: { replicas: 0 } }, [/decode\.replicas/, /got 0/, /set decode\.replicas to 1 or more/]],
    ['P/D on with zero prefill replicas', { prefill: { replicas: 0 } }, [/prefill\.replicas/, /pd\.enabled/, /got 0/, /prefill\.replicas ≥ 1 or pd\.enabled: false/]],
    ['empty model name', { model: { name: '  ' } }, [/model\.name/, /empty/, /got " {2}"/, /meta-llama\/Llama-3\.2-1B/]],
    ['GPUs per pod ≠ tensor parallelism', { model: { tensorParallelSize: 2 } }, [/decode\.gpusPerPod/, /tensorParallelSize \(2\)/, /got 1/, /set decode\.gpusPerPod: 2/]],
    [
      'several EPP replicas, memory index, bind mode',
      { epp: { replicas: 3 } },
      [/epp\.replicas/, /got 3/, /redis\.enabled: true/, /epp\.eventsMode: "connect"/, /epp\.replicas: 1/],
    ],
    ['unknown top-level key', { replicas: 3 }, [/Unrecognized key/, /"replicas"/, /fix the spelling/]],
    ['bad namespace', { namespace: 'LLM_D' }, [/namespace/, /RFC 1123/, /got "LLM_D"/]],
    ['unpinned image', { images: { vllm: 'vllm/vllm-openai' } }, [/images\.vllm/, /pin a tag/, /got "vllm\/vllm-openai"/]],
    ['unknown gateway mode', { gateway: { mode: 'ingress' } }, [/gateway\.mode/, /inferencepool/, /envoyfilter/, /got "ingress"/]],
    ['ext_proc body mode NONE', { gateway: { bodyMode: 'NONE' } }, [/gateway\.bodyMode/, /FULL_DUPLEX_STREAMED/, /got "NONE"/]],
    ['hash algo builtin (the seed mistake)', { kvCache: { hashAlgo: 'builtin' } }, [/kvCache\.hashAlgo/, /sha256_cbor/, /got "builtin"/]],
    ['bad quantity', { decode: { resources: { cpu: 'four', memory: '16Gi' } } }, [/decode\.resources\.cpu/, /quantity/, /got "four"/]],
    ['sha256_cbor_64bit on a vLLM that dropped it', { kvCache: { hashAlgo: 'sha256_cbor_64bit' } }, [/kvCache\.hashAlgo/, /vLLM 0\.11\.0/, /use hashAlgo: "sha256_cbor"/]],
    ['sha256_cbor on a vLLM before 0.10.2', { images: { vllm: 'vllm/vllm-openai:v0.10.0' } }, [/kvCache\.hashAlgo/, /vLLM 0\.10\.0/, /sha256_cbor_64bit/]],
    ['name too long for Service names', { name: 'x'.repeat(41) }, [/^.*name: must be at most 40 characters/m]],
    ['name starting with a digit', { name: '1kv' }, [/name: must start with a lower-case letter/, /got "1kv"/]],
    ['hostname with a scheme', { gateway: { hostnames: ['https://llm.example.com'] } }, [/gateway\.hostnames\.0/, /DNS hostname/, /got "https:\/\/llm\.example\.com"/]],
    ['prefill GPUs ≠ TP with P/D on', { model: { tensorParallelSize: 2 }, decode: { gpusPerPod: 2 } }, [/prefill\.gpusPerPod/, /got 1/, /set prefill\.gpusPerPod: 2/]],
    ['gpu-memory-utilization above 1', { model: { gpuMemoryUtilization: 1.2 } }, [/model\.gpuMemoryUtilization/, /got 1\.2/]],
    ['block size given as a string', { kvCache: { blockSize: '16' } }, [/kvCache\.blockSize/, /Expected number, received string/, /got "16"/]],
    ['negative prefill replicas', { prefill: { replicas: -1 } }, [/prefill\.replicas/, /got -1/]],
    ['request timeout without a unit', { gateway: { requestTimeout: '600' } }, [/gateway\.requestTimeout/, /"600s" or "10m"/, /got "600"/]],
    ['bad Secret name', { model: { hfTokenSecret: { name: 'HF Token', key: 'HF_TOKEN' } } }, [/model\.hfTokenSecret\.name/, /Secret name/, /got "HF Token"/]],
    ['Argo CD repo URL not a git URL', { argocd: { repoURL: 'github.com/x/y' } }, [/argocd\.repoURL/, /git URL/, /got "github\.com\/x\/y"/]],
    ['verify gateway URL without a scheme', { verify: { gatewayUrl: 'gw:80' } }, [/verify\.gatewayUrl/, /http\(s\) URL/, /got "gw:80"/]],
    ['verify with no turns', { verify: { turns: 0 } }, [/verify\.turns/, /got 0/]],
  ];
  it.each(cases)('%s', (_name, input, patterns) => {
    const msg = errorOf(input);
    expect(msg).toMatch(/^test\.yaml is invalid:/);
    for (const p of patterns) expect(msg).toMatch(p);
  });

  it('lists every problem at once', () => {
    const msg = errorOf({ kvCache: { blockSize: 12 }, decode: { replicas: 0 } });
    expect(msg).toMatch(/kvCache\.blockSize/);
    expect(msg).toMatch(/decode\.replicas/);
  });

  it('prefill GPUs are not checked when P/D is off', () => {
    const c = parseDeploymentConfig({ pd: { enabled: false }, prefill: { replicas: 0, gpusPerPod: 4 } });
    expect(c.pd.enabled).toBe(false);
  });

  it('wildcard hostnames are accepted', () => {
    expect(parseDeploymentConfig({ gateway: { hostnames: ['*.example.com', 'llm.example.com'] } }).gateway.hostnames).toHaveLength(2);
  });

  it('several EPP replicas are fine with Redis or with connect mode', () => {
    expect(parseDeploymentConfig({ epp: { replicas: 3 }, redis: { enabled: true } }).epp.replicas).toBe(3);
    expect(parseDeploymentConfig({ epp: { replicas: 3, eventsMode: 'connect' } }).epp.eventsMode).toBe('connect');
  });
});

describe('vllmImageVersion', () => {
  it('reads official vllm-openai tags only', () => {
    expect(vllmImageVersion('vllm/vllm-openai:v0.11.0')).toEqual([0, 11, 0]);
    expect(vllmImageVersion('registry.local:5000/mirror/vllm-openai:0.10.2')).toEqual([0, 10, 2]);
    expect(vllmImageVersion('ghcr.io/llm-d/llm-d:v0.2.0')).toBeUndefined();
  });
  it('an older vLLM with sha256_cbor_64bit, and an unknown image with either algo, are accepted', () => {
    expect(parseDeploymentConfig({ images: { vllm: 'vllm/vllm-openai:v0.10.0' }, kvCache: { hashAlgo: 'sha256_cbor_64bit' } }).kvCache.hashAlgo).toBe('sha256_cbor_64bit');
    expect(parseDeploymentConfig({ images: { vllm: 'ghcr.io/llm-d/llm-d:v0.2.0' }, kvCache: { hashAlgo: 'sha256_cbor_64bit' } }).kvCache.hashAlgo).toBe('sha256_cbor_64bit');
  });
});

describe('loadDeploymentConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvroute-config-'));

  it('reads YAML and validates it with the same schema', () => {
    const f = join(dir, 'ok.yaml');
    writeFileSync(f, 'model:\n  name: Qwen/Qwen3-0.6B\nkvCache:\n  blockSize: 64\n');
    const c = loadDeploymentConfig(f);
    expect(c.model.name).toBe('Qwen/Qwen3-0.6B');
    expect(c.kvCache.blockSize).toBe(64);
    expect(c.namespace).toBe('llm-d');
  });

  it('an empty file gives the defaults', () => {
    const f = join(dir, 'empty.yaml');
    writeFileSync(f, '');
    expect(loadDeploymentConfig(f)).toEqual(parseDeploymentConfig({}));
  });

  it('names the file in the error', () => {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'kvCache:\n  blockSize: 10\n');
    expect(() => loadDeploymentConfig(f)).toThrow(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is invalid:[\\s\\S]*kvCache\\.blockSize`));
  });

  it('reports YAML syntax errors and missing files', () => {
    const f = join(dir, 'syntax.yaml');
    writeFileSync(f, 'model: [unclosed\n');
    expect(() => loadDeploymentConfig(f)).toThrow(/is not valid YAML/);
    expect(() => loadDeploymentConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read deployment config .*missing\.yaml.*KVROUTE_CONFIG/);
  });
});
