#!/usr/bin/env node
// `npm audit --omit=dev`, summarized: lists every advisory affecting the production dependencies
// and exits 1 only when one of them has a fix available (upgrade or `npm audit fix`). Advisories
// without a fix, and an audit endpoint that cannot be reached, are reported and exit 0.
// Usage: node scripts/audit-prod.mjs   (from the repository root; .ci/run and the CI workflow run it)
//        node scripts/audit-prod.mjs --report <file>   (summarize a saved `npm audit --json` output)
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const at = process.argv.indexOf('--report');
const r = at > 0
  ? { stdout: readFileSync(process.argv[at + 1], 'utf8'), stderr: '', status: 0 }
  : spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
let report;
try {
  report = JSON.parse(r.stdout);
} catch {
  report = undefined;
}
if (report === undefined || report.vulnerabilities === undefined) {
  const why = report?.message ?? report?.error?.summary ?? (r.stderr.trim().split('\n').pop() || `exit ${r.status}`);
  console.log(`audit: not checked, the registry's audit endpoint did not answer (${why})`);
  process.exit(0);
}
const entries = Object.values(report.vulnerabilities);
if (entries.length === 0) {
  console.log('audit: no known advisories in the production dependencies');
  process.exit(0);
}
let fixable = 0;
for (const v of entries) {
  const fix = v.fixAvailable === false ? 'no fix available' : v.fixAvailable === true ? 'fix: npm audit fix' : `fix: ${v.fixAvailable.name}@${v.fixAvailable.version}${v.fixAvailable.isSemVerMajor ? ' (semver-major)' : ''}`;
  if (v.fixAvailable !== false) fixable++;
  const titles = v.via.filter((x) => typeof x === 'object').map((x) => `${x.title} (${x.url})`);
  console.log(`audit: ${v.severity} ${v.name} ${v.range}: ${titles.length > 0 ? titles.join('; ') : `through ${v.via.join(', ')}`}; ${fix}`);
}
console.log(`audit: ${entries.length} advisories in production dependencies, ${fixable} with a fix`);
process.exit(fixable > 0 ? 1 : 0);
