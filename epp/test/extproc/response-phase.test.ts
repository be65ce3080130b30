/**
 * ext_proc response phase: headers, SSE bodies passed chunk by chunk, buffered JSON bodies, model
 * name rewritten back, usage reported to the director, trailers, served endpoint.
 */
import { frames, protocolConfig, routeRequest, servedEndpointMetadata, subsetHintMetadata } from '../../testkit/extproc-client.js';
import { BODY_CHUNK_BYTES } from '../../src/extproc/stream.js';
import { PATH_CHAT, PATH_COMPLETIONS, plain, postHeaders, responseBodyChunk, startHarness, type Harness } from './fixtures.js';

let h: Harness;
afterEach(async () => {
  await h.close();
});

const SSE_HEADERS = { ':status': '200', 'content-type': 'text/event-stream; charset=utf-8' };
const JSON_HEADERS = { ':status': '200', 'content-type': 'application/json', 'content-length': '123' };

async function routed(body: string, path = PATH_CHAT, mode = 4): Promise<ReturnType<Harness['client']['open']>> {
  const s = h.client.open();
  if (mode === 4) {
    const out = await routeRequest(s, { headers: postHeaders(path), body });
    if (out.kind !== 'routed') throw new Error('not routed');
  } else {
    s.send(frames.requestHeaders(postHeaders(path), { protocolConfig: protocolConfig(mode) }));
    s.send(frames.requestBody(body, true));
    await s.take(2);
  }
  return s;
}

const chatBody = (model: string, stream: boolean): string => JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'hi' }] });

describe('SSE (streaming) responses', () => {
  test('without a model rewrite every chunk is passed on at once, byte for byte (even partial lines)', async () => {
    h = await startHarness();
    const s = await routed(chatBody('m', true));
    s.send(frames.responseHeaders(SSE_HEADERS, { metadata: servedEndpointMetadata('10.0.0.1:8000') }));
    expect(await s.take(1)).toEqual([{ response_headers: { response: {} } }]);
    const c1 = 'data: {"id":"1","model":"m","choices":[{"delta":{"content":"Hel"}}]}\n\n';
    const c2 = 'data: {"id":"1","model":"m","choi';
    const c3 = 'ces":[{"delta":{"content":"lo"}}]}\n\ndata: {"id":"1","model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}\n\ndata: [DONE]\n\n';
    s.send(frames.responseBody(c1, false));
    expect(await s.take(1)).toEqual([responseBodyChunk(c1, false)]);
    s.send(frames.responseBody(c2, false));
    expect(await s.take(1)).toEqual([responseBodyChunk(c2, false)]);
    s.send(frames.responseBody(c3, true));
    expect(await s.take(1)).toEqual([responseBodyChunk(c3, true)]);
    s.end();
    expect((await s.done).code).toBe(0);
    expect(h.director.responses).toHaveLength(1);
    expect(h.director.responses[0]!.info).toEqual({
      status: 200,
      usage: { promptTokens: 9, completionTokens: 2, cachedTokens: 4 },
      servedEndpoint: '10.0.0.1:8000',
      pickedEndpoints: ['10.0.0.1:8000'],
      streaming: true,
      responseBytes: c1.length + c2.length + c3.length,
    });
    expect(await h.metric('inference_objective_request_total', { model_name: 'm', target_model_name: 'm' })).toBe(1);
  });

  test('with a model rewrite, complete lines go out at once with the client model name; a split line waits for its end', async () => {
    h = await startHarness();
    h.director.then({ result: { endpoints: ['10.0.0.2:8000'], targetModel: 'base-7b' } });
    const s = h.client.open();
    const out = await routeRequest(s, { headers: postHeaders(PATH_CHAT), body: chatBody('alias', true) });
    expect(out.kind === 'routed' && JSON.parse(out.body.toString()).model).toBe('base-7b');
    s.send(frames.responseHeaders(SSE_HEADERS));
    expect(await s.take(1)).toEqual([{ response_headers: { response: {} } }]);
    s.send(frames.responseBody('data: {"model":"base-7b","x":1}\n\n', false));
    expect(await s.take(1)).toEqual([responseBodyChunk('data: {"model":"alias","x":1}\n\n', false)]);
    s.send(frames.responseBody('data: {"model":"bas', false));
    await expect(s.next(100)).rejects.toThrow(/no ext_proc response/);
    s.send(frames.responseBody('e-7b", "y":2}\n\ndata: {"model": "base-7b"}\n\ndata: [DONE]', true));
    expect(await s.take(1)).toEqual([responseBodyChunk('data: {"model":"alias", "y":2}\n\ndata: {"model": "alias"}\n\ndata: [DONE]', true)]);
    s.end();
    await s.done;
    expect(h.director.responses[0]!.req.targetModel).toBe('base-7b');
    expect(await h.metric('inference_objective_request_total', { model_name: 'alias', target_model_name: 'base-7b' })).toBe(1);
  });
});

