/** Shared helpers of the kvevents tests (not a test file). */
import { seededRandom } from '../../src/util/random.js';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import type { Logger } from '../../src/kvevents/observe.js';

const here = dirname(fileURLToPath(import.meta.url));

export interface HashCase {
  name: string;
  PYTHONHASHSEED: string;
  block_size: number;
  tokens: number[];
  sha256_cbor_u64: string[];
  sha256_cbor_64bit_u64: string[];
}

export const fixtures = JSON.parse(readFileSync(join(here, 'fixtures/kv-event-payloads.json'), 'utf8')) as {
  kv_event_payloads: { name: string; payload_hex: string }[];
  hash_cases: HashCase[];
};

export function hashCase(prefix: string): HashCase {
  const c = fixtures.hash_cases.find((x) => x.name.startsWith(prefix));
  if (!c) throw new Error(`hash case ${prefix} missing`);
  return c;
}

/** Value of a counter (optionally one label set; summed over all label sets otherwise). */
export async function counter(reg: Registry, name: string, labels?: Record<string, string>): Promise<number> {
  const m = reg.getSingleMetric(name);
  if (!m) throw new Error(`metric ${name} is not registered`);
  const { values } = await m.get();
  return values
    .filter((v) => !labels || Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((a, v) => a + v.value, 0);
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string;
}

/** A pino-compatible logger that records lines. */
export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj, msg: msg ?? '' });
    };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** Deterministic PRNG (mulberry32). */
export const prng = seededRandom;
