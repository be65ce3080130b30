/**
 * Every error path of the ext_proc layer ends in one ImmediateResponse with the right status and a
 * JSON body naming what was wrong; broken streams (cancel, undecodable frames, protocol misuse)
 * are counted and never take the server down.
 */
import { ApiError } from '../../src/contract/errors.js';
import { frames, protocolConfig, routeRequest } from '../../testkit/extproc-client.js';
import { errorOf, headersDecision, immediate, PATH_CHAT, PATH_COMPLETIONS, postHeaders, startHarness, type Harness } from './fixtures.js';

let h: Harness;
afterEach(async () => {
  await h.close();
});

async function reject(body: string | Buffer, path = PATH_COMPLETIONS): Promise<{ status: number; code: string; message: string; details: string | undefined }> {
  const s = h.client.open();
  const out = await routeRequest(s, { headers: postHeaders(path), body, chunkBytes: 7 });
  if (out.kind !== 'immediate') throw new Error(`expected an immediate response for ${String(body)}`);
  expect(out.responses).toHaveLength(1);
  const err = errorOf(out.responses[0]!);
  expect(out.responses[0]).toEqual(immediate(out.status, err.code));
  // The EPP closes the stream cleanly after an ImmediateResponse.
  expect((await s.done).code).toBe(0);
  return { status: out.status, ...err, details: out.immediate.details };
}

