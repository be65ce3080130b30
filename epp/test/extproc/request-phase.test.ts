/**
 * ext_proc request phase against a real gRPC server on 127.0.0.1:0: FULL_DUPLEX_STREAMED and
 * BUFFERED bodies, awkward chunk boundaries, trailers, body-less requests, subset hints and
 * director headers. Every response is compared whole.
 */
import { ApiError } from '../../src/contract/errors.js';
import { Headers } from '../../src/contract/names.js';
import { BODY_CHUNK_BYTES } from '../../src/extproc/stream.js';
import { frames, protocolConfig, routeRequest, splitBytes, subsetHintMetadata } from '../../testkit/extproc-client.js';
import {
  headersDecision,
  lbMetadata,
  PATH_CHAT,
  PATH_COMPLETIONS,
  postHeaders,
  requestBodyChunk,
  setHeader,
  startHarness,
  type Harness,
  immediate,
  errorOf,
  plain,
} from './fixtures.js';

let h: Harness;
afterEach(async () => {
  await h.close();
});

const FULL_DUPLEX = 4;
const BUFFERED = 2;
const NONE = 0;

describe('FULL_DUPLEX_STREAMED', () => {
  test('completions: holds the headers response until end of stream, then headers → body', async () => {
    h = await startHarness();
    const body = '{"model":"llama","prompt":"Hello there","max_tokens":8}';
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS, { [Headers.sessionId]: 'sess-9' }), { protocolConfig: protocolConfig(FULL_DUPLEX) }));
    s.send(frames.requestBody(body.slice(0, 20), false));
    // Nothing may come back before the body is complete.
    await expect(s.next(150)).rejects.toThrow(/no ext_proc response/);
    s.send(frames.requestBody(body.slice(20), true));
    expect(await s.take(2)).toEqual([headersDecision('10.0.0.1:8000'), requestBodyChunk(body, true)]);
    s.end();
    expect((await s.done).code).toBe(0);
    expect(s.pending()).toEqual([]);
    const req = h.director.picks[0]!;
    expect(req).toEqual({
      requestId: 'req-1',
      path: PATH_COMPLETIONS,
      method: 'POST',
      apiKind: 'completions',
      model: 'llama',
      targetModel: 'llama',
      headers: postHeaders(PATH_COMPLETIONS, { [Headers.sessionId]: 'sess-9' }),
      body: { model: 'llama', prompt: 'Hello there', max_tokens: 8 },
      prompt: 'Hello there',
      sessionId: 'sess-9',
      stream: false,
      subsetCandidates: undefined,
      bodyBytes: Buffer.byteLength(body),
      receivedAt: expect.any(Number),
    });
    await h.director.waitDone(1);
    // onDone gets the same request object, its payload released
    expect(h.director.done).toHaveLength(1);
    expect(h.director.done[0]).toBe(h.director.live[0]);
    expect(h.director.done[0]).toEqual({ ...req, body: undefined, prompt: undefined });
  });

  test('without protocol_config the default body mode is FULL_DUPLEX (defaultBodyMode @default duplex)', async () => {
    h = await startHarness();
    const body = '{"model":"m","prompt":"x"}';
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS)));
    await expect(s.next(150)).rejects.toThrow(/no ext_proc response/);
    s.send(frames.requestBody(body, true));
    expect(await s.take(2)).toEqual([headersDecision('10.0.0.1:8000'), requestBodyChunk(body, true)]);
    s.end();
  });

  test('chat: messages split in 1-byte chunks and mid-UTF-8 boundaries arrive intact', async () => {
    h = await startHarness();
    const messages = [
      { role: 'system', content: 'Réponds en français 🇫🇷' },
      { role: 'user', content: '日本語のテキスト 😀 and ASCII' },
    ];
    const body = Buffer.from(JSON.stringify({ model: 'chat-m', messages, stream: true }));
    // 1-byte chunks.
    const s1 = h.client.open();
    const out1 = await routeRequest(s1, { headers: postHeaders(PATH_CHAT), body, chunkBytes: 1 });
    expect(out1.kind).toBe('routed');
    expect(out1.body.equals(body)).toBe(true);
    s1.end();
    // Boundaries inside the 4-byte emoji and the 3-byte CJK characters.
    const emoji = body.indexOf(Buffer.from('😀'));
    const cjk = body.indexOf(Buffer.from('日'));
    const s2 = h.client.open();
    s2.send(frames.requestHeaders(postHeaders(PATH_CHAT), { protocolConfig: protocolConfig(FULL_DUPLEX) }));
    const cuts = [cjk + 1, cjk + 2, emoji + 1, emoji + 3, body.length];
    let prev = 0;
    cuts.forEach((c, i) => {
      s2.send(frames.requestBody(body.subarray(prev, c), i === cuts.length - 1));
      prev = c;
    });
    expect(await s2.take(2)).toEqual([headersDecision('10.0.0.2:8000'), requestBodyChunk(body, true)]);
    s2.end();
    for (const req of h.director.picks) {
      expect(req.apiKind).toBe('chat');
      expect(req.messages).toEqual(messages);
      expect(req.stream).toBe(true);
      expect(req.model).toBe('chat-m');
    }
    expect(h.director.picks).toHaveLength(2);
  });

  test('token-id and string-array prompts', async () => {
    h = await startHarness();
    const s1 = h.client.open();
    await routeRequest(s1, { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"m","prompt":[1,2,3,50000]}', chunkBytes: 5 });
    const s2 = h.client.open();
    await routeRequest(s2, { headers: postHeaders('/v1/completions?x=1'), body: '{"model":"m","prompt":["a","b"]}' });
    expect(h.director.picks[0]!.tokenIds).toEqual([1, 2, 3, 50000]);
    expect(h.director.picks[0]!.prompt).toBeUndefined();
    expect(h.director.picks[1]!.prompt).toEqual(['a', 'b']);
    expect(h.director.picks[1]!.apiKind).toBe('completions');
    s1.end();
    s2.end();
  });

  test("the request's payload is released once the decision is sent; pick() saw it, onDone does not pin it", async () => {
    h = await startHarness();
    const s = h.client.open();
    const body = '{"model":"m","prompt":"a long prompt","max_tokens":4}';
    await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body });
    s.end();
    await h.director.waitDone(1);
    expect(h.director.picks[0]).toMatchObject({ prompt: 'a long prompt', body: { model: 'm', prompt: 'a long prompt', max_tokens: 4 } });
    const live = h.director.done[0]!;
    expect(live.body).toBeUndefined();
    expect([live.prompt, live.tokenIds, live.messages]).toEqual([undefined, undefined, undefined]);
    // what the response phase and the metrics need stays
    expect(live).toMatchObject({ requestId: h.director.picks[0]!.requestId, model: 'm', targetModel: 'm', bodyBytes: Buffer.byteLength(body) });
  });

  test('a body over 62,000 bytes goes back in ≤ 62,000-byte streamed chunks, end_of_stream on the last', async () => {
    h = await startHarness();
    const body = Buffer.from(JSON.stringify({ model: 'm', prompt: 'p'.repeat(150_000) }));
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(FULL_DUPLEX) }));
    const parts = splitBytes(body, 16_384);
    parts.forEach((p, i) => s.send(frames.requestBody(p, i === parts.length - 1)));
    const expected = [
      headersDecision('10.0.0.1:8000'),
      requestBodyChunk(body.subarray(0, BODY_CHUNK_BYTES), false),
      requestBodyChunk(body.subarray(BODY_CHUNK_BYTES, 2 * BODY_CHUNK_BYTES), false),
      requestBodyChunk(body.subarray(2 * BODY_CHUNK_BYTES), true),
    ];
    expect(plain(await s.take(4))).toEqual(plain(expected));
    expect(BODY_CHUNK_BYTES).toBe(62_000);
    s.end();
  });

  test('request trailers end the body: headers → body (no end_of_stream) → TrailersResponse', async () => {
    h = await startHarness();
    const body = '{"model":"m","prompt":"with trailers"}';
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(FULL_DUPLEX) }));
    s.send(frames.requestBody(body, false));
    s.send(frames.requestTrailers({ 'x-checksum': 'abc' }));
    expect(await s.take(3)).toEqual([headersDecision('10.0.0.1:8000'), requestBodyChunk(body, false), { request_trailers: {} }]);
    s.end();
    expect((await s.done).code).toBe(0);
  });

  test('an empty body with end_of_stream gets a 400 (no prompt), not a hang', async () => {
    h = await startHarness();
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(FULL_DUPLEX) }));
    s.send(frames.requestBody('', true));
    const [r] = await s.take(1);
    expect(r).toEqual(immediate(400, 'bad_json'));
  });
});

