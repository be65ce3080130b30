/** `kvroute-epp serve`: runs the EPP until SIGTERM/SIGINT, then shuts down gracefully. */
import { EppRuntime } from '../app/epp.js';
import { tuneV8ForServing } from '../util/v8-tuning.js';
import { configFromServeArgs, SERVE_USAGE } from './serve-flags.js';

export async function serveCommand(argv: readonly string[]): Promise<number> {
  const config = configFromServeArgs(argv);
  if (!config) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  // Listen for signals before starting, so a SIGTERM during startup still shuts down cleanly.
  let signalled: NodeJS.Signals | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    signalled ??= sig;
    wake?.();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const v8Flags = tuneV8ForServing();
  try {
    const rt = await EppRuntime.start(config);
    rt.logger.info({ v8Flags }, 'V8 tuned for serving');
    if (!signalled) await new Promise<void>((resolve) => (wake = resolve));
    rt.logger.info({ signal: signalled }, 'shutting down');
    await rt.stop();
    return 0;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
