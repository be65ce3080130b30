/** Messages between the pool (main thread) and its tokenizer workers. */
import type { TokenizerInfo } from './core.js';

/** `workerData` of a tokenizer worker. */
export interface WorkerInit {
  /** Directory holding tokenizer.json (already resolved / downloaded by the main thread). */
  readonly dir: string;
}

/** Main thread → worker: tokenize `text` without special tokens. */
export interface ToWorker {
  readonly id: number;
  readonly text: string;
}

/** Worker → main thread. */
export type FromWorker =
  | { readonly type: 'ready'; readonly info: TokenizerInfo }
  | { readonly type: 'fatal'; readonly message: string; readonly code?: string }
  | { readonly type: 'result'; readonly id: number; readonly ids: Uint32Array; readonly charEnds?: Uint32Array }
  | { readonly type: 'error'; readonly id: number; readonly message: string; readonly code?: string };
