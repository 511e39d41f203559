/**
 * Padding-free batches: the N sequences of a collated batch packed end to end into R <= N rows
 * of the batch's length T, so that padding costs (almost) nothing. Each packed sequence keeps
 * its own positions (0, 1, ... restarting at every sequence) and attends only to itself: the
 * models read the int64 segment ids below as a block-diagonal causal mask (attention.ts).
 *
 * Rows are filled first-fit by decreasing length (a sequence never spans two rows, so rows stay
 * T long and attention stays T x T per row, as in the padded batch).
 */
import type { PreferenceBatch } from './collate.js';

export interface PackedBatch {
  /** R: packed rows. */
  rows: number;
  /** T: row length (the padded batch's). */
  seqLen: number;
  /** [R, T] token ids, 0 after each row's last sequence. */
  inputIds: BigInt64Array;
  /** [R, T] which sequence of its row a token belongs to (1, 2, ...); 0 for the unused tail. */
  segmentIds: BigInt64Array;
  /** [R, T] position of the token within its own sequence (0 on the unused tail). */
  positionIds: BigInt64Array;
  /** [N] flat index r·T + t of sequence n's first token. */
  offsets: Int32Array;
  /** [N] tokens of sequence n (its attention-mask sum). */
  lengths: Int32Array;
}

/** Packs the right-padded sequences of `batch` (see PreferenceBatch) into as few rows as first-fit decreasing finds. */
export function packBatch(batch: PreferenceBatch): PackedBatch {
  const { numSequences: n, seqLen: t, attentionMask, inputIds } = batch;
  const lengths = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    let len = 0;
    for (let i = s * t; i < (s + 1) * t && attentionMask[i]; i++) len++;
    lengths[s] = len;
  }
  const order = Array.from({ length: n }, (_, s) => s).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const used: number[] = [];
  const rowOf = new Int32Array(n);
  const startOf = new Int32Array(n);
  for (const s of order) {
    let r = used.findIndex((u) => u + lengths[s] <= t);
    if (r < 0) r = used.push(0) - 1;
    rowOf[s] = r;
    startOf[s] = used[r];
    used[r] += lengths[s];
  }
  const rows = used.length;
  const packedIds = new BigInt64Array(rows * t);
  const segmentIds = new BigInt64Array(rows * t);
  const positionIds = new BigInt64Array(rows * t);
  const offsets = new Int32Array(n);
  const segmentsInRow = new Int32Array(rows);
  // Segment numbers follow the order of the sequences within each row.
  const byStart = Array.from({ length: n }, (_, s) => s).sort((a, b) => rowOf[a] - rowOf[b] || startOf[a] - startOf[b]);
  for (const s of byStart) {
    const off = rowOf[s] * t + startOf[s];
    const segment = BigInt(++segmentsInRow[rowOf[s]]);
    offsets[s] = off;
    packedIds.set(inputIds.subarray(s * t, s * t + lengths[s]), off);
    for (let j = 0; j < lengths[s]; j++) {
      segmentIds[off + j] = segment;
      positionIds[off + j] = BigInt(j);
    }
  }
  return { rows, seqLen: t, inputIds: packedIds, segmentIds, positionIds, offsets, lengths };
}
