/**
 * V8 settings for the serving process (`kvroute-epp serve`), applied at start before any request
 * is handled.
 *
 * `--no-allocation-site-pretenuring`: V8 may decide, from the survival rates it sees in early
 * scavenges, to allocate the objects of an allocation site directly in old space. When it does so
 * for per-stream objects, each dead stream object keeps the young objects it points to (body
 * chunks, promises, parsed JSON) alive until the next full GC, so they are copied and promoted at
 * every scavenge. In the ext_proc load test (bench/extproc.bench.ts) that happened in about a
 * third of the server processes: ~0.9 MB promoted per scavenge instead of ~0.1 MB, and GC took
 * 2.9 % of the time at 1,000 streams/s instead of 0.9 %, with longer pauses. With the flag, 17 of
 * 17 processes stayed in the good mode. The EPP's long-lived data (the block index) lives in typed
 * arrays, which pretenuring does not affect.
 */
import { setFlagsFromString } from 'node:v8';

/** The flags `tuneV8ForServing()` sets. */
export const SERVING_V8_FLAGS: readonly string[] = ['--no-allocation-site-pretenuring'];

let applied = false;

/** Applies SERVING_V8_FLAGS (once; later calls do nothing) and returns them. */
export function tuneV8ForServing(): readonly string[] {
  if (!applied) {
    for (const flag of SERVING_V8_FLAGS) setFlagsFromString(flag);
    applied = true;
  }
  return SERVING_V8_FLAGS;
}
