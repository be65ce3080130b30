/**
 * KV-event topic `kv@<pod>@<model>` (vLLM `--kv-events-config` `topic`, rendered by the
 * constructs from the contract module as `kv@<podIP>:<port>@<model>`).
 *
 * Parsing rule (decided here, documented for operators):
 * - The topic must start with `kv@`.
 * - The pod id runs up to the **next** `@`; a pod id never contains `@` (it is `ip:port`, a
 *   bracketed IPv6 `[addr]:port`, or a bare host name).
 * - The model is **everything after** that `@`, verbatim. It may contain `/`
 *   (`meta-llama/Llama-3.2-1B`) and even `@` (`org/model@rev`), which the Go indexer's
 *   `strings.Split` would have mangled.
 * - Both parts must be non-empty and free of whitespace and control characters; an unbracketed
 *   IPv6 address with a port (`::1:8000`) is rejected because its port cannot be told apart.
 */

export interface ParsedTopic {
  /** Endpoint id exactly as published (`10.0.0.7:8000`, `[fd00::7]:8000`, or a host name). */
  readonly pod: string;
  readonly model: string;
}

export class TopicError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TopicError';
  }
}

const PREFIX = 'kv@';
// eslint-disable-next-line no-control-regex
const BAD_CHARS = /[\s\u0000-\u001f\u007f]/;
const BRACKETED_V6 = /^\[[0-9a-fA-F:.]+(%[\w.-]+)?\](:\d{1,5})?$/;

/** Parse a topic string; throws {@link TopicError} naming the topic and the expected form. */
export function parseTopic(topic: string): ParsedTopic {
  const fix = 'expected "kv@<ip:port>@<model>", e.g. "kv@10.0.0.7:8000@meta-llama/Llama-3.2-1B"';
  // Only the error paths use it (read through a getter, so a good topic costs no JSON.stringify).
  const t = { get shown(): string { return JSON.stringify(topic.length > 200 ? `${topic.slice(0, 197)}...` : topic); } };
  if (!topic.startsWith(PREFIX)) throw new TopicError(`KV-event topic ${t.shown} does not start with "${PREFIX}": ${fix}`);
  const at = topic.indexOf('@', PREFIX.length);
  if (at < 0) throw new TopicError(`KV-event topic ${t.shown} has no "@<model>" part: ${fix}`);
  const pod = topic.slice(PREFIX.length, at);
  const model = topic.slice(at + 1);
  if (pod === '') throw new TopicError(`KV-event topic ${t.shown} has an empty pod id: ${fix}`);
  if (model === '') throw new TopicError(`KV-event topic ${t.shown} has an empty model name: ${fix}`);
  if (BAD_CHARS.test(pod) || BAD_CHARS.test(model)) {
    throw new TopicError(`KV-event topic ${t.shown} contains whitespace or control characters: ${fix}`);
  }
  if (pod.startsWith('[')) {
    if (!BRACKETED_V6.test(pod)) throw new TopicError(`KV-event topic ${t.shown}: pod id "${pod}" is not a valid "[ipv6]:port": ${fix}`);
  } else if (pod.indexOf(':') !== pod.lastIndexOf(':')) {
    throw new TopicError(`KV-event topic ${t.shown}: pod id "${pod}" looks like an unbracketed IPv6 address; write it as "[addr]:port"`);
  } else if (pod.includes(':') && !/:\d{1,5}$/.test(pod)) {
    throw new TopicError(`KV-event topic ${t.shown}: pod id "${pod}" has a non-numeric port: ${fix}`);
  }
  return { pod, model };
}

/** Decode the topic frame (UTF-8, fatal on invalid bytes) and parse it. */
export function parseTopicFrame(frame: Uint8Array): ParsedTopic {
  // A pod publishes under one topic: remember the parse of recent topic frames by their bytes.
  const key = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('latin1');
  const hit = parsed.get(key);
  if (hit !== undefined) return hit;
  const p = parseTopicFrameUncached(frame);
  if (parsed.size >= PARSED_CACHE_SIZE) parsed.clear();
  parsed.set(key, p);
  return p;
}

/** Topic frames parsed recently (only valid ones; a bad one throws every time). */
const parsed = new Map<string, ParsedTopic>();
const PARSED_CACHE_SIZE = 4096;

function parseTopicFrameUncached(frame: Uint8Array): ParsedTopic {
  let topic: string;
  try {
    topic = utf8.decode(frame);
  } catch {
    throw new TopicError(`KV-event topic frame (${frame.length} bytes) is not valid UTF-8`);
  }
  return parseTopic(topic);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
