/**
 * The DPO loss family as pure functions of per-sequence log-probabilities (graph tensors), with
 * TRL's `loss_type` names. Formulas: ../shared/docs/dpo.md. No function here sees a model.
 *
 * Notation: rc = log pi(y_w|x) - log pi_ref(y_w|x), rr likewise for y_l, d = rc - rr.
 */
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { logSigmoid, logSumExp } from '../engine/nn.js';

export const LOSS_TYPES = [
  'sigmoid',
  'hinge',
  'ipo',
  'robust',
  'exo_pair',
  'bco_pair',
  'sppo_hard',
  'nca_pair',
  'apo_zero',
  'apo_down',
  'sigmoid_norm',
  'sft',
  'unlikelihood',
] as const;
export type LossType = (typeof LOSS_TYPES)[number];

/** Per-sequence quantities, laid out [K, B]: completion k (0 = best) of row i at [k, i]. */
export interface SequenceLogps {
  /** Sum of completion-token log-probs under the policy. */
  policy: Tensor;
  /** The same under the reference; omitted for reference-free losses (treated as 0). */
  reference?: Tensor;
  /** Completion lengths in tokens (float). */
  lengths: Tensor;
  /**
   * Sum over the completion's tokens of log(1 - pi(y_t | x, y_<t)) under the policy ('unlikelihood'
   * needs it: a per-token quantity that the per-sequence sum in `policy` cannot give).
   */
  logUnlikelihood?: Tensor;
}

export interface LossOptions {
  beta: number;
  /** eps of conservative DPO / robust / EXO. */
  labelSmoothing?: number;
  /** alpha of 'unlikelihood': weight of the rejected completion's unlikelihood term (default 1). */
  unlikelihoodAlpha?: number;
}

const row = (t: Tensor, k: number): Tensor => op.squeeze(op.slice(t, 0, k, k + 1), 0);

/** log pi - log pi_ref for every sequence, [K, B]. */
export function logRatios(lp: SequenceLogps): Tensor {
  return lp.reference ? op.sub(lp.policy, lp.reference) : lp.policy;
}

/** Per-row loss [B] of a pairwise type (K = 2). */
export function pairLoss(type: Exclude<LossType, 'sft'>, lp: SequenceLogps, options: LossOptions): Tensor {
  const beta = options.beta;
  const eps = options.labelSmoothing ?? 0;
  const ratios = logRatios(lp);
  const rc = row(ratios, 0);
  const rr = row(ratios, 1);
  const d = op.sub(rc, rr);
  const bd = op.mul(d, beta);
  switch (type) {
    case 'sigmoid':
      return eps
        ? op.sub(op.mul(logSigmoid(bd), -(1 - eps)), op.mul(logSigmoid(op.neg(bd)), eps))
        : op.neg(logSigmoid(bd));
    case 'hinge':
      return op.relu(op.sub(1, bd));
    case 'ipo': {
      const lc = row(lp.lengths, 0);
      const lr = row(lp.lengths, 1);
      const diff = op.sub(op.sub(op.div(rc, lc), op.div(rr, lr)), 1 / (2 * beta));
      return op.mul(diff, diff);
    }
    case 'robust':
      return op.div(op.add(op.mul(logSigmoid(bd), -(1 - eps)), op.mul(logSigmoid(op.neg(bd)), eps)), 1 - 2 * eps);
    case 'exo_pair': {
      // EXO needs 0 < eps < 1; TRL's recommended 1e-3 when none is given.
      const e = eps > 0 ? eps : 1e-3;
      const pos = op.mul(op.sigmoid(bd), op.sub(logSigmoid(bd), Math.log(1 - e)));
      const neg = op.mul(op.sigmoid(op.neg(bd)), op.sub(logSigmoid(op.neg(bd)), Math.log(e)));
      return op.add(pos, neg);
    }
    case 'bco_pair':
      return op.neg(op.add(logSigmoid(op.mul(rc, beta)), logSigmoid(op.mul(rr, -beta))));
    case 'sppo_hard': {
      const a = op.sub(rc, 1 / (2 * beta));
      const b = op.add(rr, 1 / (2 * beta));
      return op.add(op.mul(a, a), op.mul(b, b));
    }
    case 'nca_pair': {
      const c = op.mul(rc, beta);
      const r = op.mul(rr, beta);
      return op.neg(op.add(logSigmoid(c), op.mul(op.add(logSigmoid(op.neg(c)), logSigmoid(op.neg(r))), 0.5)));
    }
    case 'apo_zero':
      return op.add(op.sub(1, op.sigmoid(op.mul(rc, beta))), op.sigmoid(op.mul(rr, beta)));
    case 'apo_down':
      return op.add(op.sigmoid(op.mul(rc, beta)), op.sub(1, op.sigmoid(bd)));
    case 'sigmoid_norm': {
      const lc = row(lp.lengths, 0);
      const lr = row(lp.lengths, 1);
      return op.neg(logSigmoid(op.mul(op.sub(op.div(rc, lc), op.div(rr, lr)), beta)));
    }
    case 'unlikelihood':
      return unlikelihoodLoss(lp, options.unlikelihoodAlpha ?? 1);
  }
}

