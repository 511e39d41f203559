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
  /** AlphaPO's alpha: the reward (1 - p^-alpha) / alpha of the token-mean probability p (0: log p, SimPO). */
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
  const logits = op.sub(chosen, rejected);
  switch (o.lossType) {
    case 'sigmoid':
      return smoothedSigmoid(op.mul(logits, o.beta), eps);
    case 'hinge':
      return op.relu(op.sub(1, op.mul(logits, o.beta)));
    case 'ipo': {
      const d = op.sub(logits, 1 / (2 * o.beta));
      return op.mul(d, d);
    }
    case 'simpo':
      // -log sigmoid(beta (l_w - l_l) - gamma): TRL's logits - gamma / beta, times beta.
      return smoothedSigmoid(op.sub(op.mul(logits, o.beta), gamma), eps);
    case 'alphapo': {
      const a = o.alpha ?? 0;
      return smoothedSigmoid(op.sub(op.mul(op.sub(alphaReward(chosen, a), alphaReward(rejected, a)), o.beta), gamma), eps);
    }
  }
}

/**
 * ORPO's log odds ratio per row [B]: log(odds(y_w) / odds(y_l)), odds(y) = p / (1 - p) of the
 * token-mean probability p = exp(l).
 */
export function orpoLogOdds(chosen: Tensor, rejected: Tensor): Tensor {
  const log1mExp = (l: Tensor): Tensor => op.log(op.sub(1, op.exp(l)));
  return op.sub(op.sub(chosen, rejected), op.sub(log1mExp(chosen), log1mExp(rejected)));
}

/** ORPO's per-row odds-ratio loss [B]: -beta log sigmoid(log odds ratio) (added to the NLL). */
export function orpoLoss(chosen: Tensor, rejected: Tensor, beta: number): Tensor {
  return op.mul(logSigmoid(orpoLogOdds(chosen, rejected)), -beta);
}
