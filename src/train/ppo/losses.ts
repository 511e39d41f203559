/**
 * PPO's clipped losses as pure functions of per-token graph tensors (no model): the surrogate
 * objective of Schulman et al. (2017) and the clipped value loss, with TRL PPOTrainer's formulas
 * and statistics. Every tensor is [M], one entry per response token; the means are over tokens.
 */
import type { Tensor } from '../../engine/graph.js';
import * as op from '../../engine/ops.js';

export interface PolicyLossTerms {
  /** Per token max(-A r, -A clip(r, 1 - eps, 1 + eps)), r = exp(logp - old logp). */
  perToken: Tensor;
  /** Mean over tokens (TRL's pg_loss). */
  loss: Tensor;
  /** Share of tokens where the clipped term is the larger one (policy/clipfrac). */
  clipfrac: Tensor;
  /** 0.5 mean (logp - old logp)^2 (policy/approxkl). */
  approxkl: Tensor;
  /** Mean probability ratio (val/ratio). */
  ratio: Tensor;
}

export function clippedPolicyLoss(logps: Tensor, oldLogps: Tensor, advantages: Tensor, cliprange: number): PolicyLossTerms {
  const diff = op.sub(logps, oldLogps);
  const ratio = op.exp(diff);
  const unclipped = op.mul(op.neg(advantages), ratio);
  const clipped = op.mul(op.neg(advantages), op.minimum(op.maximum(ratio, 1 - cliprange), 1 + cliprange));
  const perToken = op.maximum(unclipped, clipped);
  const dtype = logps.dtype;
  return {
    perToken,
    loss: op.mean(perToken),
    clipfrac: op.stopGradient(op.mean(op.cast(op.greater(clipped, unclipped), dtype))),
    approxkl: op.stopGradient(op.mul(op.mean(op.mul(diff, diff)), 0.5)),
    ratio: op.stopGradient(op.mean(ratio)),
  };
}

export interface ValueLossTerms {
  /** Per token 0.5 max((V - R)^2, (clip(V, V_old - eps, V_old + eps) - R)^2). */
  perToken: Tensor;
  /** Mean over tokens (TRL's vf_loss). */
  loss: Tensor;
  /** Share of tokens where the clipped error is the larger one (val/clipfrac). */
  clipfrac: Tensor;
}

export function clippedValueLoss(values: Tensor, oldValues: Tensor, returns: Tensor, cliprangeValue: number): ValueLossTerms {
  const clippedValues = op.minimum(op.maximum(values, op.sub(oldValues, cliprangeValue)), op.add(oldValues, cliprangeValue));
  const e1 = op.sub(values, returns);
  const e2 = op.sub(clippedValues, returns);
  const l1 = op.mul(e1, e1);
  const l2 = op.mul(e2, e2);
  const perToken = op.mul(op.maximum(l1, l2), 0.5);
  return {
    perToken,
    loss: op.mean(perToken),
    clipfrac: op.stopGradient(op.mean(op.cast(op.greater(l2, l1), values.dtype))),
  };
}