/**
 * The DPO paper's Unlikelihood baseline (Welleck et al.'s token-level unlikelihood on the
 * rejected completion): -log pi(y_w|x) - alpha * sum_t log(1 - pi(y_l,t | x, y_l,<t)) per row.
 * It ignores the reference and beta.
 */
export function unlikelihoodLoss(lp: SequenceLogps, alpha: number): Tensor {
  if (!lp.logUnlikelihood) throw new Error("loss type 'unlikelihood' needs the per-sequence sums of log(1 - p) (SequenceLogps.logUnlikelihood)");
  return op.sub(op.neg(row(lp.policy, 0)), op.mul(row(lp.logUnlikelihood, 1), alpha));
}

/**
 * Plackett-Luce loss per row [B] for K ranked completions (best first):
 * -sum_k log( exp(r_k) / sum_{j>=k} exp(r_j) ) with r = beta * log-ratio. K = 2 is sigmoid DPO.
 */
export function plackettLuceLoss(lp: SequenceLogps, options: LossOptions): Tensor {
  const rewards = op.mul(logRatios(lp), options.beta);
  const k = rewards.shape[0];
  if (typeof k !== 'number' || k < 2) throw new Error(`Plackett-Luce needs a static K >= 2 completions, got ${k}`);
  let total: Tensor | undefined;
  for (let i = 0; i < k - 1; i++) {
    const term = op.sub(logSumExp(op.slice(rewards, 0, i), 0), row(rewards, i));
    total = total ? op.add(total, term) : term;
  }
  return total as Tensor;
}

/** Mean token negative log-likelihood of the best completion over the batch. */
export function sftLoss(lp: SequenceLogps): Tensor {
  return op.div(op.neg(op.sum(row(lp.policy, 0))), op.maximum(op.sum(row(lp.lengths, 0)), 1));
}

export interface CombinedLossOptions extends LossOptions {
  lossTypes: readonly LossType[];
  /** One weight per loss type (default 1 each). */
  lossWeights?: readonly number[];
}

/**
 * The batch loss: sum over types of weight * (mean over rows of the type's per-row loss).
 * With K > 2 completions, 'sigmoid' is the Plackett-Luce loss; other pairwise types need K = 2.
 */
export function preferenceLoss(lp: SequenceLogps, options: CombinedLossOptions): Tensor {
  const k = lp.policy.shape[0];
  const weights = options.lossWeights ?? options.lossTypes.map(() => 1);
  if (weights.length !== options.lossTypes.length) {
    throw new Error(`${weights.length} loss weights for ${options.lossTypes.length} loss types`);
  }
  let total: Tensor | undefined;
  options.lossTypes.forEach((type, i) => {
    let l: Tensor;
    if (type === 'sft') l = sftLoss(lp);
    else if (k === 2) l = op.mean(pairLoss(type, lp, options));
    else if (type === 'sigmoid') l = op.mean(plackettLuceLoss(lp, options));
    else throw new Error(`loss type '${type}' needs pairs; rankings of ${k} completions train with 'sigmoid' (Plackett-Luce)`);
    const w = weights[i] === 1 ? l : op.mul(l, weights[i]);
    total = total ? op.add(total, w) : w;
  });
  if (!total) throw new Error('no loss type given');
  return total;
}

/**
 * Per-row losses [B] of the same combination (for evaluation and per-example output): pairwise
 * types as in training; 'sft' per row is the chosen completion's mean token NLL.
 */
export function preferenceLossPerRow(lp: SequenceLogps, options: CombinedLossOptions): Tensor {
  const k = lp.policy.shape[0];
  const weights = options.lossWeights ?? options.lossTypes.map(() => 1);
  let total: Tensor | undefined;
  options.lossTypes.forEach((type, i) => {
    let l: Tensor;
    if (type === 'sft') l = op.neg(op.div(row(lp.policy, 0), op.maximum(row(lp.lengths, 0), 1)));
    else if (k === 2) l = pairLoss(type, lp, options);
    else if (type === 'sigmoid') l = plackettLuceLoss(lp, options);
    else throw new Error(`loss type '${type}' needs pairs; rankings of ${k} completions train with 'sigmoid' (Plackett-Luce)`);
    const w = weights[i] === 1 ? l : op.mul(l, weights[i]);
    total = total ? op.add(total, w) : w;
  });
  if (!total) throw new Error('no loss type given');
  return total;
}