describe('400 / 404 / 413 from the body', () => {
  beforeEach(async () => {
    h = await startHarness();
  });

  test.each([
    ['bad JSON', '{"model":"m",', 'bad_json', /not valid JSON .*got "\{\\"model\\":\\"m\\","/],
    ['JSON that is not an object', '[1,2]', 'bad_json', /must be a JSON object; got \[1,2\]/],
    ['missing model', '{"prompt":"x"}', 'missing_model', /model not found in request body; add "model"/],
    ['model not a string', '{"model":42,"prompt":"x"}', 'missing_model', /"model" must be a non-empty string .*got 42/],
    ['empty model', '{"model":"","prompt":"x"}', 'missing_model', /got ""/],
    ['missing prompt', '{"model":"m"}', 'missing_prompt', /no "prompt"/],
    ['prompt of wrong type', '{"model":"m","prompt":{"a":1}}', 'missing_prompt', /"prompt" must be .*got \{"a":1\}/],
    ['prompt mixing text and ids', '{"model":"m","prompt":["a",1]}', 'missing_prompt', /got \["a",1\]/],
    ['negative token id', '{"model":"m","prompt":[1,-2]}', 'missing_prompt', /non-negative integer token ids/],
    ['empty prompt array', '{"model":"m","prompt":[]}', 'missing_prompt', /got \[\]/],
  ])('completions: %s → 400', async (_name, body, code, message) => {
    const r = await reject(body);
    expect(r).toEqual({ status: 400, code, message: expect.stringMatching(message), details: `kvroute_${code}` });
  });

  test.each([
    ['missing messages', '{"model":"m"}', /no "messages"/],
    ['empty messages', '{"model":"m","messages":[]}', /non-empty array .*got \[\]/],
    ['message without role', '{"model":"m","messages":[{"content":"x"}]}', /"messages\[0\]" must be an object with a string "role"/],
    ['messages not an array', '{"model":"m","messages":"hi"}', /got "hi"/],
  ])('chat: %s → 400', async (_name, body, message) => {
    const r = await reject(body, PATH_CHAT);
    expect(r).toEqual({ status: 400, code: 'missing_prompt', message: expect.stringMatching(message), details: 'kvroute_missing_prompt' });
  });

  test('invalid UTF-8 → 400 bad_json', async () => {
    const r = await reject(Buffer.concat([Buffer.from('{"model":"m","prompt":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]));
    expect(r).toMatchObject({ status: 400, code: 'bad_json', message: expect.stringContaining('UTF-8') });
  });

  test('errors are counted with their code', async () => {
    await reject('{"prompt":"x"}');
    await reject('{"model":"m"}');
    expect(await h.metric('inference_objective_request_error_total', { model_name: '', target_model_name: '', error_code: 'missing_model' })).toBe(1);
    expect(await h.metric('inference_objective_request_error_total', { model_name: '', target_model_name: '', error_code: 'missing_prompt' })).toBe(1);
    expect(await h.metric('kvroute_extproc_streams_total', { outcome: 'immediate_response' })).toBe(2);
    expect(h.director.picks).toHaveLength(0);
  });
});

test('413 as soon as the buffered body passes maxBodyBytes; later chunks are ignored', async () => {
  h = await startHarness({ maxBodyBytes: 1024 });
  const s = h.client.open();
  s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }));
  s.send(frames.requestBody('x'.repeat(600), false));
  s.send(frames.requestBody('x'.repeat(600), false));
  const [r] = await s.take(1);
  expect(r).toEqual(immediate(413, 'body_too_large'));
  expect(errorOf(r!).message).toBe('request body exceeds 1024 bytes (received 1200 so far); send a shorter prompt or raise server.maxBodyBytes');
  s.send(frames.requestBody('x'.repeat(600), true));
  expect((await s.done).code).toBe(0);
  expect(s.pending()).toEqual([]);
  expect(h.director.picks).toHaveLength(0);
});

test('maxBodyBytes @default is 8 MiB', async () => {
  h = await startHarness();
  const limit = 8 * 1024 * 1024;
  const prefix = '{"model":"m","prompt":"';
  const fits = Buffer.from(prefix + 'a'.repeat(limit - prefix.length - 2) + '"}');
  expect(fits.length).toBe(limit);
  const s1 = h.client.open();
  const ok = await routeRequest(s1, { headers: postHeaders(PATH_COMPLETIONS), body: fits, chunkBytes: 1 << 20 });
  expect(ok.kind).toBe('routed');
  s1.end();
  const s2 = h.client.open();
  const tooBig = await routeRequest(s2, { headers: postHeaders(PATH_COMPLETIONS), body: Buffer.concat([fits, Buffer.from(' ')]), chunkBytes: 1 << 20 });
  expect(tooBig.kind === 'immediate' && tooBig.status).toBe(413);
});

test('404 for a model that is not served when models are configured; served ones pass', async () => {
  h = await startHarness({ models: ['llama', 'qwen'] });
  const s1 = h.client.open();
  const out = await routeRequest(s1, { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"gpt-4","prompt":"x"}' });
  expect(out.responses).toEqual([immediate(404, 'unknown_model')]);
  expect(errorOf(out.responses[0]!).message).toBe('model "gpt-4" is not served by this pool; use one of ["llama","qwen"]');
  const s2 = h.client.open();
  expect((await routeRequest(s2, { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"qwen","prompt":"x"}' })).kind).toBe('routed');
  s2.end();
});

test('models @default [] accepts any model', async () => {
  h = await startHarness();
  const s = h.client.open();
  expect((await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"anything-at-all","prompt":"x"}' })).kind).toBe('routed');
  s.end();
});

describe('director outcomes', () => {
  beforeEach(async () => {
    h = await startHarness();
  });
  const body = '{"model":"m","prompt":"x"}';

  test.each([
    [new ApiError('no_endpoint', 'no ready pods in pool'), 503, 'no_endpoint'],
    [new ApiError('shed', 'system saturated, sheddable request dropped'), 429, 'shed'],
    [new ApiError('unknown_model', 'no such model'), 404, 'unknown_model'],
  ])('ApiError %s → %i', async (error, status, code) => {
    h.director.then({ error });
    const s = h.client.open();
    const out = await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body });
    expect(out.responses).toEqual([immediate(status, code)]);
    expect(errorOf(out.responses[0]!)).toEqual({ code, message: error.message });
    expect(await h.metric('inference_objective_request_error_total', { model_name: 'm', target_model_name: 'm', error_code: code })).toBe(1);
  });

  test('a non-ApiError from the director is a 500 "internal" (a bug), and the server carries on', async () => {
    h.director.then({ error: new TypeError('cannot read properties of undefined') });
    const s = h.client.open();
    const out = await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body });
    expect(out.responses).toEqual([immediate(500, 'internal')]);
    expect(errorOf(out.responses[0]!).message).toBe('cannot read properties of undefined');
    const s2 = h.client.open();
    expect((await routeRequest(s2, { headers: postHeaders(PATH_COMPLETIONS), body })).kind).toBe('routed');
    s2.end();
  });

  test('no endpoints → 503; a malformed endpoint → 500 naming it', async () => {
    h.director.then({ result: { endpoints: [] } }).then({ result: { endpoints: ['10.0.0.1'] } });
    const s1 = h.client.open();
    expect((await routeRequest(s1, { headers: postHeaders(PATH_COMPLETIONS), body })).responses).toEqual([immediate(503, 'no_endpoint')]);
    const s2 = h.client.open();
    const out = await routeRequest(s2, { headers: postHeaders(PATH_COMPLETIONS), body });
    expect(out.responses).toEqual([immediate(500, 'internal')]);
    expect(errorOf(out.responses[0]!).message).toContain('director returned endpoint "10.0.0.1", expected "ip:port"');
    await h.director.waitDone(2);
  });
});

describe('broken streams', () => {
  beforeEach(async () => {
    h = await startHarness();
  });
  const body = '{"model":"m","prompt":"x"}';

  test('a client that cancels mid-body: counted, no pick, next stream works', async () => {
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }));
    s.send(frames.requestBody('{"model":"m",', false));
    await new Promise((r) => setTimeout(r, 50));
    s.cancel();
    expect((await s.done).code).toBe(1); // CANCELLED
    await waitFor(async () => (await h.metric('kvroute_extproc_streams_total', { outcome: 'cancelled' })) === 1);
    expect(h.server.openStreams).toBe(0);
    expect(h.director.picks).toHaveLength(0);
    const s2 = h.client.open();
    expect((await routeRequest(s2, { headers: postHeaders(PATH_COMPLETIONS), body })).kind).toBe('routed');
    s2.end();
  });

  test('a cancel while the pick is pending releases the request once the pick resolves', async () => {
    h.director.then({ delayMs: 1000 });
    const s = h.client.open();
    s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }));
    s.send(frames.requestBody(body, true));
    await new Promise((r) => setTimeout(r, 50));
    s.cancel();
    await h.director.waitDone(1);
    expect(h.director.done).toHaveLength(1);
    expect(h.director.inFlight).toBe(0);
    expect(s.responses).toEqual([]);
    expect(await h.metric('kvroute_extproc_streams_total', { outcome: 'cancelled' })).toBe(1);
    expect(await h.metric('inference_objective_running_requests', { model_name: 'm' })).toBe(0);
  });

  test('a cancel after routing releases the in-flight count', async () => {
    const s = h.client.open();
    await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body });
    expect(await h.metric('inference_objective_running_requests', { model_name: 'm' })).toBe(1);
    s.cancel();
    await h.director.waitDone(1);
    await waitFor(async () => (await h.metric('inference_objective_running_requests', { model_name: 'm' })) === 0);
    expect(await h.metric('inference_objective_request_total', { model_name: 'm', target_model_name: 'm' })).toBe(1);
  });

  test('undecodable frames end that stream with INVALID_ARGUMENT, are counted, and the server survives', async () => {
    const raw = h.client.openRaw();
    // Field 2 (request_headers) as a length-delimited field whose length runs past the end.
    raw.send(Buffer.from([0x12, 0x50, 0x01]));
    const status = await raw.done;
    expect(status.code).toBe(3);
    expect(status.details).toMatch(/undecodable ProcessingRequest frame/);
    expect(await h.metric('kvroute_extproc_streams_total', { outcome: 'error' })).toBe(1);
    const s = h.client.open();
    expect((await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body })).responses[0]).toEqual(headersDecision('10.0.0.1:8000'));
    s.end();
  });

  test('frames out of protocol order end the stream with INVALID_ARGUMENT (protocol_error)', async () => {
    const s = h.client.open();
    s.send(frames.requestBody(body, true));
    const st = await s.done;
    expect(st.code).toBe(3);
    expect(st.details).toBe('request_body received in state headers');
    const s2 = h.client.open();
    s2.send({});
    expect((await s2.done).details).toBe('ProcessingRequest carries no request/response phase');
    const s3 = h.client.open();
    s3.send(frames.responseHeaders({ ':status': '200' }));
    expect((await s3.done).details).toBe('response_headers received before the request was routed (state headers)');
    expect(await h.metric('kvroute_extproc_streams_total', { outcome: 'protocol_error' })).toBe(3);
  });

  test('streams ended by the gateway after routing count as completed', async () => {
    const s = h.client.open();
    await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body });
    s.end();
    expect((await s.done).code).toBe(0);
    expect(await h.metric('kvroute_extproc_streams_total', { outcome: 'completed' })).toBe(1);
    expect(h.director.done).toHaveLength(1);
  });
});

async function waitFor(cond: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
