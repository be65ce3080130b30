/**
 * The diagnosis of wrong cache predictions: each cause from its evidence, no finding on a healthy
 * fleet, findings clearing when fresh samples agree, one warning per new finding, the gauge, and
 * `GET /v1/diagnosis` on the real HTTP server.
 */
import { Registry } from 'prom-client';
import { Diagnosis, type AccuracySample } from '../../src/accuracy/diagnosis.js';
import { HttpServer } from '../../src/http/http-server.js';
import { DiagnosisCauses, DiagnosisMetrics } from '../../src/contract/metrics.js';
import { silentLogger, type Logger } from '../../src/util/logger.js';

const BS = 16;
const hit = (blocks: number, actual: number): AccuracySample => ({ predictedBlocks: blocks, actualTokens: actual, promptTokens: 200 });

function recordingLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const logger: Logger = { ...silentLogger(), warn: (_o: object, msg?: string) => void warnings.push(msg ?? ''), child: () => logger };
  return { logger, warnings };
}

function make(now = { t: 0 }, logger: Logger = silentLogger(), registry?: Registry): Diagnosis {
  return new Diagnosis({ blockSize: BS, hashSeed: '42', hashAlgo: 'sha256_cbor', logger, now: () => now.t, ...(registry ? { registry } : {}) });
}

