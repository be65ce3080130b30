import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blockReuse, infiniteCacheHitRate } from '../../../lab/sim/bounds.js';
import { BlockKeyer, promptTokens, type SimRequest } from '../../../lab/sim/request.js';
import { runBenchmark } from '../../../lab/sim/run.js';
import { PROFILE_B } from '../../../lab/sim/profiles.js';
import { WorkloadFileError, parseWorkloadText, readWorkloadFile, toWorkloadJsonl } from '../../../lab/sim/workload-file.js';
import { generateW1, generateW3 } from '../../../lab/sim/workloads.js';

// Synthetic lines in the Mooncake trace format (timestamp ms, input/output length, 512-token hash ids).
const MOONCAKE = [
  '{"timestamp": 0, "input_length": 1200, "output_length": 20, "hash_ids": [0, 1, 2]}',
  '{"timestamp": 0, "input_length": 700, "output_length": 5, "hash_ids": [0, 3]}',
  '{"timestamp": 1500, "input_length": 1400, "output_length": 12, "hash_ids": [0, 1, 4]}',
  '{"timestamp": 3000, "input_length": 300, "output_length": 8, "hash_ids": [5]}',
].join('\n');

function problemsOf(text: string): string[] {
  try {
    parseWorkloadText(text);
  } catch (e) {
    if (e instanceof WorkloadFileError) return [...e.problems];
    throw e;
  }
  throw new Error('expected a WorkloadFileError');
}

