import { describe, expect, it } from 'vitest';
import { epochBatches, PreferenceBatcher, type PreferenceBatch, type TokenizedPreference } from '../../src/data/index.js';
import { DpoError } from '../../src/errors.js';
import { PAD } from './helpers.js';

/** Row i: prompt [100 + i], chosen of length 1 + (i*7 % 13), rejected [3, 1]. */
function makeRows(n: number): TokenizedPreference[] {
  return Array.from({ length: n }, (_, i) => ({
    promptIds: [100 + i],
    completionIds: [Array.from({ length: 1 + ((i * 7) % 13) }, () => 5), [3, 1]],
    origin: { file: 'mem', line: i },
  }));
}

const rowsOf = (b: PreferenceBatch) => b.origins.map((o) => o.line);
const lengthOf = (i: number) => 1 + 1 + ((i * 7) % 13);

describe('PreferenceBatcher', () => {
  const rows = makeRows(23);

  it('visits every row once per epoch, in batches of batchSize (last one smaller)', () => {
    const b = new PreferenceBatcher(rows, { batchSize: 5, padTokenId: PAD, seed: 3 });
    expect(b.batchesPerEpoch).toBe(5);
    const epoch = Array.from({ length: 5 }, () => b.next());
    expect(epoch.map((x) => x.batchSize)).toEqual([5, 5, 5, 5, 3]);
    expect(epoch.flatMap(rowsOf).sort((x, y) => x - y)).toEqual(rows.map((_, i) => i));
    expect(b.state()).toEqual({ epoch: 1, index: 0 });
  });

  it('is deterministic per seed and reshuffles each epoch', () => {
    const order = (seed: number, epoch: number) => epochBatches(rows.map((_, i) => lengthOf(i)), epoch, { batchSize: 5, seed }).flat();
    expect(order(3, 0)).toEqual(order(3, 0));
    expect(order(3, 0)).not.toEqual(order(3, 1));
    expect(order(3, 0)).not.toEqual(order(4, 0));
    expect(epochBatches([1, 1, 1, 1, 1], 0, { batchSize: 2, shuffle: false })).toEqual([[0, 1], [2, 3], [4]]);
  });

  it('dropLast drops the smaller last batch', () => {
    const b = new PreferenceBatcher(rows, { batchSize: 5, padTokenId: PAD, dropLast: true });
    expect(b.batchesPerEpoch).toBe(4);
    expect(b.batchIndices(0).every((x) => x.length === 5)).toBe(true);
    expect(() => new PreferenceBatcher(rows, { batchSize: 50, padTokenId: PAD, dropLast: true })).toThrow(DpoError);
  });

  it('groupByLength sorts within mega-batches, shuffles batches, and puts the longest batch first', () => {
    const many = makeRows(200);
    const lengths = many.map((_, i) => lengthOf(i));
    const opts = { batchSize: 4, seed: 7, groupByLength: true, megaBatchMultiplier: 10 };
    const batches = epochBatches(lengths, 0, opts);
    expect(batches.flat().sort((x, y) => x - y)).toEqual(many.map((_, i) => i));
    expect(lengths[batches[0][0]]).toBe(Math.max(...lengths));
    for (const batch of batches) {
      const l = batch.map((i) => lengths[i]);
      expect(l).toEqual([...l].sort((x, y) => y - x));
    }
    // Less padding than a plain shuffle.
    const padding = (bs: number[][]) => bs.reduce((s, bb) => s + bb.reduce((t, i) => t + Math.max(...bb.map((j) => lengths[j])) - lengths[i], 0), 0);
    expect(padding(batches)).toBeLessThan(padding(epochBatches(lengths, 0, { batchSize: 4, seed: 7 })) / 2);
    expect(epochBatches(lengths, 1, opts)).not.toEqual(batches);
  });

  it('resumes exactly from a saved state, across epochs', () => {
    const opts = { batchSize: 4, padTokenId: PAD, seed: 11, groupByLength: true, megaBatchMultiplier: 2 };
    const a = new PreferenceBatcher(rows, opts);
    for (let i = 0; i < 7; i++) a.next();
    const saved = JSON.parse(JSON.stringify(a.state()));
    expect(saved).toEqual({ epoch: 1, index: 1 });
    const expected = Array.from({ length: 9 }, () => a.next());
    const b = new PreferenceBatcher(rows, opts);
    b.restore(saved);
    const resumed = Array.from({ length: 9 }, () => b.next());
    resumed.forEach((batch, i) => {
      expect(rowsOf(batch)).toEqual(rowsOf(expected[i]));
      expect(batch.inputIds).toEqual(expected[i].inputIds);
    });
    expect(() => b.restore({ epoch: 0, index: 6 })).toThrow(/an epoch has 6 batches/);
  });

  it('batches have the documented layout and pad id', () => {
    const b = new PreferenceBatcher(rows, { batchSize: 3, padTokenId: 99, shuffle: false, padToMultipleOf: 4 });
    const batch = b.next();
    expect(rowsOf(batch)).toEqual([0, 1, 2]);
    expect(batch.seqLen % 4).toBe(0);
    // Sequence 3 = row 0's rejected: prompt [100], [3, 1], then padding.
    expect(Array.from(batch.inputIds.slice(3 * batch.seqLen, 3 * batch.seqLen + 4)).map(Number)).toEqual([100, 3, 1, 99]);
  });

  it('refuses rows with different completion counts and bad options', () => {
    const mixed = [...makeRows(2), { promptIds: [1], completionIds: [[2], [3], [4]], origin: { file: 'f', line: 9 } }];
    expect(() => new PreferenceBatcher(mixed, { batchSize: 2, padTokenId: PAD })).toThrow(/f:9: has 3 completions/);
    expect(() => new PreferenceBatcher(rows, { batchSize: 0, padTokenId: PAD })).toThrow(/batchSize/);
    expect(() => new PreferenceBatcher([], { batchSize: 1, padTokenId: PAD })).toThrow(/no data rows/);
  });
});
