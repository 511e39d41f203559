/**
 * Per-sequence log-probabilities of completions: the quantity every loss in losses.ts consumes.
 * Only the positions that predict a completion token go through the vocabulary projection, so
 * the [tokens, vocab] logits cover completions only (prompt and padding never reach lm_head), in
 * checkpointed chunks (scoredHead).
 */
import type { FloatDType } from '../engine/dtype.js';
import type { Graph, Tensor } from '../engine/graph.js';
import { grad, hasGradientPath, requiresGrad } from '../engine/autodiff.js';
import { checkpoint } from '../engine/checkpoint.js';
import * as op from '../engine/ops.js';
import { logSumExp } from '../engine/nn.js';
import type { HostTensor } from '../engine/runtime.js';
import type { PreferenceBatch } from '../data/collate.js';
import { packBatch, packedIndex, packForPrefixSharing, type PackedBatch, type PrefixSharing } from '../data/pack.js';
import type { CausalLM } from '../models/types.js';
import type { ModelParams } from '../models/linear.js';
import type { DropoutSites } from '../models/dropout.js';

/**
 * Graph inputs of a scoring graph. Padded: the N sequences are the N rows. Padding-free
 * (`packed`): R rows each holding several sequences end to end (data/pack.ts).
 */
export interface ScoredInputs {
  /** int64 [N, T] (packed: [R, T]). */
  inputIds: Tensor;
  /** float [N, T], 1 for real tokens (packed: int64 [R, T] segment ids, 0 on the unused tail). */
  attentionMask: Tensor;
  /** int64 [M]: flat index of every position whose logits predict a completion token (n*T + t; packed: r*T + t). */
  positions: Tensor;
  /** int64 [M]: the token predicted there. */
  targets: Tensor;
  /** int64 [M]: its sequence n. */
  segments: Tensor;
  /** Packed only: int64 [R, T] positions within each sequence. */
  positionIds?: Tensor;
  /** Packed only: int64 [N] tokens per sequence (gives the graph its number of sequences). */
  sequenceLengths?: Tensor;
  /** Prefix sharing only: int64 [R, T] 0 for shared prompt tokens, k for completion k (ForwardInputs.branchIds). */
  branchIds?: Tensor;
}

/**
 * How batches go through a scoring graph: padded (the default), `packed` (padding-free), or,
 * with `prefixSharing` 'auto' or 'on', in the packed form with branch ids, each row's prompt
 * shared by its K completions (data/pack.ts: packSharedPrefix; 'auto' shares a batch's prefixes
 * only when that makes it shorter, see packForPrefixSharing). 'off' or absent: no branch ids.
 */
export interface ScoredLayout {
  packed?: boolean;
  prefixSharing?: PrefixSharing;
}

/** Whether a layout's graph takes branch ids (prefix sharing 'auto' or 'on'). */
export function sharesPrefixes(layout: ScoredLayout): boolean {
  return layout.prefixSharing === 'auto' || layout.prefixSharing === 'on';
}

