/**
 * Worker-thread entry: loads the tokenizer once from `workerData.dir`, then answers encode
 * requests one at a time. Runs as compiled JS (dist) or as TypeScript through tsx (see pool.ts).
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { CoreTokenizer, readTokenizerAssets } from './core.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('tokenization/worker.js must run in a worker thread');

function describe(err: unknown): { message: string; code?: string } {
  const e = err as { message?: unknown; code?: unknown };
  return {
    message: typeof e.message === 'string' ? e.message : String(err),
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
  };
}

function serve(tokenizer: CoreTokenizer, p: MessagePort): void {
  p.on('message', (msg: ToWorker) => {
    try {
      const r = tokenizer.encode(msg.text);
      const out: FromWorker = { type: 'result', id: msg.id, ids: r.ids, ...(r.charEnds ? { charEnds: r.charEnds } : {}) };
      const transfer: ArrayBuffer[] = [r.ids.buffer as ArrayBuffer];
      if (r.charEnds) transfer.push(r.charEnds.buffer as ArrayBuffer);
      p.postMessage(out, transfer);
    } catch (err) {
      p.postMessage({ type: 'error', id: msg.id, ...describe(err) } satisfies FromWorker);
    }
  });
}

let tokenizer: CoreTokenizer | undefined;
try {
  tokenizer = new CoreTokenizer(readTokenizerAssets((workerData as WorkerInit).dir));
} catch (err) {
  port.postMessage({ type: 'fatal', ...describe(err) } satisfies FromWorker);
  port.close();
}
if (tokenizer !== undefined) {
  serve(tokenizer, port);
  port.postMessage({ type: 'ready', info: tokenizer.info } satisfies FromWorker);
}