describe('body-less requests', () => {
  test('GET with end_of_stream on the headers is picked at once, with a generated x-request-id', async () => {
    h = await startHarness();
    const s = h.client.open();
    s.send(frames.requestHeaders({ ':method': 'GET', ':path': '/v1/models' }, { endOfStream: true, protocolConfig: protocolConfig(FULL_DUPLEX) }));
    const [r] = await s.take(1);
    const id = h.director.picks[0]!.requestId;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r).toEqual(headersDecision('10.0.0.1:8000', [setHeader('x-request-id', id)]));
    expect(h.director.picks[0]).toMatchObject({ apiKind: 'none', method: 'GET', model: undefined, body: undefined, bodyBytes: 0, stream: false });
    s.end();
    expect((await s.done).code).toBe(0);
  });

  test('body mode NONE: picked at the headers, body chunks answered with CONTINUE', async () => {
    h = await startHarness();
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(NONE) }));
    expect(await s.take(1)).toEqual([headersDecision('10.0.0.1:8000')]);
    s.send(frames.requestBody('{"model":"m"}', true));
    expect(await s.take(1)).toEqual([{ request_body: { response: {} } }]);
    s.end();
  });
});

describe('BUFFERED', () => {
  test('headers answered at once with CONTINUE; the decision rides on the body response', async () => {
    h = await startHarness();
    const body = '{"model":"m","messages":[{"role":"user","content":"hi"}]}';
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_CHAT), { protocolConfig: protocolConfig(BUFFERED) }));
    expect(await s.take(1)).toEqual([{ request_headers: { response: {} } }]);
    s.send(frames.requestBody(body, true));
    expect(await s.take(1)).toEqual([
      {
        request_body: { response: { header_mutation: { set_headers: [setHeader(Headers.destinationEndpoint, '10.0.0.1:8000')] }, clear_route_cache: true } },
        dynamic_metadata: lbMetadata('10.0.0.1:8000'),
      },
    ]);
    s.end();
    expect((await s.done).code).toBe(0);
  });

  test('model rewrite replaces the body (body_mutation.body) and sets content-length', async () => {
    h = await startHarness();
    h.director.then({ result: { endpoints: ['10.0.0.7:8000'], targetModel: 'llama-lora-v2' } });
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(BUFFERED) }));
    s.send(frames.requestBody('{"model":"llama","prompt":"p"}', false));
    s.send(frames.requestTrailers());
    const newBody = '{"model":"llama-lora-v2","prompt":"p"}';
    expect(await s.take(3)).toEqual([
      { request_headers: { response: {} } },
      {
        request_body: {
          response: {
            header_mutation: {
              set_headers: [setHeader(Headers.destinationEndpoint, '10.0.0.7:8000'), setHeader('content-length', String(newBody.length))],
            },
            clear_route_cache: true,
            body_mutation: { body: Buffer.from(newBody) },
          },
        },
        dynamic_metadata: lbMetadata('10.0.0.7:8000'),
      },
      { request_trailers: {} },
    ]);
    expect(h.director.live[0]!.targetModel).toBe('llama-lora-v2');
    s.end();
  });

  test('defaultBodyMode "buffered" applies when the gateway sends no protocol_config', async () => {
    h = await startHarness({ defaultBodyMode: 'buffered' });
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS)));
    expect(await s.take(1)).toEqual([{ request_headers: { response: {} } }]);
    s.send(frames.requestBody('{"model":"m","prompt":"p"}', true));
    const [r] = await s.take(1);
    expect(r!.request_body?.response?.clear_route_cache).toBe(true);
    s.end();
  });
});

