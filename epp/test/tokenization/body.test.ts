import { chatOptionsFromBody, completionOptionsFromBody } from '../../src/tokenization/index.js';

describe('tokenization options from a request body', () => {
  it('reads the vLLM fields of a chat body', () => {
    expect(chatOptionsFromBody({ model: 'm', messages: [] })).toEqual({});
    expect(
      chatOptionsFromBody({
        add_generation_prompt: false,
        continue_final_message: true,
        add_special_tokens: true,
        tools: [{ type: 'function', function: { name: 'f' } }],
        chat_template_kwargs: { enable_thinking: false },
      }),
    ).toEqual({
      addGenerationPrompt: false,
      continueFinalMessage: true,
      addSpecialTokens: true,
      tools: [{ type: 'function', function: { name: 'f' } }],
      chatTemplateKwargs: { enable_thinking: false },
    });
    expect(chatOptionsFromBody({ tools: null, chat_template_kwargs: null, add_generation_prompt: null })).toEqual({});
  });

  it('reads add_special_tokens of a completions body', () => {
    expect(completionOptionsFromBody({ prompt: 'x' })).toEqual({});
    expect(completionOptionsFromBody({ add_special_tokens: false })).toEqual({ addSpecialTokens: false });
  });

  it.each([
    [{ add_generation_prompt: 'yes' }, /"add_generation_prompt" must be true or false, got "yes"/],
    [{ continue_final_message: 1 }, /"continue_final_message" must be true or false, got 1/],
    [{ tools: { name: 'f' } }, /"tools" must be an array/],
    [{ chat_template_kwargs: [1] }, /"chat_template_kwargs" must be an object, got \[1\]/],
  ])('rejects %j with a 400', (body, re) => {
    expect(() => chatOptionsFromBody(body)).toThrow(re);
    expect(() => chatOptionsFromBody(body)).toThrow(expect.objectContaining({ code: 'bad_request', status: 400 }));
  });

  it('rejects a non-boolean add_special_tokens on completions', () => {
    expect(() => completionOptionsFromBody({ add_special_tokens: 'false' })).toThrow(/"add_special_tokens" must be true or false, got "false"/);
  });
});
