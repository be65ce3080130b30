/** `kvroute-epp`: dispatches to the subcommands. */
import { readFileSync } from 'node:fs';
import { EppConfigError } from '../contract/config.js';
import { hashCommand } from './hash.js';
import { verifyCommand } from './verify.js';
import { UsageError } from './serve-flags.js';

export const USAGE = `Usage: kvroute-epp <command> [flags]

Commands:
  serve     run the endpoint picker (see kvroute-epp serve --help); flags without a
            command run serve too (the llm-d Router's EPP command line)
  hash      print vLLM block keys of token ids read from stdin (see kvroute-epp hash --help)
  verify    check a live deployment's prefix-cache routing through its gateway (see kvroute-epp verify --help)
  version   print the version

  -h, --help     this help
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: readonly string[]): Promise<number> {
  // Flags without a subcommand mean `serve` (the llm-d chart passes only flags to the image).
  if (argv[0] !== undefined && /^--?[a-z]/.test(argv[0]) && !['-h', '--help', '--version'].includes(argv[0])) return main(['serve', ...argv]);
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve': {
        const { serveCommand } = await import('./serve.js');
        return await serveCommand(rest);
      }
      case 'hash':
        return await hashCommand([...rest], { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
      case 'verify':
        return await verifyCommand(rest, { stdout: process.stdout, stderr: process.stderr });
      case 'version':
      case '--version':
        process.stdout.write(`${version()}\n`);
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        process.stderr.write(`kvroute-epp: unknown command "${cmd}"; expected serve, hash, verify or version\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof EppConfigError) {
      process.stderr.write(`kvroute-epp ${cmd}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
