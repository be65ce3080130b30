/**
 * Many streams at once (no cross-talk between them) and seeded random frame sequences (the server
 * answers or closes every stream, never hangs, never crashes, and releases every pick).
 */
import type { ProcessingRequest } from '../../src/extproc/types.js';
import { frames, protocolConfig, routeRequest, subsetHintMetadata } from '../../testkit/extproc-client.js';
import { PATH_CHAT, PATH_COMPLETIONS, postHeaders, startHarness, type Harness } from './fixtures.js';

let h: Harness;
afterEach(async () => {
  await h.close();
});

test('192 concurrent interleaved streams each get their own decision and body back', async () => {
  const endpoints = Array.from({ length: 16 }, (_, i) => `10.1.0.${i + 1}:8000`);
  h = await startHarness({ endpoints });
  const n = 192;
  const results = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const s = h.client.open();
      const body = JSON.stringify({ model: 'm', prompt: `stream ${i} `.repeat(50 + (i % 7)) });
      const out = await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS, { 'x-request-id': `id-${i}` }), body, chunkBytes: 97 + (i % 13) });
      s.end();
      await s.done;
      return { i, out, body };
    }),
  );
  for (const { i, out, body } of results) {
    if (out.kind !== 'routed') throw new Error(`stream ${i} not routed`);
    expect(out.body.toString()).toBe(body);
    const req = h.director.picks.find((p) => p.requestId === `id-${i}`)!;
    expect(req.prompt).toBe(`stream ${i} `.repeat(50 + (i % 7)));
    expect(out.destination).toBe(out.metadataDestination);
    expect(endpoints).toContain(out.destination);
  }
  // Round-robin over 16 endpoints: every endpoint used n/16 times (order of picks may vary).
  const used = new Map<string, number>();
  for (const r of results) if (r.out.kind === 'routed') used.set(r.out.destination, (used.get(r.out.destination) ?? 0) + 1);
  expect([...used.values()].every((c) => c === n / 16)).toBe(true);
  await h.director.waitDone(n);
  expect(h.director.inFlight).toBe(0);
  expect(await h.metric('kvroute_extproc_streams_total', { outcome: 'completed' })).toBe(n);
});

test('seeded random frame sequences: every stream ends, nothing leaks, the server keeps routing', async () => {
  h = await startHarness({ maxBodyBytes: 2048 });
  let seed = 20261123;
  const rand = (k: number): number => {
    // LCG; use the high bits (the low bits of a power-of-two LCG cycle quickly).
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor(seed / 65536) % k;
  };
  const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)]!;
  const bodies = [
    '{"model":"m","prompt":"ok"}',
    '{"model":"m","messages":[{"role":"user","content":"hi"}]}',
    '{"model":',
    '[]',
    'x'.repeat(3000),
    '',
    '{"model":7}',
  ];
  const frameKinds: (() => ProcessingRequest)[] = [
    () => frames.requestHeaders(postHeaders(pick([PATH_COMPLETIONS, PATH_CHAT, '/v1/models'])), { endOfStream: rand(4) === 0, protocolConfig: protocolConfig(pick([0, 1, 2, 3, 4, 5, 9])) }),
    () => frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { metadata: subsetHintMetadata(pick([[], ['10.0.0.1:1'], ['10.9.9.9:1']])) }),
    () => frames.requestBody(pick(bodies), rand(2) === 0),
    () => frames.requestTrailers(),
    () => frames.responseHeaders({ ':status': pick(['200', '500', 'x']), 'content-type': pick(['application/json', 'text/event-stream']) }, { endOfStream: rand(5) === 0 }),
    () => frames.responseBody(pick(['data: {"model":"m"}\n\n', '{"usage":{"prompt_tokens":1}}', '']), rand(2) === 0),
    () => frames.responseTrailers(),
    () => ({}),
  ];
  const statuses: number[] = [];
  for (let round = 0; round < 60; round++) {
    const s = h.client.open();
    const len = 1 + rand(7);
    for (let k = 0; k < len; k++) s.send(k === 0 && rand(3) > 0 ? frameKinds[0]!() : pick(frameKinds)());
    // Let the client flush its writes first: grpc-js's client can drop the RST_STREAM of a call
    // cancelled with writes still queued, which leaves the server stream open (a client artefact:
    // the server cannot see a cancel that never arrives).
    await new Promise((r) => setTimeout(r, 5));
    if (rand(4) === 0) s.cancel();
    else s.end();
    statuses.push((await s.done).code);
  }
  // OK (0), CANCELLED (1) or INVALID_ARGUMENT (3) only: no INTERNAL, no hang.
  expect(statuses.every((c) => c === 0 || c === 1 || c === 3)).toBe(true);
  expect(new Set(statuses).size).toBeGreaterThan(1);
  for (let i = 0; i < 200 && h.server.openStreams > 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(h.server.openStreams).toBe(0);
  expect(h.director.inFlight).toBe(0);
  expect(await h.metric('inference_objective_running_requests', { model_name: 'm' })).toBe(0);
  const s = h.client.open();
  expect((await routeRequest(s, { headers: postHeaders(PATH_COMPLETIONS), body: '{"model":"m","prompt":"after"}' })).kind).toBe('routed');
  s.end();
});
