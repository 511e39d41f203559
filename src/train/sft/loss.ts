/** The SFT loss: token negative log-likelihood of the completions (token-weighted mean, as TRL). */
import type { Graph, Tensor } from '../../engine/graph.js';
import * as op from '../../engine/ops.js';
import { logSumExp } from '../../engine/nn.js';
import type { LossBuild } from '../../engine/train-step.js';
import type { DropoutSites } from '../../models/dropout.js';
import type { CausalLM } from '../../models/types.js';
import { declareScoredInputs, scoredForward, scoredHead, type ScoredInputs } from '../../scoring/sequence-logps.js';

/** Per-token quantities of the completion tokens a batch scores. */
export interface TokenNll {
  /** [M] -log p(target) at every scored position. */
  nll: Tensor;
  /** [M] 1 where the target is the arg-max token (ties count as correct), else 0. */
  correct: Tensor;
}

/** Negative log-likelihood of every scored completion token; only those positions reach lm_head. */
export function tokenNll(model: CausalLM, params: Readonly<Record<string, Tensor>>, inputs: ScoredInputs, dropout?: DropoutSites): TokenNll {
  const hidden = scoredForward(model, params, inputs, dropout);
  const chunks = scoredHead(model, params, hidden, inputs, (logits, targets) => {
    const target = op.squeeze(op.gatherElements(logits, op.unsqueeze(targets, 1), 1), 1);
    const nll = op.sub(logSumExp(logits, -1), target);
    const best = op.stopGradient(op.max(logits, -1));
    const correct = op.cast(op.greaterEqual(op.stopGradient(target), best), logits.dtype);
    return [nll, correct];
  });
  return { nll: op.concat(chunks.map((c) => c.values[0]), 0), correct: op.concat(chunks.map((c) => c.values[1]), 0) };
}

/**
 * The SFT step's loss: sum of token NLLs times the fed `loss_scale` (= micro-batches / completion
 * tokens of the whole step, so accumulated gradients are those of the step's token mean).
 */
export function sftLoss(g: Graph, model: CausalLM, params: Readonly<Record<string, Tensor>>, dropout?: DropoutSites, layout: { packed?: boolean } = {}): LossBuild {
  const inputs = declareScoredInputs(g, 'float32', layout);
  const scale = g.input('loss_scale', 'float32', []);
  const t = tokenNll(model, params, inputs, dropout);
  const nllSum = op.sum(t.nll);
  return { loss: op.mul(nllSum, scale), outputs: { nll_sum: op.stopGradient(nllSum), correct: op.sum(t.correct) } };
}
