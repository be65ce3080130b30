/**
 * The include_usage decision (response-phase.ts): the EPP does not add
 * `stream_options.include_usage` to a streamed request, so the client gets exactly the stream it
 * asked for, and a stream without the usage chunk reports no usage (no cache-accuracy comparison).
 * A client that asks for it gets the usage chunk passed through, and the director sees its
 * cached tokens.
 */
import { frames, routeRequest } from '../../testkit/extproc-client.js';
import { PATH_CHAT, postHeaders, responseBodyChunk, startHarness, type Harness } from './fixtures.js';

let h: Harness;
afterEach(async () => {
  await h.close();
});

const SSE_HEADERS = { ':status': '200', 'content-type': 'text/event-stream' };

describe('streamed usage', () => {
  test('a stream without include_usage is forwarded unchanged and reports no usage', async () => {
    h = await startHarness();
    const s = h.client.open();
    const body = JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    const out = await routeRequest(s, { headers: postHeaders(PATH_CHAT), body });
    if (out.kind !== 'routed') throw new Error('not routed');
    // the body upstream is the client's, byte for byte: no stream_options added
    expect(out.body.toString()).toBe(body);
    s.send(frames.responseHeaders(SSE_HEADERS));
    await s.take(1);
    const sse = 'data: {"id":"1","model":"m","choices":[{"delta":{"content":"x"},"finish_reason":"length"}]}\n\ndata: [DONE]\n\n';
    s.send(frames.responseBody(sse, true));
    expect(await s.take(1)).toEqual([responseBodyChunk(sse, true)]);
    s.end();
    await s.done;
    expect(h.director.responses[0]!.info.usage).toBeUndefined();
  });

  test('a stream with include_usage passes the usage chunk through and reports its cached tokens', async () => {
    h = await startHarness();
    const s = h.client.open();
    const body = JSON.stringify({ model: 'm', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
    const out = await routeRequest(s, { headers: postHeaders(PATH_CHAT), body });
    if (out.kind !== 'routed') throw new Error('not routed');
    expect(out.body.toString()).toBe(body);
    s.send(frames.responseHeaders(SSE_HEADERS));
    await s.take(1);
    const usage = 'data: {"id":"1","model":"m","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":32}}}\n\ndata: [DONE]\n\n';
    s.send(frames.responseBody(usage, true));
    expect(await s.take(1)).toEqual([responseBodyChunk(usage, true)]);
    s.end();
    await s.done;
    expect(h.director.responses[0]!.info.usage).toEqual({ promptTokens: 40, completionTokens: 1, cachedTokens: 32 });
  });
});
