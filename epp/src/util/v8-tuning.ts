/**
 * V8 settings for the serving process (`kvroute-epp serve`): the contract's EppServingV8Flags.
 * They are node command-line flags, given at start by the image's ENTRYPOINT and the chart's
 * container command — not NODE_OPTIONS, which refuses V8 flags outside node's allow-list (node
 * exits 9: "--no-allocation-site-pretenuring is not allowed in NODE_OPTIONS"), and not
 * `v8.setFlagsFromString` at runtime (node documents it as unsafe once code has run). `serve`
 * only checks and logs whether they are in effect.
 *
 * `--no-allocation-site-pretenuring`: V8 may decide, from the survival rates it sees in early
 * scavenges, to allocate the objects of an allocation site directly in old space. When it does so
 * for per-stream objects, each dead stream object keeps the young objects it points to (body
 * chunks, promises, parsed JSON) alive until the next full GC, so they are copied and promoted at
 * every scavenge. In the ext_proc load test (lab/bench/extproc.bench.ts) that happened in about a
 * third of the server processes: ~0.9 MB promoted per scavenge instead of ~0.1 MB, and GC took
 * 2.9 % of the time at 1,000 streams/s instead of 0.9 %, with longer pauses. With the flag, 17 of
 * 17 processes stayed in the good mode. The EPP's long-lived data (the block index) lives in typed
 * arrays, which pretenuring does not affect.
 */
import { EppServingV8Flags } from '../contract/names.js';

/** The node flags the serving process should be started with (EppServingV8Flags). */
export const SERVING_V8_FLAGS: readonly string[] = EppServingV8Flags;

/** Which SERVING_V8_FLAGS this process was started with. */
export interface ServingV8Flags {
  /** Flags given on node's command line. */
  readonly present: readonly string[];
  /** Flags not given (the process runs with V8's default for them). */
  readonly missing: readonly string[];
}

/**
 * Checks SERVING_V8_FLAGS against node's command line (V8 accepts `_` for `-` in flag names).
 * @param execArgv @default process.execArgv
 */
export function servingV8Flags(execArgv: readonly string[] = process.execArgv): ServingV8Flags {
  const given = new Set(execArgv.map((f) => f.replace(/_/g, '-')));
  return {
    present: SERVING_V8_FLAGS.filter((f) => given.has(f)),
    missing: SERVING_V8_FLAGS.filter((f) => !given.has(f)),
  };
}
