/** Every invariant holds for every example config and for the committed dist/ manifests. */
import { exampleConfigs, synthObjects } from '../support/synth.js';
import { distFiles } from '../schema/dist.js';
import { formatViolation, INVARIANTS } from './index.js';
import type { Manifest } from './model.js';

const examples = exampleConfigs();
const names = Object.keys(INVARIANTS);

describe.each(examples.map((e) => [e.name, e] as const))('example %s', (_name, e) => {
  let objs: Manifest[] = [];
  beforeAll(() => {
    objs = synthObjects(e.config);
  });

  it.each(names)('%s holds', (inv) => {
    expect(objs.length).toBeGreaterThan(0);
    expect(INVARIANTS[inv](objs).map(formatViolation)).toEqual([]);
  });
});

describe('dist/', () => {
  const files = distFiles();
  it('has manifests', () => expect(files.length).toBeGreaterThan(0));
  describe.each(files.map((f) => [f.file, f] as const))('%s', (_file, f) => {
    it.each(names)('%s holds', (inv) => {
      expect(INVARIANTS[inv](f.objects).map(formatViolation)).toEqual([]);
    });
  });
});
