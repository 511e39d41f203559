/**
 * Padding-free batches: the N sequences of a collated batch packed end to end into R <= N rows
 * of the batch's length T, so that padding costs (almost) nothing. Each packed sequence keeps
 * its own positions (0, 1, ... restarting at every sequence) and attends only to itself: the
 * models read the int64 segment ids below as a block-diagonal causal mask (attention.ts).
 *
 * Rows are filled first-fit by decreasing length (a sequence never spans two rows, so rows stay
 * T long and attention stays T x T per row, as in the padded batch).
 *
 * Prefix sharing (Wang & Hegde 2024, arXiv 2410.20305; {@link packSharedPrefix}): the K
 * sequences of a row, prompt ++ completion k, become one segment prompt ++ completion 1 ++ ... ++
 * completion K, so the prompt goes through the model once instead of K times. Branch ids (0 =
 * prompt, k = completion k) make completion k's tokens attend to the prompt and to their own
 * earlier tokens only, and completion k's positions continue from the prompt's end: each
 * completion's hidden states are those of its unshared sequence (models/attention.ts).
 */
import type { PreferenceBatch } from './collate.js';

export interface PackedBatch {
  /** R: packed rows. */
  rows: number;
  /** T: row length (the padded batch's; with prefix sharing the longest shared segment's). */
  seqLen: number;
  /** [R, T] token ids, 0 after each row's last sequence. */
  inputIds: BigInt64Array;
  /** [R, T] which sequence (prefix sharing: which row of the batch) of its row a token belongs to (1, 2, ...); 0 for the unused tail. */
  segmentIds: BigInt64Array;
  /** [R, T] position of the token within its own sequence (0 on the unused tail). */
  positionIds: BigInt64Array;
  /** [N] flat index r·T + t of sequence n's first token. */
  offsets: Int32Array;
  /** [N] tokens of sequence n (its attention-mask sum). */
  lengths: Int32Array;
  /**
   * Prefix sharing only: [R, T] 0 for a shared prompt token (and the unused tail), k for a token
   * of completion k (1-based). Absent: every segment is one sequence.
   */
  branchIds?: BigInt64Array;
  /**
   * Prefix sharing only: [N] how far sequence n's completion tokens lie after where they would in
   * its own segment (the lengths of the row's earlier completions); see {@link packedIndex}.
   */
  completionShifts?: Int32Array;
}

/** How a batch of rows with K >= 2 completions goes through the model (`--prefix-sharing`). */
export type PrefixSharing = 'auto' | 'on' | 'off';

/** [N] real tokens per sequence (the attention mask's run from the start). */
function sequenceLengths(batch: PreferenceBatch): Int32Array {
  const { numSequences: n, seqLen: t, attentionMask } = batch;
  const lengths = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    let len = 0;
    for (let i = s * t; i < (s + 1) * t && attentionMask[i]; i++) len++;
    lengths[s] = len;
  }
  return lengths;
}

/**
 * Places units of the given lengths into rows of `rowLength`: first-fit by decreasing length, or
 * one unit per row. Returns the row and start of each unit, and the number of rows.
 */
function place(lengths: ArrayLike<number>, rowLength: number, onePerRow: boolean): { rows: number; rowOf: Int32Array; startOf: Int32Array } {
  const n = lengths.length;
  const rowOf = new Int32Array(n);
  const startOf = new Int32Array(n);
  if (onePerRow) {
    for (let s = 0; s < n; s++) rowOf[s] = s;
    return { rows: n, rowOf, startOf };
  }
  const order = Array.from({ length: n }, (_, s) => s).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const used: number[] = [];
  for (const s of order) {
    let r = used.findIndex((u) => u + lengths[s] <= rowLength);
    if (r < 0) r = used.push(0) - 1;
    rowOf[s] = r;
    startOf[s] = used[r];
    used[r] += lengths[s];
  }
  return { rows: used.length, rowOf, startOf };
}

/** Segment numbers 1, 2, ... in the order of the units within each row. */
function segmentNumbers(rows: number, rowOf: Int32Array, startOf: Int32Array): Int32Array {
  const n = rowOf.length;
  const out = new Int32Array(n);
  const inRow = new Int32Array(rows);
  const byStart = Array.from({ length: n }, (_, s) => s).sort((a, b) => rowOf[a] - rowOf[b] || startOf[a] - startOf[b]);
  for (const s of byStart) out[s] = ++inRow[rowOf[s]];
  return out;
}

/**
 * Packs the right-padded sequences of `batch` (see PreferenceBatch) into as few rows as first-fit
 * decreasing finds; with `onePerRow`, each sequence in a row of its own (the padded batch in the
 * packed graph's form).
 */
