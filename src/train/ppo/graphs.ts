/**
 * PPO's graphs over a batch of prompt ++ response sequences (collated with K = 1, so the scored
 * positions are exactly the response tokens, in sequence-then-time order):
 * - the rollout graph: per-token log-probs (and values, for the policy) of the sampled tokens;
 * - the training loss: clipped surrogate + vfCoef * clipped value loss on the same per-token
 *   layout, with old log-probs, old values, advantages and returns fed per token.
 */
import { Graph, type Tensor } from '../../engine/graph.js';
import { logSumExp } from '../../engine/nn.js';
import * as op from '../../engine/ops.js';
import { CompiledGraph, type HostTensor, type RuntimeOptions } from '../../engine/runtime.js';
import type { LossBuild } from '../../engine/train-step.js';
import type { CausalLM } from '../../models/types.js';
import type { ParamTransform } from '../../scoring/scorer.js';
import { declareScoredInputs, scoredHead, type ScoredInputs } from '../../scoring/sequence-logps.js';
import { clippedPolicyLoss, clippedValueLoss } from './losses.js';
import { valuesAt } from './value-head.js';

export interface TokenScores {
  /** [M] log pi of each response token. */
  logps: Tensor;
  /** [M] entropy of the policy's distribution at each response position (no gradient); only with `entropy`. */
  entropy?: Tensor;
  /** [N, T, hidden] final hidden states (for the value head). */
  hidden: Tensor;
}

/**
 * Per-token log-probs (and entropies) of the scored tokens, the vocabulary projection in chunks
 * as in training. The entropy costs a softmax over the vocabulary at every token, so only the
 * rollout pass computes it (once per update), not the training steps (ppoEpochs per update).
 */
export function tokenScores(model: CausalLM, params: Readonly<Record<string, Tensor>>, inputs: ScoredInputs, entropy = false): TokenScores {
  const { hidden } = model.forward(params, { inputIds: inputs.inputIds, attentionMask: inputs.attentionMask });
  const chunks = scoredHead(model, params, hidden, inputs, (logits, targets) => {
    const lse = logSumExp(logits, -1);
    const target = op.squeeze(op.gatherElements(logits, op.unsqueeze(targets, 1), 1), 1);
    const logp = op.sub(target, lse);
    return entropy ? [logp, op.stopGradient(op.sub(lse, op.sum(op.mul(op.softmax(logits, -1), logits), -1)))] : [logp];
  });
  // The chunks' concatenation has the length of `targets`; say so, for shape checks downstream.
  const flat = (i: number): Tensor => op.reshapeLike(op.concat(chunks.map((c) => c.values[i]), 0), inputs.targets);
  return { logps: flat(0), entropy: entropy ? flat(1) : undefined, hidden };
}

/** Names of the per-token inputs of the PPO loss. */
export const PPO_TOKEN_INPUTS = ['old_logps', 'old_values', 'advantages', 'returns'] as const;
export type PpoTokenInput = (typeof PPO_TOKEN_INPUTS)[number];

export interface PpoLossOptions {
  cliprange: number;
  cliprangeValue: number;
  vfCoef: number;
}

/**
 * Scalar input of the PPO loss: the micro-batch's share of the minibatch's tokens times the
 * number of micro-batches (1 without gradient accumulation). TrainStep averages the micro-batches'
 * gradients; weighted so, each token weighs the same as in one pass over the whole minibatch
 * (a mean of per-micro-batch token means would weigh the tokens of short micro-batches more).
 */
export const TOKEN_SHARE = 'token_share';

/**
 * The PPO training loss (TRL's: pg_loss + vf_coef * vf_loss, times {@link TOKEN_SHARE}) and its
 * statistics as outputs. `params` are the model's weights (LoRA already applied) and the value head.
 */
export function buildPpoLoss(g: Graph, model: CausalLM, params: Record<string, Tensor>, o: PpoLossOptions): LossBuild {
  const inputs = declareScoredInputs(g);
  const token = Object.fromEntries(PPO_TOKEN_INPUTS.map((n) => [n, g.input(n, 'float32', ['scored'])])) as Record<PpoTokenInput, Tensor>;
  const share = g.input(TOKEN_SHARE, 'float32', []);
  const scores = tokenScores(model, params, inputs);
  const values = valuesAt(params, scores.hidden, inputs.positions, model.config.hiddenSize);
  const pg = clippedPolicyLoss(scores.logps, token.old_logps, token.advantages, o.cliprange);
  const vf = clippedValueLoss(values, token.old_values, token.returns, o.cliprangeValue);
  const loss = op.mul(op.add(pg.loss, op.mul(vf.loss, o.vfCoef)), share);
  return {
    loss,
    outputs: {
      pg_loss: op.stopGradient(pg.loss),
      vf_loss: op.stopGradient(vf.loss),
      pg_clipfrac: pg.clipfrac,
      vf_clipfrac: vf.clipfrac,
      approxkl: pg.approxkl,
      ratio: pg.ratio,
      vpred: op.stopGradient(op.mean(values)),
    },
  };
}

/** A compiled forward pass giving per-token log-probs (and values and entropies when `withValues`) of a batch. */
export class TokenScorer {
  private constructor(
    private readonly compiled: CompiledGraph,
    private readonly shapes: ReadonlyMap<string, readonly number[]>,
  ) {}

  /** `transform`: turns the inputs into the model's weights (LoRA: the adapters applied). */
  static async create(model: CausalLM, shapes: ReadonlyMap<string, readonly number[]>, withValues: boolean, runtime: RuntimeOptions = {}, transform?: ParamTransform): Promise<TokenScorer> {
    const g = new Graph(withValues ? 'ppo_rollout' : 'ppo_reference');
    const inputsByName: Record<string, Tensor> = {};
    for (const [name, shape] of shapes) inputsByName[name] = g.input(name, 'float32', shape);
    const params = transform ? transform(g, inputsByName) : inputsByName;
    const inputs = declareScoredInputs(g);
    const s = tokenScores(model, params, inputs, withValues);
    const outputs: Record<string, Tensor> = { logps: s.logps };
    if (withValues) {
      outputs.values = valuesAt(params, s.hidden, inputs.positions, model.config.hiddenSize);
      outputs.entropy = s.entropy as Tensor;
    }
    return new TokenScorer(await CompiledGraph.compile(outputs, runtime), shapes);
  }

  /** `feeds`: the scoring feeds of a collated batch (scoredFeeds). */
  /** Per-token log-probs; with values: values and entropies too. */
  async run(feeds: Record<string, HostTensor>, weights: ReadonlyMap<string, Float32Array>): Promise<{ logps: Float32Array; values?: Float32Array; entropy?: Float32Array }> {
    const all = { ...feeds };
    for (const [name, shape] of this.shapes) {
      const data = weights.get(name);
      if (!data) throw new Error(`TokenScorer: no weights for "${name}"`);
      all[name] = { data, dims: shape };
    }
    const out = await this.compiled.run(all);
    return { logps: out.logps.data as Float32Array, values: out.values?.data as Float32Array | undefined, entropy: out.entropy?.data as Float32Array | undefined };
  }

  release(): Promise<void> {
    return this.compiled.release();
  }
}
