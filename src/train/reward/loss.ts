/** The Bradley-Terry loss of a reward model on pairs and rankings (best first). */
import type { Tensor } from '../../engine/graph.js';
import * as op from '../../engine/ops.js';
import { logSigmoid } from '../../engine/nn.js';

/** Ordered pairs (better, worse) of K completions listed best first. */
export function rankingPairs(K: number): [number, number][] {
  const pairs: [number, number][] = [];
  for (let a = 0; a < K; a++) for (let b = a + 1; b < K; b++) pairs.push([a, b]);
  return pairs;
}

/**
 * Bradley-Terry loss of a batch: rewards [K*B] (sequence k*B + i) -> mean over rows and their
 * ordered pairs of -log sigmoid(r_better - r_worse), plus the optional centering term.
 */
export function bradleyTerryLoss(rewards: Tensor, K: number, centerCoefficient = 0): Tensor {
  const byRow = op.reshape(rewards, [K, -1]);
  const row = (k: number): Tensor => op.slice(byRow, 0, k, k + 1);
  const diffs = rankingPairs(K).map(([a, b]) => op.sub(row(a), row(b)));
  const d = diffs.length === 1 ? diffs[0] : op.concat(diffs, 0);
  let loss = op.neg(op.mean(logSigmoid(d)));
  if (centerCoefficient > 0) {
    const s = op.sum(byRow, 0);
    loss = op.add(loss, op.mul(op.mean(op.mul(s, s)), centerCoefficient));
  }
  return loss;
}
