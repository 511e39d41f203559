/**
 * Per-sequence log-probabilities of completions: the quantity every loss in losses.ts consumes.
 * Only the positions that predict a completion token go through the vocabulary projection, so
 * the [tokens, vocab] logits cover completions only (prompt and padding never reach lm_head).
 */
import type { FloatDType } from '../engine/dtype.js';
import type { Graph, Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { logSumExp } from '../engine/nn.js';
import type { HostTensor } from '../engine/runtime.js';
import type { PreferenceBatch } from '../data/collate.js';
import type { CausalLM } from '../models/types.js';
import type { DropoutSites } from '../models/dropout.js';

/** Graph inputs of a scoring graph. */
export interface ScoredInputs {
  /** int64 [N, T]. */
  inputIds: Tensor;
  /** float [N, T], 1 for real tokens. */
  attentionMask: Tensor;
  /** int64 [M]: flat index n*T + t of every position whose logits predict a completion token. */
  positions: Tensor;
  /** int64 [M]: the token predicted there. */
  targets: Tensor;
  /** int64 [M]: its sequence n. */
  segments: Tensor;
}

export function declareScoredInputs(g: Graph, dtype: FloatDType = 'float32'): ScoredInputs {
  return {
    inputIds: g.input('input_ids', 'int64', ['sequences', 'seq']),
    attentionMask: g.input('attention_mask', dtype, ['sequences', 'seq']),
    positions: g.input('score_positions', 'int64', ['scored']),
    targets: g.input('score_targets', 'int64', ['scored']),
    segments: g.input('score_segments', 'int64', ['scored']),
  };
}

export interface SequenceScores {
  /** [N] sum of completion-token log-probs per sequence. */
  logps: Tensor;
  /** [N] sum over completion tokens of the mean logit over the vocabulary (TRL's logits/* metrics). */
  logitSums: Tensor;
  /** [M] per-token log-probs. */
  tokenLogps: Tensor;
}

export function sequenceLogps(
  model: CausalLM,
  params: Readonly<Record<string, Tensor>>,
  inputs: ScoredInputs,
  dropout?: DropoutSites,
): SequenceScores {
  const g = inputs.inputIds.graph;
  const { hidden } = model.forward(params, { inputIds: inputs.inputIds, attentionMask: inputs.attentionMask, dropout });
  const d = model.config.hiddenSize;
  const flat = op.reshape(hidden, [-1, d]);
  const picked = op.gather(flat, inputs.positions);
  const logits = model.logits(params, picked);
  const lse = logSumExp(logits, -1);
  const target = op.squeeze(op.gatherElements(logits, op.unsqueeze(inputs.targets, 1), 1), 1);
  const tokenLogps = op.sub(target, lse);
  const zeros = op.constantOfShape(g, [inputs.inputIds.shape[0]], 0, hidden.dtype, inputs.inputIds);
  const logps = op.scatterAdd(zeros, inputs.segments, tokenLogps, 0);
  const meanLogit = op.stopGradient(op.mean(logits, -1));
  const logitSums = op.scatterAdd(zeros, inputs.segments, meanLogit, 0);
  return { logps, logitSums, tokenLogps };
}

/** The scoring feeds of a collated batch (see PreferenceBatch for the mask convention). */
export function scoredFeeds(batch: PreferenceBatch): Record<string, HostTensor> {
  const { numSequences: n, seqLen: t, lossMask, labels } = batch;
  let m = 0;
  for (let i = 0; i < lossMask.length; i++) if (lossMask[i]) m++;
  const positions = new BigInt64Array(m);
  const targets = new BigInt64Array(m);
  const segments = new BigInt64Array(m);
  let j = 0;
  for (let i = 0; i < lossMask.length; i++) {
    if (!lossMask[i]) continue;
    positions[j] = BigInt(i);
    targets[j] = labels[i];
    segments[j] = BigInt(Math.floor(i / t));
    j++;
  }
  return {
    input_ids: { data: batch.inputIds, dims: [n, t] },
    attention_mask: { data: batch.attentionMask, dims: [n, t] },
    score_positions: { data: positions, dims: [m] },
    score_targets: { data: targets, dims: [m] },
    score_segments: { data: segments, dims: [m] },
  };
}
