import { describe, expect, it } from '@jest/globals';
import { assertBlockKey, engineGroups, MAX_BLOCK_KEY } from '../../../src/kvindex/keys/engine-mapping.js';

const seq = (prefix: number, n: number): bigint[] => Array.from({ length: n }, (_, i) => BigInt(prefix * 1000 + i));
const plain = (gs: ReturnType<typeof engineGroups>): [string, string[]][] => gs.map((g) => [g.engineKey.toString(), g.requestKeys.map(String)]);

describe('engineGroups: E[i·|E|/n] → R[i·|R|/n], n = max(|E|, |R|)', () => {
  it('maps one to one when the block sizes match (engine 64, index 64, 256 tokens)', () => {
    expect(plain(engineGroups(seq(1, 4), seq(2, 4)))).toEqual([
      ['1000', ['2000']],
      ['1001', ['2001']],
      ['1002', ['2002']],
      ['1003', ['2003']],
    ]);
  });

  it('maps many to one when the engine block is smaller (engine 16, index 64)', () => {
    const gs = engineGroups(seq(1, 16), seq(2, 4));
    expect(gs).toHaveLength(16);
    expect(gs.map((g) => g.requestKeys.map(String))).toEqual(Array.from({ length: 16 }, (_, i) => [String(2000 + Math.floor(i / 4))]));
  });

  it('maps one to many when the engine block is larger (engine 128, index 64)', () => {
    expect(plain(engineGroups(seq(1, 2), seq(2, 4)))).toEqual([
      ['1000', ['2000', '2001']],
      ['1001', ['2002', '2003']],
    ]);
  });

  it('handles ratios that do not divide (3 engine blocks over 4 request blocks)', () => {
    // n = 4: i=0 → E0,R0; i=1 → E0,R1; i=2 → E1,R2; i=3 → E2,R3.
    expect(plain(engineGroups(seq(1, 3), seq(2, 4)))).toEqual([
      ['1000', ['2000', '2001']],
      ['1001', ['2002']],
      ['1002', ['2003']],
    ]);
  });

  it('is empty when either side is empty', () => {
    expect(engineGroups([], seq(2, 4))).toEqual([]);
    expect(engineGroups(seq(1, 4), [])).toEqual([]);
  });
});

describe('assertBlockKey', () => {
  it('accepts 0n and 2^64-1 and rejects everything else with the value and the fix', () => {
    expect(() => assertBlockKey(0n, 'k')).not.toThrow();
    expect(() => assertBlockKey(MAX_BLOCK_KEY, 'k')).not.toThrow();
    expect(() => assertBlockKey(MAX_BLOCK_KEY + 1n, 'keys[3]')).toThrow(/keys\[3\]: 18446744073709551616n is not a block key; pass an unsigned 64-bit bigint/);
    expect(() => assertBlockKey(-1n, 'k')).toThrow(/-1n/);
    expect(() => assertBlockKey('12', 'k')).toThrow(/12 \(string\)/);
    expect(() => assertBlockKey(12, 'k')).toThrow(/12 \(number\)/);
  });
});
