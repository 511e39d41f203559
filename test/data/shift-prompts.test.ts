/**
 * The shift study's built-in prompts (src/data/shift-prompts.ts) are what
 * scripts/make-shift-prompts.ts extracts from the Brown corpus: reproducible, the genres as the
 * file names say, and no prompt in two sets.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeShiftPrompts, SHIFT_PROMPTS_FILE } from '../../scripts/make-shift-prompts.js';
import { SHIFT_IN_DISTRIBUTION_PROMPTS, SHIFT_SHIFTED_PROMPTS, SHIFT_TRAIN_PROMPTS } from '../../src/data/shift-prompts.js';

describe('built-in shift prompts', () => {
  it('are what the script writes (run `npx tsx scripts/make-shift-prompts.ts` after changing it)', () => {
    expect(readFileSync(SHIFT_PROMPTS_FILE, 'utf8')).toBe(makeShiftPrompts());
  });

  it('come from the training genres (press) or the shifted ones (fiction, humor), documents apart, no prompt twice', () => {
    const text = readFileSync(SHIFT_PROMPTS_FILE, 'utf8');
    const files = (name: string): string[] => [...(text.split(`export const ${name}`)[1].split('];')[0].matchAll(/\/\/ (c[a-r]\d\d)/g))].map((m) => m[1]);
    const [train, inDist, shifted] = ['SHIFT_TRAIN_PROMPTS', 'SHIFT_IN_DISTRIBUTION_PROMPTS', 'SHIFT_SHIFTED_PROMPTS'].map(files);
    expect([train.length, inDist.length, shifted.length]).toEqual([SHIFT_TRAIN_PROMPTS.length, SHIFT_IN_DISTRIBUTION_PROMPTS.length, SHIFT_SHIFTED_PROMPTS.length]);
    expect(new Set(train.map((f) => f[1]))).toEqual(new Set(['a', 'b', 'c']));
    expect(new Set(inDist.map((f) => f[1]))).toEqual(new Set(['a', 'b', 'c']));
    expect(new Set(shifted.map((f) => f[1]))).toEqual(new Set(['k', 'l', 'n', 'p', 'r']));
    // In-distribution prompts come from other documents than the training ones.
    expect(train.filter((f) => inDist.includes(f))).toEqual([]);
    const all = [...SHIFT_TRAIN_PROMPTS, ...SHIFT_IN_DISTRIBUTION_PROMPTS, ...SHIFT_SHIFTED_PROMPTS];
    expect(new Set(all.map((p) => p.toLowerCase())).size).toBe(all.length);
    for (const p of all) expect(p.split(' ').length).toBeGreaterThanOrEqual(3);
  });
});
