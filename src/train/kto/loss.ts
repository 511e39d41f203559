/** The KTO losses on per-example log-ratios (see trainer.ts for the formulas and TRL's conventions). */
import type { Tensor } from '../../engine/graph.js';
import * as op from '../../engine/ops.js';
import type { KtoLossType } from './config.js';

export interface KtoLossOptions {
  lossType: KtoLossType;
  beta: number;
  desirableWeight: number;
  undesirableWeight: number;
}

/**
 * Per-example KTO losses [B] from log-ratios r [B], labels [B] (1 desirable, 0 undesirable) and
 * the KL estimate z (a scalar without gradient).
 */
export function ktoLoss(r: Tensor, labels: Tensor, kl: Tensor, o: KtoLossOptions): Tensor {
  const oneMinusSigmoid = (x: Tensor): Tensor => op.sigmoid(op.neg(x));
  const desirable = o.lossType === 'kto' ? oneMinusSigmoid(op.mul(op.sub(r, kl), o.beta)) : oneMinusSigmoid(op.mul(r, o.beta));
  const undesirable = o.lossType === 'kto' ? oneMinusSigmoid(op.mul(op.sub(kl, r), o.beta)) : op.sigmoid(op.mul(r, o.beta));
  return op.add(op.mul(op.mul(desirable, labels), o.desirableWeight), op.mul(op.mul(undesirable, op.sub(1, labels)), o.undesirableWeight));
}

/** KTO's KL estimate: max(0, mean of the mismatched pairs' log-ratios), no gradient. */
export function ktoKl(klPolicy: Tensor, klReference: Tensor): Tensor {
  return op.stopGradient(op.maximum(op.mean(op.sub(klPolicy, klReference)), 0));
}
