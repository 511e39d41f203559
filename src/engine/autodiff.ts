/**
 * Reverse-mode automatic differentiation on the graph: `grad(loss, wrt)` appends the gradient
 * nodes and returns d loss / d wrt. One vector-Jacobian product rule per primitive op.
 */
import { checkpointInfo } from './checkpoint.js';
import { isRecastable, recast } from './frozen.js';
import { isFloat } from './dtype.js';
import type { Node, Tensor } from './graph.js';
import { isNonDifferentiable, type DifferentiableOp } from './op-names.js';
import * as op from './ops.js';
import { broadcastShapes, sameDim, sameShape, staticSize } from './shape.js';

type Grads = (Tensor | undefined)[];
export type VjpRule = (node: Node, gOut: Tensor, outs: readonly Tensor[], gOuts: readonly (Tensor | undefined)[]) => Grads;

/**
 * One vector-Jacobian product rule per differentiable op (op-names.ts): a differentiable op
 * without a rule, or a rule under a name that is not one, does not compile.
 */
export type GradientRules = Record<DifferentiableOp, VjpRule>;

/**
 * Sums `g` over the axes that broadcasting expanded, so it has the shape of `x`: one ReduceSum
 * (keepdims 0 when only leading axes are summed, as for a bias gradient).
 */
export function sumToShape(g: Tensor, x: Tensor): Tensor {
  if (g.rank === x.rank && g.shape.every((d, i) => sameDim(d, x.shape[i]))) return g;
  const lead = g.rank - x.rank;
  const leading = Array.from({ length: lead }, (_, i) => i);
  const inner: number[] = [];
  for (let i = lead; i < g.rank; i++) if (x.shape[i - lead] === 1 && g.shape[i] !== 1) inner.push(i);
  if (inner.length === 0) return op.sum(g, leading, false);
  const r = op.sum(g, [...leading, ...inner], true);
  return lead > 0 ? op.squeeze(r, leading) : r;
}

/**
 * `g` before an Expand (the gradient of a sum, say) when broadcasting it against `other` gives
 * g's shape anyway: the product then broadcasts for free instead of reading a materialised copy.
 */
function unexpanded(g: Tensor, other: Tensor): Tensor {
  if (g.node?.op !== 'Expand') return g;
  const src = g.node.inputs[0];
  const shape = broadcastShapes(src.shape, other.shape);
  return shape && sameShape(shape, g.shape) ? src : g;
}

/** The value of a one-element float constant, else undefined. */
function scalarValue(t: Tensor): number | undefined {
  if (t.kind !== 'constant' || !isFloat(t.dtype) || !t.value || t.value.length !== 1) return undefined;
  return Number(t.value[0]);
}

/**
 * g * c for a number c, folded into g when g is itself a product with a scalar constant (chains
 * like d/dx (k1 * (k2 * x)) then cost one pass over the data instead of two).
 */
function scaled(g: Tensor, c: number): Tensor {
  const n = g.node;
  if (n?.op === 'Mul') {
    const [p, q] = n.inputs;
    const cq = scalarValue(q);
    if (cq !== undefined && sameShape(p.shape, g.shape)) return op.mul(p, cq * c);
    const cp = scalarValue(p);
    if (cp !== undefined && sameShape(q.shape, g.shape)) return op.mul(q, cp * c);
  }
  return op.mul(g, c);
}

function transposeLast2(x: Tensor): Tensor {
  return op.transposeLast2(x);
}

/** Output width up to which a weight gradient is formed transposed (see matmulWeightGrad). */
const SKINNY = 64;

/**
 * d/dB of A @ B. For a 2-D weight shared across the batch dims of A (every linear layer: A is
 * [..., T, in], B is [in, out]) the batch dims are folded into the rows: one [in, rows] @
 * [rows, out] GEMM instead of a batch of small ones followed by a sum over the batch.
 */
