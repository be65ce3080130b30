/** KV-event ingestion: vLLM's ZeroMQ KV events → the KV-block index. */
export * from './types.js';
export * from './decoder.js';
export * from './topic.js';
export * from './observe.js';
export * from './applier.js';
export * from './replay.js';
export * from './addresses.js';
export * from './pool.js';