describe('workload files', () => {
  it('reads Mooncake lines: 512-token hash ids, arrival times, one session per request', () => {
    const reqs = parseWorkloadText(MOONCAKE);
    expect(reqs).toHaveLength(4);
    expect(reqs.map((r) => r.arrivalMs)).toEqual([0, 0, 1500, 3000]);
    expect(new Set(reqs.map((r) => r.sessionId)).size).toBe(4);
    const [a, , c] = reqs as [SimRequest, SimRequest, SimRequest];
    expect(a.content).toMatchObject({ kind: 'ids', idBlockSize: 512, coveredTokens: 1200 });
    // expanded to engine blocks of 16: c shares a's first two 512-token ids = 64 engine blocks
    const keyer = new BlockKeyer();
    const ka = keyer.keys(a, 16);
    const kc = keyer.keys(c, 16);
    expect(ka).toHaveLength(75);
    expect(kc.slice(0, 64)).toEqual(ka.slice(0, 64));
    expect(kc[64]).not.toEqual(ka[64]);
    expect(promptTokens(c).slice(0, 1024)).toEqual(promptTokens(a).slice(0, 1024));
    // block reuse at 512: ids 0 (×2) and 1 seen before → 3 of 9
    expect(blockReuse(reqs).rate).toBeCloseTo(3 / 9, 12);
    expect(infiniteCacheHitRate(reqs, 16).hits).toBe(512 + 1024);
    expect(parseWorkloadText(MOONCAKE, { speed: 2 }).map((r) => r.arrivalMs)).toEqual([0, 0, 750, 1500]);
    expect(parseWorkloadText(MOONCAKE, { limit: 2 })).toHaveLength(2);
  });

  it('reads token ids, sessions, closed-loop follow-ups and JSON arrays', () => {
    const reqs = parseWorkloadText(
      JSON.stringify({
        requests: [
          { timestamp_ms: 5, session_id: 'a', token_ids: [1, 2, 3, 4], output_length: 2, stage: 1 },
          { after_previous_ms: 100, session_id: 'a', token_ids: [1, 2, 3, 4, 5, 6], output_length: 1, stage: 1 },
          { timestamp_ms: 9, session_id: 7, hash_ids: [3, 4], hash_block_size: 16, input_length: 20, output_length: 3 },
        ],
      }),
    );
    expect(reqs.map((r) => [r.sessionId, r.arrivalMs, r.afterPreviousMs, r.inputLength, r.stage])).toEqual([
      ['a', 5, undefined, 4, 1],
      ['a', undefined, 100, 6, 1],
      ['7', 9, undefined, 20, 0],
    ]);
    expect(promptTokens(reqs[1] as SimRequest)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('names the line, the field, the value and the fix for every bad line', () => {
    const problems = problemsOf(
      [
        '{"timestamp": 0, "input_length": 1200, "output_length": 20, "hash_ids": [0, 1, 2]}',
        '{"timestamp": -5, "input_length": 10, "output_length": 1, "hash_ids": [0]}',
        '{"timestamp": 0, "input_length": 2000, "output_length": 1, "hash_ids": [0, 1]}',
        'not json',
        '',
        '{"timestamp": 0, "input_length": 10, "output_length": 0, "hash_ids": [0]}',
        '{"timestamp": 0, "output_length": 4, "token_ids": [1, "x"]}',
        '{"timestamp": 0, "output_length": 4}',
        '{"after_previous_ms": 10, "session_id": "new", "output_length": 4, "token_ids": [1]}',
        '[1, 2]',
        '{"timestamp": 0, "input_length": 10, "output_length": 4, "hash_ids": [0], "hash_block_size": 16, "hash_covered_tokens": 15}',
      ].join('\n'),
    );
    expect(problems).toEqual([
      expect.stringMatching(/^line 2: field "timestamp" is -5; use a number of ms ≥ 0$/),
      expect.stringMatching(/^line 3: field "hash_ids" is "2 ids"; input_length 2000 needs ⌈2000\/512⌉ = 4 ids of 512 tokens; fix input_length or hash_block_size$/),
      expect.stringMatching(/^line 4: not valid JSON .*each line must be one JSON object/),
      expect.stringMatching(/^line 6: field "output_length" is 0; use an integer ≥ 1/),
      expect.stringMatching(/^line 7: field "token_ids\[1\]" is "x"; token ids are integers/),
      expect.stringMatching(/^line 8: field "token_ids" is nothing; give the prompt as "token_ids".*or "hash_ids"/),
      expect.stringMatching(/^line 9: field "after_previous_ms" is 10; the session "new" has no earlier request/),
      expect.stringMatching(/^line 10: expected a JSON object, got \[1,2\]$/),
      expect.stringMatching(/^line 11: field "hash_covered_tokens" is 15; use an integer from input_length \(10\) to .* = 14$/),
    ]);
  });

  it('summarizes long problem lists and rejects empty files and bad options', () => {
    const many = Array.from({ length: 30 }, () => '{"timestamp": 0}').join('\n');
    expect(() => parseWorkloadText(many)).toThrow(/has 60 problem\(s\)[\s\S]*\.\.\. and 40 more/);
    expect(() => parseWorkloadText('\n# comment\n')).toThrow(/has no requests/);
    expect(() => parseWorkloadText(MOONCAKE, { speed: 0 })).toThrow(/speed is 0/);
    expect(() => parseWorkloadText('[{"timestamp": 0,')).toThrow(/not valid JSON/);
  });

  it('reads a file by path and replays it through the simulator', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvroute-sim-'));
    const path = join(dir, 'trace.jsonl');
    writeFileSync(path, MOONCAKE + '\n');
    const reqs = await readWorkloadFile(path);
    expect(reqs).toHaveLength(4);
    await expect(readWorkloadFile(join(dir, 'missing.jsonl'))).rejects.toThrow(/cannot read workload file .*missing\.jsonl/);
    const { summary } = await runBenchmark({
      workload: { name: path, description: '', profile: PROFILE_B, pods: 2, stages: [{ index: 0, rate: 0, unit: 'trace', startMs: 0, endMs: 0, warmup: false }], requests: reqs },
      policy: 'precise',
      seed: 1,
      eventLagMs: 0,
    });
    expect(summary.requests).toBe(4);
    expect(summary.rejected).toBe(0);
    // request 3 arrives 1.5 s later and finds ids 0,1 on the pod that served request 1
    expect(summary.tokenHitRate).toBeCloseTo((512 + 1024) / (1200 + 700 + 1400 + 300), 9);
  });

  it('round-trips generated workloads through JSONL (closed loop and known outputs included)', () => {
    for (const w of [generateW1(1, { sessions: 6, perSession: 3 }), generateW3(2, { sessionsPerStage: 6, rates: [2] })]) {
      const back = parseWorkloadText(toWorkloadJsonl(w.requests));
      expect(back).toHaveLength(w.requests.length);
      const bs = w.profile.blockSize;
      expect(infiniteCacheHitRate(back, bs)).toEqual(infiniteCacheHitRate(w.requests, bs));
      back.forEach((r, i) => {
        const o = w.requests[i] as SimRequest;
        expect([r.sessionId, r.afterPreviousMs, r.inputLength, r.outputLength, r.stage]).toEqual([o.sessionId, o.afterPreviousMs, o.inputLength, o.outputLength, o.stage]);
        expect(r.arrivalMs ?? -1).toBeCloseTo(o.arrivalMs ?? -1, 2);
      });
      // multi-turn: the output ids survive, so turn 2 can hit turn 1's output blocks
      expect(back.map((r) => (r.content.kind === 'ids' ? r.content.coveredTokens : 0))).toEqual(
        w.requests.map((r) => (r.content.kind === 'ids' ? r.content.coveredTokens : 0)),
      );
    }
  });
});