export function declareScoredInputs(g: Graph, dtype: FloatDType = 'float32', options: ScoredLayout = {}): ScoredInputs {
  const scored = {
    positions: g.input('score_positions', 'int64', ['scored']),
    targets: g.input('score_targets', 'int64', ['scored']),
    segments: g.input('score_segments', 'int64', ['scored']),
  };
  if (!options.packed && !sharesPrefixes(options)) {
    return { inputIds: g.input('input_ids', 'int64', ['sequences', 'seq']), attentionMask: g.input('attention_mask', dtype, ['sequences', 'seq']), ...scored };
  }
  return {
    inputIds: g.input('input_ids', 'int64', ['rows', 'seq']),
    attentionMask: g.input('attention_mask', 'int64', ['rows', 'seq']),
    positionIds: g.input('position_ids', 'int64', ['rows', 'seq']),
    sequenceLengths: g.input('sequence_lengths', 'int64', ['sequences']),
    ...(sharesPrefixes(options) ? { branchIds: g.input('branch_ids', 'int64', ['rows', 'seq']) } : {}),
    ...scored,
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
  /** [N] LD-DPO's length-desensitised log-probs (with {@link ScoringOptions.ldAlpha}). */
  ldLogps?: Tensor;
  /** [N] WPO: sum over tokens of log p(token) - log sum_v p(v)^2, no gradient (with {@link ScoringOptions.wpo}). */
  wpoLogWeightSums?: Tensor;
}

/** Extra per-sequence quantities some DPO options need. */
export interface ScoringOptions {
  /**
   * LD-DPO (Liu et al. 2024): the tokens past the pair's shorter completion count alpha times
   * (fed per scored token as `token_weights`, see {@link ldTokenWeights}).
   */
  ldAlpha?: number;
  /** WPO (Zhou et al. 2024): the per-token log weights of eq. 2. */
  wpo?: boolean;
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
 * LM_HEAD_CHUNKS chunks of positions (in order; a chunk may be empty). Returns, per chunk, the
 * results and the chunk's segments. perToken's results must be per-row ([rows]), each row a
 * function of that row's logits only.
 *
 * Two constructions, by whether the head's weights can get gradients:
 * - trainable head (full fine-tuning): each chunk is checkpointed, its [rows, vocab] tensors
 *   recomputed in the backward, one chunk after another;
 * - frozen head (LoRA: TrainStep freezes the base weights) with hidden states that need
 *   gradients: each result's gradient w.r.t. its row, q = d result / d h (for a token log-prob
 *   W[y] - softmax(h Wᵀ) W), is computed in the forward, and the result leaves as
 *   stop(result) + (h·stop(q) - stop(h·stop(q))) — the same value (the last two terms are one
 *   tensor minus itself), and the gradient g·q. The backward then does nothing vocabulary-sized:
 *   of the three [rows, vocab] x [vocab, hidden] products (forward, recomputed forward, input
 *   gradient) two remain.
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
  let frozen: boolean | undefined;
  return Array.from({ length: k }, (_, c) => {
    const start = op.minimum(op.mul(size, int(c)), m);
    const end = op.minimum(op.mul(size, int(c + 1)), m);
    // A chunk may be empty (fewer rows than chunks, or the last ones); the head then runs on one
    // stand-in row, whose results are sliced away: WebGPU's reductions refuse empty inputs.
    const computed = op.minimum(op.range(start, op.maximum(end, op.add(start, int(1)))), op.sub(m, int(1)));
    const kept = op.range(int(0), op.sub(end, start));
    const targets = op.gather(inputs.targets, computed);
    const picked = op.gather(flat, op.gather(inputs.positions, computed));
    let stacked: Tensor;
    frozen ??= requiresGrad(picked) && !headRequiresGrad(model, params, picked);
    if (frozen) {
      const values = perToken(model.logits(params, picked), targets).map((v) => {
        if (!hasGradientPath(v, picked)) return v;
        const [q] = grad(op.sum(v), [picked]);
        const z = op.sum(op.mul(picked, op.stopGradient(q)), -1);
        return op.add(op.stopGradient(v), op.sub(z, op.stopGradient(z)));
      });
      stacked = op.concat(values.map((v) => op.unsqueeze(v, 0)), 0);
    } else {
      // perToken's results leave the checkpoint stacked as one [results, rows] tensor: ONNX Runtime
      // then computes them together and drops the chunk's logits before the next chunk's exist.
      [stacked] = checkpoint([picked, ...names.map((n) => params[n])], ([h, ...ps]) => {
        const p = Object.fromEntries(names.map((n, i) => [n, ps[i]]));
        return [op.concat(perToken(model.logits(p, h), targets).map((v) => op.unsqueeze(v, 0)), 0)];
      });
    }
    const values = op.split(stacked, 0, Array<number>(stacked.shape[0] as number).fill(1)).map((v) => op.gather(op.squeeze(v, 0), kept));
    // Segments through the same `kept` as the values, so both carry one symbolic length.
    return { segments: op.gather(op.gather(inputs.segments, computed), kept), values };
  });
}

