/**
 * Every object of every example config, and every object committed in dist/, passes schema
 * validation (kubernetes-models, CRD schemas, strict fields, API-server rules).
 */
import { exampleConfigs, synthObjects } from '../support/synth.js';
import { distFiles } from './dist.js';
import { formatError, validateAll } from './validate.js';

const examples = exampleConfigs();

describe('schema validation of the example configs', () => {
  it('there are at least two example configs', () => {
    expect(examples.length).toBeGreaterThanOrEqual(2);
  });

  it.each(examples.map((e) => [e.name, e] as const))('every object of example %s validates', (_name, e) => {
    const objs = synthObjects(e.config);
    expect(objs.length).toBeGreaterThan(0);
    expect(validateAll(objs).map(formatError)).toEqual([]);
  });
});

describe('schema validation of dist/', () => {
  const files = distFiles();

  it('dist/ holds at least one manifest file with objects', () => {
    expect(files.length).toBeGreaterThan(0);
    expect(files.every((f) => f.objects.length > 0)).toBe(true);
  });

  it.each(files.map((f) => [f.file, f] as const))('every object in dist/%s validates', (_file, f) => {
    expect(validateAll(f.objects).map(formatError)).toEqual([]);
  });
});
