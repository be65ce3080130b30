import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseDeploymentConfig } from '../constructs/config/deployment-config.js';
import { buildApp, resolveConfig } from '../constructs/app.js';
import { exampleConfigs, examplesDir, findObject, type K8sObject, synthObjects } from './support/synth.js';

const repo = resolve(examplesDir, '..');

describe('examples', () => {
  const examples = exampleConfigs();

  it('there are at least the seed and the Qwen3-32B fleet', () => {
    expect(examples.map((e) => e.name)).toEqual(expect.arrayContaining(['seed', 'qwen3-32b-fleet']));
  });

  it('seed.yaml is exactly the defaults', () => {
    const seed = examples.find((e) => e.name === 'seed');
    expect(seed?.config).toEqual(parseDeploymentConfig({}));
  });

  it('qwen3-32b-fleet: 8 decode pods × 2 GPUs, TP 2, Redis, EnvoyFilter, no prefill', () => {
    const fleet = examples.find((e) => e.name === 'qwen3-32b-fleet');
    if (!fleet) throw new Error('missing example');
    const o = synthObjects(fleet.config);
    const decode = findObject(o, 'Deployment', 'qwen3-decode').spec as { replicas: number; template: { spec: { containers: { args: string[]; resources: { limits: Record<string, number> } }[] } } };
    expect(decode.replicas).toBe(8);
    expect(decode.template.spec.containers[0].resources.limits['nvidia.com/gpu']).toBe(2);
    expect(decode.template.spec.containers[0].args).toContain('--tensor-parallel-size=2');
    expect(o.some((x) => x.metadata.name === 'qwen3-prefill')).toBe(false);
    expect(findObject(o, 'EnvoyFilter', 'qwen3-ext-proc')).toBeDefined();
    expect(findObject(o, 'Deployment', 'qwen3-redis')).toBeDefined();
  });

  it.each(examples.map((e) => [e.name, e.config] as const))('%s: names unique per kind, namespaced, no Secret objects', (_n, config) => {
    const o = synthObjects(config);
    const keys = o.map((x) => `${x.kind}/${x.metadata.namespace}/${x.metadata.name}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const x of o) expect(x.metadata.namespace).toBe(x.kind === 'Application' ? config.argocd.namespace : config.namespace);
    expect(o.filter((x) => x.kind === 'Secret')).toEqual([]);
  });

  it.each(examples.map((e) => [e.name, e.config] as const))('%s snapshot', (_n, config) => {
    expect(synthObjects(config)).toMatchSnapshot();
  });

  it('synth is deterministic', () => {
    const c = parseDeploymentConfig({});
    expect(JSON.stringify(synthObjects(c))).toBe(JSON.stringify(synthObjects(c)));
  });
});

describe('no secret values in the output', () => {
  it('env vars that look secret are Secret references, not literals', () => {
    for (const { config } of exampleConfigs()) {
      const text = JSON.stringify(synthObjects(config));
      const envs = [...text.matchAll(/\{"name":"([A-Z_]*(TOKEN|PASSWORD|SECRET|AUTH)[A-Z_]*)","value":/g)].map((m) => m[1]);
      expect(envs).toEqual([]);
      expect(text).not.toMatch(/hf_[A-Za-z0-9]{20,}/);
    }
  });
});

describe('buildApp (what main.ts runs)', () => {
  it('synthesizes the YAML file named by KVROUTE_CONFIG into one file per chart', () => {
    const out = mkdtempSync(join(tmpdir(), 'kvroute-synth-'));
    buildApp({ configFile: join(examplesDir, 'qwen3-32b-fleet.yaml'), outdir: out }).synth();
    const files = readdirSync(out);
    expect(files).toEqual(['kvroute.k8s.yaml']);
    const docs = parseAllDocuments(readFileSync(join(out, files[0]), 'utf8')).map((d) => d.toJS() as K8sObject);
    expect(findObject(docs, 'EnvoyFilter', 'qwen3-ext-proc').metadata.namespace).toBe('qwen3-fleet');
  });

  it('without a file, builds the defaults', () => {
    expect(resolveConfig(undefined)).toEqual(parseDeploymentConfig({}));
  });

  it('fails with the file, field, value and fix for an invalid config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvroute-bad-'));
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'kvCache:\n  blockSize: 20\n');
    expect(() => buildApp({ configFile: f, outdir: join(dir, 'out') })).toThrow(/bad\.yaml is invalid:[\s\S]*kvCache\.blockSize: block size must be a power of two .*16, 32 or 64 \(got 20\)/);
  });
});

describe('dist/ (committed synth output)', () => {
  it('equals a fresh synth of the defaults', () => {
    const out = mkdtempSync(join(tmpdir(), 'kvroute-fresh-'));
    buildApp({ outdir: out }).synth();
    expect(readFileSync(join(out, 'kvroute.k8s.yaml'), 'utf8')).toBe(readFileSync(join(repo, 'dist', 'kvroute.k8s.yaml'), 'utf8'));
    expect(readdirSync(join(repo, 'dist'))).toEqual(['kvroute.k8s.yaml']);
  });
});
