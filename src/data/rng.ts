/**
 * A small seedable PRNG (mulberry32) so shuffles are identical across runs, Node versions and
 * platforms: only 32-bit integer arithmetic (Math.imul), no Math.random, no floating point in
 * the integer paths.
 */
export class Rng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** Uniform integer in [0, 2^32). */
  nextU32(): number {
    const t0 = (this.s = (this.s + 0x6d2b79f5) | 0);
    let t = Math.imul(t0 ^ (t0 >>> 15), t0 | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform float in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n), without modulo bias (rejection sampling). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) throw new RangeError(`Rng.int: bad bound ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % n;
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }
}

function mix32(x: number): number {
  // murmur3's finaliser: spreads every input bit over the output, so nearby seeds/epochs give
  // unrelated streams.
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * A 32-bit seed derived from a user seed (any safe integer) and further integers (e.g. the epoch),
 * so each epoch's order can be recomputed on its own, which is what makes resume exact.
 */
export function deriveSeed(seed: number, ...parts: number[]): number {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const hi = Math.floor(seed / 4294967296) >>> 0;
  let h = mix32((seed >>> 0) ^ mix32(hi ^ 0x9e3779b9));
  for (const p of parts) h = mix32(h ^ mix32((p >>> 0) + 0x7f4a7c15));
  return h;
}
