/**
 * The decoder graph as Hugging Face Optimum exports a causal LM "with past" for transformers.js:
 * one graph for the prompt and for every later step (an empty past on the first call).
 *
 * inputs   input_ids                 int64 [batch_size, sequence_length]
 *          attention_mask            int64 [batch_size, past_sequence_length + sequence_length]
 *          position_ids              int64 [batch_size, sequence_length]
 *          past_key_values.N.key     float [batch_size, kv_heads, past_sequence_length, head_dim]
 *          past_key_values.N.value   (same)
 * outputs  logits                    float [batch_size, sequence_length, vocab]
 *          present.N.key / .value    float [batch_size, kv_heads, past_sequence_length + sequence_length, head_dim]
 *
 * transformers.js feeds the first call with zero-length past tensors whose shape it reads from
 * these input declarations (only `batch_size` is resolved; every other named axis becomes 0),
 * so heads and head size must be numbers and the batch axis must be called `batch_size`.
 * The body is the model's own cached forward (the one the KV-cache generator runs); weights are
 * graph inputs here and become initializers when the graph is written (see onnx-folder.ts).
 */
import { Graph, type Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { addDims } from '../engine/shape.js';
import type { CausalLM, KeyValue } from '../models/types.js';

const BATCH = 'batch_size';
const SEQ = 'sequence_length';
const PAST = 'past_sequence_length';

export function pastName(layer: number, which: 'key' | 'value'): string {
  return `past_key_values.${layer}.${which}`;
}

export function presentName(layer: number, which: 'key' | 'value'): string {
  return `present.${layer}.${which}`;
}

/** Outputs (logits, present.*) of the Optimum-layout decoder graph of `model`. */
export function buildOptimumDecoderGraph(model: CausalLM): Record<string, Tensor> {
  const g = new Graph('main_graph');
  const { numLayers, numKeyValueHeads, headDim } = model.config;
  // Declared in Optimum's input order; the weights come after and are stored as initializers.
  const inputIds = g.input('input_ids', 'int64', [BATCH, SEQ]);
  // Concat names the cached key axis past+seq: the mask's key axis is declared the same way.
  const mask = g.input('attention_mask', 'int64', [BATCH, addDims(PAST, SEQ)]);
  const positionIds = g.input('position_ids', 'int64', [BATCH, SEQ]);
  const past: KeyValue[] = [];
  for (let i = 0; i < numLayers; i++) {
    const cache = (which: 'key' | 'value'): Tensor => g.input(pastName(i, which), 'float32', [BATCH, numKeyValueHeads, PAST, headDim]);
    past.push({ key: cache('key'), value: cache('value') });
  }
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float32', p.shape);
  const { hidden, present } = model.forward(params, { inputIds, attentionMask: op.cast(mask, 'float32'), positionIds, past });
  const outputs: Record<string, Tensor> = { logits: model.logits(params, hidden) };
  present.forEach((kv, i) => {
    outputs[presentName(i, 'key')] = kv.key;
    outputs[presentName(i, 'value')] = kv.value;
  });
  return outputs;
}
