/**
 * Frozen weights stored as float16: half the memory of float32 for weights that are fed but never
 * trained (LoRA's base model, a frozen reference). The graph input is float16 and one Cast makes
 * the float32 tensor the model computes with, so every product still runs in float32 and the
 * values are exactly the stored halves. (bfloat16 is not offered: onnxruntime-node's tensors have
 * no bfloat16 type, so such an input could not be fed.)
 *
 * The memory is only saved if no float32 copy of a weight lives for long. A product casts its
 * frozen operand once the other operand exists (ops.matmul): a Cast that reads only a graph input
 * could otherwise run at the start of the run, with every other weight's copy. A float32 view used by
 * the forward and again by the backward (dx = dy W) would live from one to the other, so that at
 * the turn of the step every layer's copy exists at once. So the backward casts again where it
 * needs a weight (autodiff.ts, `recastFrozen`): a new Cast, ordered after the gradient that
 * reaches the product, so ONNX Runtime neither merges it with the forward's Cast nor runs it early.
 * A checkpointed layer's recomputation casts its closed-over weights again the same way
 * (checkpoint's gradient rule). Row lookups (embeddings) gather the float16 rows and cast only
 * those (ops.gather).
 */
import type { Graph, Tensor } from './graph.js';
import * as op from './ops.js';
import type { Shape } from './shape.js';

/** How a frozen weight is held: float32, or float16 (half the memory; values rounded to half). */
export type FrozenStorage = 'float32' | 'float16';

/**
 * Declares the frozen graph input `name`, held as `storage`, and returns it as float32 (for
 * float16 a Cast that later uses may repeat; see the module comment).
 */
export function frozenInput(g: Graph, name: string, shape: Shape, storage: FrozenStorage): Tensor {
  const x = g.input(name, storage, shape);
  g.freeze(x);
  if (storage === 'float32') return x;
  const view = op.cast(x, 'float32');
  g.markRecast(view, x);
  return view;
}

export { isRecastable, recast } from './ops.js';
