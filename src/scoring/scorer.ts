/**
 * A compiled scoring graph: per-sequence completion log-probs of a batch under given weights.
 * Serves reference precomputation, a live reference, evaluation and `dpo eval`.
 */
import { Graph, type Tensor } from '../engine/graph.js';
import { CompiledGraph, type HostTensor, type RuntimeOptions } from '../engine/runtime.js';
import type { PreferenceBatch } from '../data/collate.js';
import type { CausalLM } from '../models/types.js';
import type { ModelParams } from '../models/linear.js';
import { declareScoredInputs, scoredFeeds, sequenceLogps, tokenWeightsFeed, type ScoredLayout, type ScoringOptions } from './sequence-logps.js';

export interface BatchScores {
  /** [N] sum of completion-token log-probs per sequence (sequence n = k*B + i). */
  logps: Float64Array;
  /** [N] sum over completion tokens of the mean logit. */
  logitSums: Float64Array;
  /** [N] sum over completion tokens of log(1 - p(token)) (loss type 'unlikelihood'). */
  logUnlikelihood: Float64Array;
  /** [N] LD-DPO's length-desensitised log-probs, when the scorer was made with `ldAlpha`. */
  ldLogps?: Float64Array;
  /** [N] WPO's per-sequence log-weight sums, when the scorer was made with `wpo`. */
  wpoLogWeightSums?: Float64Array;
}

/** Adapts parameter tensors before the forward pass (e.g. LoRA adapters on the linear layers); identity by default. */
export type ParamTransform = (g: Graph, params: Record<string, Tensor>) => ModelParams;

export class Scorer {
  private constructor(
    private readonly compiled: CompiledGraph,
    private readonly model: CausalLM,
    private readonly options: ScoringOptions & ScoredLayout,
  ) {}

  /**
   * `inputs` names every graph input holding weights (model parameters, adapters...). `packed`:
   * batches go through padding-free (data/pack.ts), as with `--padding-free`; `prefixSharing`
   * 'auto' or 'on': each row's prompt once for its completions, as with `--prefix-sharing`.
   */
  static async create(
    model: CausalLM,
    inputs: readonly { name: string; shape: readonly number[] }[],
    runtime: RuntimeOptions = {},
    transform?: ParamTransform,
    options: ScoringOptions & ScoredLayout = {},
  ): Promise<Scorer> {
    const g = new Graph('score');
    let params: Record<string, Tensor> = {};
    for (const p of inputs) params[p.name] = g.input(p.name, 'float32', p.shape);
    if (transform) params = transform(g, params);
    const scores = sequenceLogps(model, params, declareScoredInputs(g, 'float32', { packed: options.packed, prefixSharing: options.prefixSharing }), undefined, options);
    const outputs: Record<string, Tensor> = { logps: scores.logps, logit_sums: scores.logitSums, log_unlikelihood: scores.logUnlikelihood };
    if (scores.ldLogps) outputs.ld_logps = scores.ldLogps;
    if (scores.wpoLogWeightSums) outputs.wpo_log_weight_sums = scores.wpoLogWeightSums;
    return new Scorer(await CompiledGraph.compile(outputs, runtime), model, options);
  }

  async score(batch: PreferenceBatch, weights: ReadonlyMap<string, Float32Array>, shapes: ReadonlyMap<string, readonly number[]>): Promise<BatchScores> {
    this.model.checkSequenceLength?.(batch.seqLen);
    const feeds: Record<string, HostTensor> = scoredFeeds(batch, { packed: this.options.packed === true, prefixSharing: this.options.prefixSharing });
    if (this.options.ldAlpha !== undefined) feeds.token_weights = tokenWeightsFeed(batch, this.options.ldAlpha);
    for (const [name, data] of weights) feeds[name] = { data, dims: shapes.get(name) as readonly number[] };
    const out = await this.compiled.run(feeds);
    const f64 = (t: HostTensor | undefined): Float64Array | undefined => (t ? Float64Array.from(t.data as Float32Array) : undefined);
    return {
      logps: f64(out.logps) as Float64Array,
      logitSums: f64(out.logit_sums) as Float64Array,
      logUnlikelihood: f64(out.log_unlikelihood) as Float64Array,
      ...(out.ld_logps ? { ldLogps: f64(out.ld_logps) } : {}),
      ...(out.wpo_log_weight_sums ? { wpoLogWeightSums: f64(out.wpo_log_weight_sums) } : {}),
    };
  }

  async release(): Promise<void> {
    await this.compiled.release();
  }
}
