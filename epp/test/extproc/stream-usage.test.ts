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

/**
 * Routes a streamed chat request with `request` as its body through the EPP, then streams `sse` back
 * as the whole response. Returns the body sent upstream, the response frames the EPP returned and
 * the usage the director was told about.
 */
async function streamThrough(request: Record<string, unknown>, sse: string): Promise<{ sent: string; body: string; returned: unknown[]; usage: unknown }> {
  h = await startHarness();
  const s = h.client.open();
  const body = JSON.stringify(request);
  const out = await routeRequest(s, { headers: postHeaders(PATH_CHAT), body });
  if (out.kind !== 'routed') throw new Error('not routed');
  s.send(frames.responseHeaders(SSE_HEADERS));
  await s.take(1);
  s.send(frames.responseBody(sse, true));
  const returned = await s.take(1);
  s.end();
  await s.done;
  return { sent: out.body.toString(), body, returned, usage: h.director.responses[0]!.info.usage };
}

describe('streamed usage', () => {
  test('a stream without include_usage is forwarded unchanged and reports no usage', async () => {
    const sse = 'data: {"id":"1","model":"m","choices":[{"delta":{"content":"x"},"finish_reason":"length"}]}\n\ndata: [DONE]\n\n';
    const r = await streamThrough({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] }, sse);
    // the body upstream is the client's, byte for byte: no stream_options added
    expect(r.sent).toBe(r.body);
    expect(r.returned).toEqual([responseBodyChunk(sse, true)]);
    expect(r.usage).toBeUndefined();
  });

  test('a stream with include_usage passes the usage chunk through and reports its cached tokens', async () => {
    const usage = 'data: {"id":"1","model":"m","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":32}}}\n\ndata: [DONE]\n\n';
    const r = await streamThrough({ model: 'm', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] }, usage);
    expect(r.sent).toBe(r.body);
    expect(r.returned).toEqual([responseBodyChunk(usage, true)]);
    expect(r.usage).toEqual({ promptTokens: 40, completionTokens: 1, cachedTokens: 32 });
  });
});
