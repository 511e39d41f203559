/**
 * Reference-free preference losses (no pi_ref): CPO and its SimPO / AlphaPO variants, and ORPO's
 * odds-ratio term, as pure functions of per-sequence log-probs, with TRL's CPOTrainer /
 * ORPOTrainer names. `chosen` and `rejected` are [B] log-probs: token-mean ones for ipo, simpo,
 * alphapo and ORPO (TRL's average_log_prob), sums otherwise.
 */
import type { Tensor } from '../../engine/graph.js';
import { logSigmoid } from '../../engine/nn.js';
import * as op from '../../engine/ops.js';
import { smoothedSigmoid } from '../core/loss-terms.js';

export const CPO_LOSS_TYPES = ['sigmoid', 'hinge', 'ipo', 'simpo', 'alphapo'] as const;
export type CpoLossType = (typeof CPO_LOSS_TYPES)[number];

/** The CPO loss types that compare token-mean log-probs (length-normalised), as TRL. */
export const LENGTH_NORMALISED_CPO_TYPES: readonly CpoLossType[] = ['ipo', 'simpo', 'alphapo'];

export interface CpoLossOptions {
  lossType: CpoLossType;
  beta: number;
  /** eps of sigmoid, simpo and alphapo. */
  labelSmoothing?: number;
  /** SimPO's (and AlphaPO's) target reward margin gamma (TRL's simpo_gamma, default 0.5). */
  simpoGamma?: number;
  /**
   * AlphaPO's reward shape, applied to every loss type as TRL's cpo_loss does: each side's reward
   * is (1 - p^-alpha) / alpha of its probability p = exp(log-prob) (token-mean or summed, as the
   * loss type compares), and log p itself at alpha 0.
   */
  alpha?: number;
}

/** AlphaPO's reward shape of a token-mean log-prob l = log p: (1 - e^(-alpha l)) / alpha, l itself at alpha 0. */
export function alphaReward(logp: Tensor, alpha: number): Tensor {
  return alpha === 0 ? logp : op.div(op.sub(1, op.exp(op.mul(logp, -alpha))), alpha);
}

/** CPO's per-row preference loss [B] (without its NLL term). */
export function cpoLoss(chosen: Tensor, rejected: Tensor, o: CpoLossOptions): Tensor {
  const eps = o.labelSmoothing ?? 0;
  const gamma = o.simpoGamma ?? 0.5;
  const a = o.alpha ?? 0;
  const logits = op.sub(alphaReward(chosen, a), alphaReward(rejected, a));
  switch (o.lossType) {
    case 'sigmoid':
      return smoothedSigmoid(op.mul(logits, o.beta), eps);
    case 'hinge':
      return op.relu(op.sub(1, op.mul(logits, o.beta)));
    case 'ipo': {
      const d = op.sub(logits, 1 / (2 * o.beta));
      return op.mul(d, d);
    }
    // TRL's CPOConfig turns alphapo into simpo (with cpo_alpha 0: see CPO_OBJECTIVE).
    case 'simpo':
    case 'alphapo':
      // -log sigmoid(beta (r_w - r_l) - gamma): TRL's logits - gamma / beta, times beta.
      return smoothedSigmoid(op.sub(op.mul(logits, o.beta), gamma), eps);
  }
}

/**
 * ORPO's log odds ratio per row [B]: log(odds(y_w) / odds(y_l)), odds(y) = p / (1 - p) of the
 * token-mean probability p = exp(l).
 */
export function orpoLogOdds(chosen: Tensor, rejected: Tensor): Tensor {
  return op.sub(op.sub(chosen, rejected), op.sub(log1mexp(chosen), log1mexp(rejected)));
}

const LN2 = Math.LN2;
/** Coefficients 1/(k+1)! of (e^x - 1)/x = sum_k x^k/(k+1)!, k = 0..10 (truncation < 1e-10 on [-ln 2, 0]). */
const EXPM1_OVER_X = Array.from({ length: 11 }, (_, k) => {
  let f = 1;
  for (let i = 2; i <= k + 1; i++) f *= i;
  return 1 / f;
});

/**
 * log(1 - e^x) for x < 0, accurate in float32 near 0 where 1 - e^x cancels (TRL's ORPO log1mexp,
 * branching at -ln 2 as it does). ONNX has no Log1p/Expm1, so near 0 it is
 * log(-x) + log((e^x - 1)/x) with the second factor a power series (in [0.72, 1] there); below
 * -ln 2, e^x < 1/2 and log(1 - e^x) loses nothing. Each branch reads its input clamped to its own
 * side, so the branch `where` drops never sees a value whose gradient is infinite.
 */
export function log1mexp(x: Tensor): Tensor {
  const far = op.minimum(x, -LN2);
  const near = op.maximum(x, -LN2);
  let series: Tensor = op.scalar(x.graph, EXPM1_OVER_X[EXPM1_OVER_X.length - 1], x.dtype);
  for (let k = EXPM1_OVER_X.length - 2; k >= 0; k--) series = op.add(op.mul(series, near), EXPM1_OVER_X[k]);
  const nearValue = op.add(op.log(op.neg(near)), op.log(series));
  const farValue = op.log(op.sub(1, op.exp(far)));
  return op.where(op.less(x, -LN2), farValue, nearValue);
}

/** ORPO's per-row odds-ratio loss [B]: -beta log sigmoid(log odds ratio) (added to the NLL). */
export function orpoLoss(chosen: Tensor, rejected: Tensor, beta: number): Tensor {
  return op.mul(logSigmoid(orpoLogOdds(chosen, rejected)), -beta);
}