export function packBatch(batch: PreferenceBatch, options: { onePerRow?: boolean } = {}): PackedBatch {
  const { numSequences: n, seqLen: t, inputIds } = batch;
  const lengths = sequenceLengths(batch);
  const { rows, rowOf, startOf } = place(lengths, t, options.onePerRow === true);
  const segments = segmentNumbers(rows, rowOf, startOf);
  const packedIds = new BigInt64Array(rows * t);
  const segmentIds = new BigInt64Array(rows * t);
  const positionIds = new BigInt64Array(rows * t);
  const offsets = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    const off = rowOf[s] * t + startOf[s];
    offsets[s] = off;
    packedIds.set(inputIds.subarray(s * t, s * t + lengths[s]), off);
    segmentIds.fill(BigInt(segments[s]), off, off + lengths[s]);
    for (let j = 0; j < lengths[s]; j++) positionIds[off + j] = BigInt(j);
  }
  return { rows, seqLen: t, inputIds: packedIds, segmentIds, positionIds, offsets, lengths };
}

/**
 * Prefix sharing: row i's K sequences (n = k·B + i, see PreferenceBatch) become one segment,
 * prompt ++ completion 1 ++ ... ++ completion K, with branch ids 0 (prompt) and k (completion k)
 * and the positions each token has in its unshared sequence (completion k continues from the
 * prompt's end). Segments are packed first-fit decreasing into rows as long as the longest
 * segment (several rows of the batch share a row when they fit), or one segment per row with
 * `onePerRow`. The token at t of sequence n lies at {@link packedIndex}(packed, batch, n, t).
 */
export function packSharedPrefix(batch: PreferenceBatch, options: { onePerRow?: boolean } = {}): PackedBatch {
  const { numSequences: n, batchSize: b, numCompletions: k, seqLen: t, inputIds, promptLengths } = batch;
  const lengths = sequenceLengths(batch);
  const unit = Int32Array.from({ length: b }, (_, i) => {
    let len = promptLengths[i];
    for (let c = 0; c < k; c++) len += lengths[c * b + i] - promptLengths[i];
    return len;
  });
  const rowLength = Math.max(1, ...unit);
  const { rows, rowOf, startOf } = place(unit, rowLength, options.onePerRow === true);
  const segments = segmentNumbers(rows, rowOf, startOf);
  const packedIds = new BigInt64Array(rows * rowLength);
  const segmentIds = new BigInt64Array(rows * rowLength);
  const positionIds = new BigInt64Array(rows * rowLength);
  const branchIds = new BigInt64Array(rows * rowLength);
  const offsets = new Int32Array(n);
  const completionShifts = new Int32Array(n);
  for (let i = 0; i < b; i++) {
    const off = rowOf[i] * rowLength + startOf[i];
    const p = promptLengths[i];
    segmentIds.fill(BigInt(segments[i]), off, off + unit[i]);
    packedIds.set(inputIds.subarray(i * t, i * t + p), off); // the prompt, from completion 1's sequence
    for (let j = 0; j < p; j++) positionIds[off + j] = BigInt(j);
    let at = off + p;
    for (let c = 0; c < k; c++) {
      const s = c * b + i;
      const len = lengths[s] - p;
      offsets[s] = off;
      completionShifts[s] = at - off - p;
      packedIds.set(inputIds.subarray(s * t + p, s * t + p + len), at);
      branchIds.fill(BigInt(c + 1), at, at + len);
      for (let j = 0; j < len; j++) positionIds[at + j] = BigInt(p + j);
      at += len;
    }
  }
  return { rows, seqLen: rowLength, inputIds: packedIds, segmentIds, positionIds, offsets, lengths, branchIds, completionShifts };
}

/** Flat index in `packed` of the token at t of `batch`'s sequence n (t below the sequence's length). */
export function packedIndex(packed: PackedBatch, batch: PreferenceBatch, n: number, t: number): number {
  const shift = packed.completionShifts && t >= batch.promptLengths[n] ? packed.completionShifts[n] : 0;
  return packed.offsets[n] + t + shift;
}

/**
 * The layout of a batch for a graph that takes branch ids (prefix sharing on or auto): shared
 * prefixes when they pay, else the packed (`paddingFree`) or padded batch in the same graph's
 * form, with branch ids all 0. `on` shares whenever the rows have K >= 2 completions; `auto` only
 * when the shared rows hold fewer token slots (rows x row length) than the layout they replace and
 * no larger an attention area (rows x row length²): longer shared rows can cost more in attention
 * scores than the prompt tokens save (gpt2-124m, prompt 64 + 2 x 192: 4 x 448 shared rows peaked
 * 1.2 GB above 8 x 256 padded rows).
 */
export function packForPrefixSharing(batch: PreferenceBatch, mode: 'auto' | 'on', paddingFree: boolean): PackedBatch {
  const plain = (): PackedBatch => {
    const p = packBatch(batch, { onePerRow: !paddingFree });
    return { ...p, branchIds: new BigInt64Array(p.rows * p.seqLen) };
  };
  if (batch.numCompletions < 2) return plain();
  const shared = packSharedPrefix(batch, { onePerRow: !paddingFree });
  if (mode === 'on') return shared;
  const other = plain();
  const slots = (p: PackedBatch): number => p.rows * p.seqLen;
  const attentionArea = (p: PackedBatch): number => p.rows * p.seqLen * p.seqLen;
  return slots(shared) < slots(other) && attentionArea(shared) <= attentionArea(other) ? shared : other;
}
