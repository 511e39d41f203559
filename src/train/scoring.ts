/**
 * A compiled scoring graph: per-sequence completion log-probs of a batch under given weights.
 * Serves reference precomputation, a live reference, evaluation and `dpo eval`.
 */
import { Graph, type Tensor } from '../engine/graph.js';
import { CompiledGraph, type HostTensor, type RuntimeOptions } from '../engine/runtime.js';
import type { PreferenceBatch } from '../data/collate.js';
import type { CausalLM } from '../models/types.js';
import type { ModelParams } from '../models/linear.js';
import { declareScoredInputs, scoredFeeds, sequenceLogps } from './sequence-logps.js';

export interface BatchScores {
  /** [N] sum of completion-token log-probs per sequence (sequence n = k*B + i). */
  logps: Float64Array;
  /** [N] sum over completion tokens of the mean logit. */
  logitSums: Float64Array;
  /** [N] sum over completion tokens of log(1 - p(token)) (loss type 'unlikelihood'). */
  logUnlikelihood: Float64Array;
}

/** Adapts parameter tensors before the forward pass (e.g. LoRA adapters on the linear layers); identity by default. */
export type ParamTransform = (g: Graph, params: Record<string, Tensor>) => ModelParams;

export class Scorer {
  private constructor(
    private readonly compiled: CompiledGraph,
    private readonly model: CausalLM,
    private readonly packed: boolean,
  ) {}

  /**
   * `inputs` names every graph input holding weights (model parameters, adapters...). `packed`:
   * batches go through padding-free (data/pack.ts), as with `--padding-free`.
   */
  static async create(
    model: CausalLM,
    inputs: readonly { name: string; shape: readonly number[] }[],
    runtime: RuntimeOptions = {},
    transform?: ParamTransform,
    layout: { packed?: boolean } = {},
  ): Promise<Scorer> {
    const g = new Graph('score');
    let params: Record<string, Tensor> = {};
    for (const p of inputs) params[p.name] = g.input(p.name, 'float32', p.shape);
    if (transform) params = transform(g, params);
    const scores = sequenceLogps(model, params, declareScoredInputs(g, 'float32', layout));
    const compiled = await CompiledGraph.compile({ logps: scores.logps, logit_sums: scores.logitSums, log_unlikelihood: scores.logUnlikelihood }, runtime);
    return new Scorer(compiled, model, layout.packed === true);
  }

  async score(batch: PreferenceBatch, weights: ReadonlyMap<string, Float32Array>, shapes: ReadonlyMap<string, readonly number[]>): Promise<BatchScores> {
    this.model.checkSequenceLength?.(batch.seqLen);
    const feeds: Record<string, HostTensor> = scoredFeeds(batch, { packed: this.packed });
    for (const [name, data] of weights) feeds[name] = { data, dims: shapes.get(name) as readonly number[] };
    const out = await this.compiled.run(feeds);
    return {
      logps: Float64Array.from(out.logps.data as Float32Array),
      logitSums: Float64Array.from(out.logit_sums.data as Float32Array),
      logUnlikelihood: Float64Array.from(out.log_unlikelihood.data as Float32Array),
    };
  }

  async release(): Promise<void> {
    await this.compiled.release();
  }
}
