/**
 * The two compiled graphs of KV-cache decoding:
 *
 * - prefill: the (left-padded) prompts [B, T] with their attention mask and position ids ->
 *   the logits at the last position [B, V] (the only ones sampling needs, so the vocabulary
 *   projection runs on one position per row) and every layer's keys/values [B, Hkv, T, Dh];
 * - step: one new token per row [B, 1], the cache [B, Hkv, P, Dh] per layer, the mask over the
 *   P + 1 keys and the new position ids -> logits [B, V] and the cache grown to P + 1.
 *
 * Weights are graph inputs, fed from the caller's Float32Arrays on every run (ORT reads them in
 * place), so one compiled pair serves any weights of the same shapes (a policy being trained, a
 * reference model, LoRA adapters through `transform`).
 */
import { Graph, type Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { CompiledGraph, type HostTensor, type RuntimeOptions } from '../engine/runtime.js';
import { addDims } from '../engine/shape.js';
import type { CausalLM, KeyValue } from '../models/types.js';

/** Adapts parameter tensors before the forward pass (LoRA: W + scale B A); identity by default. */
export type ParamTransform = (g: Graph, params: Record<string, Tensor>) => Record<string, Tensor>;

/** A weight input of the graphs: a model parameter, or an extra input a transform reads (LoRA A/B). */
export interface WeightInput {
  name: string;
  shape: readonly number[];
}

export interface DecodeGraphOptions {
  /** Graph inputs holding weights; default `model.parameters()`. */
  inputs?: readonly WeightInput[];
  transform?: ParamTransform;
  runtime?: RuntimeOptions;
}

export const PAST_DIM = 'past';

export function keyName(kind: 'past' | 'present', layer: number, which: 'key' | 'value'): string {
  return `${kind}.${layer}.${which}`;
}

function declareWeights(g: Graph, inputs: readonly WeightInput[], transform: ParamTransform | undefined): Record<string, Tensor> {
  let params: Record<string, Tensor> = {};
  for (const p of inputs) params[p.name] = g.input(p.name, 'float32', p.shape);
  if (transform) params = transform(g, params);
  return params;
}

function outputsOf(model: CausalLM, params: Record<string, Tensor>, hidden: Tensor, present: KeyValue[]): Record<string, Tensor> {
  const [b, , d] = hidden.shape;
  // Last position only: prefill's prompts are left-padded, so it is every row's last real token.
  const last = op.reshape(op.slice(hidden, 1, -1), [b, d]);
  const outputs: Record<string, Tensor> = { logits: model.logits(params, last) };
  present.forEach((kv, i) => {
    outputs[keyName('present', i, 'key')] = kv.key;
    outputs[keyName('present', i, 'value')] = kv.value;
  });
  return outputs;
}

/** Graph for the prompts: no past, mask and position ids over the prompt only. */
export function buildPrefillGraph(model: CausalLM, options: DecodeGraphOptions = {}): Record<string, Tensor> {
  const g = new Graph('prefill');
  const params = declareWeights(g, options.inputs ?? model.parameters(), options.transform);
  const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
  const attentionMask = g.input('attention_mask', 'float32', ['batch', 'seq']);
  const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
  const { hidden, present } = model.forward(params, { inputIds, attentionMask, positionIds });
  return outputsOf(model, params, hidden, present);
}

/** Graph for one new token per row on top of a cache of `past` positions. */
export function buildStepGraph(model: CausalLM, options: DecodeGraphOptions = {}): Record<string, Tensor> {
  const g = new Graph('decode_step');
  const params = declareWeights(g, options.inputs ?? model.parameters(), options.transform);
  const { numLayers, numKeyValueHeads, headDim } = model.config;
  const inputIds = g.input('input_ids', 'int64', ['batch', 1]);
  const past: KeyValue[] = [];
  for (let i = 0; i < numLayers; i++) {
    past.push({
      key: g.input(keyName('past', i, 'key'), 'float32', ['batch', numKeyValueHeads, PAST_DIM, headDim]),
      value: g.input(keyName('past', i, 'value'), 'float32', ['batch', numKeyValueHeads, PAST_DIM, headDim]),
    });
  }
  // The key axis after the cache append is named as Concat names it.
  const attentionMask = g.input('attention_mask', 'float32', ['batch', addDims(PAST_DIM, 1)]);
  const positionIds = g.input('position_ids', 'int64', ['batch', 1]);
  const { hidden, present } = model.forward(params, { inputIds, attentionMask, positionIds, past });
  return outputsOf(model, params, hidden, present);
}

/** The prefill and step graphs of one model, compiled once. */
export class DecodeGraphs {
  private constructor(
    readonly model: CausalLM,
    readonly inputs: readonly WeightInput[],
    readonly prefill: CompiledGraph,
    readonly step: CompiledGraph,
  ) {}

  static async compile(model: CausalLM, options: DecodeGraphOptions = {}): Promise<DecodeGraphs> {
    const inputs = options.inputs ?? model.parameters();
    const opts = { ...options, inputs };
    const prefill = await CompiledGraph.compile(buildPrefillGraph(model, opts), options.runtime);
    let step: CompiledGraph;
    try {
      step = await CompiledGraph.compile(buildStepGraph(model, opts), options.runtime);
    } catch (e) {
      await prefill.release();
      throw e;
    }
    return new DecodeGraphs(model, inputs, prefill, step);
  }

  /** Feeds for the weight inputs (no copies: the arrays are passed as they are). */
  weightFeeds(weights: ReadonlyMap<string, Float32Array>): Record<string, HostTensor> {
    const feeds: Record<string, HostTensor> = {};
    for (const p of this.inputs) {
      const data = weights.get(p.name);
      if (!data) throw new Error(`generate: no weights for graph input "${p.name}"`);
      feeds[p.name] = { data, dims: p.shape };
    }
    return feeds;
  }

  async release(): Promise<void> {
    await this.prefill.release();
    await this.step.release();
  }
}
