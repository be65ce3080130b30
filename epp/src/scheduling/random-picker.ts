/** llm-d's `random-picker`: ignores the scores and picks uniformly at random. */
import { shuffled, type Random } from '../util/random.js';
import type { Picker, ScoredEndpoint } from './types.js';

export class RandomPicker implements Picker {
  readonly name = 'random-picker';
  /**
   * @param maxEndpoints how many endpoints to return (failover order). @default 1
   * @param random randomness. @default Math.random
   */
  constructor(
    private readonly maxEndpoints = 1,
    private readonly random: Random = Math.random,
  ) {}

  pick(scored: readonly ScoredEndpoint[]): ScoredEndpoint[] {
    return shuffled(scored, this.random).slice(0, this.maxEndpoints);
  }
}
