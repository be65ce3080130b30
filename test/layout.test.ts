/**
 * The repository's layout rules: every source folder has a README that lists each of its files and
 * subfolders, and the EPP's test folders mirror a source folder (epp/src, epp/lab or epp/testkit).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SOURCE_TREES = ['constructs', 'epp/src', 'epp/testkit', 'epp/lab'];
/** Test-only folders that hold data, not tests of a source folder. */
const DATA_FOLDERS = new Set(['data', 'fixtures']);

function folders(dir: string): string[] {
  const out = [dir];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (e !== 'node_modules' && statSync(p).isDirectory()) out.push(...folders(p));
  }
  return out;
}

const sourceFolders = SOURCE_TREES.flatMap((t) => folders(join(ROOT, t)));

describe('folder READMEs', () => {
  it.each(sourceFolders.map((d) => [relative(ROOT, d), d]))('%s has a README that lists every file and subfolder', (_rel, dir) => {
    const readme = join(dir, 'README.md');
    expect(existsSync(readme)).toBe(true);
    const text = readFileSync(readme, 'utf8');
    const unlisted = readdirSync(dir)
      .filter((e) => e !== 'README.md' && !e.startsWith('.'))
      .filter((e) => !text.includes(`\`${e}\``) && !text.includes(`\`${e}/\``));
    expect(unlisted).toEqual([]);
  });
});

describe('EPP tests mirror the sources', () => {
  const testRoot = join(ROOT, 'epp/test');
  const testFolders = folders(testRoot)
    .filter((d) => d !== testRoot)
    .filter((d) => !relative(testRoot, d).split('/').some((part) => DATA_FOLDERS.has(part)));
  it.each(testFolders.map((d) => [relative(testRoot, d)]))('epp/test/%s mirrors a folder of epp/src, epp/lab or epp/testkit', (rel) => {
    const candidates = [join(ROOT, 'epp/src', rel), join(ROOT, 'epp', rel), join(ROOT, 'epp/testkit', rel.replace(/^testkit\/?/, ''))];
    expect(candidates.some((c) => existsSync(c) && statSync(c).isDirectory())).toBe(true);
  });
});
