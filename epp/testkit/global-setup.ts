/**
 * Jest globalSetup (epp/jest.config.js and the root jest.config.js): makes sure the system binaries
 * the tests start for real are present before any test runs — installing their Debian packages when
 * running as root (see ensureCommand). When one cannot be provided it prints the exact install
 * command and lets the run continue: the tests that need it then fail with that same message.
 */
import { tsImport } from 'tsx/esm/api';

// Jest loads a globalSetup module through Node's own loader, without its moduleNameMapper or
// transform for the modules it imports, so system-packages.ts is loaded through tsx.
type SystemPackages = typeof import('./system-packages.js');

/** [command, Debian package providing it] for every binary a test starts. */
export const TEST_SYSTEM_COMMANDS: ReadonlyArray<readonly [command: string, debianPackage: string]> = [
  ['redis-server', 'redis-server'],
  ['prometheus', 'prometheus'],
  ['promtool', 'prometheus'],
];

export default async function globalSetup(): Promise<void> {
  const { ensureCommand } = (await tsImport('./system-packages.ts', import.meta.url)) as SystemPackages;
  for (const [command, debianPackage] of TEST_SYSTEM_COMMANDS) {
    try {
      ensureCommand(command, debianPackage, { log: (line) => console.log(`\ntest setup: ${line}`) });
    } catch (err) {
      console.log(`\ntest setup: ${(err as Error).message} (the tests that need '${command}' will fail)`);
    }
  }
}
