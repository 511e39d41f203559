/**
 * Online DPO's loss (TRL's OnlineDPOTrainer): on the SUMMED completion log-probs of each pair,
 * logits = (log pi(y_w) - log pi(y_l)) - (log pi_ref(y_w) - log pi_ref(y_l));
 * sigmoid: -log sigmoid(beta logits); ipo: (logits - 1/(2 beta))^2 (unlike offline IPO, no
 * length normalisation). Mean over pairs. beta is a graph input, so a per-epoch beta needs no
 * recompilation.
 */
import type { Graph, Tensor } from '../../engine/graph.js';
import { logSigmoid } from '../../engine/nn.js';
import * as op from '../../engine/ops.js';
import type { LossBuild } from '../../engine/train-step.js';
import type { DropoutSites } from '../../models/dropout.js';
import type { ModelParams } from '../../models/linear.js';
import type { CausalLM } from '../../models/types.js';
import { declareScoredInputs, sequenceLogps } from '../../scoring/sequence-logps.js';
import type { OnlineLossType } from './config.js';

/** Per-pair losses [B] from [2, B] policy and reference log-prob sums (chosen row 0) and beta [1]. */
export function onlineDpoLosses(type: OnlineLossType, policy: Tensor, reference: Tensor, beta: Tensor): Tensor {
  const ratios = op.sub(policy, reference);
  const at = (k: number): Tensor => op.squeeze(op.slice(ratios, 0, k, k + 1), 0);
  const logits = op.sub(at(0), at(1));
  if (type === 'sigmoid') return op.neg(logSigmoid(op.mul(logits, beta)));
  const d = op.sub(logits, op.div(0.5, beta));
  return op.mul(d, d);
}

/**
 * The training graph: 2B sequences (sequence k*B + i = pair i's chosen (k = 0) or rejected
 * completion), reference sums fed as `ref_logps` [2B], beta as `beta` [1]; outputs the policy's
 * sums as `policy_logps` for the metrics.
 */
export function buildOnlineDpoLoss(g: Graph, model: CausalLM, params: ModelParams, type: OnlineLossType, dropout?: DropoutSites): LossBuild {
  const inputs = declareScoredInputs(g);
  const scores = sequenceLogps(model, params, inputs, dropout);
  const reference = g.input('ref_logps', 'float32', ['sequences']);
  const beta = g.input('beta', 'float32', [1]);
  const pairs = (t: Tensor): Tensor => op.reshape(t, [2, -1]);
  const loss = op.mean(onlineDpoLosses(type, pairs(scores.logps), pairs(reference), beta));
  return { loss, outputs: { policy_logps: op.stopGradient(scores.logps) } };
}
