import { describe, expect, it } from 'vitest';
import { collatePreferences, type TokenizedPreference } from '../../src/data/index.js';
import { PAD } from './helpers.js';

const origin = (line: number) => ({ file: 'mem', line });
const row = (line: number, promptIds: number[], ...completionIds: number[][]): TokenizedPreference => ({
  promptIds,
  completionIds,
  origin: origin(line),
});

/** Row n of a [N, T] array as a plain list. */
const seq = <T extends number | bigint>(a: ArrayLike<T>, n: number, T: number): T[] => Array.from(a).slice(n * T, (n + 1) * T) as T[];

describe('collation', () => {
  // Row 0: prompt [5 6], chosen [7 8 1], rejected [9 1]; row 1: prompt [4], chosen [3 1], rejected [2 2 2 1].
  const rows = [row(0, [5, 6], [7, 8, 1], [9, 1]), row(1, [4], [3, 1], [2, 2, 2, 1])];
  const b = collatePreferences(rows, { padTokenId: PAD });

  it('lays out all chosen sequences, then all rejected, right-padded to the longest', () => {
    expect([b.batchSize, b.numCompletions, b.numSequences, b.seqLen]).toEqual([2, 2, 4, 5]);
    const ids = [0, 1, 2, 3].map((n) => seq(b.inputIds, n, 5).map(Number));
    expect(ids).toEqual([
      [5, 6, 7, 8, 1], // row 0 chosen
      [4, 3, 1, PAD, PAD], // row 1 chosen
      [5, 6, 9, 1, PAD], // row 0 rejected
      [4, 2, 2, 2, 1], // row 1 rejected
    ]);
    expect(seq(b.attentionMask, 1, 5)).toEqual([1, 1, 1, 0, 0]);
    expect(b.origins).toEqual([origin(0), origin(1)]);
  });

  it('completionMask is token-aligned; lossMask and labels are prediction-aligned', () => {
    expect(seq(b.completionMask, 0, 5)).toEqual([0, 0, 1, 1, 1]);
    expect(seq(b.lossMask, 0, 5)).toEqual([0, 1, 1, 1, 0]);
    expect(seq(b.labels, 0, 5)).toEqual([0n, 7n, 8n, 1n, 0n]);
    expect(seq(b.completionMask, 1, 5)).toEqual([0, 1, 1, 0, 0]);
    expect(seq(b.lossMask, 1, 5)).toEqual([1, 1, 0, 0, 0]);
    expect(seq(b.labels, 1, 5)).toEqual([3n, 1n, 0n, 0n, 0n]);
    expect(Array.from(b.promptLengths)).toEqual([2, 1, 2, 1]);
    expect(Array.from(b.completionLengths)).toEqual([3, 2, 2, 4]);
  });

  it('lossMask[t] = completionMask[t+1] and labels[t] = inputIds[t+1] under the mask, for every sequence', () => {
    const T = b.seqLen;
    for (let n = 0; n < b.numSequences; n++) {
      let sum = 0;
      for (let t = 0; t < T; t++) {
        const next = t + 1 < T ? b.completionMask[n * T + t + 1] : 0;
        expect(b.lossMask[n * T + t]).toBe(next);
        expect(b.labels[n * T + t]).toBe(next ? b.inputIds[n * T + t + 1] : 0n);
        sum += b.lossMask[n * T + t];
      }
      expect(b.completionLengths[n]).toBe(sum);
    }
  });

  it('rankings: completion k of row i is sequence k·B + i', () => {
    const r = collatePreferences([row(0, [9], [1], [2], [3]), row(1, [8], [4], [5], [6])], { padTokenId: PAD });
    expect(r.numSequences).toBe(6);
    const second = Array.from({ length: 6 }, (_, n) => Number(r.inputIds[n * r.seqLen + 1]));
    expect(second).toEqual([1, 4, 2, 5, 3, 6]);
  });

  it('pads T up to a multiple', () => {
    expect(collatePreferences(rows, { padTokenId: PAD, padToMultipleOf: 8 }).seqLen).toBe(8);
    expect(() => collatePreferences(rows, { padTokenId: PAD, padToMultipleOf: 0 })).toThrow(/padToMultipleOf/);
  });

  it('an empty prompt (SFT text without BOS) leaves the first token unscored', () => {
    const s = collatePreferences([row(0, [], [7, 8, 1])], { padTokenId: PAD });
    expect(seq(s.completionMask, 0, 3)).toEqual([1, 1, 1]);
    expect(seq(s.lossMask, 0, 3)).toEqual([1, 1, 0]);
    expect(s.completionLengths[0]).toBe(2);
  });

  it('refuses mixed completion counts and empty batches', () => {
    expect(() => collatePreferences([row(0, [1], [2], [3]), row(7, [1], [2], [3], [4])], { padTokenId: PAD })).toThrow(/mem:7: 3 completions/);
    expect(() => collatePreferences([], { padTokenId: PAD })).toThrow(/empty batch/);
  });
});
