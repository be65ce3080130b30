/** llm-d's `random-picker`: ignores the scores and picks uniformly at random. */
import type { Random } from '../util/random.js';
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
    const arr = [...scored];
    for (let i = arr.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [arr[i], arr[j]] = [arr[j], arr[i]];
    }
    return arr.slice(0, this.maxEndpoints);
  }
}
