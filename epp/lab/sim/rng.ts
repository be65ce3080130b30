/**
 * Seeded pseudo-random numbers for the simulator: xoshiro128** (32-bit state words, pure `number`
 * arithmetic) seeded through splitmix32, plus the distributions the workloads need. Same seed →
 * same sequence on every platform; nothing here reads the clock or `Math.random`.
 */

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** 32-bit integer mix of two words (for deriving stable values from ids, not for streams). */
export function mix32(a: number, b: number): number {
  let h = Math.imul((a ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ Math.imul((b ^ 0x7f4a7c15) >>> 0, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  h = Math.imul(h, 0x297a2d39);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Stable 32-bit hash of a string (FNV-1a, then mixed). */
export function hashString32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h >>> 0, s.length);
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number | string) {
    const st = { s: typeof seed === 'string' ? hashString32(seed) : seed | 0 };
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.d = 1;
  }

  /** Independent stream derived from this seed and a label (stable under code changes elsewhere). */
  static derive(seed: number, label: string): Rng {
    return new Rng(mix32(seed >>> 0, hashString32(label)));
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Exponential with the given mean. */
  exponential(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }

  /** Standard normal (Box–Muller; one value per call, no caching so streams stay simple). */
  normal01(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Normal(mean, sd) clamped to [min, max]. */
  normal(mean: number, sd: number, min = -Infinity, max = Infinity): number {
    return clamp(mean + sd * this.normal01(), min, max);
  }

  /**
   * Log-normal with the given mean and standard deviation **of the variable itself**
   * (inference-perf's parameterisation), clamped to [min, max].
   */
  lognormal(mean: number, sd: number, min = 0, max = Infinity): number {
    const s2 = Math.log(1 + (sd * sd) / (mean * mean));
    const mu = Math.log(mean) - s2 / 2;
    return clamp(Math.exp(mu + Math.sqrt(s2) * this.normal01()), min, max);
  }

  /** Zipf over ranks 0..n-1 with exponent `alpha` (P(k) ∝ 1/(k+1)^alpha). */
  zipf(n: number, alpha: number): number {
    let total = 0;
    for (let k = 1; k <= n; k++) total += 1 / k ** alpha;
    let u = this.next() * total;
    for (let k = 1; k <= n; k++) {
      u -= 1 / k ** alpha;
      if (u < 0) return k - 1;
    }
    return n - 1;
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = xs[i] as T;
      xs[i] = xs[j] as T;
      xs[j] = t;
    }
    return xs;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function clamp(x: number, min: number, max: number): number {
  return x < min ? min : x > max ? max : x;
}
