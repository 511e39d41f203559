import { describe, expect, it } from 'vitest';
import { deriveSeed, Rng } from '../../src/data/index.js';

describe('Rng', () => {
  it('is a fixed stream for a seed (these numbers must never change: saved runs depend on them)', () => {
    const r = new Rng(42);
    expect(Array.from({ length: 4 }, () => r.nextU32())).toEqual(GOLDEN_42);
    expect(deriveSeed(0, 0)).toBe(GOLDEN_DERIVED);
  });

  it('int is in range and roughly uniform; shuffle is a permutation', () => {
    const r = new Rng(1);
    const counts = new Array(5).fill(0);
    for (let i = 0; i < 5000; i++) counts[r.int(5)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(120);
    const items = Array.from({ length: 50 }, (_, i) => i);
    const shuffled = r.shuffle([...items]);
    expect(shuffled).not.toEqual(items);
    expect([...shuffled].sort((a, b) => a - b)).toEqual(items);
    expect(() => r.int(0)).toThrow(RangeError);
  });

  it('derived seeds differ by seed and by epoch', () => {
    const seeds = new Set([deriveSeed(0, 0), deriveSeed(0, 1), deriveSeed(1, 0), deriveSeed(2 ** 40, 0)]);
    expect(seeds.size).toBe(4);
    expect(() => deriveSeed(0.5)).toThrow(RangeError);
  });
});

// mulberry32(42): the first value is the widely published 0.6011037519201636 · 2^32.
const GOLDEN_42 = [2581720956, 1925393290, 3661312704, 2876485805];
const GOLDEN_DERIVED = 222287032;
