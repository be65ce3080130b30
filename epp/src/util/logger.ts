/** Structured JSON logging (pino). Components take the small `Logger` interface, not pino itself. */
import { pino } from 'pino';

/** The logging surface components use (pino-compatible). */
export interface Logger {
  trace(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** A JSON logger to stderr (stdout stays free for command output). */
export function createLogger(level: LogLevel = 'info', name = 'kvroute-epp'): Logger {
  return pino({ name, level, base: { name } }, pino.destination(2));
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
