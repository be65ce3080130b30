/** Pure helpers of the ext_proc layer: endpoint strings, subset matching, response rewriting, usage. */
import { ApiError } from '../../src/contract/errors.js';
import { formatDestination, joinHostPort, parseEndpoint, subsetAllows } from '../../src/extproc/endpoints.js';
import { toImmediateResponse } from '../../src/extproc/immediate.js';
import { apiKindForPath, parseRequestBody } from '../../src/extproc/parse.js';
import { LineHoldback, ModelRewriter, SseUsageTracker, StreamingRewriter, usageFrom, usageFromJson } from '../../src/extproc/response.js';

describe('endpoints', () => {
  test.each([
    ['10.0.0.1:8000', { host: '10.0.0.1', port: 8000 }],
    ['[fd00::1]:8000', { host: 'fd00::1', port: 8000 }],
    ['fd00::1:8000', { host: 'fd00::1', port: 8000 }],
    ['pod-a.ns.svc:80', { host: 'pod-a.ns.svc', port: 80 }],
    [' 10.0.0.1:1 ', { host: '10.0.0.1', port: 1 }],
  ])('parseEndpoint(%s)', (s, want) => {
    expect(parseEndpoint(s)).toEqual(want);
  });

  test.each(['10.0.0.1', '10.0.0.1:', ':8000', '10.0.0.1:0', '10.0.0.1:65536', '[fd00::1]8000', '10.0.0.1:80x'])('parseEndpoint rejects %s', (s) => {
    expect(parseEndpoint(s)).toBeUndefined();
  });

  test('joinHostPort brackets IPv6 only', () => {
    expect(joinHostPort({ host: 'fd00::1', port: 8000 })).toBe('[fd00::1]:8000');
    expect(joinHostPort({ host: '10.1.2.3', port: 8000 })).toBe('10.1.2.3:8000');
  });

  test('formatDestination joins in order and throws ApiErrors', () => {
    expect(formatDestination(['fd00::1:8000', '10.0.0.1:8000'])).toEqual({ value: '[fd00::1]:8000,10.0.0.1:8000', list: ['[fd00::1]:8000', '10.0.0.1:8000'] });
    expect(() => formatDestination([])).toThrow(expect.objectContaining({ code: 'no_endpoint', status: 503 }));
    expect(() => formatDestination(['nope'])).toThrow(expect.objectContaining({ code: 'internal', status: 500 }));
  });

  test('subsetAllows matches by IP, ignores ports, normalises IPv6; undefined allows all', () => {
    expect(subsetAllows(undefined, '10.0.0.1:8000')).toBe(true);
    expect(subsetAllows([], '10.0.0.1:8000')).toBe(false);
    expect(subsetAllows(['10.0.0.1:9000'], '10.0.0.1:8000')).toBe(true);
    expect(subsetAllows(['10.0.0.10:8000'], '10.0.0.1:8000')).toBe(false);
    expect(subsetAllows(['[FD00:0::1]:8000'], 'fd00::1:8000')).toBe(true);
    expect(subsetAllows(['10.0.0.1'], '10.0.0.1:8000')).toBe(true);
  });
});

describe('parse', () => {
  test.each([
    ['/v1/completions', 'completions'],
    ['/v1/chat/completions', 'chat'],
    ['/openai/v1/chat/completions/?api-version=1', 'chat'],
    ['/v1/completions?stream=true', 'completions'],
    ['/v1/embeddings', 'other'],
    ['/', 'other'],
  ])('apiKindForPath(%s) = %s', (p, k) => {
    expect(apiKindForPath(p)).toBe(k);
  });

  test('other paths: routed without validation, model read when present', () => {
    expect(parseRequestBody('other', Buffer.from('not json'))).toEqual({ body: undefined, model: undefined, stream: false });
    expect(parseRequestBody('other', Buffer.from('{"model":"e5","input":"x"}'))).toEqual({ body: { model: 'e5', input: 'x' }, model: 'e5', stream: false });
    expect(() => parseRequestBody('other', Buffer.from('{"model":"e5"}'), { models: ['m'] })).toThrow(expect.objectContaining({ code: 'unknown_model' }));
  });

  test('stream flag only when literally true', () => {
    expect(parseRequestBody('completions', Buffer.from('{"model":"m","prompt":"x","stream":"yes"}')).stream).toBe(false);
    expect(parseRequestBody('completions', Buffer.from('{"model":"m","prompt":"x","stream":true}')).stream).toBe(true);
  });
});

describe('toImmediateResponse', () => {
  test('maps ApiError codes to their status and anything else to 500', () => {
    const cases: [unknown, number, string][] = [
      [new ApiError('bad_json', 'x'), 400, 'bad_json'],
      [new ApiError('unknown_model', 'x'), 404, 'unknown_model'],
      [new ApiError('body_too_large', 'x'), 413, 'body_too_large'],
      [new ApiError('shed', 'x'), 429, 'shed'],
      [new ApiError('no_endpoint', 'x'), 503, 'no_endpoint'],
      [new Error('bug'), 500, 'internal'],
      ['thrown string', 500, 'internal'],
    ];
    for (const [err, status, code] of cases) {
      const out = toImmediateResponse(err);
      expect([out.status, out.code, out.response.immediate_response?.status?.code]).toEqual([status, code, status]);
      expect(JSON.parse(Buffer.from(out.response.immediate_response!.body!).toString()).error.code).toBe(code);
    }
  });
});

