/** Loss terms more than one method's losses use. */
import type { Tensor } from '../../engine/graph.js';
import { logSigmoid } from '../../engine/nn.js';
import * as op from '../../engine/ops.js';

/** -(1 - eps) log sigmoid(z) - eps log sigmoid(-z): the (conservative) sigmoid loss of a logit z. */
export function smoothedSigmoid(z: Tensor, eps: number): Tensor {
  return eps ? op.sub(op.mul(logSigmoid(z), -(1 - eps)), op.mul(logSigmoid(op.neg(z)), eps)) : op.neg(logSigmoid(z));
}