describe('Diagnosis', () => {
  it('finds nothing on a healthy fleet (predictions agree, events arrive, hashes match)', () => {
    const d = make();
    for (const pod of ['a', 'b', 'c']) {
      d.batch(pod);
      d.hashChecked(pod, true);
      for (let i = 0; i < 10; i++) d.record(pod, i % 2 ? hit(4, 64) : hit(0, 0));
    }
    // an occasional race (predicted miss, got a hit) is not systematic
    d.record('a', hit(0, 32));
    expect(d.findings()).toEqual([]);
  });

  it('events-missing: hits on a pod the EPP never got an event from', () => {
    const d = make();
    d.batch('a');
    d.record('b', hit(0, 48));
    expect(d.findings()).toEqual([]); // one hit is not enough
    d.record('b', hit(0, 32));
    const f = d.findings();
    expect(f.map((x) => [x.cause, x.pod])).toEqual([[DiagnosisCauses.eventsMissing, 'b']]);
    expect(f[0]?.message).toMatch(/no KV events from it.*--kv-events-config/);
  });

  it('events-missing: hits after the pod\'s events stopped for longer than eventsStaleMs', () => {
    const now = { t: 0 };
    const d = make(now);
    d.batch('a');
    d.record('a', hit(0, 32)); // events are fresh: a race, not a finding
    now.t = 120_000;
    d.record('a', hit(0, 32));
    d.record('a', hit(0, 48));
    const f = d.findings();
    expect(f.map((x) => x.cause)).toEqual([DiagnosisCauses.eventsMissing]);
    expect(f[0]?.message).toMatch(/last KV event arrived over 60 s earlier/);
    d.batch('a'); // events resume: cleared
    expect(d.findings()).toEqual([]);
  });

  it('tokenization: the fleet disagrees from the first block while the events arrive', () => {
    const d = make();
    for (const pod of ['a', 'b']) {
      d.batch(pod);
      for (let i = 0; i < 6; i++) d.record(pod, i % 2 ? hit(0, 64) : hit(0, 0));
    }
    const f = d.findings();
    expect(f.map((x) => [x.cause, x.pod])).toEqual([
      [DiagnosisCauses.tokenization, 'a'],
      [DiagnosisCauses.tokenization, 'b'],
    ]);
    expect(f[0]?.message).toMatch(/3 of its last 6 responses disagree.*100% of the responses with a hit.*chat template/);
    // predicted hits that come back empty count the same
    const e = make();
    e.batch('a');
    for (let i = 0; i < 3; i++) e.record('a', hit(3, 0));
    expect(e.findings()).toEqual([]); // fewer than minSamples disagreements
    e.record('a', hit(3, 0));
    expect(e.findings().map((x) => x.cause)).toEqual([DiagnosisCauses.tokenization]);
  });

  it('tokenization is fleet-wide: not reported when one pod of two goes wrong while the other agrees', () => {
    const d = make();
    d.batch('a');
    d.batch('b');
    for (let i = 0; i < 6; i++) {
      d.record('a', hit(0, 64));
      d.record('b', hit(4, 64));
    }
    expect(d.findings()).toEqual([]);
  });

  it('hash-seed: the applier\'s hash check fails for the pod', () => {
    const d = make();
    d.batch('a');
    d.hashChecked('a', true);
    d.hashChecked('b', false);
    const f = d.findings();
    expect(f.map((x) => [x.cause, x.pod])).toEqual([[DiagnosisCauses.hashSeed, 'b']]);
    expect(f[0]?.message).toMatch(/kvroute_kv_events_hash_mismatch_total.*PYTHONHASHSEED=42/);
    // mostly matching again: cleared
    d.hashChecked('b', true);
    d.hashChecked('b', true);
    expect(d.findings()).toEqual([]);
  });

  it('block-size: events with another block size, or cached tokens off the EPP\'s grid', () => {
    const d = make();
    d.batch('a');
    d.blockSize('a', 32);
    d.batch('b');
    d.record('b', hit(0, 24));
    d.record('b', hit(0, 40));
    const f = d.findings().filter((x) => x.cause === DiagnosisCauses.blockSize);
    expect(f.map((x) => x.pod)).toEqual(['a', 'b']);
    expect(f[0]?.message).toMatch(/blocks of 32 tokens.*--block-size 16/);
    expect(f[1]?.message).toMatch(/2 of its cached-token counts are not multiples of 16/);
  });

  it('warns once per new finding (rate-limited per cause) and sets the gauge', async () => {
    const { logger, warnings } = recordingLogger();
    const registry = new Registry();
    const d = make({ t: 0 }, logger, registry);
    d.hashChecked('a', false);
    d.findings();
    d.findings();
    d.hashChecked('b', false);
    d.findings(); // a new pod, same cause, within the interval: suppressed
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/cache predictions are wrong: pod a/);
    const g = await registry.getSingleMetric(DiagnosisMetrics.active.name)?.get();
    expect(g?.values.filter((v) => v.value !== 0).map((v) => [v.labels.cause, v.labels.pod, v.value])).toEqual([
      ['hash-seed', 'a', 1],
      ['hash-seed', 'b', 1],
    ]);
    d.hashChecked('a', true);
    d.hashChecked('a', true);
    const g2 = await registry.getSingleMetric(DiagnosisMetrics.active.name)?.get();
    expect(g2?.values.find((v) => v.labels.pod === 'a')?.value).toBe(0);
  });

  it('exports every cause of every pod heard from at 0 before any finding (so the series exist from the start)', async () => {
    const registry = new Registry();
    const d = make({ t: 0 }, silentLogger(), registry);
    const gauge = async () => (await registry.getSingleMetric(DiagnosisMetrics.active.name)?.get())?.values.map((v) => `${v.labels.cause} ${v.labels.pod} ${v.value}`).sort();
    expect(await gauge()).toEqual([]); // no pod heard from yet
    d.batch('a');
    d.hashChecked('b', true);
    const causes = Object.values(DiagnosisCauses);
    expect(causes.length).toBe(4);
    expect(await gauge()).toEqual(causes.flatMap((c) => [`${c} a 0`, `${c} b 0`]).sort());
    d.hashChecked('b', false);
    expect(await gauge()).toEqual(causes.flatMap((c) => [`${c} a 0`, `${c} b ${c === 'hash-seed' ? 1 : 0}`]).sort());
  });

  it('GET /v1/diagnosis on the HTTP server returns the findings; other methods get 405', async () => {
    const d = make();
    d.hashChecked('10.0.0.1:8000', false);
    const http = new HttpServer({ registry: new Registry(), logger: silentLogger(), diagnosis: () => d.findings() });
    const port = await http.listen(0, '127.0.0.1');
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v1/diagnosis`);
      expect(r.status).toBe(200);
      const body = (await r.json()) as { findings: { cause: string; pod: string; message: string }[] };
      expect(body.findings.map((f) => [f.cause, f.pod])).toEqual([['hash-seed', '10.0.0.1:8000']]);
      const p = await fetch(`http://127.0.0.1:${port}/v1/diagnosis`, { method: 'POST' });
      expect(p.status).toBe(405);
      expect(p.headers.get('allow')).toBe('GET');
      await p.arrayBuffer();
    } finally {
      await http.close();
    }
    const bare = new HttpServer({ registry: new Registry(), logger: silentLogger() });
    const port2 = await bare.listen(0, '127.0.0.1');
    try {
      const r = await fetch(`http://127.0.0.1:${port2}/v1/diagnosis`);
      expect(r.status).toBe(503);
      await r.arrayBuffer();
    } finally {
      await bare.close();
    }
  });
});