/** Whether the model's head (`logits` of hidden rows `h`) reads any weight that may need a gradient. */
function headRequiresGrad(model: CausalLM, params: Readonly<Record<string, Tensor>>, h: Tensor): boolean {
  // A probe of the head on h (dangling unless used: the export keeps only what outputs need).
  const probe = model.logits(params, h);
  const seen = new Set<number>([h.id]);
  const stack = [probe];
  while (stack.length) {
    const t = stack.pop() as Tensor;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    if (t.kind === 'input' && requiresGrad(t)) return true;
    if (t.node) stack.push(...t.node.inputs);
  }
  return false;
}

/** The model's final hidden states for scoring inputs, padded, packed (positions restart per packed sequence) or prefix-shared. */
export function scoredForward(model: CausalLM, params: ModelParams, inputs: ScoredInputs, dropout?: DropoutSites): Tensor {
  const { inputIds, attentionMask, positionIds, branchIds } = inputs;
  return model.forward(params, { inputIds, attentionMask, positionIds, ...(branchIds ? { branchIds } : {}), dropout }).hidden;
}

export function sequenceLogps(
  model: CausalLM,
  params: Readonly<Record<string, Tensor>>,
  inputs: ScoredInputs,
  dropout?: DropoutSites,
  options: ScoringOptions = {},
): SequenceScores {
  const g = inputs.inputIds.graph;
  const hidden = scoredForward(model, params, inputs, dropout);
  const chunks = scoredHead(model, params, hidden, inputs, (logits, targets) => {
    const target = op.squeeze(op.gatherElements(logits, op.unsqueeze(targets, 1), 1), 1);
    const lse = logSumExp(logits, -1);
    const tokenLogps = op.sub(target, lse);
    const out = [tokenLogps, op.stopGradient(op.mean(logits, -1))];
    // log sum_v p(v)^2 = logsumexp(2 logits) - 2 logsumexp(logits).
    if (options.wpo) out.push(op.stopGradient(op.sub(tokenLogps, op.sub(logSumExp(op.mul(logits, 2), -1), op.mul(lse, 2)))));
    return out;
  });
  const sequences = inputs.sequenceLengths ?? inputs.inputIds;
  const zeros = op.constantOfShape(g, [sequences.shape[0]], 0, hidden.dtype, sequences);
  const perSequence = (value: number): Tensor => chunks.reduce((acc, c) => op.scatterAdd(acc, c.segments, c.values[value], 0), zeros);
  const tokenLogps = op.concat(chunks.map((c) => c.values[0]), 0);
  const logUnlikelihood = chunks.reduce((acc, c) => op.scatterAdd(acc, c.segments, logOneMinusProb(c.values[0]), 0), zeros);
  const scores: SequenceScores = { logps: perSequence(0), logitSums: perSequence(1), tokenLogps, logUnlikelihood };
  if (options.wpo) scores.wpoLogWeightSums = perSequence(2);
  if (options.ldAlpha !== undefined) {
    const weights = g.input('token_weights', hidden.dtype, ['scored']);
    // The chunks' concatenation has a symbolic length of its own; it is the scored positions, in order.
    scores.ldLogps = op.scatterAdd(zeros, inputs.segments, op.mul(op.reshapeLike(tokenLogps, weights), weights), 0);
  }
  return scores;
}

/**
 * LD-DPO's `token_weights` feed, in score-position order: 1 for the first min_k |y_k| tokens of
 * each completion of a row (the pair's "public" length), alpha for the rest.
 */
export function ldTokenWeights(batch: PreferenceBatch, alpha: number): Float32Array {
  const { batchSize: b, numCompletions: k, seqLen: t, lossMask, completionLengths } = batch;
  const publicLength = Array.from({ length: b }, (_, i) => Math.min(...Array.from({ length: k }, (_, c) => completionLengths[c * b + i])));
  const out: number[] = [];
  for (let n = 0; n < k * b; n++) {
    let seen = 0;
    for (let j = n * t; j < (n + 1) * t; j++) {
      if (!lossMask[j]) continue;
      out.push(seen < publicLength[n % b] ? 1 : alpha);
      seen++;
    }
  }
  return Float32Array.from(out);
}

