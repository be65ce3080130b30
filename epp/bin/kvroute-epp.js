#!/usr/bin/env node
// Entry point of the kvroute-epp command: runs the compiled CLI.
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`kvroute-epp: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