describe('subset hints and destinations', () => {
  const body = '{"model":"m","prompt":"p"}';

  test('a hint restricts the candidates; matching is by IP, the port may differ', async () => {
    h = await startHarness();
    const s = h.client.open();
    const out = await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body, metadata: subsetHintMetadata(['10.0.0.2:9999']) });
    expect(out.responses[0]).toEqual(headersDecision('10.0.0.2:8000'));
    expect(h.director.picks[0]!.subsetCandidates).toEqual(['10.0.0.2:9999']);
    s.end();
  });

  test('an empty hint is a 503 without asking the director', async () => {
    h = await startHarness();
    const s = h.client.open();
    const out = await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body, metadata: subsetHintMetadata([]) });
    expect(out.responses).toEqual([immediate(503, 'no_endpoint')]);
    expect(errorOf(out.responses[0]!).message).toMatch(/subset hint .* is empty/);
    expect(h.director.picks).toHaveLength(0);
    expect((await s.done).code).toBe(0);
  });

  test('an unmatched hint is a 503 (director finds nothing) and so is a director pick outside the hint', async () => {
    h = await startHarness();
    const s1 = h.client.open();
    const out1 = await routeRequest(s1, { headers: postHeaders(PATH_COMPLETIONS), body, metadata: subsetHintMetadata(['10.9.9.9:8000']) });
    expect(out1.responses).toEqual([immediate(503, 'no_endpoint')]);
    h.director.then({ result: { endpoints: ['10.0.0.1:8000'] } });
    const s2 = h.client.open();
    const out2 = await routeRequest(s2, { headers: postHeaders(PATH_COMPLETIONS), body, metadata: subsetHintMetadata(['10.9.9.9:8000']) });
    expect(out2.responses).toEqual([immediate(503, 'no_endpoint')]);
    expect(errorOf(out2.responses[0]!).message).toContain('none of the picked endpoints ["10.0.0.1:8000"]');
    // The pick resolved, so the director gets its onDone even though nothing was routed.
    await h.director.waitDone(1);
    expect(await h.metric('inference_objective_request_error_total', { model_name: 'm', target_model_name: 'm', error_code: 'no_endpoint' })).toBe(2);
  });

  test('IPv6 endpoints are bracketed and matched after normalisation', async () => {
    h = await startHarness({ endpoints: ['fd00::1:8000', '10.0.0.1:8000'] });
    const s = h.client.open();
    const out = await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body, metadata: subsetHintMetadata(['[fd00:0:0::1]:8000']) });
    expect(out.responses[0]).toEqual(headersDecision('[fd00::1]:8000'));
    s.end();
  });

  test('several endpoints → comma list in header and metadata; director headers in the same mutation; reserved ones dropped', async () => {
    h = await startHarness();
    h.director.then({
      result: {
        endpoints: ['10.0.0.1:8000', '[fd00::2]:8000', 'fd00::3:8001'],
        headers: { [Headers.prefillerHostPort]: '10.0.1.5:8000', ':authority': 'evil', [Headers.destinationEndpoint]: '1.2.3.4:1' },
      },
    });
    const s = h.client.open();
    const out = await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body });
    const dest = '10.0.0.1:8000,[fd00::2]:8000,[fd00::3]:8001';
    expect(out.responses[0]).toEqual(headersDecision(dest, [setHeader(Headers.prefillerHostPort, '10.0.1.5:8000')]));
    expect(out.kind === 'routed' && out.metadataDestination).toBe(dest);
    s.end();
  });

  test('a director error in the hint path keeps the server usable (next stream routes)', async () => {
    h = await startHarness();
    h.director.then({ error: new ApiError('no_endpoint', 'pool empty') });
    const s1 = h.client.open();
    const out1 = await routeRequest(s1, { headers: postHeaders(PATH_COMPLETIONS), body });
    expect(out1.kind).toBe('immediate');
    const s2 = h.client.open();
    const out2 = await routeRequest(s2, { headers: postHeaders(PATH_COMPLETIONS), body });
    expect(out2.kind).toBe('routed');
    s2.end();
  });
});

