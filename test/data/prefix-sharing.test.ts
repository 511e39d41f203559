/**
 * The prefix-sharing layout (data/pack.ts): every token of every sequence lies where packedIndex
 * says, with the position it has in its unshared sequence and the branch of its completion;
 * segments never overlap; `auto` shares a batch only when its rows get shorter.
 */
import { describe, expect, it } from 'vitest';
import { collatePreferences, type PreferenceBatch } from '../../src/data/collate.js';
import { packedIndex, packForPrefixSharing, packSharedPrefix, type PackedBatch } from '../../src/data/pack.js';
import type { TokenizedPreference } from '../../src/data/tokenize.js';

function rows(shapes: number[][]): TokenizedPreference[] {
  let next = 1;
  const ids = (n: number): number[] => Array.from({ length: n }, () => next++);
  return shapes.map(([p, ...completions], i) => ({ promptIds: ids(p), completionIds: completions.map(ids), origin: { file: 'test', line: i + 1 } }));
}

/** Checks every token of `batch` against its place in `packed`, and that no two tokens share a slot. */
function expectLaidOut(batch: PreferenceBatch, packed: PackedBatch): void {
  const { numSequences: n, seqLen: t, batchSize: b } = batch;
  const owner = new Map<number, string>();
  for (let s = 0; s < n; s++) {
    const p = batch.promptLengths[s];
    for (let j = 0; j < packed.lengths[s]; j++) {
      const at = packedIndex(packed, batch, s, j);
      expect(packed.inputIds[at]).toBe(batch.inputIds[s * t + j]);
      expect(packed.positionIds[at]).toBe(BigInt(j));
      const branch = j < p ? 0 : Math.floor(s / b) + 1;
      expect(packed.branchIds?.[at] ?? 0n).toBe(packed.completionShifts ? BigInt(branch) : 0n);
      expect(packed.segmentIds[at]).toBeGreaterThan(0n);
      // A prompt token is the same slot for the K sequences of a row; nothing else is shared.
      const who = j < p && packed.completionShifts ? `row ${s % b} prompt ${j}` : `sequence ${s} token ${j}`;
      expect(owner.get(at) ?? who).toBe(who);
      owner.set(at, who);
    }
  }
  for (let i = 0; i < packed.rows * packed.seqLen; i++) if (!owner.has(i)) expect(packed.segmentIds[i]).toBe(0n);
}

describe('prefix-sharing layout', () => {
  it('pairs and rankings (K = 3), empty prompts and completions, one row per pair or packed', () => {
    for (const shapes of [[[5, 4, 2], [1, 1, 2], [0, 3, 2], [2, 0, 1]], [[3, 2, 4, 1], [1, 1, 1, 2], [6, 3, 3, 5]]]) {
      const batch = collatePreferences(rows(shapes), { padTokenId: 0 });
      for (const onePerRow of [true, false]) {
        const packed = packSharedPrefix(batch, { onePerRow });
        expectLaidOut(batch, packed);
        const longest = Math.max(...shapes.map((s) => s.reduce((a, x) => a + x, 0)));
        expect(packed.seqLen).toBe(longest);
        if (onePerRow) expect(packed.rows).toBe(batch.batchSize);
        else expect(packed.rows).toBeLessThan(batch.batchSize);
      }
    }
  });

  it('auto shares when the rows hold fewer tokens and no more attention area; on always; K = 1 never', () => {
    const long = collatePreferences(rows([[12, 3, 4], [10, 2, 2]]), { padTokenId: 0 });
    expect(packForPrefixSharing(long, 'auto', false).completionShifts).toBeDefined(); // 2 x 19 slots < 4 x 16
    expect(packForPrefixSharing(long, 'auto', true).completionShifts).toBeDefined();
    // No prompt: the shared segment is as long as the two sequences, so auto keeps them apart.
    const empty = collatePreferences(rows([[0, 5, 5], [0, 5, 5]]), { padTokenId: 0 });
    const plain = packForPrefixSharing(empty, 'auto', false);
    expect(plain.completionShifts).toBeUndefined();
    expect(Array.from(plain.branchIds as BigInt64Array).every((x) => x === 0n)).toBe(true);
    expect([plain.rows, plain.seqLen]).toEqual([4, 5]); // the padded batch, one sequence per row
    expectLaidOut(empty, plain);
    expect(packForPrefixSharing(empty, 'on', false).completionShifts).toBeDefined();
    // A short prompt: 2 x 14 slots < 4 x 8, but 2 x 14² attention area > 4 x 8²: auto keeps them apart.
    const shortPrompt = collatePreferences(rows([[2, 6, 6], [2, 6, 6]]), { padTokenId: 0 });
    expect(packForPrefixSharing(shortPrompt, 'auto', false).completionShifts).toBeUndefined();
    expect(packForPrefixSharing(shortPrompt, 'on', false).completionShifts).toBeDefined();
    const sft = collatePreferences(rows([[4, 3], [2, 5]]), { padTokenId: 0 });
    expect(packForPrefixSharing(sft, 'on', true).completionShifts).toBeUndefined();
  });
});
