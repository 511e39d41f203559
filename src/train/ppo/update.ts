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
import { TOKEN_SHARE, type PpoTokenInput } from './graphs.js';
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
  /** Micro-batches per minibatch (gradient accumulation; 1: the minibatch in one pass). */
  accumulation?: number;
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
      const micro = microBatchFeeds(o, indices);
      const r = await o.step.step(micro.length === 1 ? micro[0] : micro, o.lr);
      steps++;
      const diverged = divergence(r);
      if (diverged) throw new DpoError(`update ${o.update}: training diverged (${diverged}); stopped without saving this update: lower --learning-rate (now ${o.lr})`);
      // A statistic of the whole minibatch: the micro-batches' values weighted by their tokens.
      const num = (k: string): number => r.microOutputs.reduce((sum, out, i) => sum + Number(out[k].data[0]) * Number(micro[i][TOKEN_SHARE].data[0]), 0) / micro.length;
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

/**
 * The feeds of one minibatch, cut into `accumulation` micro-batches of consecutive episodes
 * (sizes differing by at most one), each with its {@link TOKEN_SHARE}.
 */
export function microBatchFeeds(o: Pick<RolloutOptimization, 'rows' | 'offsets' | 'tokenInputs' | 'padTokenId' | 'accumulation'>, indices: readonly number[]): Record<string, HostTensor>[] {
  const k = Math.min(o.accumulation ?? 1, indices.length);
  const tokens = (ids: readonly number[]): number => ids.reduce((t, i) => t + o.offsets[i + 1] - o.offsets[i], 0);
  const total = tokens(indices);
  const out: Record<string, HostTensor>[] = [];
  for (let j = 0; j < k; j++) {
    const part = indices.slice(Math.floor((j * indices.length) / k), Math.floor(((j + 1) * indices.length) / k));
    const feeds: Record<string, HostTensor> = sequenceFeeds(o.rows, part, o.padTokenId);
    const m = feeds.score_positions.dims[0];
    for (const [name, values] of Object.entries(o.tokenInputs)) feeds[name] = { data: gatherTokens(values, o.offsets, part), dims: [m] };
    feeds[TOKEN_SHARE] = { data: Float32Array.of(total > 0 ? (k * tokens(part)) / total : 1), dims: [] };
    out.push(feeds);
  }
  return out;
}