/** The `token_weights` feed of a batch (LD-DPO). */
export function tokenWeightsFeed(batch: PreferenceBatch, alpha: number): HostTensor {
  const w = ldTokenWeights(batch, alpha);
  return { data: w, dims: [w.length] };
}

/**
 * WPO's row weights [B] (no gradient): min(1, exp(sum over the row's completions of the mean
 * per-token log weight)), from {@link SequenceScores.wpoLogWeightSums} [N] and lengths [N].
 */
export function wpoRowWeights(logWeightSums: Tensor, lengths: Tensor, k: number): Tensor {
  const perSequence = op.div(logWeightSums, op.maximum(lengths, 1));
  return op.minimum(op.exp(op.sum(op.reshape(perSequence, [k, -1]), 0)), 1);
}

/** {@link wpoRowWeights} on the host (evaluation): [B] from [N] sums and lengths. */
export function wpoRowWeightsOf(logWeightSums: ArrayLike<number>, lengths: ArrayLike<number>, k: number): Float64Array {
  const b = logWeightSums.length / k;
  const out = new Float64Array(b);
  for (let i = 0; i < b; i++) {
    let s = 0;
    for (let c = 0; c < k; c++) s += logWeightSums[c * b + i] / Math.max(lengths[c * b + i], 1);
    out[i] = Math.min(Math.exp(s), 1);
  }
  return out;
}

/**
 * The scoring feeds of a collated batch (see PreferenceBatch for the mask convention); with
 * `packed`, of the same batch packed padding-free (declareScoredInputs(g, dtype, { packed: true }));
 * with prefix sharing 'auto' or 'on', in the prefix-sharing graph's form (see ScoredLayout).
 */
export function scoredFeeds(batch: PreferenceBatch, options: ScoredLayout = {}): Record<string, HostTensor> {
  const { numSequences: n, seqLen: t, lossMask, labels } = batch;
  const packed = scoredPacking(batch, options);
  let m = 0;
  for (let i = 0; i < lossMask.length; i++) if (lossMask[i]) m++;
  const positions = new BigInt64Array(m);
  const targets = new BigInt64Array(m);
  const segments = new BigInt64Array(m);
  let j = 0;
  for (let i = 0; i < lossMask.length; i++) {
    if (!lossMask[i]) continue;
    const seq = Math.floor(i / t);
    positions[j] = BigInt(packed ? packedIndex(packed, batch, seq, i - seq * t) : i);
    targets[j] = labels[i];
    segments[j] = BigInt(seq);
    j++;
  }
  const scored = {
    score_positions: { data: positions, dims: [m] },
    score_targets: { data: targets, dims: [m] },
    score_segments: { data: segments, dims: [m] },
  };
  if (packed) {
    const dims = [packed.rows, packed.seqLen];
    return {
      input_ids: { data: packed.inputIds, dims },
      attention_mask: { data: packed.segmentIds, dims },
      position_ids: { data: packed.positionIds, dims },
      sequence_lengths: { data: BigInt64Array.from(packed.lengths, BigInt), dims: [n] },
      ...(packed.branchIds ? { branch_ids: { data: packed.branchIds, dims } } : {}),
      ...scored,
    };
  }
  return {
    input_ids: { data: batch.inputIds, dims: [n, t] },
    attention_mask: { data: batch.attentionMask, dims: [n, t] },
    ...scored,
  };
}

/** The packed rows a batch is fed as under `layout` (undefined: padded). */
export function scoredPacking(batch: PreferenceBatch, layout: ScoredLayout): PackedBatch | undefined {
  if (layout.prefixSharing === 'auto' || layout.prefixSharing === 'on') return packForPrefixSharing(batch, layout.prefixSharing, layout.packed === true);
  return layout.packed ? packBatch(batch) : undefined;
}
