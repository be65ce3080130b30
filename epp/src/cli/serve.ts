/** `kvroute-epp serve`: runs the EPP until SIGTERM/SIGINT, then shuts down gracefully. */
import { EppRuntime } from '../app/epp.js';
import { servingV8Flags } from '../util/v8-tuning.js';
import { configFromServeArgs, SERVE_USAGE, serveSetupFromArgs } from './serve-flags.js';

export async function serveCommand(argv: readonly string[]): Promise<number> {
  const setup = serveSetupFromArgs(argv);
  if (!setup) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  const { config } = setup;
  // Listen for signals before starting, so a SIGTERM during startup still shuts down cleanly.
  let signalled: NodeJS.Signals | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    signalled ??= sig;
    wake?.();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // V8 flags come from node's command line (the image's ENTRYPOINT); here they are only checked.
  const v8 = servingV8Flags();
  try {
    // --config FILE is watched: a valid change is applied (or named as needing a restart), an
    // invalid one is logged and the running config kept (app/config-reload.ts).
    const file = configFileArg(argv);
    const rt = await EppRuntime.start(config, file ? { reload: { file, load: () => configFromServeArgs(argv) ?? config } } : {});
    rt.logger.info({ v8Flags: v8.present }, 'V8 flags for serving');
    // llm-d flags and EndpointPickerConfig fields accepted without (full) effect
    for (const note of setup.notes) rt.logger.info({ llmd: note }, 'llm-d compatibility');
    if (v8.missing.length > 0) {
      const flags = v8.missing.join(' ');
      rt.logger.warn({ missing: v8.missing }, `started without ${flags}; start node with it on its command line (node ${flags} bin/kvroute-epp.js serve …, as the image's ENTRYPOINT does; NODE_OPTIONS does not accept it)`);
    }
    if (!signalled) await new Promise<void>((resolve) => (wake = resolve));
    rt.logger.info({ signal: signalled }, 'shutting down');
    await rt.stop();
    return 0;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

/** The `--config` file of serve's argv, if any. */
export function configFileArg(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--config') return argv[i + 1];
    if (a.startsWith('--config=')) return a.slice('--config='.length);
  }
  return undefined;
}
