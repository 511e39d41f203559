/**
 * Per-sequence log-probabilities of completions: the quantity every loss in losses.ts consumes.
 * Only the positions that predict a completion token go through the vocabulary projection, so
 * the [tokens, vocab] logits cover completions only (prompt and padding never reach lm_head), in
 * checkpointed chunks (scoredHead).
 */
import type { FloatDType } from '../engine/dtype.js';
import type { Graph, Tensor } from '../engine/graph.js';
import { checkpoint } from '../engine/checkpoint.js';
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
  /** [N] sum over completion tokens of log(1 - p(token)) (the unlikelihood term). */
  logUnlikelihood: Tensor;
}

/**
 * 1 - p is clamped here before the log, as in Welleck et al.'s unlikelihood code: a token the
 * model is certain of would otherwise give log 0 in float32.
 */
export const UNLIKELIHOOD_FLOOR = 1e-5;

/** log(1 - exp(logp)) per token, with 1 - p clamped at UNLIKELIHOOD_FLOOR. */
export function logOneMinusProb(tokenLogps: Tensor): Tensor {
  return op.log(op.maximum(op.sub(1, op.exp(tokenLogps)), UNLIKELIHOOD_FLOOR));
}

/**
 * The vocabulary projection runs on this many chunks of the scored rows, each checkpointed (its
 * [rows, vocab] tensors are recomputed in the backward, one chunk after another): a gpt2-124m DPO
 * step of 4 pairs x 256 tokens would otherwise hold several [1536, 50257] tensors (309 MB each).
 */
export const LM_HEAD_CHUNKS = 8;

/**
 * `perToken(logits, targets)` on the logits of every scored position, computed in
 * LM_HEAD_CHUNKS checkpointed chunks of positions (in order; a chunk may be empty). Returns, per
 * chunk, the results and the chunk's segments. perToken's results must be per-row ([rows]).
 */
export function scoredHead(
  model: CausalLM,
  params: Readonly<Record<string, Tensor>>,
  hidden: Tensor,
  inputs: Pick<ScoredInputs, 'positions' | 'targets' | 'segments'>,
  perToken: (logits: Tensor, targets: Tensor) => Tensor[],
): { segments: Tensor; values: Tensor[] }[] {
  const flat = op.reshape(hidden, [-1, model.config.hiddenSize]);
  const g = flat.graph;
  const m = op.reshape(op.dimTensor(g, inputs.positions.shape[0], inputs.positions), []);
  const k = LM_HEAD_CHUNKS;
  const int = (v: number): Tensor => op.scalar(g, v, 'int64');
  const size = op.div(op.add(m, int(k - 1)), int(k));
  const names = Object.keys(params);
  return Array.from({ length: k }, (_, c) => {
    const start = op.minimum(op.mul(size, int(c)), m);
    const end = op.minimum(op.mul(size, int(c + 1)), m);
    const rows = op.range(start, end);
    const targets = op.gather(inputs.targets, rows);
    const picked = op.gather(flat, op.gather(inputs.positions, rows));
    // perToken's results leave the checkpoint stacked as one [results, rows] tensor: ONNX Runtime
    // then computes them together and drops the chunk's logits before the next chunk's exist.
    const [stacked] = checkpoint([picked, ...names.map((n) => params[n])], ([h, ...ps]) => {
      const p = Object.fromEntries(names.map((n, i) => [n, ps[i]]));
      return [op.concat(perToken(model.logits(p, h), targets).map((v) => op.unsqueeze(v, 0)), 0)];
    });
    const values = op.split(stacked, 0, Array<number>(stacked.shape[0] as number).fill(1)).map((v) => op.squeeze(v, 0));
    return { segments: op.gather(inputs.segments, rows), values };
  });
}

export function sequenceLogps(
  model: CausalLM,
  params: Readonly<Record<string, Tensor>>,
  inputs: ScoredInputs,
  dropout?: DropoutSites,
): SequenceScores {
  const g = inputs.inputIds.graph;
  const { hidden } = model.forward(params, { inputIds: inputs.inputIds, attentionMask: inputs.attentionMask, dropout });
  const chunks = scoredHead(model, params, hidden, inputs, (logits, targets) => {
    const target = op.squeeze(op.gatherElements(logits, op.unsqueeze(targets, 1), 1), 1);
    const tokenLogps = op.sub(target, logSumExp(logits, -1));
    return [tokenLogps, op.stopGradient(op.mean(logits, -1))];
  });
  const zeros = op.constantOfShape(g, [inputs.inputIds.shape[0]], 0, hidden.dtype, inputs.inputIds);
  let logps = zeros;
  let logitSums = zeros;
  let logUnlikelihood = zeros;
  for (const { segments, values: [tokenLogps, meanLogit] } of chunks) {
    logps = op.scatterAdd(logps, segments, tokenLogps, 0);
    logitSums = op.scatterAdd(logitSums, segments, meanLogit, 0);
    logUnlikelihood = op.scatterAdd(logUnlikelihood, segments, logOneMinusProb(tokenLogps), 0);
  }
  return { logps, logitSums, tokenLogps: op.concat(chunks.map((c) => c.values[0]), 0), logUnlikelihood };
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
