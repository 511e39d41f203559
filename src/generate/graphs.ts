/**
 * The two compiled graphs of KV-cache decoding:
 *
 * - prefill: the (left-padded) prompts [B, T] with their attention mask and position ids ->
 *   the logits at the last position [B, V] (the only ones sampling needs, so the vocabulary
 *   projection runs on one position per row) and every layer's keys/values;
 * - step: one new token per row [B, 1], the cache of P positions per layer, the mask over the
 *   P + 1 keys and the new position ids -> logits [B, V] and the new position's keys/values.
 *
 * The cache crosses the graph boundary position-major, [P, B, Hkv, Dh] (the models use
 * [B, Hkv, P, Dh] inside; the graphs transpose). That way the first P positions of one
 * preallocated [maxP, B, Hkv, Dh] host buffer are a contiguous prefix, fed to ORT as a view
 * without copying, and a step only returns the new position ([B, Hkv, 1, Dh], the same bytes as
 * [1, B, Hkv, Dh]) for the host to append: nothing proportional to the cache leaves ORT, which
 * matters because onnxruntime-node copies every output into a fresh JS array (even into
 * preallocated outputs) and cannot keep a tensor on the device between runs.
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

/** Cache tensor names: prefill outputs `present.*`, the step reads `past.*` and outputs `new.*`. */
export function keyName(kind: 'past' | 'present' | 'new', layer: number, which: 'key' | 'value'): string {
  return `${kind}.${layer}.${which}`;
}

function declareWeights(g: Graph, inputs: readonly WeightInput[], transform: ParamTransform | undefined): Record<string, Tensor> {
  let params: Record<string, Tensor> = {};
  for (const p of inputs) params[p.name] = g.input(p.name, 'float32', p.shape);
  if (transform) params = transform(g, params);
  return params;
}

/** [B, H, P, Dh] <-> [P, B, H, Dh]. */
const TO_POSITION_MAJOR = [2, 0, 1, 3];
const FROM_POSITION_MAJOR = [1, 2, 0, 3];

function lastLogits(model: CausalLM, params: Record<string, Tensor>, hidden: Tensor): Tensor {
  const [b, , d] = hidden.shape;
  // Last position only: prompts are left-padded, so it is every row's last real token.
  return model.logits(params, op.reshape(op.slice(hidden, 1, -1), [b, d]));
}

/** Graph for the prompts: no past, mask and position ids over the prompt only. */
export function buildPrefillGraph(model: CausalLM, options: DecodeGraphOptions = {}): Record<string, Tensor> {
  const g = new Graph('prefill');
  const params = declareWeights(g, options.inputs ?? model.parameters(), options.transform);
  const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
  const attentionMask = g.input('attention_mask', 'float32', ['batch', 'seq']);
  const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
  const { hidden, present } = model.forward(params, { inputIds, attentionMask, positionIds });
  const outputs: Record<string, Tensor> = { logits: lastLogits(model, params, hidden) };
  present.forEach((kv, i) => {
    outputs[keyName('present', i, 'key')] = op.transpose(kv.key, TO_POSITION_MAJOR);
    outputs[keyName('present', i, 'value')] = op.transpose(kv.value, TO_POSITION_MAJOR);
  });
  return outputs;
}

/** Graph for one new token per row on top of a cache of `past` positions. */
export function buildStepGraph(model: CausalLM, options: DecodeGraphOptions = {}): Record<string, Tensor> {
  const g = new Graph('decode_step');
  const params = declareWeights(g, options.inputs ?? model.parameters(), options.transform);
  const { numLayers, numKeyValueHeads, headDim } = model.config;
  const inputIds = g.input('input_ids', 'int64', ['batch', 1]);
  const past: KeyValue[] = [];
  const cacheInput = (name: string): Tensor =>
    op.transpose(g.input(name, 'float32', [PAST_DIM, 'batch', numKeyValueHeads, headDim]), FROM_POSITION_MAJOR);
  for (let i = 0; i < numLayers; i++) {
    past.push({ key: cacheInput(keyName('past', i, 'key')), value: cacheInput(keyName('past', i, 'value')) });
  }
  // The key axis after the cache append is named as Concat names it.
  const attentionMask = g.input('attention_mask', 'float32', ['batch', addDims(PAST_DIM, 1)]);
  const positionIds = g.input('position_ids', 'int64', ['batch', 1]);
  const { hidden, present } = model.forward(params, { inputIds, attentionMask, positionIds, past });
  const outputs: Record<string, Tensor> = { logits: lastLogits(model, params, hidden) };
  present.forEach((kv, i) => {
    outputs[keyName('new', i, 'key')] = op.slice(kv.key, 2, -1);
    outputs[keyName('new', i, 'value')] = op.slice(kv.value, 2, -1);
  });
  return outputs;
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