test('filter metadata accumulates: the request-time subset hint and the response-time served endpoint both count', async () => {
  h = await startHarness();
  const s = h.client.open();
  await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"m","prompt":"p"}', metadata: subsetHintMetadata(['10.0.0.2:8000']) });
  s.send(frames.responseHeaders(JSON_HEADERS, { metadata: servedEndpointMetadata('10.0.0.2:8000') }));
  s.send(frames.responseBody('{"model":"m"}', true));
  expect(await s.take(2)).toEqual([{ response_headers: { response: {} } }, responseBodyChunk('{"model":"m"}', true)]);
  s.end();
  await s.done;
  expect(h.director.picks[0]!.subsetCandidates).toEqual(['10.0.0.2:8000']);
  expect(h.director.responses[0]!.info).toMatchObject({ servedEndpoint: '10.0.0.2:8000', pickedEndpoints: ['10.0.0.2:8000'] });
});

test('SSE with a rewrite: response trailers flush a held partial line (no end_of_stream), then TrailersResponse', async () => {
  h = await startHarness();
  h.director.then({ result: { endpoints: ['10.0.0.1:8000'], targetModel: 't' } });
  const s = h.client.open();
  await routeRequest(s, { headers: postHeaders(PATH_CHAT), body: chatBody('a', true) });
  s.send(frames.responseHeaders(SSE_HEADERS));
  await s.take(1);
  s.send(frames.responseBody('data: {"model":"t"}\n\ndata: {"model":"t"', false));
  expect(await s.take(1)).toEqual([responseBodyChunk('data: {"model":"a"}\n\n', false)]);
  s.send(frames.responseTrailers());
  expect(await s.take(2)).toEqual([responseBodyChunk('data: {"model":"a"', false), { response_trailers: {} }]);
  // Nothing may follow the response trailers.
  s.send(frames.responseBody('', true));
  const st = await s.done;
  expect([st.code, st.details]).toEqual([3, 'response_body received after the response completed']);
});

test('response_headers twice is a protocol error', async () => {
  h = await startHarness();
  const s = await routed('{"model":"m","prompt":"p"}', PATH_COMPLETIONS);
  s.send(frames.responseHeaders(JSON_HEADERS));
  s.send(frames.responseHeaders(JSON_HEADERS));
  const st = await s.done;
  expect([st.code, st.details]).toEqual([3, 'response_headers received twice']);
  // The routed request is still released exactly once.
  await h.director.waitDone(1);
  expect(h.director.done).toHaveLength(1);
});

