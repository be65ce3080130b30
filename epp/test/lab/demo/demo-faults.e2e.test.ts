/**
 * `npm run demo -- --fault <f> --json FILE` end to end, as the outside check runs it: the demo CLI
 * as a real process (which starts `kvroute-epp serve` and four simulated pods as processes, KV
 * events over ZMQ, ext_proc over gRPC), with each fault injected into the pods. The JSON summary's
 * `diagnosis` must name the fault's cause, and be empty on a healthy fleet.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { EPP_DIR } from '../../../lab/demo/run.js';
import { parseDemoArgs } from '../../../lab/demo/main.js';

const run = promisify(execFile);
const TINY_TOKENIZER = fileURLToPath(new URL('../../data/tokenizers/tiny-llama3', import.meta.url));
const TSX = join(EPP_DIR, '..', 'node_modules', '.bin', 'tsx');

interface Summary {
  fault: string;
  pods: string[];
  results: { policy: string; errors: number }[];
  diagnosis: { cause: string; pod: string; message: string }[];
}

async function demo(fault: string, dir: string): Promise<Summary> {
  const file = join(dir, `${fault}.json`);
  await run(TSX, ['lab/demo/main.ts', '--fault', fault, '--json', file, '--policy', 'kvroute', '--tokenizer', TINY_TOKENIZER], { cwd: EPP_DIR, timeout: 150_000 });
  return JSON.parse(readFileSync(file, 'utf8')) as Summary;
}

describe('npm run demo -- --fault', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvroute-demo-faults-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // fault → the cause every finding must name (none: no finding at all)
  const cases: [string, string[]][] = [
    ['none', []],
    ['chat-template', ['tokenization']],
    ['hash-seed', ['hash-seed']],
    ['events-off', ['events-missing']],
  ];
  it.each(cases)('--fault %s → diagnosis %j', async (fault, causes) => {
    const s = await demo(fault, dir);
    expect(s.fault).toBe(fault);
    expect(s.results.map((r) => [r.policy, r.errors])).toEqual([['kvroute', 0]]);
    // every finding names the injected cause, a pod of the demo and a fix; a healthy fleet has none
    expect([...new Set(s.diagnosis.map((d) => d.cause))]).toEqual(causes);
    expect(s.diagnosis.every((d) => s.pods.includes(d.pod) && /Fix: /.test(d.message))).toBe(true);
    // events-off silences the last pod only
    const silent = fault === 'events-off' ? [s.pods[s.pods.length - 1]] : undefined;
    expect(silent === undefined || JSON.stringify(s.diagnosis.map((d) => d.pod)) === JSON.stringify(silent)).toBe(true);
  }, 180_000);

  it('rejects an unknown fault and an empty --json, naming the choices', () => {
    expect(() => parseDemoArgs(['--fault', 'bogus'])).toThrow(/--fault "bogus" must be one of none, chat-template, hash-seed, events-off/);
    expect(() => parseDemoArgs(['--json', ''])).toThrow(/--json needs a file name/);
    expect(parseDemoArgs([]).fault).toBe('none');
  });
});