function matmulWeightGrad(a: Tensor, b: Tensor, g: Tensor): Tensor {
  if (b.rank === 2 && a.rank > 2) {
    const rows = op.reshape(a, [-1, a.shape[a.rank - 1]]);
    const grads = op.reshape(g, [-1, g.shape[g.rank - 1]]);
    // A skinny weight [in, r] (LoRA's Aᵀ, r small): (gᵀ a)ᵀ, so that MLAS transposes the
    // [rows, r] operand and writes r rows of `in`, instead of transposing [rows, in] to write
    // `in` rows of r (1.4-3x faster for r = 16 on the gpt2-124m LoRA step's profile). The outer
    // transpose usually cancels against the one that made Aᵀ from A.
    const [inF, outF] = b.shape;
    if (typeof inF === 'number' && typeof outF === 'number' && outF <= SKINNY && inF > outF) {
      return op.transpose(op.matmul(op.transpose(grads, [1, 0]), rows), [1, 0]);
    }
    return op.matmul(op.transpose(rows, [1, 0]), grads);
  }
  return sumToShape(op.matmul(transposeLast2(a), g), b);
}

/** `g` with a unit axis inserted at each of `axes` (axes of the result, as Unsqueeze numbers them). */
function unsqueezeAll(g: Tensor, axes: readonly number[]): Tensor {
  let r = g;
  for (const a of [...axes].sort((x, y) => x - y)) r = op.unsqueeze(r, a);
  return r;
}

