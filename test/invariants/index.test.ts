import { checkInvariants, formatViolation, INVARIANTS } from './index.js';
import { miniDeployment } from './fixtures.js';

describe('checkInvariants', () => {
  it('every invariant holds for the consistent fixture', () => {
    expect(checkInvariants(miniDeployment()).map(formatViolation)).toEqual([]);
  });

  it('an empty object list fails the checks that need something to exist (no vacuous pass)', () => {
    expect([...new Set(checkInvariants([]).map((v) => v.invariant))].sort()).toEqual(['eppAndRedisRestricted', 'vllmMatchesEppConfig']);
  });

  it('formats violations with invariant, object and message', () => {
    expect(formatViolation({ invariant: 'x', object: 'Service ns/a', message: 'broken' })).toBe('[x] Service ns/a: broken');
  });

  it('lists the invariants by name', () => {
    expect(Object.keys(INVARIANTS)).toHaveLength(20);
  });
});
