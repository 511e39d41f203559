/**
 * The DPO loss graph of one step, apart from the trainer so that the browser build (which has no
 * files) traces the same graph as `dpo train`.
 */
import type { Graph, Tensor } from '../../engine/graph.js';
import * as op from '../../engine/ops.js';
import type { LossBuild } from '../../engine/train-step.js';
import type { CausalLM } from '../../models/types.js';
import type { ModelParams } from '../../models/linear.js';
import type { DropoutSites } from '../../models/dropout.js';
import { declareScoredInputs, sequenceLogps, wpoRowWeights, type ScoredLayout, type ScoringOptions } from '../../scoring/sequence-logps.js';
import { preferenceLoss, type CombinedLossOptions } from './losses.js';

/**
 * The DPO training loss graph: per-sequence completion log-probs of the K*B sequences (sequence
 * n = k*B + i), reference log-probs fed as `ref_logps` (absent when reference-free), the loss
 * family on the [K, B] layout; metric outputs policy_logps and logit_sums. `dropout` keeps the
 * model's dropout in the forward pass (`keepDropout`); `layout` is how batches are fed
 * (scoredFeeds(batch, layout): padded, padding-free, or prompts shared by their completions). With `scoring.ldAlpha` the policy's log-probs are
 * LD-DPO's (per-token weights fed as `token_weights`; policy_logps reports them, as TRL's
 * logps/*); with `scoring.wpo` each row's loss is scaled by its WPO weight. The step benchmark
 * builds exactly this.
 */
export function buildDpoLoss(
  g: Graph,
  model: CausalLM,
  params: ModelParams,
  options: CombinedLossOptions,
  K: number,
  referenceFree: boolean,
  dropout?: DropoutSites,
  layout: ScoredLayout = {},
  scoring: ScoringOptions = {},
): LossBuild {
  const inputs = declareScoredInputs(g, 'float32', layout);
  const scores = sequenceLogps(model, params, inputs, dropout, scoring);
  const lengths = g.input('completion_lengths', 'float32', ['sequences']);
  const byRow = (t: Tensor): Tensor => op.reshape(t, [K, -1]);
  const reference = referenceFree ? undefined : byRow(g.input('ref_logps', 'float32', ['sequences']));
  const policy = scores.ldLogps ?? scores.logps;
  const loss = preferenceLoss(
    {
      policy: byRow(policy),
      reference,
      lengths: byRow(lengths),
      logUnlikelihood: byRow(scores.logUnlikelihood),
      ...(scores.ldLogps ? { policySums: byRow(scores.logps) } : {}),
      ...(scores.wpoLogWeightSums ? { rowWeights: wpoRowWeights(scores.wpoLogWeightSums, lengths, K) } : {}),
    },
    options,
  );
  return { loss, outputs: { policy_logps: op.stopGradient(policy), logit_sums: scores.logitSums } };
}
