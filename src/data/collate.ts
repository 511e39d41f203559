import { DpoError } from '../errors.js';
import type { TokenizedPreference } from './tokenize.js';
import type { RowOrigin } from './types.js';

/**
 * A batch of B rows with K completions each, laid out as N = K·B sequences that go through the
 * model in one forward pass. All arrays are row-major [N, T].
 *
 * Sequence order: sequence n = k·B + i holds row i's completion k (0 = best). For pairs (K = 2)
 * rows 0..B-1 are the chosen sequences and rows B..2B-1 the rejected ones, in the same row order.
 * SFT batches have K = 1.
 *
 * Each sequence is prompt ++ completion, right-padded with the pad id to T = the longest sequence
 * of the batch (rounded up to a multiple of `padToMultipleOf` when given). Positions are 0..T-1
 * for every sequence (padding is on the right, so no position offsets are needed).
 *
 * Masks, two alignments:
 * - `completionMask[n,t]` = 1 iff the TOKEN at position t is a completion token (token-aligned);
 * - `lossMask[n,t]` = 1 iff the token at position t+1 is a completion token, i.e. the logits at
 *   position t predict a completion token (prediction-aligned: `lossMask[n,t] = completionMask[n,t+1]`,
 *   and the last column is 0). `labels[n,t]` is that predicted token, `inputIds[n,t+1]`, where
 *   lossMask is 1 and 0 elsewhere.
 * So a sequence's log-probability needs no shifting in the graph:
 * `logp[n] = sum_t lossMask[n,t] * log_softmax(logits[n,t])[labels[n,t]]`.
 * A completion token at position 0 (empty prompt, no BOS) has no predicting position and is not
 * scored, as in TRL.
 */
export interface PreferenceBatch {
  /** B: rows in this batch. */
  batchSize: number;
  /** K: completions per row (2 for pairs, 1 for SFT). */
  numCompletions: number;
  /** N = K·B. */
  numSequences: number;
  /** T: padded sequence length. */
  seqLen: number;
  /** [N, T] token ids, pad id after each sequence's end. */
  inputIds: BigInt64Array;
  /** [N, T] 1 for real tokens, 0 for padding. Float32 so graphs can use it without a Cast. */
  attentionMask: Float32Array;
  /** [N, T] token-aligned completion mask (see above). */
  completionMask: Float32Array;
  /** [N, T] prediction-aligned mask: 1 iff logits at t predict a completion token. */
  lossMask: Float32Array;
  /** [N, T] the token predicted at t (`inputIds[n,t+1]`) where lossMask is 1, else 0. */
  labels: BigInt64Array;
  /** [N] prompt length of each sequence (the same for the K sequences of a row). */
  promptLengths: Int32Array;
  /** [N] scored completion tokens per sequence = the row sum of lossMask (what length-normalised losses divide by). */
  completionLengths: Int32Array;
  /** [B] where each row came from. */
  origins: RowOrigin[];
  /** [B] the rows' indices in the batcher's row list (set by PreferenceBatcher). */
  rowIndices?: readonly number[];
}

/** Options of {@link collatePreferences}. */
export interface CollateOptions {
  padTokenId: number;
  /** Round T up to a multiple of this (fewer distinct shapes, friendlier kernels). */
  padToMultipleOf?: number;
}

/** Lays out `rows` as one {@link PreferenceBatch}; all rows must have the same number of completions. */
export function collatePreferences(rows: readonly TokenizedPreference[], options: CollateOptions): PreferenceBatch {
  if (rows.length === 0) throw new DpoError('cannot collate an empty batch');
  const B = rows.length;
  const K = rows[0].completionIds.length;
  let longest = 0;
  for (const row of rows) {
    if (row.completionIds.length !== K) {
      throw new DpoError(
        `${row.origin.file}:${row.origin.line}: ${row.completionIds.length} completions in a batch of rows with ${K}; all rows of a dataset must have the same number`,
      );
    }
    for (const c of row.completionIds) longest = Math.max(longest, row.promptIds.length + c.length);
  }
  const multiple = options.padToMultipleOf ?? 1;
  if (!Number.isInteger(multiple) || multiple < 1) throw new DpoError(`padToMultipleOf must be a positive integer, got ${multiple}`);
  const T = Math.ceil(longest / multiple) * multiple;
  const N = K * B;

  const inputIds = new BigInt64Array(N * T).fill(BigInt(options.padTokenId));
  const attentionMask = new Float32Array(N * T);
  const completionMask = new Float32Array(N * T);
  const lossMask = new Float32Array(N * T);
  const labels = new BigInt64Array(N * T);
  const promptLengths = new Int32Array(N);
  const completionLengths = new Int32Array(N);

  for (let k = 0; k < K; k++) {
    for (let i = 0; i < B; i++) {
      const n = k * B + i;
      const { promptIds } = rows[i];
      const completion = rows[i].completionIds[k];
      const base = n * T;
      const P = promptIds.length;
      const L = P + completion.length;
      for (let t = 0; t < P; t++) inputIds[base + t] = BigInt(promptIds[t]);
      for (let j = 0; j < completion.length; j++) inputIds[base + P + j] = BigInt(completion[j]);
      attentionMask.fill(1, base, base + L);
      completionMask.fill(1, base + P, base + L);
      // Position t predicts token t+1: the scored positions are P-1 .. L-2 (from 0 when P = 0).
      const first = Math.max(P - 1, 0);
      lossMask.fill(1, base + first, base + L - 1);
      for (let t = first; t < L - 1; t++) labels[base + t] = inputIds[base + t + 1];
      promptLengths[n] = P;
      completionLengths[n] = L - 1 - first;
    }
  }
  return {
    batchSize: B,
    numCompletions: K,
    numSequences: N,
    seqLen: T,
    inputIds,
    attentionMask,
    completionMask,
    lossMask,
    labels,
    promptLengths,
    completionLengths,
    origins: rows.map((r) => r.origin),
  };
}