/** Inverse of a permutation. */
function invert(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

/** Reduced tensor re-expanded (keepdims) so that it broadcasts against the input. */
function keepDims(node: Node, g: Tensor): Tensor {
  if (node.attrs.keepdims === 1) return g;
  const axes = node.attrs.axes as readonly number[];
  let r = g;
  for (const a of axes) r = op.unsqueeze(r, a);
  return r;
}

const rules: GradientRules = {
  Add: ({ inputs: [a, b] }, g) => [sumToShape(g, a), sumToShape(g, b)],
  Sub: ({ inputs: [a, b] }, g) => [sumToShape(g, a), sumToShape(op.neg(g), b)],
  Mul: ({ inputs: [a, b] }, g) => {
    // x * x: one product 2 g x instead of two products and a sum.
    if (a === b) return [op.mul(scaled(g, 2), a), undefined];
    const ca = scalarValue(a);
    const cb = scalarValue(b);
    return [
      sumToShape(cb !== undefined ? scaled(g, cb) : op.mul(unexpanded(g, b), b), a),
      sumToShape(ca !== undefined ? scaled(g, ca) : op.mul(unexpanded(g, a), a), b),
    ];
  },
  Div: ({ inputs: [a, b] }, g, [y]) => [
    sumToShape(op.div(g, b), a),
    sumToShape(op.neg(op.div(op.mul(g, y), b)), b),
  ],
  Pow: ({ inputs: [a, b] }, g, [y]) => [
    sumToShape(op.mul(g, op.mul(b, op.pow(a, op.sub(b, 1)))), a),
    b.kind === 'constant' ? undefined : sumToShape(op.mul(g, op.mul(y, op.log(a))), b),
  ],
  Max: ({ inputs: [a, b] }, g) => {
    const pickA = op.greaterEqual(a, b);
    return [sumToShape(op.where(pickA, g, 0), a), sumToShape(op.where(pickA, 0, g), b)];
  },
  Min: ({ inputs: [a, b] }, g) => {
    const pickA = op.lessEqual(a, b);
    return [sumToShape(op.where(pickA, g, 0), a), sumToShape(op.where(pickA, 0, g), b)];
  },
  Neg: (_n, g) => [op.neg(g)],
  Exp: (_n, g, [y]) => [op.mul(g, y)],
  Log: ({ inputs: [x] }, g) => [op.div(g, x)],
  Tanh: (_n, g, [y]) => [op.mul(g, op.sub(1, op.mul(y, y)))],
  Sigmoid: (_n, g, [y]) => [op.mul(g, op.mul(y, op.sub(1, y)))],
  Sqrt: (_n, g, [y]) => [op.div(op.mul(g, 0.5), y)],
  Reciprocal: (_n, g, [y]) => [op.neg(op.mul(g, op.mul(y, y)))],
  Abs: ({ inputs: [x] }, g) => [op.where(op.less(x, 0), op.neg(g), g)],
  Relu: ({ inputs: [x] }, g) => [op.where(op.greater(x, 0), g, 0)],
  Sin: ({ inputs: [x] }, g) => [op.mul(g, op.cos(x))],
  Cos: ({ inputs: [x] }, g) => [op.neg(op.mul(g, op.sin(x)))],
  Erf: ({ inputs: [x] }, g) => [op.mul(g, op.mul(op.exp(op.neg(op.mul(x, x))), 2 / Math.sqrt(Math.PI)))],
  Identity: (_n, g) => [g],
  StopGradient: () => [undefined],
  Cast: ({ inputs: [x] }, g) => [isFloat(x.dtype) ? op.cast(g, x.dtype) : undefined],
  Where: ({ inputs: [c, a, b] }, g) => [undefined, sumToShape(op.where(c, g, 0), a), sumToShape(op.where(c, 0, g), b)],

  ReduceSum: (n, g) => [op.expandLike(keepDims(n, g), n.inputs[0])],
  ReduceSumSquare: (n, g) => [op.mul(n.inputs[0], keepDims(n, scaled(g, 2)))],
  ReduceMean: (n, g, [y]) => {
    const x = n.inputs[0];
    const xs = staticSize(x.shape);
    const ys = staticSize(y.shape);
    const scale =
      xs !== undefined && ys !== undefined
        ? op.scalar(x.graph, ys / xs, x.dtype)
        : op.div(op.cast(sizeOf(y), x.dtype), op.cast(sizeOf(x), x.dtype));
    return [op.mul(op.expandLike(keepDims(n, g), x), scale)];
  },
  ReduceProd: (n, g, [y]) => {
    // d prod / d x_i = prod / x_i (inputs with zeros are not supported).
    const x = n.inputs[0];
    return [op.div(op.mul(keepDims(n, g), keepDims(n, y)), x)];
  },
  ReduceLogSumExp: (n, g) => {
    const x = n.inputs[0];
    const axes = n.attrs.axes as readonly number[];
    if (axes.length !== 1) throw new Error('ReduceLogSumExp: gradient supports one axis');
    return [op.mul(op.softmax(x, axes[0]), keepDims(n, g))];
  },
  ReduceMax: (n, g, [y]) => {
    // Ties share the gradient equally, as torch.amax does.
    const x = n.inputs[0];
    const isMax = op.cast(op.equal(x, keepDims(n, y)), x.dtype);
    const count = op.sum(isMax, n.attrs.axes as readonly number[], true);
    return [op.mul(op.div(isMax, count), keepDims(n, g))];
  },

  MatMul: ({ inputs: [a, b] }, g) => [sumToShape(op.matmul(g, transposeLast2(b)), a), matmulWeightGrad(a, b, g)],
  Gemm: (n, g) => {
    const [a, b] = n.inputs;
    const ta = n.attrs.transA === 1;
    const tb = n.attrs.transB === 1;
    const t = (x: Tensor): Tensor => op.transpose(x, [1, 0]);
    // Y = A' B' + C with A' = ta ? Aᵀ : A: dA' = g B'ᵀ, dB' = A'ᵀ g.
    const da = op.matmul(g, tb ? b : t(b));
    const db = op.matmul(ta ? a : t(a), g);
    return [ta ? t(da) : da, tb ? t(db) : db, g];
  },
  Softmax: (n, g, [y]) => {
    const axis = n.attrs.axis as number;
    return [op.mul(y, op.sub(g, op.sum(op.mul(g, y), axis, true)))];
  },

  Reshape: ({ inputs: [x] }, g) => [op.reshapeLike(g, x), undefined],
  Transpose: (n, g) => [op.transpose(g, invert(n.attrs.perm as readonly number[]))],
  // Squeeze / Unsqueeze the gradient back rather than reshape it to Shape(x): a Shape of x would
  // keep x alive, and inside a checkpoint's recomputation force x to be computed when nothing
  // else needs it (the lm_head's log-sum-exp, four passes over [rows, vocab] per chunk).
  Unsqueeze: (n, g) => [op.squeeze(g, n.attrs.axes as readonly number[])],
  Squeeze: (n, g) => [unsqueezeAll(g, n.attrs.axes as readonly number[])],
  Expand: ({ inputs: [x] }, g) => [sumToShape(g, x), undefined],
  Slice: (n, g) => {
    const x = n.inputs[0];
    const axis = n.attrs.axis as number;
    const start = n.attrs.start as number;
    const end = n.attrs.end as number;
    const d = x.shape[axis];
    const dimT = (): Tensor => op.dimTensor(x.graph, d, x);
    const before: Tensor | number =
      start >= 0 ? start : typeof d === 'number' ? Math.max(d + start, 0) : op.add(dimT(), op.constant(x.graph, [start], 'int64', [1]));
    let after: Tensor | number;
    if (end === op.SLICE_END) after = 0;
    else if (end < 0) after = -end;
    else if (typeof d === 'number') after = Math.max(d - end, 0);
    else after = op.sub(dimT(), op.constant(x.graph, [end], 'int64', [1]));
    const padded = op.pad(g, axis, before, after);
    return [op.reshapeLike(padded, x)];
  },
  Pad: (n, g) => {
    const x = n.inputs[0];
    const pads = n.inputs[1];
    if (pads.kind === 'constant') {
      // Static padding: slice it off again.
      const v = Array.from(pads.value as BigInt64Array, Number);
      let r = g;
      for (let axis = 0; axis < x.rank; axis++) {
        const b = v[axis];
        const e = v[axis + x.rank];
        if (b < 0 || e < 0) return [op.reshapeLike(op.padWith(g, op.neg(pads)), x), undefined];
        if (b || e) r = op.slice(r, axis, b, e ? -e : op.SLICE_END);
      }
      return [op.reshapeLike(r, x), undefined];
    }
    // Run-time amounts: pad by the negated amounts (ONNX Pad removes elements for negative pads).
    return [op.reshapeLike(op.padWith(g, op.neg(pads)), x), undefined];
  },
  Concat: (n, g) => {
    const axis = n.attrs.axis as number;
    // reshapeLike only where the symbolic shapes differ (its Shape(x) would keep x alive).
    return op.split(g, axis, n.inputs.map((x) => x.shape[axis])).map((p, i) => (sameShape(p.shape, n.inputs[i].shape) ? p : op.reshapeLike(p, n.inputs[i])));
  },
  Dropout: (n, g, [, mask]) => {
    const p = scalarValue(n.inputs[1]) as number;
    return [op.mul(op.mul(g, op.cast(mask, g.dtype)), 1 / (1 - p)), undefined, undefined];
  },
  Split: (n, _g, outs, gOuts) => {
    const axis = n.attrs.axis as number;
    const parts = outs.map((o, i) => gOuts[i] ?? op.zerosLike(o));
    return [op.concat(parts, axis), undefined];
  },

  Gather: ({ inputs: [table, ids] }, g) => [op.scatterAddRows(op.zerosLike(table), ids, g), undefined],
  GatherElements: (n, g) => {
    const [x, index] = n.inputs;
    return [op.scatterAdd(op.zerosLike(x), index, g, n.attrs.axis as number), undefined];
  },
  ScatterElements: (n, g) => {
    const [, index] = n.inputs;
    return [g, undefined, op.gatherElements(g, index, n.attrs.axis as number)];
  },
  ScatterND: ({ inputs: [, idx] }, g) => [g, undefined, op.gatherND(g, idx)],
  GatherND: ({ inputs: [data, idx] }, g) => [op.scatterNDAdd(op.zerosLike(data), idx, g), undefined],
  Checkpoint: (n, _g, _outs, gOuts) => {
    const info = checkpointInfo(n);
    if (!info) throw new Error('grad: Checkpoint node without its function (build it with checkpoint())');
    const inputs = n.inputs.slice(info.outputs, info.outputs + info.inputs);
    // Tensors fn closes over are used as they are and end the inner backward like the inputs.
    const captured = n.inputs.slice(info.outputs + info.inputs);
    const seeds = gOuts.map((g, i) => (g ? { g, i } : undefined)).filter((x) => x !== undefined);
    // Recompute once the backward has reached this node and the previous checkpoint is done.
    // Holding back one input suffices (and a large graph input, such as a weight, need not be).
    const deps = [...seeds.map((s) => s.g), ...checkpointChain];
    const hold = Math.max(0, inputs.findIndex((x) => x.kind !== 'input'));
    const xs = inputs.map((x, i) => (i === hold ? op.orderedAfter(x, deps) : x));
    // Frozen float16 weights are cast again for the recomputation (engine/frozen.ts), so the
    // forward's float32 copies need not live until this backward.
    const recasts = new Map(recastFrozen ? captured.filter(isRecastable).map((c) => [c.id, recast(c, deps)] as const) : []);
    const ys = recasts.size ? n.inputs[0].graph.withSubstitutions(recasts, () => info.fn(xs)) : info.fn(xs);
    let inGrads: (Tensor | undefined)[];
    const wrt = [...xs, ...captured.filter((c) => !recasts.has(c.id))];
    if (seeds.length === 1) inGrads = gradInner(ys[seeds[0].i], wrt, seeds[0].g, true);
    else {
      let total: Tensor | undefined;
      for (const { g, i } of seeds) {
        const t = op.sum(op.mul(ys[i], g));
        total = total ? op.add(total, t) : t;
      }
      inGrads = gradInner(total as Tensor, wrt, undefined, true);
    }
    const capturedGrads = inGrads.slice(xs.length);
    return [...gOuts.map(() => undefined), ...inGrads.slice(0, xs.length), ...captured.map((c) => (recasts.has(c.id) ? undefined : capturedGrads.shift()))];
  },
};

/** Gradients of the inputs of the checkpoint the current backward processed last, summed so far (see Checkpoint). */
let checkpointChain: Tensor[] = [];
/** Whether the backward being built casts frozen float16 weights again where it uses them (GradOptions.recastFrozen). */
let recastFrozen = false;

export interface GradOptions {
  /**
   * Where the backward uses a float32 view of a frozen float16 weight (engine/frozen.ts), cast it
   * again after the incoming gradient instead of keeping the forward's copy alive until then.
   * Training steps ask for it; graph builders that take gradients inside a forward do not.
   */
  recastFrozen?: boolean;
}

/** Number of elements of `x` at run time, as an int64 scalar. */
function sizeOf(x: Tensor): Tensor {
  return op.reduceProd(op.shapeOf(x));
}

/** Is `t` a scatter-add into a fresh zero tensor (the gradient of a gather)? */
function scatterIntoZeros(t: Tensor): Node | undefined {
  const n = t.node;
  if (!n || (n.op !== 'ScatterElements' && n.op !== 'ScatterND')) return undefined;
  const base = n.inputs[0].node;
  return base?.op === 'ConstantOfShape' && base.attrs.value === 0 ? n : undefined;
}

/** Is `t` a 2-D Transpose (perm [1, 0])? */
function isTranspose2(t: Tensor): boolean {
  return t.node?.op === 'Transpose' && t.rank === 2 && (t.node.attrs.perm as readonly number[])[0] === 1;
}

/** `t` as a 2-D matmul's operands (A, B, transA) when it is one, else undefined. */
function matmul2(t: Tensor): { a: Tensor; b: Tensor; transA: boolean } | undefined {
  const n = t.node;
  if (n?.op !== 'MatMul' || n.inputs[0].rank !== 2 || n.inputs[1].rank !== 2) return undefined;
  const [a, b] = n.inputs;
  return isTranspose2(a) ? { a: (a.node as Node).inputs[0], b, transA: true } : { a, b, transA: false };
}

/**
 * Sum of two gradients of one tensor. A gather's gradient scatters into zeros; added to another
 * gradient it scatters straight into that one instead, saving a zero tensor and an Add pass
 * (for the LM head's [tokens, vocab] gradient these are the largest tensors of the step). A 2-D
 * matmul added to the running sum becomes a Gemm that accumulates into it (the lm_head chunks'
 * weight gradients: no [hidden, vocab] product tensor beside the sum, and no Add pass).
 */
function addGradients(a: Tensor, b: Tensor): Tensor {
  // Both transposed (a tied lm_head's Wᵀ gradients): accumulate in the product's layout and
  // transpose the sum. (Computing each chunk as (AᵀB)ᵀ = BᵀA instead measured ~1.7x slower:
  // MLAS's transA path is slow for [rows, vocab]ᵀ operands.)
  if (isTranspose2(a) && isTranspose2(b)) {
    const inner = matmul2((b.node as Node).inputs[0]);
    const sum = (a.node as Node).inputs[0];
    if (inner && sameShape(sum.shape, (b.node as Node).inputs[0].shape)) return op.transpose(op.gemm(inner.a, inner.b, sum, inner.transA), [1, 0]);
  }
  const mb = matmul2(b);
  if (mb && sameShape(a.shape, b.shape) && a.rank === 2 && !scatterIntoZeros(a)) return op.gemm(mb.a, mb.b, a, mb.transA);
  const sa = scatterIntoZeros(a);
  const sb = scatterIntoZeros(b);
  const scatter = sb ?? sa;
  if (scatter) {
    const dense = scatter === sb ? a : b;
    const [, index, updates] = scatter.inputs;
    return scatter.op === 'ScatterND'
      ? op.scatterNDAdd(dense, index, updates)
      : op.scatterAdd(dense, index, updates, scatter.attrs.axis as number);
  }
  return op.add(a, b);
}

/** The ops that have a gradient rule, as the table holds them at run time (for the coverage test). */
export function gradientRuleOps(): string[] {
  return Object.keys(rules);
}

/**
 * Whether a gradient may be asked of `t`: it depends on a float graph input that is not frozen
 * (Graph.freeze), through ops that pass gradients. PyTorch's requires_grad, decided from the inputs.
 */
export function requiresGrad(t: Tensor): boolean {
  const seen = new Set<number>();
  const stack = [t];
  while (stack.length) {
    const x = stack.pop() as Tensor;
    if (seen.has(x.id) || !isFloat(x.dtype)) continue;
    seen.add(x.id);
    if (x.kind === 'input' && !x.graph.isFrozen(x)) return true;
    const n = x.node;
    if (n && n.op !== 'StopGradient' && !isNonDifferentiable(n.op)) stack.push(...n.inputs);
  }
  return false;
}

/** Whether a gradient flows from `y` back to `x` (through float tensors and ops that pass gradients). */
export function hasGradientPath(y: Tensor, x: Tensor): boolean {
  const seen = new Set<number>();
  const stack = [y];
  while (stack.length) {
    const t = stack.pop() as Tensor;
    if (t === x) return true;
    if (seen.has(t.id) || !isFloat(t.dtype)) continue;
    seen.add(t.id);
    const n = t.node;
    if (n && n.op !== 'StopGradient' && !isNonDifferentiable(n.op)) stack.push(...n.inputs);
  }
  return false;
}

export function hasGradientRule(opName: string): boolean {
  return Object.hasOwn(rules, opName) || isNonDifferentiable(opName);
}

/**
 * Gradients of the scalar `loss` with respect to each tensor of `wrt` (float graph inputs or
 * any float tensors of the graph). A tensor `loss` does not depend on gets a zero gradient.
 * `seed` replaces the implicit d loss/d loss = 1 (then `loss` may have any shape).
 */
export function grad(loss: Tensor, wrt: readonly Tensor[], seed?: Tensor, options: GradOptions = {}): Tensor[] {
  // A graph builder may call grad while an outer backward is being built (sequence-logps.ts's frozen head).
  const outer = checkpointChain;
  const outerRecast = recastFrozen;
  checkpointChain = [];
  recastFrozen = options.recastFrozen === true;
  try {
    return gradInner(loss, wrt, seed);
  } finally {
    checkpointChain = outer;
    recastFrozen = outerRecast;
  }
}

/** `leaves`: the wrt tensors end the backward (their own inputs get no gradient from here). */
function gradInner(loss: Tensor, wrt: readonly Tensor[], seed?: Tensor, leaves = false): Tensor[] {
  const g = loss.graph;
  if (!seed && loss.rank !== 0) throw new Error(`grad: loss must be a scalar, got ${loss}`);
  // Nodes on a path from some wrt tensor to the loss, in topological order.
  const wrtIds = new Set(wrt.map((t) => t.id));
  const dependsMemo = new Map<number, boolean>();
  const depends = (t: Tensor): boolean => {
    if (wrtIds.has(t.id)) return true;
    if (!t.node) return false;
    const hit = dependsMemo.get(t.id);
    if (hit !== undefined) return hit;
    dependsMemo.set(t.id, false);
    const r = t.node.op !== 'StopGradient' && t.node.inputs.some(depends);
    dependsMemo.set(t.id, r);
    return r;
  };
  const order: Node[] = [];
  const seen = new Set<number>();
  const visit = (t: Tensor): void => {
    const n = t.node;
    if (!n || seen.has(n.id) || !depends(t) || (leaves && wrtIds.has(t.id))) return;
    seen.add(n.id);
    // Iterative DFS would be needed for very deep graphs; transformer graphs are a few thousand nodes deep at most.
    for (const x of n.inputs) visit(x);
    order.push(n);
  };
  visit(loss);

  const grads = new Map<number, Tensor>();
  const accumulate = (t: Tensor, gt: Tensor | undefined): void => {
    if (!gt || !isFloat(t.dtype)) return;
    const prev = grads.get(t.id);
    grads.set(t.id, prev ? addGradients(prev, gt) : gt);
  };
  grads.set(loss.id, seed ?? op.scalar(g, 1, loss.dtype));

  for (let i = order.length - 1; i >= 0; i--) {
    const n = order[i];
    const gOuts = n.outputs.map((o) => grads.get(o.id));
    if (gOuts.every((x) => x === undefined)) continue;
    if (isNonDifferentiable(n.op)) continue;
    // Missing only for a node whose op name was forced past the types (a cast).
    const rule = Object.hasOwn(rules, n.op) ? rules[n.op] : undefined;
    if (!rule) throw new Error(`grad: no gradient rule for op ${n.op}`);
    const firstOut = gOuts.find((x) => x !== undefined) as Tensor;
    // The rule reads frozen float16 weights through new casts, made once its gradients exist (engine/frozen.ts).
    const node =
      recastFrozen && n.op !== 'Checkpoint' && n.inputs.some(isRecastable)
        ? { ...n, inputs: n.inputs.map((x) => (isRecastable(x) ? recast(x, gOuts.filter((t) => t !== undefined)) : x)) }
        : n;
    const inGrads = rule(node, gOuts[0] ?? firstOut, n.outputs, gOuts);
    n.inputs.forEach((x, k) => {
      if (depends(x)) accumulate(x, inGrads[k]);
    });
    if (n.op === 'Checkpoint') {
      // The next checkpoint waits for these sums (not just this piece's terms): ONNX Runtime's
      // order would otherwise compute every chunk's weight gradient before adding any of them.
      // A transposed sum is waited for through the sum itself (a Shape of the Transpose would
      // make ONNX Runtime compute every partial sum's transpose).
      checkpointChain = n.inputs
        .slice(checkpointInfo(n)?.outputs ?? 0)
        .flatMap((x) => grads.get(x.id) ?? [])
        .map((t) => (isTranspose2(t) ? (t.node as Node).inputs[0] : t));
    }
  }
  return wrt.map((t) => grads.get(t.id) ?? op.zerosLike(t));
}

