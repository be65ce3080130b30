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

/** What {@link provisionSystemCommands} uses; tests pass their own. */
export interface ProvisionOptions {
  /** The binaries to provide. @default TEST_SYSTEM_COMMANDS */
  readonly commands?: ReadonlyArray<readonly [command: string, debianPackage: string]>;
  /** Finds or installs one binary. @default system-packages.ts's ensureCommand (loaded through tsx) */
  readonly ensure?: SystemPackages['ensureCommand'];
  /** Where each line goes. @default console.log, prefixed "test setup: " */
  readonly print?: (line: string) => void;
}

/**
 * Finds or installs every command; prints one line per install and one per command that cannot be
 * provided (its exact install command), and never throws: the run goes on.
 */
export async function provisionSystemCommands(options: ProvisionOptions = {}): Promise<void> {
  const ensure = options.ensure ?? ((await tsImport('./system-packages.ts', import.meta.url)) as SystemPackages).ensureCommand;
  const print = options.print ?? ((line: string) => console.log(`\ntest setup: ${line}`));
  for (const [command, debianPackage] of options.commands ?? TEST_SYSTEM_COMMANDS) {
    try {
      ensure(command, debianPackage, { log: print });
    } catch (err) {
      print(`${(err as Error).message} (the tests that need '${command}' will fail)`);
    }
  }
}

export default function globalSetup(): Promise<void> {
  return provisionSystemCommands();
}
