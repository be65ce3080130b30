/** Max-score picker with a random tie-break (seedable, so simulations are reproducible). */
import type { Picker, ScoredEndpoint } from './types.js';

import { seededRandom, shuffled, type Random } from '../util/random.js';

export { seededRandom, type Random };

const EPSILON = 1e-9;

export class MaxScorePicker implements Picker {
  readonly name = 'max-score-picker';
  /**
   * @param maxEndpoints how many endpoints to return (failover order). @default 1
   * @param random tie-break source. @default Math.random
   */
  constructor(
    private readonly maxEndpoints = 1,
    private readonly random: Random = Math.random,
  ) {}

  pick(scored: readonly ScoredEndpoint[]): ScoredEndpoint[] {
    // Shuffle first (Fisher–Yates), then a stable sort by score: equal scores end up in random order.
    const arr = shuffled(scored, this.random);
    arr.sort((a, b) => (Math.abs(b.total - a.total) < EPSILON ? 0 : b.total - a.total));
    return arr.slice(0, this.maxEndpoints);
  }
}
