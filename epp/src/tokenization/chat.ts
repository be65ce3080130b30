/**
 * Chat templates: renders a `/v1/chat/completions` conversation to the prompt text vLLM feeds its
 * tokenizer, with `@huggingface/jinja` (trim_blocks and lstrip_blocks on, as in transformers).
 *
 * What vLLM does and this module reproduces (vllm/entrypoints/chat_utils.py):
 * - Content format: a template that loops over `message['content']` gets the "openai" format
 *   (content is always a list of `{type: 'text', text}` parts, a string content becomes one part);
 *   any other template gets the "string" format (text parts joined with "\n").
 * - `null` content is an empty list of parts ("" in the string format).
 * - Assistant `tool_calls` are passed through, their JSON-string `arguments` parsed to objects
 *   (invalid JSON becomes `{}`), an empty `tool_calls` list is dropped; `tool` messages keep
 *   `tool_call_id` and get string content; `name` is kept.
 * - Template variables: `messages`, `add_generation_prompt` (default true), `tools` (when given),
 *   the special tokens (`bos_token`, `eos_token`, `unk_token`, `pad_token`) from
 *   tokenizer_config.json, and `chat_template_kwargs` spread on top.
 * - The rendered text already holds BOS (Llama-3's template writes `bos_token`), so vLLM tokenizes
 *   it with `add_special_tokens=False`; adding it again would double the BOS.
 */
import { Template } from '@huggingface/jinja';
import { TokenizationError, show } from './errors.js';
import { tokenContent } from './core.js';

/** One text part of a message's content array. */
export interface ChatContentPart {
  readonly type: string;
  readonly text?: string;
}

/** One chat message as OpenAI's API accepts it. */
export interface ChatMessage {
  readonly role: string;
  readonly content?: string | readonly ChatContentPart[] | null;
  readonly [extra: string]: unknown;
}

/** Options of one chat rendering; all optional. */
export interface ChatRenderOptions {
  /**
   * Append the assistant header so the model starts its answer (vLLM `add_generation_prompt`).
   * @default true
   */
  readonly addGenerationPrompt?: boolean;
  /**
   * Leave the last (assistant) message open instead of closing it (vLLM `continue_final_message`);
   * incompatible with `addGenerationPrompt`.
   * @default false
   */
  readonly continueFinalMessage?: boolean;
  /**
   * Tool definitions, passed to the template as `tools` (templates that ignore them render the same).
   * @default undefined (no `tools` variable)
   */
  readonly tools?: readonly unknown[];
  /**
   * Extra template variables (vLLM `chat_template_kwargs`), e.g. `{enable_thinking: false}`.
   * @default {}
   */
  readonly chatTemplateKwargs?: Readonly<Record<string, unknown>>;
}

export type ContentFormat = 'string' | 'openai';

/**
 * vLLM's content-format detection: "openai" when the template iterates over a message's content,
 * directly (`{% for p in message['content'] %}`) or through a variable assigned from it
 * (`{% set c = message.content %}…{% for p in c %}`); otherwise "string".
 */