describe('buffered (JSON) responses', () => {
  test('buffered to end of stream, model rewritten back, content-length removed, usage read', async () => {
    h = await startHarness();
    h.director.then({ result: { endpoints: ['10.0.0.2:8000'], targetModel: 'base-7b' } });
    const s = h.client.open();
    await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"alias","prompt":"p"}' });
    s.send(frames.responseHeaders(JSON_HEADERS));
    expect(await s.take(1)).toEqual([{ response_headers: { response: { header_mutation: { remove_headers: ['content-length'] } } } }]);
    const json = '{"id":"c1","object":"text_completion","model":"base-7b","choices":[{"text":"ok"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}';
    s.send(frames.responseBody(json.slice(0, 30), false));
    s.send(frames.responseBody(json.slice(30), false));
    await expect(s.next(100)).rejects.toThrow(/no ext_proc response/);
    s.send(frames.responseBody('', true));
    expect(await s.take(1)).toEqual([responseBodyChunk(json.replace('"model":"base-7b"', '"model":"alias"'), true)]);
    s.end();
    await s.done;
    expect(h.director.responses[0]!.info).toMatchObject({ status: 200, usage: { promptTokens: 5, completionTokens: 1 }, streaming: false });
    expect(await h.metric('inference_objective_running_requests', { model_name: 'alias' })).toBe(0);
  });

  test('without a rewrite headers are untouched; a large body is re-chunked at 62,000 bytes', async () => {
    h = await startHarness();
    const s = await routed('{"model":"m","prompt":"p"}', PATH_COMPLETIONS);
    s.send(frames.responseHeaders(JSON_HEADERS));
    expect(await s.take(1)).toEqual([{ response_headers: { response: {} } }]);
    const big = Buffer.from(JSON.stringify({ model: 'm', choices: [{ text: 'z'.repeat(130_000) }] }));
    s.send(frames.responseBody(big.subarray(0, 70_000), false));
    s.send(frames.responseBody(big.subarray(70_000), true));
    expect(plain(await s.take(3))).toEqual(
      plain([
        responseBodyChunk(big.subarray(0, BODY_CHUNK_BYTES), false),
        responseBodyChunk(big.subarray(BODY_CHUNK_BYTES, 2 * BODY_CHUNK_BYTES), false),
        responseBodyChunk(big.subarray(2 * BODY_CHUNK_BYTES), true),
      ]),
    );
    s.end();
  });

  test('response trailers flush the buffered body without end_of_stream, then TrailersResponse', async () => {
    h = await startHarness();
    const s = await routed('{"model":"m","prompt":"p"}', PATH_COMPLETIONS);
    s.send(frames.responseHeaders(JSON_HEADERS));
    await s.take(1);
    s.send(frames.responseBody('{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":4}}', false));
    s.send(frames.responseTrailers({ 'grpc-status': '0' }));
    expect(await s.take(2)).toEqual([responseBodyChunk('{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":4}}', false), { response_trailers: {} }]);
    s.end();
    await s.done;
    expect(h.director.responses[0]!.info.usage).toEqual({ promptTokens: 3, completionTokens: 4, cachedTokens: undefined });
  });

  test('a body-less response (headers end_of_stream) completes the exchange', async () => {
    h = await startHarness();
    const s = await routed('{"model":"m","prompt":"p"}', PATH_COMPLETIONS);
    s.send(frames.responseHeaders({ ':status': '204' }, { endOfStream: true }));
    expect(await s.take(1)).toEqual([{ response_headers: { response: {} } }]);
    s.end();
    await s.done;
    expect(h.director.responses[0]!.info).toMatchObject({ status: 204, usage: undefined, responseBytes: 0 });
    const hist = await h.registry.getSingleMetric('inference_objective_request_duration_seconds')!.get();
    expect(hist.values.find((v) => (v as { metricName?: string }).metricName === 'inference_objective_request_duration_seconds_count')?.value).toBe(1);
  });
});

