import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChatTemplate, TokenizationError, detectContentFormat } from '../../src/tokenization/index.js';
import { LLAMA3_DIR } from './helpers.js';

const config = JSON.parse(readFileSync(join(LLAMA3_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
const llama = ChatTemplate.fromConfig(config)!;

const LLAMA3_TWO_MESSAGES =
  '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
  '<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>' +
  '<|start_header_id|>assistant<|end_header_id|>\n\n';

describe('Llama-3 chat template (tokenizer_config.json)', () => {
  const messages = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is the capital of France?' },
  ];

  it('renders a 2-message conversation in the Llama-3 format with the generation prompt', () => {
    expect(llama.contentFormat).toBe('string');
    expect(llama.render(messages)).toBe(LLAMA3_TWO_MESSAGES);
  });

  it('omits the assistant header with addGenerationPrompt false', () => {
    expect(llama.render(messages, { addGenerationPrompt: false })).toBe(LLAMA3_TWO_MESSAGES.slice(0, -'<|start_header_id|>assistant<|end_header_id|>\n\n'.length));
  });

  it('joins text parts with a newline, like vLLM for string-format templates', () => {
    const parts = [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: [{ type: 'text', text: 'What is the capital' }, { type: 'text', text: 'of France?' }] },
    ];
    expect(llama.render(parts)).toBe(LLAMA3_TWO_MESSAGES.replace('capital of', 'capital\nof'));
  });

  it('renders null content as empty and trims content as the template says', () => {
    const out = llama.render([{ role: 'user', content: '  hi  ' }, { role: 'assistant', content: null }], { addGenerationPrompt: false });
    expect(out).toBe('<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<|eot_id|>');
  });

  it('passes tools and chat_template_kwargs to the template (ignored by this one)', () => {
    expect(llama.render(messages, { tools: [{ type: 'function', function: { name: 'f' } }], chatTemplateKwargs: { enable_thinking: false } })).toBe(LLAMA3_TWO_MESSAGES);
  });

  it('continues the final message without closing it', () => {
    const out = llama.render([...messages, { role: 'assistant', content: 'The capital is' }], { addGenerationPrompt: false, continueFinalMessage: true });
    expect(out).toBe(`${LLAMA3_TWO_MESSAGES}The capital is`);
    expect(() => llama.render(messages, { continueFinalMessage: true })).toThrow(/cannot both be true/);
    const hidden = new ChatTemplate('{% for m in messages %}[{{ m.role }}]{% endfor %}', {});
    expect(() => hidden.render([{ role: 'assistant', content: 'abc' }], { addGenerationPrompt: false, continueFinalMessage: true })).toThrow(/final message does not appear/);
  });
});

describe('message validation', () => {
  it.each([
    [[], /non-empty array/],
    ['hello', /non-empty array/],
    [[null], /messages\[0\] must be an object/],
    [[{ content: 'hi' }], /messages\[0\]\.role must be a non-empty string.*got nothing|messages\[0\]\.role must be a non-empty string/],
    [[{ role: 7, content: 'hi' }], /messages\[0\]\.role must be a non-empty string .* got 7/],
    [[{ role: { name: 'user' }, content: 'hi' }], /messages\[0\]\.role must be a non-empty string/],
    [[{ role: 'user', content: { text: 'hi' } }], /messages\[0\]\.content must be a string, an array of text parts, or null/],
    [[{ role: 'user', content: [{ text: 'no type' }] }], /messages\[0\]\.content\[0\] must be a part/],
    [[{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }], /type "image_url" is not supported/],
    [[{ role: 'user', content: [{ type: 'text', text: 5 }] }], /content\[0\]\.text must be a string, got 5/],
  ])('rejects %j with a 400-style error', (messages, re) => {
    let err: unknown;
    try {
      llama.render(messages);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TokenizationError);
    expect((err as TokenizationError).status).toBe(400);
    expect((err as TokenizationError).message).toMatch(re);
  });

  it('surfaces raise_exception from a template as a 400', () => {
    const strict = new ChatTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok", {});
    expect(() => strict.render([{ role: 'system', content: 'x' }])).toThrow(/first message must be from the user/);
    expect(strict.render([{ role: 'user', content: 'x' }])).toBe('ok');
  });
});

describe('openai content format', () => {
  const tpl =
    "{{ bos_token }}{% for message in messages %}<{{ message['role'] }}>{% if message['content'] is string %}S:{{ message['content'] }}" +
    "{% else %}{% for part in message['content'] %}[{{ part['type'] }}:{{ part['text'] }}]{% endfor %}{% endif %}{% endfor %}";

  it('detects templates that iterate over message content', () => {
    expect(detectContentFormat(tpl)).toBe('openai');
    expect(detectContentFormat('{%- for c in message.content %}{{ c.text }}{% endfor %}')).toBe('openai');
    expect(detectContentFormat(String(config.chat_template))).toBe('string');
    expect(detectContentFormat("{% for m in messages %}{% set c = m['content'] %}{%- for p in c %}{{ p.text }}{% endfor %}{% endfor %}")).toBe('openai');
    expect(detectContentFormat("{% for m in messages %}{% set c = m['content'] %}{{ c }}{% for x in cx %}{% endfor %}{% endfor %}")).toBe('string');
    expect(detectContentFormat("{% for m in messages %}{{ m['contents'] }}{% for p in m.contents %}{% endfor %}{% endfor %}")).toBe('string');
  });

  it('passes content as parts, wrapping string content in one text part, like vLLM', () => {
    const t = new ChatTemplate(tpl, { bos_token: { content: '<s>' } });
    const out = t.render([
      { role: 'user', content: 'hi' },
      { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'input_text', text: 'b' }] },
    ]);
    expect(out).toBe('<s><user>[text:hi]<user>[text:a][text:b]');
  });

  it('parses tool-call arguments and keeps tool_call_id', () => {
    const t = new ChatTemplate(
      "{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}({{ c.function.arguments.city }}){% endfor %}{% endif %}" +
        "{% if m.role == 'tool' %}#{{ m.tool_call_id }}={{ m.content }}{% endif %}{% endfor %}",
      {},
    );
    const out = t.render([
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: 'sunny' }] },
    ]);
    expect(out).toBe('weather(Paris)#c1=sunny');
  });

  it('reads a named template list and reports a template that does not parse', () => {
    expect(ChatTemplate.fromConfig({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] })?.render([{ role: 'user', content: 'x' }])).toBe('D');
    expect(ChatTemplate.fromConfig({})).toBeUndefined();
    expect(() => new ChatTemplate('{% for %}', {})).toThrow(/chat template does not parse/);
  });
});
