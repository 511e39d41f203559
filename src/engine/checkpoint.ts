/**
 * Gradient checkpointing for a piece of graph: its intermediate tensors are freed after the
 * forward and recomputed in the backward, so a backward keeps only the piece's inputs alive.
 * For the vocabulary projection of a language model (tensors of [tokens, vocab]) and for
 * activation functions this trades a little recomputation for a lot of memory.
 *
 * `checkpoint(inputs, fn)` builds fn(inputs) as usual and wraps the results in one 'Checkpoint'
 * node (exported as Identity) whose gradient rule (autodiff.ts) rebuilds fn on copies of the
 * inputs that are ordered after the incoming gradients and after the previous checkpoint's
 * gradients (ops.orderedAfter): ONNX Runtime then cannot run the recomputation early, and
 * consecutive checkpoints (the chunks of a projection) run one after another instead of all
 * at once.
 */
import type { Node, Tensor } from './graph.js';

export interface CheckpointInfo {
  /** How many of the node's inputs are fn's outputs (the rest are fn's inputs). */
  outputs: number;
  fn: (inputs: readonly Tensor[]) => readonly Tensor[];
}

const registry = new WeakMap<Node, CheckpointInfo>();

export function checkpointInfo(node: Node): CheckpointInfo | undefined {
  return registry.get(node);
}

/** Ids of the tensors `roots` depend on (stopping at `stop`). */
function ancestorIds(roots: readonly Tensor[], stop: ReadonlySet<number>): Set<number> {
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length) {
    const t = stack.pop() as Tensor;
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    if (t.node && !stop.has(t.id)) stack.push(...t.node.inputs);
  }
  return seen;
}

/**
 * fn(inputs), with fn's intermediates recomputed in the backward instead of kept. fn must be a
 * pure function of its inputs (tensors it closes over, such as integer indices, are used as
 * they are); inputs it does not use are dropped.
 *
 * `forward`, when given, computes the same function for the forward pass only: a form ONNX
 * Runtime fuses into one kernel (whose intermediates the backward cannot use), while the backward
 * rebuilds `fn`, the form whose gradient takes the fewest passes. It must read the same inputs.
 */
export function checkpoint(
  inputs: readonly Tensor[],
  fn: (inputs: readonly Tensor[]) => readonly Tensor[],
  forward?: (inputs: readonly Tensor[]) => readonly Tensor[],
): Tensor[] {
  if (inputs.length === 0) throw new Error('checkpoint: no inputs');
  const g = inputs[0].graph;
  const outs = (forward ?? fn)(inputs);
  const used = ancestorIds(outs, new Set(inputs.map((t) => t.id)));
  const kept = inputs.filter((t) => used.has(t.id));
  const keptIdx = inputs.map((t, i) => (used.has(t.id) ? i : -1)).filter((i) => i >= 0);
  const wrapped = g.addNode(
    'Checkpoint',
    [...outs, ...kept],
    { outputs: outs.length },
    outs.map((o) => ({ dtype: o.dtype, shape: [...o.shape] })),
  );
  const node = wrapped[0].node as Node;
  registry.set(node, {
    outputs: outs.length,
    fn: (xs) => {
      const all = [...inputs];
      keptIdx.forEach((i, k) => (all[i] = xs[k]));
      return fn(all);
    },
  });
  return wrapped;
}
