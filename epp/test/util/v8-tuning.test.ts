/** servingV8Flags: which serving flags the process was started with (no flag is set at runtime). */
import { spawnSync } from 'node:child_process';
import { EppServingV8Flags } from '../../src/contract/names.js';
import { SERVING_V8_FLAGS, servingV8Flags } from '../../src/util/v8-tuning.js';

test('the serving flags are the contract list', () => {
  expect(SERVING_V8_FLAGS).toBe(EppServingV8Flags);
  expect(SERVING_V8_FLAGS).toEqual(['--no-allocation-site-pretenuring']);
});

test('found on the command line (V8 also accepts underscores); otherwise missing', () => {
  expect(servingV8Flags(['--no-allocation-site-pretenuring'])).toEqual({ present: ['--no-allocation-site-pretenuring'], missing: [] });
  expect(servingV8Flags(['--expose-gc', '--no_allocation_site_pretenuring'])).toEqual({ present: ['--no-allocation-site-pretenuring'], missing: [] });
  expect(servingV8Flags(['--expose-gc'])).toEqual({ present: [], missing: ['--no-allocation-site-pretenuring'] });
});

function node(args: string[], env: NodeJS.ProcessEnv = {}) {
  const script = "import('./src/util/v8-tuning.ts').then((m) => console.log(JSON.stringify(m.servingV8Flags())))";
  return spawnSync(process.execPath, [...args, '--import', 'tsx', '-e', script], { env: { ...process.env, NODE_OPTIONS: '', ...env }, encoding: 'utf8' });
}

test('@default process.execArgv: a node started with the flags has them in effect, one without reports them missing', () => {
  const withFlags = node([...SERVING_V8_FLAGS]);
  expect(withFlags.status).toBe(0);
  expect(JSON.parse(withFlags.stdout)).toEqual({ present: SERVING_V8_FLAGS, missing: [] });
  const without = node([]);
  expect(JSON.parse(without.stdout)).toEqual({ present: [], missing: SERVING_V8_FLAGS });
});

test('why the flags cannot go in NODE_OPTIONS: node refuses them there (exit 9)', () => {
  const r = node([], { NODE_OPTIONS: SERVING_V8_FLAGS.join(' ') });
  expect(r.status).toBe(9);
  expect(r.stderr).toContain(`${SERVING_V8_FLAGS[0]} is not allowed in NODE_OPTIONS`);
});
