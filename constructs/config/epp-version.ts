/** The EPP image tag follows the version of the epp workspace package. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

let cached: string | undefined;

/** Version field of `@kvroute/epp`'s package.json (the EPP image tag). */
export function eppPackageVersion(): string {
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  // Resolve the package entry (epp/dist/index.js), then its package.json two levels up.
  const entry = require.resolve('@kvroute/epp/contract');
  const pkgFile = entry.replace(/[\\/]dist[\\/]contract[\\/]index\.js$/, '/package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string' || pkg.version === '') {
    throw new Error(`${pkgFile} has no "version"; set one so the EPP image tag can follow it`);
  }
  cached = pkg.version;
  return cached;
}
