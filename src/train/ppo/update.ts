/**
 * The optimisation half of a PPO update: `epochs` passes over the rollout, each in a fresh
 * shuffled order cut into minibatches, one optimizer step per minibatch on the clipped PPO loss,
 * with TRL's per-step statistics added to the logging window.
 */
import { Rng } from '../../data/rng.js';
import type { TokenizedPreference } from '../../data/tokenize.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { TrainStep } from '../../engine/train-step.js';
import { DpoError } from '../../errors.js';
import { divergence } from '../core/loop.js';
import type { MetricsAccumulator } from '../core/metrics.js';
import type { PpoTokenInput } from './graphs.js';
import { gatherTokens, sequenceFeeds } from './rollout.js';

export interface RolloutOptimization {
  step: TrainStep;
  rows: readonly TokenizedPreference[];
  offsets: Int32Array;
  /** Per-token old log-probs, old values, (whitened) advantages and returns, in the rollout's flat layout. */
  tokenInputs: Readonly<Record<PpoTokenInput, ArrayLike<number>>>;
  padTokenId: number;
  epochs: number;
  miniBatch: number;
  lr: number;
  /** Seed of epoch e's minibatch order. */
  seed(epoch: number): number;
  metrics: MetricsAccumulator;
  /** 1-based number of this update, for messages. */
  update: number;
}

/** Runs the optimizer steps of one rollout; resolves to how many it took. */
export async function optimizeOnRollout(o: RolloutOptimization): Promise<number> {
  const n = o.rows.length;
  let steps = 0;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const order = new Rng(o.seed(epoch)).shuffle(Array.from({ length: n }, (_, i) => i));
    for (let s = 0; s < n; s += o.miniBatch) {
      const indices = order.slice(s, s + o.miniBatch);
      const feeds: Record<string, HostTensor> = sequenceFeeds(o.rows, indices, o.padTokenId);
      const m = feeds.score_positions.dims[0];
      for (const [name, values] of Object.entries(o.tokenInputs)) feeds[name] = { data: gatherTokens(values, o.offsets, indices), dims: [m] };
      const r = await o.step.step(feeds, o.lr);
      steps++;
      const diverged = divergence(r);
      if (diverged) throw new DpoError(`update ${o.update}: training diverged (${diverged}); stopped without saving this update: lower --learning-rate (now ${o.lr})`);
      const num = (k: string): number => Number(r.outputs[k].data[0]);
      const add = (name: string, v: number): void => o.metrics.add(name, v);
      add('policy/approxkl_avg', num('approxkl'));
      add('policy/clipfrac_avg', num('pg_clipfrac'));
      add('loss/policy_avg', num('pg_loss'));
      add('loss/value_avg', num('vf_loss'));
      add('val/clipfrac_avg', num('vf_clipfrac'));
      add('val/ratio', num('ratio'));
      // Its mean over the window gives val/ratio_var (the variance of the steps' mean ratios).
      add('ratio_sq', num('ratio') ** 2);
      add('val/vpred', num('vpred'));
      add('grad_norm', r.gradNorm);
    }
  }
  // The next rollout, checkpoint or save reads the parameters from the host arrays.
  await o.step.sync();
  return steps;
}
