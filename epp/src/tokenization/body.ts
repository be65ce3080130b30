/**
 * The vLLM request fields that change tokenization, read from an OpenAI-style JSON body, so the
 * score API and the ext_proc path tokenize exactly what vLLM will:
 * - /v1/completions: `add_special_tokens` (default true);
 * - /v1/chat/completions: `add_generation_prompt` (default true), `continue_final_message`
 *   (default false), `add_special_tokens` (default false), `tools`, `chat_template_kwargs`.
 * A field of the wrong type is a 400 naming the field, the value and the expected type.
 */
import type { ChatOptions, CompletionOptions } from './tokenization.js';
import { TokenizationError, show } from './errors.js';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bool(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new TokenizationError('bad_request', `"${key}" must be true or false, got ${show(v)}`);
  return v;
}

/** Tokenization options of a /v1/completions body. */
export function completionOptionsFromBody(body: Record<string, unknown>): CompletionOptions {
  const addSpecialTokens = bool(body, 'add_special_tokens');
  return addSpecialTokens === undefined ? {} : { addSpecialTokens };
}

/** Tokenization options of a /v1/chat/completions body. */
export function chatOptionsFromBody(body: Record<string, unknown>): ChatOptions {
  const out: { -readonly [K in keyof ChatOptions]: ChatOptions[K] } = {};
  const agp = bool(body, 'add_generation_prompt');
  if (agp !== undefined) out.addGenerationPrompt = agp;
  const cont = bool(body, 'continue_final_message');
  if (cont !== undefined) out.continueFinalMessage = cont;
  const ast = bool(body, 'add_special_tokens');
  if (ast !== undefined) out.addSpecialTokens = ast;
  if (body.tools !== undefined && body.tools !== null) {
    if (!Array.isArray(body.tools)) throw new TokenizationError('bad_request', `"tools" must be an array of tool definitions, got ${show(body.tools)}`);
    out.tools = body.tools;
  }
  const kw = body.chat_template_kwargs;
  if (kw !== undefined && kw !== null) {
    if (!isRecord(kw)) throw new TokenizationError('bad_request', `"chat_template_kwargs" must be an object, got ${show(kw)}`);
    out.chatTemplateKwargs = kw;
  }
  return out;
}
