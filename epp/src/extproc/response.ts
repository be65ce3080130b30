/**
 * Response-side helpers: rewriting the model name back to the client-facing one, and reading
 * token usage from a JSON body or from SSE `data:` lines (docs/facts/gateway-protocol.md, "Request bodies").
 */
import type { Usage } from './director.js';

/**
 * Replaces `"model":"<target>"` and `"model": "<target>"` with the client's model name, on raw
 * bytes (no decode/re-encode, so everything else stays byte-identical).
 */
export class ModelRewriter {
  private readonly patterns: { from: Buffer; to: Buffer }[];

  constructor(target: string, original: string) {
    const t = JSON.stringify(target);
    const o = JSON.stringify(original);
    this.patterns = [
      { from: Buffer.from(`"model":${t}`), to: Buffer.from(`"model":${o}`) },
      { from: Buffer.from(`"model": ${t}`), to: Buffer.from(`"model": ${o}`) },
    ];
  }

  /** The byte sequences searched for (longest first is not required). */
  get searchPatterns(): readonly Buffer[] {
    return this.patterns.map((p) => p.from);
  }

  rewrite(buf: Buffer): Buffer {
    let out = buf;
    for (const { from, to } of this.patterns) {
      let i = out.indexOf(from);
      if (i < 0) continue;
      const parts: Buffer[] = [];
      let start = 0;
      while (i >= 0) {
        parts.push(out.subarray(start, i), to);
        start = i + from.length;
        i = out.indexOf(from, start);
      }
      parts.push(out.subarray(start));
      out = Buffer.concat(parts);
    }
    return out;
  }
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** OpenAI `usage` object → Usage (prompt/completion or input/output naming). */
export function usageFrom(v: unknown): Usage | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const u = v as Record<string, unknown>;
  const details = (u.prompt_tokens_details ?? u.prompt_token_details ?? u.input_tokens_details) as Record<string, unknown> | null | undefined;
  const usage: Usage = {
    promptTokens: num(u.prompt_tokens) ?? num(u.input_tokens),
    completionTokens: num(u.completion_tokens) ?? num(u.output_tokens),
    cachedTokens: details && typeof details === 'object' ? num(details.cached_tokens) : undefined,
  };
  return usage.promptTokens === undefined && usage.completionTokens === undefined ? undefined : usage;
}

/** Usage from a complete (non-streaming) JSON response body; undefined when absent or not JSON. */
export function usageFromJson(body: Buffer): Usage | undefined {
  if (body.indexOf('"usage"') < 0) return undefined;
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    return typeof v === 'object' && v !== null ? usageFrom((v as Record<string, unknown>).usage) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Follows an SSE byte stream chunk by chunk and keeps the last `usage` seen on a `data:` line
 * (vLLM sends it in the final chunk with `stream_options.include_usage`). A partial line is kept
 * until its newline arrives; lines longer than `maxLineBytes` are skipped.
 */
export class SseUsageTracker {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private overflow = false;
  usage: Usage | undefined;

  constructor(private readonly maxLineBytes = 1 << 20) {}

  push(chunk: Buffer): void {
    let start = 0;
    let nl = chunk.indexOf(0x0a, start);
    while (nl >= 0) {
      this.addPart(chunk.subarray(start, nl));
      this.line();
      start = nl + 1;
      nl = chunk.indexOf(0x0a, start);
    }
    if (start < chunk.length) this.addPart(chunk.subarray(start));
  }

  /** End of stream: a final line without newline still counts. */
  end(): void {
    if (this.pendingBytes > 0) this.line();
  }

  private addPart(part: Buffer): void {
    if (this.overflow || part.length === 0) return;
    if (this.pendingBytes + part.length > this.maxLineBytes) {
      this.overflow = true;
      this.pending = [];
      this.pendingBytes = 0;
      return;
    }
    this.pending.push(part);
    this.pendingBytes += part.length;
  }

  private line(): void {
    const overflow = this.overflow;
    const buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.overflow = false;
    if (overflow || buf === undefined) return;
    if (buf.length < 6 || buf.toString('latin1', 0, 5) !== 'data:' || buf.indexOf('"usage"') < 0) return;
    const payload = buf.toString('utf8', 5).trim();
    try {
      const v = JSON.parse(payload) as unknown;
      const u = typeof v === 'object' && v !== null ? usageFrom((v as Record<string, unknown>).usage) : undefined;
      if (u) this.usage = u;
    } catch {
      // Not JSON: not a usage line.
    }
  }
}

/**
 * Splits an SSE stream so that only whole lines are released (used while rewriting the model:
 * a `"model":"x"` never spans two released pieces). `push` returns the bytes up to and including
 * the last newline; the rest waits for the next chunk or `flush()`.
 */
export class LineHoldback {
  private tail: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer {
    const data = this.tail.length > 0 ? Buffer.concat([this.tail, chunk]) : chunk;
    const nl = data.lastIndexOf(0x0a);
    if (nl < 0) {
      this.tail = data;
      return Buffer.alloc(0);
    }
    this.tail = data.subarray(nl + 1);
    return data.subarray(0, nl + 1);
  }

  flush(): Buffer {
    const t = this.tail;
    this.tail = Buffer.alloc(0);
    return t;
  }
}

/**
 * Model rewriting over an unbounded byte stream with bounded memory: everything is released except
 * the last (longest pattern − 1) bytes, which could be the start of a pattern split by the chunk
 * boundary. Used when a non-SSE response is too large to buffer whole.
 */
export class StreamingRewriter {
  private tail: Buffer = Buffer.alloc(0);
  private readonly keep: number;

  constructor(private readonly rewriter: ModelRewriter) {
    this.keep = Math.max(...rewriter.searchPatterns.map((p) => p.length)) - 1;
  }

  push(chunk: Buffer, eos: boolean): Buffer {
    const data = this.tail.length > 0 ? Buffer.concat([this.tail, chunk]) : chunk;
    if (eos) {
      this.tail = Buffer.alloc(0);
      return this.rewriter.rewrite(data);
    }
    let cut = Math.max(0, data.length - this.keep);
    // A complete match that straddles the cut goes out whole.
    for (const p of this.rewriter.searchPatterns) {
      const i = data.indexOf(p, Math.max(0, cut - p.length + 1));
      if (i >= 0 && i < cut && i + p.length > cut) cut = i + p.length;
    }
    this.tail = Buffer.from(data.subarray(cut));
    return this.rewriter.rewrite(data.subarray(0, cut));
  }
}
