/** `kvroute-epp serve`: runs the EPP until SIGTERM/SIGINT, then shuts down gracefully. */
import { EppRuntime } from '../app/epp.js';
import { configFromServeArgs, SERVE_USAGE } from './serve-flags.js';

export async function serveCommand(argv: readonly string[]): Promise<number> {
  const config = configFromServeArgs(argv);
  if (!config) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  const rt = await EppRuntime.start(config);
  await new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      rt.logger.info({ signal: sig }, 'shutting down');
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await rt.stop();
  return 0;
}
