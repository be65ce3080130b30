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

type Rnd = () => number;
const int = (r: Rnd, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rnd, xs: readonly T[]): T => xs[int(r, xs.length)] as T;

const MSGPACK_TYPE_BYTES = [0xc0, 0xc2, 0xc3, 0xc4, 0xc7, 0xca, 0xcb, 0xcc, 0xcf, 0xd3, 0xd4, 0xd8, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0x90, 0x9f, 0x80, 0x8f, 0xa0, 0xbf, 0xe0, 0xff];

/**
 * One random mutation of a msgpack payload: bit flips, truncation, a msgpack type marker swapped
 * in, bytes inserted or deleted, random bytes, or a huge length header in front (forged counts).
 */
export function mutatePayload(r: Rnd, buf: Buffer): Buffer {
  const b = Buffer.from(buf);
  switch (int(r, 7)) {
    case 0: {
      const flips = 1 + int(r, 4);
      for (let i = 0; i < flips && b.length > 0; i++) {
        const at = int(r, b.length);
        b[at] = (b[at] as number) ^ (1 << int(r, 8));
      }
      return b;
    }
    case 1:
      return b.subarray(0, int(r, b.length));
    case 2: {
      // type swap: replace a byte with another msgpack type marker
      if (b.length > 0) b[int(r, b.length)] = pick(r, MSGPACK_TYPE_BYTES);
      return b;
    }
    case 3: {
      const at = int(r, b.length + 1);
      return Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + int(r, 8) }, () => int(r, 256))), b.subarray(at)]);
    }
    case 4: {
      const at = int(r, b.length + 1);
      return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(r, 8)))]);
    }
    case 5:
      return Buffer.from(Array.from({ length: int(r, 64) }, () => int(r, 256)));
    default: {
      // huge length header in front
      return Buffer.concat([Buffer.from([pick(r, [0xdd, 0xdf, 0xc6, 0xdb]), 0xff, 0xff, 0xff, int(r, 256)]), b.subarray(0, 16)]);
    }
  }
}
