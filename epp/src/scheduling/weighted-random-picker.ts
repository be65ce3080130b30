/**
 * llm-d's `weighted-random-picker`: picks with probability proportional to the total score
 * (A-Res weighted reservoir sampling: key = U^(1/score), highest keys win). Endpoints scoring 0
 * are never picked unless every endpoint scores 0, in which case the pick is uniform.
 */
import type { Random } from '../util/random.js';
import type { Picker, ScoredEndpoint } from './types.js';

export class WeightedRandomPicker implements Picker {
  readonly name = 'weighted-random-picker';
  /**
   * @param maxEndpoints how many endpoints to return (failover order). @default 1
   * @param random randomness. @default Math.random
   */
  constructor(
    private readonly maxEndpoints = 1,
    private readonly random: Random = Math.random,
  ) {}

  pick(scored: readonly ScoredEndpoint[]): ScoredEndpoint[] {
    const positive = scored.filter((s) => s.total > 0);
    const pool = positive.length > 0 ? positive : scored;
    const keyed = pool.map((s) => {
      const u = Math.max(this.random(), Number.MIN_VALUE);
      return { s, key: positive.length > 0 ? Math.pow(u, 1 / s.total) : u };
    });
    keyed.sort((a, b) => b.key - a.key);
    return keyed.slice(0, this.maxEndpoints).map((k) => k.s);
  }
}