describe('BUFFERED response mode', () => {
  test('one BodyResponse per body message; body_mutation.body only when the model was rewritten', async () => {
    h = await startHarness();
    h.director.then({ result: { endpoints: ['10.0.0.1:8000'], targetModel: 't' } });
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(2) }));
    s.send(frames.requestBody('{"model":"a","prompt":"p"}', true));
    await s.take(2);
    s.send(frames.responseHeaders(JSON_HEADERS));
    expect(await s.take(1)).toEqual([{ response_headers: { response: { header_mutation: { remove_headers: ['content-length'] } } } }]);
    s.send(frames.responseBody('{"model":"t","usage":{"prompt_tokens":1,"completion_tokens":2}}', true));
    expect(await s.take(1)).toEqual([{ response_body: { response: { body_mutation: { body: Buffer.from('{"model":"a","usage":{"prompt_tokens":1,"completion_tokens":2}}') } } } }]);
    s.end();
    await s.done;
    expect(h.director.responses[0]!.info.usage).toEqual({ promptTokens: 1, completionTokens: 2, cachedTokens: undefined });
    const out = await h.registry.getSingleMetric('inference_objective_output_tokens')!.get();
    expect(out.values.find((v) => (v as { metricName?: string }).metricName === 'inference_objective_output_tokens_sum')?.value).toBe(2);
  });

  test('without a rewrite the body response is a plain CONTINUE', async () => {
    h = await startHarness();
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(2) }));
    s.send(frames.requestBody('{"model":"a","prompt":"p"}', true));
    await s.take(2);
    s.send(frames.responseHeaders(JSON_HEADERS));
    s.send(frames.responseBody('{"model":"a"}', false));
    s.send(frames.responseTrailers());
    expect(await s.take(3)).toEqual([{ response_headers: { response: {} } }, { response_body: { response: {} } }, { response_trailers: {} }]);
    s.end();
  });
});

describe('maxResponseBufferBytes', () => {
  test('a non-SSE body over the limit is streamed on with bounded memory, rewritten correctly', async () => {
    h = await startHarness({ maxResponseBufferBytes: 100 });
    h.director.then({ result: { endpoints: ['10.0.0.1:8000'], targetModel: 'target-model' } });
    const s = h.client.open();
    await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"m","prompt":"p"}' });
    s.send(frames.responseHeaders({ ':status': '200', 'content-type': 'application/json' }));
    await s.take(1);
    const whole = '{"model":"target-model","choices":[' + '{"text":"abc","model":"target-model"},'.repeat(10) + '{}]}';
    const pieces = [whole.slice(0, 60), whole.slice(60, 130), whole.slice(130, 300), whole.slice(300)];
    s.send(frames.responseBody(pieces[0]!, false));
    await expect(s.next(100)).rejects.toThrow(/no ext_proc response/);
    s.send(frames.responseBody(pieces[1]!, false));
    const first = await s.next();
    expect(first.response_body?.response?.body_mutation?.streamed_response?.end_of_stream).toBeUndefined();
    s.send(frames.responseBody(pieces[2]!, false));
    s.send(frames.responseBody(pieces[3]!, true));
    const out: Buffer[] = [Buffer.from(first.response_body!.response!.body_mutation!.streamed_response!.body!)];
    for (;;) {
      const r = await s.next();
      const sr = r.response_body!.response!.body_mutation!.streamed_response!;
      out.push(Buffer.from(sr.body ?? []));
      if (sr.end_of_stream) break;
    }
    expect(Buffer.concat(out).toString()).toBe(whole.replaceAll('"model":"target-model"', '"model":"m"'));
    s.end();
    await s.done;
    expect(h.director.responses[0]!.info).toMatchObject({ usage: undefined, responseBytes: whole.length });
  });

  test('@default 16 MiB: a 16 MiB body is still buffered whole', async () => {
    h = await startHarness();
    const s = await routed('{"model":"m","prompt":"p"}', PATH_COMPLETIONS);
    s.send(frames.responseHeaders({ ':status': '200', 'content-type': 'application/json' }));
    await s.take(1);
    const mib = Buffer.alloc(1 << 20, 0x61);
    for (let i = 0; i < 16; i++) s.send(frames.responseBody(mib, false));
    await expect(s.next(300)).rejects.toThrow(/no ext_proc response/);
    s.send(frames.responseBody('b', false));
    const r = await s.next();
    expect(r.response_body?.response?.body_mutation?.streamed_response?.body?.length).toBe(BODY_CHUNK_BYTES);
    s.cancel();
  });
});