describe('header and rewrite details', () => {
  test('headers sent as `value` (older Envoys) are read like raw_value; repeated names are joined', async () => {
    h = await startHarness();
    const s = h.client.open();
    s.send({
      request_headers: {
        headers: {
          headers: [
            { key: ':path', value: PATH_CHAT },
            { key: ':method', value: 'post' },
            { key: 'X-Session-ID', value: 'abc' },
            { key: 'x-tag', value: 'a' },
            { key: 'x-tag', raw_value: Buffer.from('b') },
          ],
        },
      },
      protocol_config: protocolConfig(FULL_DUPLEX),
    });
    s.send(frames.requestBody('{"model":"m","messages":[{"role":"user","content":"x"}]}', true));
    await s.take(2);
    expect(h.director.picks[0]).toMatchObject({ apiKind: 'chat', method: 'POST', sessionId: 'abc', headers: { ':path': PATH_CHAT, [Headers.sessionId]: 'abc', 'x-tag': 'a,b' } });
    s.end();
  });

  test('a targetModel equal to the model leaves the body untouched (no content-length)', async () => {
    h = await startHarness();
    h.director.then({ result: { endpoints: ['10.0.0.1:8000'], targetModel: 'm' } });
    const body = '{"model":"m",  "prompt":"keep my spacing"}';
    const s = h.client.open();
    const out = await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body });
    expect(out.responses).toEqual([headersDecision('10.0.0.1:8000'), requestBodyChunk(body, true)]);
    s.end();
  });

  test('an empty x-request-id is replaced by a generated one', async () => {
    h = await startHarness();
    const s = h.client.open();
    s.send(frames.requestHeaders({ ':method': 'GET', ':path': '/health', 'x-request-id': '' }, { endOfStream: true }));
    const [r] = await s.take(1);
    const id = h.director.picks[0]!.requestId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r).toEqual(headersDecision('10.0.0.1:8000', [setHeader('x-request-id', id)]));
    s.end();
  });

  test('request_headers twice is a protocol error', async () => {
    h = await startHarness();
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS)));
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS)));
    const st = await s.done;
    expect([st.code, st.details]).toEqual([3, 'request_headers received twice (state body)']);
  });
});
