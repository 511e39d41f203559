/**
 * Gradient checkpointing for a piece of graph: its intermediate tensors are freed after the
 * forward and recomputed in the backward, so a backward keeps only the piece's inputs alive.
 * For the vocabulary projection of a language model (tensors of [tokens, vocab]), activation
 * functions and whole decoder layers (`--gradient-checkpointing`) this trades recomputation for
 * memory.
 *
 * `checkpoint(inputs, fn)` builds fn(inputs) as usual and wraps the results in one 'Checkpoint'
 * node (exported as Identity) whose gradient rule (autodiff.ts) rebuilds fn on copies of the
 * inputs that are ordered after the incoming gradients and after the previous checkpoint's
 * gradients (ops.orderedAfter): ONNX Runtime then cannot run the recomputation early, and
 * consecutive checkpoints (the chunks of a projection, the layers of a model) run one after
 * another instead of all at once.
 *
 * Tensors fn closes over (a decoder layer's weights, LoRA adapters, rotary tables, masks) are
 * found by walking fn's results back to tensors made before fn ran; the float ones become
 * inputs of the Checkpoint node too, so gradients reach them through the recomputation.
 *
 * Dropout: a mask cannot be drawn twice, so the recomputation reuses the masks the forward drew
 * (ops.dropout asks `dropoutMask`), in the order fn drew them: recomputed dropout is exact.
 */
import { isFloat } from './dtype.js';
import type { Node, Tensor } from './graph.js';
import { sameShape } from './shape.js';

export interface CheckpointInfo {
  /** How many of the node's inputs are fn's outputs. */
  outputs: number;
  /** How many inputs follow them that are fn's own inputs; the rest are tensors fn closes over. */
  inputs: number;
  fn: (inputs: readonly Tensor[]) => readonly Tensor[];
}

const registry = new WeakMap<Node, CheckpointInfo>();

export function checkpointInfo(node: Node): CheckpointInfo | undefined {
  return registry.get(node);
}

/** Masks drawn while the forward of each enclosing checkpoint is being built. */
const recorders: Tensor[][] = [];
/** While a checkpoint is recomputed: the masks its forward drew, handed out in order. */
let replay: { masks: readonly Tensor[]; next: number } | undefined;

/**
 * The boolean keep-mask of a dropout site: `draw()` in a forward, the forward's mask again when a
 * checkpoint recomputes the site.
 */
export function dropoutMask(x: Tensor, draw: () => Tensor): Tensor {
  let mask: Tensor;
  if (replay) {
    const m = replay.masks[replay.next++];
    if (!m || !sameShape(m.shape, x.shape)) throw new Error(`checkpoint: recomputed dropout site ${replay.next} does not match the forward's`);
    mask = m;
  } else mask = draw();
  for (const r of recorders) r.push(mask);
  return mask;
}

/**
 * fn(inputs), with fn's intermediates recomputed in the backward instead of kept. fn must build
 * the same graph each time it is called (it is called again for the backward) and may close
 * over tensors made before (weights, masks, indices: used as they are, and gradients reach the
 * float ones); inputs it does not use are dropped.
 *
 * `forward`, when given, computes the same function for the forward pass only: a form ONNX
 * Runtime fuses into one kernel (whose intermediates the backward cannot use), while the backward
 * rebuilds `fn`, the form whose gradient takes the fewest passes. It must read the same inputs
 * and close over the same tensors.
 */
export function checkpoint(
  inputs: readonly Tensor[],
  fn: (inputs: readonly Tensor[]) => readonly Tensor[],
  forward?: (inputs: readonly Tensor[]) => readonly Tensor[],
): Tensor[] {
  if (inputs.length === 0) throw new Error('checkpoint: no inputs');
  const g = inputs[0].graph;
  const start = g.mark();
  const masks: Tensor[] = [];
  recorders.push(masks);
  let outs: readonly Tensor[];
  try {
    outs = (forward ?? fn)(inputs);
  } finally {
    recorders.pop();
  }
  const inputIds = new Set(inputs.map((t) => t.id));
  const used = new Set<number>();
  const captured: Tensor[] = [];
  const seen = new Set<number>();
  const stack = [...outs];
  while (stack.length) {
    const t = stack.pop() as Tensor;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    if (inputIds.has(t.id)) used.add(t.id);
    else if (t.id < start) {
      if (isFloat(t.dtype) && t.kind !== 'constant') captured.push(t);
    } else if (t.node) stack.push(...t.node.inputs);
  }
  const keptIdx = inputs.map((t, i) => (used.has(t.id) ? i : -1)).filter((i) => i >= 0);
  const kept = keptIdx.map((i) => inputs[i]);
  const wrapped = g.addNode(
    'Checkpoint',
    [...outs, ...kept, ...captured],
    { outputs: outs.length },
    outs.map((o) => ({ dtype: o.dtype, shape: [...o.shape] })),
  );
  const node = wrapped[0].node as Node;
  registry.set(node, {
    outputs: outs.length,
    inputs: kept.length,
    fn: (xs) => {
      const all = [...inputs];
      keptIdx.forEach((i, k) => (all[i] = xs[k]));
      const outer = replay;
      const state = { masks, next: 0 };
      replay = state;
      try {
        const ys = fn(all);
        if (state.next !== masks.length) throw new Error(`checkpoint: the recomputation drew ${state.next} dropout masks, the forward ${masks.length}`);
        return ys;
      } finally {
        replay = outer;
      }
    },
  });
  return wrapped;
}