export function detectContentFormat(template: string): ContentFormat {
  const contentAccess = String.raw`\w+(?:\[\s*['"]content['"]\s*\]|\.content)(?!\w)`;
  if (new RegExp(String.raw`\{%-?\s*for\s+\w+\s+in\s+` + contentAccess).test(template)) return 'openai';
  const assigned = new RegExp(String.raw`\{%-?\s*set\s+(\w+)\s*=\s*` + contentAccess + String.raw`\s*-?%\}`, 'g');
  for (const m of template.matchAll(assigned)) {
    if (new RegExp(String.raw`\{%-?\s*for\s+\w+\s+in\s+` + m[1] + String.raw`(?!\w)`).test(template)) return 'openai';
  }
  return 'string';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const TEXT_PART_TYPES = new Set(['text', 'input_text', 'output_text', 'refusal']);

/** A compiled chat template. Construction parses once; `render` is reentrant. */
export class ChatTemplate {
  readonly contentFormat: ContentFormat;
  private readonly template: Template;
  private readonly specials: Record<string, string>;

  /**
   * @param source the `chat_template` string (or the first of a named list, `default` preferred)
   * @param config tokenizer_config.json, for the special tokens
   */
  constructor(
    readonly source: string,
    config: Record<string, unknown>,
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new TokenizationError('tokenizer_unavailable', `the chat template does not parse (${(err as Error).message}): fix chat_template in tokenizer_config.json`, {
        cause: err,
      });
    }
    this.contentFormat = detectContentFormat(source);
    this.specials = {};
    for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
      const v = tokenContent(config[k]);
      if (v !== undefined) this.specials[k] = v;
    }
  }

  /** The template from tokenizer_config.json, or undefined when it has none. */
  static fromConfig(config: Record<string, unknown>): ChatTemplate | undefined {
    const t = config.chat_template;
    if (typeof t === 'string') return new ChatTemplate(t, config);
    if (Array.isArray(t)) {
      const named = t.filter((x): x is { name: string; template: string } => isRecord(x) && typeof x.name === 'string' && typeof x.template === 'string');
      const pick = named.find((x) => x.name === 'default') ?? named[0];
      return pick ? new ChatTemplate(pick.template, config) : undefined;
    }
    return undefined;
  }

  /** Validate and normalize messages the way vLLM does before rendering; throws bad_request. */
  normalizeMessages(messages: unknown): Record<string, unknown>[] {
    if (!Array.isArray(messages) || messages.length === 0) {
      throw new TokenizationError('bad_request', `"messages" must be a non-empty array of {role, content} objects, got ${show(messages)}`);
    }
    return messages.map((m, i) => this.normalizeMessage(m, i));
  }

  private normalizeMessage(m: unknown, i: number): Record<string, unknown> {
    if (!isRecord(m)) throw new TokenizationError('bad_request', `messages[${i}] must be an object {role, content}, got ${show(m)}`);
    const role = m.role;
    if (typeof role !== 'string' || role.length === 0) {
      throw new TokenizationError('bad_request', `messages[${i}].role must be a non-empty string such as "user", "assistant" or "system", got ${show(role)}`);
    }
    const texts: string[] = [];
    const raw = m.content;
    if (typeof raw === 'string') texts.push(raw);
    else if (Array.isArray(raw)) {
      raw.forEach((p: unknown, j) => {
        if (typeof p === 'string') {
          texts.push(p);
          return;
        }
        if (!isRecord(p) || typeof p.type !== 'string') {
          throw new TokenizationError('bad_request', `messages[${i}].content[${j}] must be a part {type: "text", text}, got ${show(p)}`);
        }
        if (!TEXT_PART_TYPES.has(p.type)) {
          throw new TokenizationError(
            'bad_request',
            `messages[${i}].content[${j}].type ${show(p.type)} is not supported: the EPP tokenizes text only; send text parts ({type: "text", text}) or route this request without prefix scoring`,
          );
        }
        const text = p.type === 'refusal' ? p.refusal : p.text;
        if (text === undefined || text === null) return; // vLLM skips parts with empty content
        if (typeof text !== 'string') {
          throw new TokenizationError('bad_request', `messages[${i}].content[${j}].${p.type === 'refusal' ? 'refusal' : 'text'} must be a string, got ${show(text)}`);
        }
        texts.push(text);
      });
    } else if (raw !== null && raw !== undefined) {
      throw new TokenizationError('bad_request', `messages[${i}].content must be a string, an array of text parts, or null, got ${show(raw)}`);
    }

    const out: Record<string, unknown> = { role };
    out.content = this.contentFormat === 'openai' ? texts.map((text) => ({ type: 'text', text })) : texts.join('\n');
    if (role === 'assistant' && Array.isArray(m.tool_calls)) {
      if (m.tool_calls.length > 0) out.tool_calls = m.tool_calls.map((c: unknown) => parseToolCall(c));
    }
    if (role === 'tool') {
      if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
      if (Array.isArray(out.content)) out.content = texts.join('\n');
    }
    if (typeof m.name === 'string') out.name = m.name;
    return out;
  }

  /** Render `messages` to the prompt text (validated first). */
  render(messages: unknown, opts: ChatRenderOptions = {}): string {
    const addGenerationPrompt = opts.addGenerationPrompt ?? true;
    const continueFinal = opts.continueFinalMessage ?? false;
    if (addGenerationPrompt && continueFinal) {
      throw new TokenizationError('bad_request', 'continue_final_message and add_generation_prompt cannot both be true: set add_generation_prompt to false to continue the last message');
    }
    const normalized = this.normalizeMessages(messages);
    const vars: Record<string, unknown> = {
      ...this.specials,
      messages: normalized,
      add_generation_prompt: addGenerationPrompt,
      ...(opts.tools !== undefined ? { tools: opts.tools } : {}),
      ...(opts.chatTemplateKwargs ?? {}),
    };
    let text: string;
    try {
      text = this.template.render(vars);
    } catch (err) {
      throw new TokenizationError('bad_request', `the chat template rejected the conversation: ${(err as Error).message}`, { cause: err });
    }
    if (continueFinal) {
      // Like transformers: cut the rendered text right after the final message's (last text part's) stripped content.
      const last = normalized[normalized.length - 1]!;
      const parts = last.content;
      const final = (typeof parts === 'string' ? parts : ((parts as { text: string }[]).at(-1)?.text ?? '')).trim();
      const at = text.lastIndexOf(final);
      if (at < 0) {
        throw new TokenizationError('bad_request', 'continue_final_message is set but the final message does not appear in the rendered chat: check the last message, or unset continue_final_message');
      }
      text = text.slice(0, at + final.length);
    }
    return text;
  }
}

function parseToolCall(c: unknown): unknown {
  if (!isRecord(c) || !isRecord(c.function)) return c;
  const args = c.function.arguments;
  let parsed: unknown = args;
  if (typeof args === 'string') {
    try {
      parsed = JSON.parse(args);
    } catch {
      parsed = {};
    }
  } else if (!isRecord(args) && !Array.isArray(args)) parsed = {};
  return { ...c, function: { ...c.function, arguments: parsed } };
}
