/**
 * Gradient checkpointing of whole decoder layers (transformers' `gradient_checkpointing_enable()`,
 * TRL's `--gradient_checkpointing`): with params marked by `withGradientCheckpointing`
 * (linear.ts), a layer keeps only its input hidden states for the backward, which recomputes the
 * layer's forward from them (engine/checkpoint.ts). Activation memory then grows by one [tokens, hidden] tensor per layer
 * instead of every intermediate of every layer; the price is one more forward of the layers.
 */
import { checkpoint } from '../engine/checkpoint.js';
import type { Tensor } from '../engine/graph.js';
import { gradientCheckpointing, type ModelParams } from './linear.js';
import type { ForwardInputs, KeyValue } from './types.js';

export interface LayerResult {
  hidden: Tensor;
  kv: KeyValue;
}

/** `layer(h)`'s hidden states, its keys/values appended to `present` (once, from the forward). */
export function decoderLayer(p: ModelParams, inputs: ForwardInputs, h: Tensor, present: KeyValue[], layer: (h: Tensor) => LayerResult): Tensor {
  if (!gradientCheckpointing(p)) {
    const r = layer(h);
    present.push(r.kv);
    return r.hidden;
  }
  if (inputs.past) throw new Error('gradient checkpointing: not with cached keys/values (it is for training graphs)');
  let kv: KeyValue | undefined;
  const [out] = checkpoint([h], ([x]) => {
    const r = layer(x);
    kv ??= r.kv; // the recomputation's keys/values are the backward's, not outputs
    return [r.hidden];
  });
  present.push(kv as KeyValue);
  return out;
}
