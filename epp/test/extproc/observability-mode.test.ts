/**
 * A gateway that runs ext_proc in observability_mode ignores the EPP's replies, so nothing is
 * routed: the EPP still answers (harmless), counts each such stream once and warns, rate-limited,
 * naming the fix.
 */
import type { Logger } from '../../src/util/logger.js';
import { ExtProcLogging } from '../../src/extproc/observer.js';
import { frames, protocolConfig } from '../../testkit/extproc-client.js';
import { PATH_COMPLETIONS, postHeaders, startHarness, type Harness } from './fixtures.js';

interface Line {
  level: string;
  obj: object;
  msg: string;
}

function recordingLogger(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj, msg: msg ?? '' });
  const log: Logger & { lines: Line[] } = { lines, trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

const METRIC = 'kvroute_extproc_observability_mode_streams_total';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

test('streams in observability_mode are still answered, counted once each, and warned about once', async () => {
  const logger = recordingLogger();
  h = await startHarness({ logger });
  for (let i = 0; i < 2; i++) {
    const s = h.client.open();
    // the flag on every message, as Envoy sends it
    s.send({ ...frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }), observability_mode: true });
    s.send({ ...frames.requestBody('{"model":"m","prompt":"hi"}', true), observability_mode: true });
    const [headers] = await s.take(2);
    expect(headers!.request_headers?.response?.clear_route_cache).toBe(true);
    s.end();
    await s.done;
  }
  expect(await h.metric(METRIC)).toBe(2);
  const warnings = logger.lines.filter((l) => l.level === 'warn' && l.msg.includes('observability_mode'));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]!.obj).toMatchObject({ fix: expect.stringContaining('observability_mode: false') });
});

test('streams without the flag are not counted', async () => {
  h = await startHarness();
  const s = h.client.open();
  s.send(frames.requestHeaders(postHeaders(PATH_COMPLETIONS), { protocolConfig: protocolConfig(4) }));
  s.send(frames.requestBody('{"model":"m","prompt":"hi"}', true));
  await s.take(2);
  s.end();
  await s.done;
  expect(await h.metric(METRIC)).toBe(0);
});

test('ExtProcLogging warns again once its interval (@default 60000 ms) has passed', () => {
  const logger = recordingLogger();
  const viaDefault = new ExtProcLogging(logger);
  viaDefault.observabilityMode();
  viaDefault.observabilityMode();
  expect(logger.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
  const short = recordingLogger();
  const quick = new ExtProcLogging(short, 0);
  quick.observabilityMode();
  quick.observabilityMode();
  expect(short.lines.filter((l) => l.level === 'warn')).toHaveLength(2);
});