describe('response helpers', () => {
  test('ModelRewriter rewrites both spellings, every occurrence, and escapes names', () => {
    const r = new ModelRewriter('base/7b "v2"', 'alias');
    const src = '{"model":"base/7b \\"v2\\"","x":{"model": "base/7b \\"v2\\""},"other":"model"}';
    expect(r.rewrite(Buffer.from(src)).toString()).toBe('{"model":"alias","x":{"model": "alias"},"other":"model"}');
    const untouched = Buffer.from('{"model":"base/7b"}');
    expect(r.rewrite(untouched)).toBe(untouched);
  });

  test('LineHoldback releases whole lines only', () => {
    const l = new LineHoldback();
    expect(l.push(Buffer.from('ab')).toString()).toBe('');
    expect(l.push(Buffer.from('c\nde')).toString()).toBe('abc\n');
    expect(l.push(Buffer.from('f\n\n')).toString()).toBe('def\n\n');
    expect(l.push(Buffer.from('tail')).toString()).toBe('');
    expect(l.flush().toString()).toBe('tail');
    expect(l.flush().length).toBe(0);
  });

  test('usageFrom accepts OpenAI and Responses-API naming', () => {
    expect(usageFrom({ prompt_tokens: 3, completion_tokens: 4, prompt_tokens_details: { cached_tokens: 2 } })).toEqual({ promptTokens: 3, completionTokens: 4, cachedTokens: 2 });
    expect(usageFrom({ input_tokens: 5, output_tokens: 6 })).toEqual({ promptTokens: 5, completionTokens: 6, cachedTokens: undefined });
    expect(usageFrom({ total_tokens: 5 })).toBeUndefined();
    expect(usageFrom(null)).toBeUndefined();
    expect(usageFromJson(Buffer.from('{"usage": {"prompt_tokens": 1}}'))).toEqual({ promptTokens: 1, completionTokens: undefined, cachedTokens: undefined });
    expect(usageFromJson(Buffer.from('{"usage": broken'))).toBeUndefined();
  });

  test('SseUsageTracker keeps the last usage across chunk boundaries, ignores junk and overlong lines', () => {
    const t = new SseUsageTracker(64);
    const line = 'data: {"usage":{"prompt_tokens":7,"completion_tokens":1}}\n\n';
    for (const ch of line) t.push(Buffer.from(ch));
    expect(t.usage).toEqual({ promptTokens: 7, completionTokens: 1, cachedTokens: undefined });
    t.push(Buffer.from(`data: {"usage":{"prompt_tokens":99,"pad":"${'x'.repeat(100)}"}}\n`));
    t.push(Buffer.from('data: {"usage": not json}\n'));
    t.push(Buffer.from('event: usage\n'));
    expect(t.usage?.promptTokens).toBe(7);
    t.push(Buffer.from('data: {"usage":{"prompt_tokens":8,"completion_tokens":2}}'));
    expect(t.usage?.promptTokens).toBe(7);
    t.end();
    expect(t.usage).toEqual({ promptTokens: 8, completionTokens: 2, cachedTokens: undefined });
  });

  test('StreamingRewriter gives the same bytes as a whole-body rewrite for any chunking', () => {
    const rw = new ModelRewriter('target-model', 'm');
    const unit = '{"model":"target-model","x":[1,2]},{"model": "target-model"},"model":"targ';
    const whole = Buffer.from(unit.repeat(40) + '"model":"target-model"');
    const expected = rw.rewrite(whole).toString();
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let trial = 0; trial < 50; trial++) {
      const s = new StreamingRewriter(rw);
      const out: Buffer[] = [];
      let i = 0;
      let held = 0;
      while (i < whole.length) {
        const n = 1 + rand(trial < 10 ? 3 : 40);
        const piece = s.push(whole.subarray(i, i + n), false);
        out.push(piece);
        i += n;
        held = Math.max(held, i - Buffer.concat(out).length);
      }
      out.push(s.push(Buffer.alloc(0), true));
      expect(Buffer.concat(out).toString()).toBe(expected);
    }
    // Longest pattern is '"model": "target-model"' (23 bytes): at most 22 bytes are held back
    // (plus a complete match straddling the cut, which is released whole).
    const s = new StreamingRewriter(rw);
    expect(s.push(Buffer.from('x'.repeat(100)), false).length).toBe(100 - 22);
  });
});

test('the contract names used on the wire are the GIE / llm-d strings', async () => {
  const { Headers, MetadataNamespaces } = await import('../../src/contract/names.js');
  expect([Headers.destinationEndpoint, Headers.destinationEndpointSubset, Headers.destinationEndpointServed, Headers.prefillerHostPort, Headers.sessionId]).toEqual([
    'x-gateway-destination-endpoint',
    'x-gateway-destination-endpoint-subset',
    'x-gateway-destination-endpoint-served',
    'x-prefiller-host-port',
    'x-session-id',
  ]);
  expect([MetadataNamespaces.lb, MetadataNamespaces.subsetHint]).toEqual(['envoy.lb', 'envoy.lb.subset_hint']);
});
