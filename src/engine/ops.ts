/**
 * The engine's primitive ops. Each function checks its inputs' shapes and dtypes at graph-build
 * time (an error names the op and the shapes) and adds one node. Everything else — layer norm,
 * log-softmax, GELU, losses — is composed from these in nn.ts, so autodiff needs one rule per
 * primitive (autodiff.ts) and nothing more.
 */
import { dropoutMask } from './checkpoint.js';
import { allocate, isFloat, type AnyTypedArray, type DType } from './dtype.js';
import { Graph, Tensor, type Attrs } from './graph.js';
import type { OpName } from './op-names.js';
import {
  addDims,
  broadcastShapes,
  formatShape,
  isStatic,
  mulDims,
  normalizeAxis,
  sameDim,
  staticSize,
  type Dim,
  type Shape,
} from './shape.js';

export class ShapeError extends Error {
  constructor(op: string, detail: string, inputs: readonly Tensor[]) {
    super(`${op}: ${detail} (inputs: ${inputs.map((t) => `${t.dtype}${formatShape(t.shape)}`).join(', ')})`);
    this.name = 'ShapeError';
  }
}

export type TensorLike = Tensor | number;

function node1(g: Graph, op: OpName, inputs: Tensor[], attrs: Attrs, dtype: DType, shape: Dim[]): Tensor {
  return g.addNode(op, inputs, attrs, [{ dtype, shape }])[0];
}

function graphOf(op: string, xs: readonly TensorLike[]): Graph {
  for (const x of xs) if (x instanceof Tensor) return x.graph;
  throw new Error(`${op}: needs at least one tensor input`);
}

// ---------------------------------------------------------------- constants

function arrayFrom(dtype: DType, values: readonly number[]): AnyTypedArray {
  const a = allocate(dtype, values.length);
  if (a instanceof BigInt64Array) values.forEach((v, i) => (a[i] = BigInt(v)));
  else values.forEach((v, i) => ((a as Float32Array)[i] = v));
  return a;
}

/** A constant tensor. Scalars and short vectors are deduplicated per graph. */
export function constant(g: Graph, values: readonly number[] | AnyTypedArray, dtype: DType, shape: Shape): Tensor {
  const data = ArrayBuffer.isView(values) ? (values as AnyTypedArray) : arrayFrom(dtype, values as number[]);
  if (data.length <= 16) {
    const key = `const:${dtype}:${formatShape(shape)}:${Array.from(data as ArrayLike<number | bigint>).join(',')}`;
    const hit = g.memo.get(key);
    if (hit) return hit;
    const t = g.constant(data, dtype, shape);
    g.memo.set(key, t);
    return t;
  }
  return g.constant(data, dtype, shape);
}

export function scalar(g: Graph, value: number, dtype: DType = 'float32'): Tensor {
  return constant(g, [value], dtype, []);
}

/** A number becomes a scalar constant of `like`'s dtype. */
function lift(x: TensorLike, like: Tensor): Tensor {
  return x instanceof Tensor ? x : scalar(like.graph, x, like.dtype);
}

// ---------------------------------------------------------------- elementwise

function binary(op: OpName, a: TensorLike, b: TensorLike, outDtype?: DType): Tensor {
  const g = graphOf(op, [a, b]);
  const ta = a instanceof Tensor ? a : lift(a, b as Tensor);
  const tb = lift(b, ta);
  if (ta.dtype !== tb.dtype) throw new ShapeError(op, `dtypes differ`, [ta, tb]);
  const shape = broadcastShapes(ta.shape, tb.shape);
  if (!shape) throw new ShapeError(op, `shapes ${formatShape(ta.shape)} and ${formatShape(tb.shape)} do not broadcast`, [ta, tb]);
  return node1(g, op, [ta, tb], {}, outDtype ?? ta.dtype, shape);
}

function requireFloat(op: string, x: Tensor): void {
  if (!isFloat(x.dtype)) throw new ShapeError(op, `needs a float tensor`, [x]);
}

export const add = (a: TensorLike, b: TensorLike): Tensor => binary('Add', a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => binary('Sub', a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => binary('Mul', a, b);
export const div = (a: TensorLike, b: TensorLike): Tensor => binary('Div', a, b);
export const pow = (a: TensorLike, b: TensorLike): Tensor => binary('Pow', a, b);
export const maximum = (a: TensorLike, b: TensorLike): Tensor => binary('Max', a, b);
export const minimum = (a: TensorLike, b: TensorLike): Tensor => binary('Min', a, b);
export const less = (a: TensorLike, b: TensorLike): Tensor => binary('Less', a, b, 'bool');
export const lessEqual = (a: TensorLike, b: TensorLike): Tensor => binary('LessOrEqual', a, b, 'bool');
export const greater = (a: TensorLike, b: TensorLike): Tensor => binary('Greater', a, b, 'bool');
export const greaterEqual = (a: TensorLike, b: TensorLike): Tensor => binary('GreaterOrEqual', a, b, 'bool');
export const equal = (a: TensorLike, b: TensorLike): Tensor => binary('Equal', a, b, 'bool');
export const and = (a: Tensor, b: Tensor): Tensor => binary('And', a, b, 'bool');
/** a or b, as not(not a and not b): WebGPU has And and Not kernels but no Or (it would run on the CPU). */
export const or = (a: Tensor, b: Tensor): Tensor => not(and(not(a), not(b)));

function unary(op: OpName, x: Tensor, float = true): Tensor {
  if (float) requireFloat(op, x);
  return node1(x.graph, op, [x], {}, x.dtype, [...x.shape]);
}

export const neg = (x: Tensor): Tensor => unary('Neg', x, false);
export const exp = (x: Tensor): Tensor => unary('Exp', x);
export const log = (x: Tensor): Tensor => unary('Log', x);
export const tanh = (x: Tensor): Tensor => unary('Tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('Sigmoid', x);
export const sqrt = (x: Tensor): Tensor => unary('Sqrt', x);
export const reciprocal = (x: Tensor): Tensor => unary('Reciprocal', x);
export const abs = (x: Tensor): Tensor => unary('Abs', x, false);
export const relu = (x: Tensor): Tensor => unary('Relu', x);
export const sin = (x: Tensor): Tensor => unary('Sin', x);
export const cos = (x: Tensor): Tensor => unary('Cos', x);
/** Error function. float64 graphs get a composed form at export (ORT has no double Erf kernel). */
export const erf = (x: Tensor): Tensor => unary('Erf', x);
export const not = (x: Tensor): Tensor => {
  if (x.dtype !== 'bool') throw new ShapeError('Not', 'needs a bool tensor', [x]);
  return node1(x.graph, 'Not', [x], {}, 'bool', [...x.shape]);
};
export const rsqrt = (x: Tensor): Tensor => reciprocal(sqrt(x));

/** Identity whose gradient is zero: for values treated as constants (e.g. a softmax's max). */
export const stopGradient = (x: Tensor): Tensor => node1(x.graph, 'StopGradient', [x], {}, x.dtype, [...x.shape]);
export const identity = (x: Tensor): Tensor => node1(x.graph, 'Identity', [x], {}, x.dtype, [...x.shape]);

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return node1(x.graph, 'Cast', [x], { to: dtype }, dtype, [...x.shape]);
}

export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  if (cond.dtype !== 'bool') throw new ShapeError('Where', 'condition must be bool', [cond]);
  const ref = a instanceof Tensor ? a : b instanceof Tensor ? b : undefined;
  const ta = ref ? lift(a, ref) : scalar(cond.graph, a as number);
  const tb = lift(b, ta);
  if (ta.dtype !== tb.dtype) throw new ShapeError('Where', 'branches have different dtypes', [cond, ta, tb]);
  const s1 = broadcastShapes(ta.shape, tb.shape);
  const shape = s1 && broadcastShapes(cond.shape, s1);
  if (!shape) throw new ShapeError('Where', 'shapes do not broadcast', [cond, ta, tb]);
  return node1(cond.graph, 'Where', [cond, ta, tb], {}, ta.dtype, shape);
}

// ---------------------------------------------------------------- reductions

function reduce(op: OpName, x: Tensor, axes: number | readonly number[] | undefined, keepDims: boolean): Tensor {
  const list = axes === undefined ? x.shape.map((_, i) => i) : typeof axes === 'number' ? [axes] : axes;
  const norm = [...new Set(list.map((a) => normalizeAxis(a, x.rank)))].sort((a, b) => a - b);
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!norm.includes(i)) shape.push(d);
    else if (keepDims) shape.push(1);
  });
  return node1(x.graph, op, [x], { axes: norm, keepdims: keepDims ? 1 : 0 }, x.dtype, shape);
}

export const sum = (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor => reduce('ReduceSum', x, axes, keepDims);
/** Sum of squares over `axes` (ReduceSumSquare: one pass, no squared copy). */
export const sumSquares = (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor => reduce('ReduceSumSquare', x, axes, keepDims);
export const max = (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor => reduce('ReduceMax', x, axes, keepDims);
/** log(sum(exp(x))) over `axes`, computed stably by ONNX's ReduceLogSumExp. */
export const reduceLogSumExp = (x: Tensor, axes: number | readonly number[], keepDims = false): Tensor =>
  reduce('ReduceLogSumExp', x, axes, keepDims);
/** Product of all elements, as a scalar (used on shape vectors). */
export const reduceProd = (x: Tensor): Tensor => reduce('ReduceProd', x, undefined, false);
export const mean = (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor => reduce('ReduceMean', x, axes, keepDims);

// ---------------------------------------------------------------- matmul

/** Batched matrix product of rank >= 2 tensors; batch dims broadcast. */
/** Whether `t` is a float32 view of a frozen float16 input (engine/frozen.ts), possibly transposed. */
export function isRecastable(t: Tensor): boolean {
  if (t.graph.recastSource(t)) return true;
  return t.node?.op === 'Transpose' && isRecastable(t.node.inputs[0]);
}

/**
 * `t` (isRecastable) built again from its float16 input, cast once every tensor of `after`
 * exists: a float32 copy that lives only as long as its new users need it (engine/frozen.ts).
 */
export function recast(t: Tensor, after: readonly Tensor[]): Tensor {
  const g = t.graph;
  const source = g.recastSource(t);
  if (source) {
    const view = cast(orderedAfter(source, after), 'float32');
    g.markRecast(view, source);
    return view;
  }
  const n = t.node;
  if (n?.op !== 'Transpose') throw new Error(`recast: ${t} is not a view of a frozen float16 input`);
  return transpose(recast(n.inputs[0], after), n.attrs.perm as readonly number[]);
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  // A frozen float16 weight is cast when the other operand exists, not whenever ONNX Runtime
  // could (at the start of the run, with every other weight's copy): engine/frozen.ts.
  if (isRecastable(b) && !isRecastable(a)) b = recast(b, [a]);
  else if (isRecastable(a) && !isRecastable(b)) a = recast(a, [b]);
  if (a.rank < 2 || b.rank < 2) throw new ShapeError('MatMul', 'operands must have rank >= 2', [a, b]);
  if (a.dtype !== b.dtype || !isFloat(a.dtype)) throw new ShapeError('MatMul', 'operands must share a float dtype', [a, b]);
  const k1 = a.shape[a.rank - 1];
  const k2 = b.shape[b.rank - 2];
  if (!sameDim(k1, k2)) throw new ShapeError('MatMul', `inner dims ${k1} and ${k2} differ`, [a, b]);
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (!batch) throw new ShapeError('MatMul', 'batch dims do not broadcast', [a, b]);
  return node1(a.graph, 'MatMul', [a, b], {}, a.dtype, [...batch, a.shape[a.rank - 2], b.shape[b.rank - 1]]);
}

/**
 * op(a) @ op(b) + c for 2-D a, b (ONNX Gemm; op transposes when `transA` / `transB`), c of the
 * result's shape. MLAS accumulates the product into c's values: a sum of matmuls (the chunks of
 * a weight gradient) then needs no separate product tensor and no Add pass.
 */
export function gemm(a: Tensor, b: Tensor, c: Tensor, transA = false, transB = false): Tensor {
  if (a.rank !== 2 || b.rank !== 2) throw new ShapeError('Gemm', 'operands must be 2-D', [a, b, c]);
  if (a.dtype !== b.dtype || a.dtype !== c.dtype || !isFloat(a.dtype)) throw new ShapeError('Gemm', 'operands must share a float dtype', [a, b, c]);
  const [m, k1] = transA ? [a.shape[1], a.shape[0]] : a.shape;
  const [k2, n] = transB ? [b.shape[1], b.shape[0]] : b.shape;
  if (!sameDim(k1, k2)) throw new ShapeError('Gemm', `inner dims ${k1} and ${k2} differ`, [a, b, c]);
  if (c.rank !== 2 || !sameDim(c.shape[0], m) || !sameDim(c.shape[1], n)) throw new ShapeError('Gemm', 'c must have the shape of the product', [a, b, c]);
  return node1(a.graph, 'Gemm', [a, b, c], { transA: transA ? 1 : 0, transB: transB ? 1 : 0 }, a.dtype, [...c.shape]);
}

export function softmax(x: Tensor, axis = -1): Tensor {
  requireFloat('Softmax', x);
  return node1(x.graph, 'Softmax', [x], { axis: normalizeAxis(axis, x.rank) }, x.dtype, [...x.shape]);
}

/**
 * Training-mode dropout (ONNX Dropout): zeroes each element with probability `p` and scales the
 * rest by 1/(1-p). The mask comes from ORT's generator seeded by `seed`: the same seed gives the
 * same sequence of masks in every new session, and each run draws the next mask.
 */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  requireFloat('Dropout', x);
  if (!(p >= 0 && p < 1)) throw new ShapeError('Dropout', `probability must be in [0, 1), got ${p}`, [x]);
  if (p === 0) return x;
  const g = x.graph;
  // Inside a checkpoint's recomputation the forward's mask is reused (checkpoint.ts).
  const mask = dropoutMask(x, () => {
    const [, m] = g.addNode('Dropout', [x, scalar(g, p, x.dtype), constant(g, [1], 'bool', [])], { seed }, [
      { dtype: x.dtype, shape: [...x.shape] },
      { dtype: 'bool', shape: [...x.shape] },
    ]);
    return m;
  });
  // The result is built from the mask, not taken from Dropout's own output: ONNX Runtime (non-
  // training builds) deletes any Dropout whose mask output is unused, whatever training_mode
  // says, e.g. a site whose input needs no gradient (LoRA dropout on the first layer's input,
  // embedding dropout with frozen embeddings) or any site in a forward-only graph.
  return where(mask, mul(x, 1 / (1 - p)), 0);
}

// ---------------------------------------------------------------- run-time shapes

/** The run-time shape of `x` as an int64 vector. */
export function shapeOf(x: Tensor): Tensor {
  const key = `shape:${x.id}`;
  const hit = x.graph.memo.get(key);
  if (hit) return hit;
  const t = node1(x.graph, 'Shape', [x], {}, 'int64', [x.rank]);
  x.graph.memo.set(key, t);
  return t;
}

/** The run-time size of `dim` as an int64 vector of length 1. */
export function dimTensor(g: Graph, dim: Dim, hint?: Tensor): Tensor {
  if (typeof dim === 'number') return constant(g, [dim], 'int64', [1]);
  const fromHint = hint?.shape.findIndex((d) => d === dim) ?? -1;
  const src = fromHint >= 0 && hint ? { tensor: hint, axis: fromHint } : g.dimSource(dim);
  if (!src) throw new Error(`no tensor in the graph has the dimension '${dim}'`);
  const key = `dim:${src.tensor.id}:${src.axis}`;
  const hit = g.memo.get(key);
  if (hit) return hit;
  const t = node1(g, 'Shape', [src.tensor], { start: src.axis, end: src.axis + 1 }, 'int64', [1]);
  g.memo.set(key, t);
  return t;
}

/** An int64 shape vector for `dims`, reading named dims from the graph (from `hint` first). */
export function shapeTensor(g: Graph, dims: Shape, hint?: Tensor): Tensor {
  if (isStatic(dims)) return constant(g, dims, 'int64', [dims.length]);
  if (dims.length === 1) return dimTensor(g, dims[0], hint);
  return concat(dims.map((d) => dimTensor(g, d, hint)), 0);
}

export function constantOfShape(g: Graph, dims: Shape, value: number, dtype: DType, hint?: Tensor): Tensor {
  const shape = shapeTensor(g, dims, hint);
  return node1(g, 'ConstantOfShape', [shape], { value, dtype }, dtype, [...dims]);
}

export function zerosLike(x: Tensor): Tensor {
  return node1(x.graph, 'ConstantOfShape', [shapeOf(x)], { value: 0, dtype: x.dtype }, x.dtype, [...x.shape]);
}

/** 0, 1, ..., n-1. */
export function arange(g: Graph, n: Dim, dtype: DType = 'int64', hint?: Tensor): Tensor {
  const limit = typeof n === 'number' ? scalar(g, n, dtype) : cast(reshape(dimTensor(g, n, hint), []), dtype);
  return node1(g, 'Range', [scalar(g, 0, dtype), limit, scalar(g, 1, dtype)], {}, dtype, [n]);
}

/** start, start+1, ..., limit-1 for int64 scalars computed at run time; the length is a fresh dim. */
export function range(start: Tensor, limit: Tensor): Tensor {
  if (start.rank !== 0 || limit.rank !== 0) throw new ShapeError('Range', 'start and limit must be scalars', [start, limit]);
  const g = start.graph;
  return node1(g, 'Range', [start, limit, scalar(g, 1, start.dtype)], {}, start.dtype, [g.freshDim('range')]);
}

/**
 * `x` itself (a Reshape to its own shape, which ONNX Runtime does without a copy), computed only
 * once every tensor of `deps` exists: the shape it reshapes to depends on theirs. This is how a
 * recomputation is held back until the backward reaches it instead of being scheduled (and kept
 * alive) during the forward.
 */
export function orderedAfter(x: Tensor, deps: readonly Tensor[]): Tensor {
  if (deps.length === 0) return x;
  const g = x.graph;
  let zero: Tensor | undefined;
  for (const d of deps) {
    const s = sum(shapeOf(d));
    const z = sub(s, s);
    zero = zero ? add(zero, z) : z;
  }
  return node1(g, 'Reshape', [x, add(shapeOf(x), zero as Tensor)], {}, x.dtype, [...x.shape]);
}

// ---------------------------------------------------------------- layout

/**
 * Reshape to `dims`. A named dim is read from `x` (or the graph) at run time; -1 infers one dim.
 * Static element counts are checked at build time.
 */
export function reshape(x: Tensor, dims: Shape): Tensor {
  const g = x.graph;
  const inferred = dims.filter((d) => d === -1).length;
  if (inferred > 1) throw new ShapeError('Reshape', `at most one -1 in ${formatShape(dims)}`, [x]);
  let out: Dim[] = [...dims];
  const inSize = staticSize(x.shape);
  const known = dims.filter((d) => d !== -1);
  if (inferred === 1) {
    const rest = staticSize(known);
    if (inSize !== undefined && rest !== undefined) {
      if (rest === 0 || inSize % rest !== 0) throw new ShapeError('Reshape', `cannot reshape to ${formatShape(dims)}`, [x]);
      out = dims.map((d) => (d === -1 ? inSize / rest : d));
    } else {
      out = dims.map((d) => (d === -1 ? inferDim(x.shape, known) : d));
    }
  } else if (inSize !== undefined && staticSize(dims) !== undefined) {
    const outSize = staticSize(dims);
    if (outSize !== inSize) throw new ShapeError('Reshape', `cannot reshape ${inSize} elements to ${formatShape(dims)}`, [x]);
  }
  // A dim name that no tensor carries yet (e.g. 'batch*seq') is sent as -1 and computed by ORT.
  let unresolved = 0;
  const target = dims.map((d) => {
    if (typeof d === 'number' || x.shape.includes(d) || g.dimSource(d)) return d;
    unresolved++;
    return -1;
  });
  if (unresolved > 1 || (unresolved === 1 && inferred === 1)) {
    throw new ShapeError('Reshape', `cannot resolve the sizes of ${formatShape(dims)} at run time`, [x]);
  }
  return node1(g, 'Reshape', [x, shapeTensor(g, target, x)], {}, x.dtype, out);
}

/** Product of the dims of `shape` that are not matched by a dim of `known` (a best-effort name). */
function inferDim(shape: Shape, known: Shape): Dim {
  const rest = [...shape];
  for (const k of known) {
    const i = rest.findIndex((d) => d === k);
    if (i >= 0) rest.splice(i, 1);
  }
  return rest.reduce<Dim>((p, d) => mulDims(p, d), 1);
}

/** Reshape `x` to the run-time shape of `like` (used by gradients). */
export function reshapeLike(x: Tensor, like: Tensor): Tensor {
  return node1(x.graph, 'Reshape', [x, shapeOf(like)], {}, x.dtype, [...like.shape]);
}

export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const p = perm ?? x.shape.map((_, i) => x.rank - 1 - i);
  if (p.length !== x.rank || [...p].sort((a, b) => a - b).some((v, i) => v !== i)) {
    throw new ShapeError('Transpose', `invalid permutation [${p.join(', ')}]`, [x]);
  }
  // transpose(transpose(y, q), p) = transpose(y, q∘p): one node, or none when they cancel.
  if (x.node?.op === 'Transpose') {
    const y = x.node.inputs[0];
    const q = x.node.attrs.perm as readonly number[];
    const composed = p.map((i) => q[i]);
    return composed.every((v, i) => v === i) ? y : transpose(y, composed);
  }
  return node1(x.graph, 'Transpose', [x], { perm: [...p] }, x.dtype, p.map((i) => x.shape[i]));
}

/** Swap the last two axes. */
export function transposeLast2(x: Tensor): Tensor {
  const perm = x.shape.map((_, i) => i);
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return transpose(x, perm);
}

export const SLICE_END = Number.MAX_SAFE_INTEGER;

/** x[start:end] along `axis` (numpy semantics, negative indices count from the end, step 1). */
export function slice(x: Tensor, axis: number, start: number, end: number = SLICE_END): Tensor {
  const ax = normalizeAxis(axis, x.rank);
  const d = x.shape[ax];
  let size: Dim;
  if (typeof d === 'number') {
    const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    size = Math.max(clamp(end) - clamp(start), 0);
  } else if (start >= 0 && end >= 0 && end !== SLICE_END) {
    size = end - start; // trusts that the run-time size is at least `end`
  } else if (start >= 0 && end === SLICE_END) {
    size = start === 0 ? d : `${d}-${start}`;
  } else if (start >= 0 && end < 0) {
    size = start === 0 ? `${d}${end}` : `${d}-${start - end}`;
  } else if (start < 0 && end === SLICE_END) {
    size = -start;
  } else {
    size = x.graph.freshDim(`${d}_slice`);
  }
  const shape = [...x.shape];
  shape[ax] = size;
  return node1(x.graph, 'Slice', [x], { axis: ax, start, end }, x.dtype, shape);
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error('Concat: needs at least one input');
  const first = xs[0];
  const ax = normalizeAxis(axis, first.rank);
  let total: Dim = 0;
  for (const x of xs) {
    if (x.rank !== first.rank || x.dtype !== first.dtype) throw new ShapeError('Concat', 'ranks or dtypes differ', xs);
    x.shape.forEach((d, i) => {
      if (i !== ax && !sameDim(d, first.shape[i])) throw new ShapeError('Concat', `dim ${i} differs`, xs);
    });
    total = addDims(total, x.shape[ax]);
  }
  const shape = [...first.shape];
  shape[ax] = total;
  return node1(first.graph, 'Concat', [...xs], { axis: ax }, first.dtype, shape);
}

/**
 * Split along `axis` into pieces of the given sizes. At most one size may be a dim name that no
 * tensor carries (e.g. 'seq-2'): it is computed at run time as the rest of the axis.
 */
export function split(x: Tensor, axis: number, sizes: readonly Dim[]): Tensor[] {
  const ax = normalizeAxis(axis, x.rank);
  const g = x.graph;
  const total = sizes.reduce<Dim>((p, d) => addDims(p, d), 0);
  if (typeof total === 'number' && typeof x.shape[ax] === 'number' && total !== x.shape[ax]) {
    throw new ShapeError('Split', `sizes [${sizes.join(', ')}] do not add up to ${x.shape[ax]}`, [x]);
  }
  const outs = sizes.map((s) => {
    const shape = [...x.shape];
    shape[ax] = s;
    return { dtype: x.dtype, shape };
  });
  const resolvable = (d: Dim): boolean => typeof d === 'number' || x.shape.includes(d) || g.dimSource(d) !== undefined;
  const unresolved = sizes.map((d, i) => (resolvable(d) ? -1 : i)).filter((i) => i >= 0);
  let sizeVec: Tensor;
  if (unresolved.length === 0) sizeVec = shapeTensor(g, sizes, x);
  else if (unresolved.length === 1) {
    const known = sizes.filter((_, i) => i !== unresolved[0]);
    const rest = sub(dimTensor(g, x.shape[ax], x), known.length ? reduceSumVec(shapeTensor(g, known, x)) : constant(g, [0], 'int64', [1]));
    const parts = sizes.map((d, i) => (i === unresolved[0] ? rest : dimTensor(g, d, x)));
    sizeVec = parts.length === 1 ? parts[0] : concat(parts, 0);
  } else {
    throw new ShapeError('Split', `cannot resolve the sizes [${sizes.join(', ')}] at run time (at most one may be unknown)`, [x]);
  }
  return g.addNode('Split', [x, sizeVec], { axis: ax }, outs);
}

/** Sum of an int64 vector as an int64 vector of length 1. */
function reduceSumVec(v: Tensor): Tensor {
  return reduce('ReduceSum', v, [0], true);
}

/** Broadcast `x` to `dims` (named dims read at run time). */
export function expand(x: Tensor, dims: Shape): Tensor {
  const shape = broadcastShapes(x.shape, dims);
  if (!shape || shape.length !== dims.length || !shape.every((d, i) => sameDim(d, dims[i]))) {
    throw new ShapeError('Expand', `cannot broadcast to ${formatShape(dims)}`, [x]);
  }
  return node1(x.graph, 'Expand', [x, shapeTensor(x.graph, dims, x)], {}, x.dtype, [...dims]);
}

/** Broadcast `x` to the run-time shape of `like`. */
export function expandLike(x: Tensor, like: Tensor): Tensor {
  return node1(x.graph, 'Expand', [x, shapeOf(like)], {}, x.dtype, [...like.shape]);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const ax = normalizeAxis(axis, x.rank + 1);
  const shape = [...x.shape];
  shape.splice(ax, 0, 1);
  return node1(x.graph, 'Unsqueeze', [x], { axes: [ax] }, x.dtype, shape);
}

export function squeeze(x: Tensor, axes: number | readonly number[]): Tensor {
  const list = (typeof axes === 'number' ? [axes] : [...axes]).map((a) => normalizeAxis(a, x.rank));
  for (const a of list) {
    if (x.shape[a] !== 1) throw new ShapeError('Squeeze', `dim ${a} is ${x.shape[a]}, not 1`, [x]);
  }
  return node1(x.graph, 'Squeeze', [x], { axes: list }, x.dtype, x.shape.filter((_, i) => !list.includes(i)));
}

// ---------------------------------------------------------------- indexing

/** Rows of `table` ([V, ...]) picked by integer `ids` (any shape): an embedding lookup. */
export function gather(table: Tensor, ids: Tensor): Tensor {
  if (ids.dtype !== 'int64' && ids.dtype !== 'int32') throw new ShapeError('Gather', 'ids must be int64 or int32', [table, ids]);
  // A float32 view of a frozen float16 table (engine/frozen.ts): gather the half rows, cast only them.
  const half = table.graph.recastSource(table);
  if (half) return cast(gather(half, ids), table.dtype);
  return node1(table.graph, 'Gather', [table, ids], { axis: 0 }, table.dtype, [...ids.shape, ...table.shape.slice(1)]);
}

/** out[..., j] = x[..., index[..., j]] along `axis` (torch.gather). */
export function gatherElements(x: Tensor, index: Tensor, axis = -1): Tensor {
  const ax = normalizeAxis(axis, x.rank);
  if (index.rank !== x.rank) throw new ShapeError('GatherElements', 'index must have the rank of the data', [x, index]);
  if (index.dtype !== 'int64') throw new ShapeError('GatherElements', 'index must be int64', [x, index]);
  return node1(x.graph, 'GatherElements', [x, index], { axis: ax }, x.dtype, [...index.shape]);
}

/** Copy of `data` with `updates` added at `index` along `axis` (torch.scatter_add). */
export function scatterAdd(data: Tensor, index: Tensor, updates: Tensor, axis = -1): Tensor {
  const ax = normalizeAxis(axis, data.rank);
  if (index.rank !== data.rank || updates.rank !== data.rank) throw new ShapeError('ScatterElements', 'ranks differ', [data, index, updates]);
  return node1(data.graph, 'ScatterElements', [data, index, updates], { axis: ax, reduction: 'add' }, data.dtype, [...data.shape]);
}

/** Rows of `updates` added into `data` at first-axis positions `ids` (the embedding gradient). */
export function scatterAddRows(data: Tensor, ids: Tensor, updates: Tensor): Tensor {
  return scatterNDAdd(data, unsqueeze(cast(ids, 'int64'), ids.rank), updates);
}

/** Rows of `updates` added into `data` at first-axis indices `idx` ([..., 1]): ScatterND with add. */
export function scatterNDAdd(data: Tensor, idx: Tensor, updates: Tensor): Tensor {
  if (idx.dtype !== 'int64' || idx.rank < 1 || idx.shape[idx.rank - 1] !== 1) {
    throw new ShapeError('ScatterND', 'index must be int64 [..., 1]', [data, idx, updates]);
  }
  if (updates.dtype !== data.dtype || updates.rank !== idx.rank - 1 + data.rank - 1) {
    throw new ShapeError('ScatterND', 'updates must have shape [...index dims, ...data dims after the first]', [data, idx, updates]);
  }
  return node1(data.graph, 'ScatterND', [data, idx, updates], { reduction: 'add' }, data.dtype, [...data.shape]);
}

/** out[i...] = data[idx[i...]] for first-axis indices idx [..., 1] (gradient of scatterAddRows). */
export function gatherND(data: Tensor, idx: Tensor): Tensor {
  if (idx.dtype !== 'int64' || idx.rank < 1 || idx.shape[idx.rank - 1] !== 1) {
    throw new ShapeError('GatherND', 'index must be int64 [..., 1]', [data, idx]);
  }
  return node1(data.graph, 'GatherND', [data, idx], {}, data.dtype, [...idx.shape.slice(0, -1), ...data.shape.slice(1)]);
}

/** Zero-pads `x` along `axis` by `before` and `after` elements (numbers, or int64 [1] tensors). */
export function pad(x: Tensor, axis: number, before: Tensor | number, after: Tensor | number): Tensor {
  const ax = normalizeAxis(axis, x.rank);
  const g = x.graph;
  const shape = [...x.shape];
  if (typeof before === 'number' && typeof after === 'number') {
    // Static amounts: one constant pads vector (its gradient is a static slice).
    const v = new Array<number>(2 * x.rank).fill(0);
    v[ax] = before;
    v[ax + x.rank] = after;
    shape[ax] = addDims(addDims(before, x.shape[ax]), after);
    return node1(g, 'Pad', [x, constant(g, v, 'int64', [2 * x.rank])], {}, x.dtype, shape);
  }
  const asVec = (v: Tensor | number): Tensor => (typeof v === 'number' ? constant(g, [v], 'int64', [1]) : v);
  const zeros = (n: number): Tensor[] => (n > 0 ? [constant(g, new Array<number>(n).fill(0), 'int64', [n])] : []);
  // ONNX pads: all begins, then all ends.
  const pads = concat(
    [...zeros(ax), asVec(before), ...zeros(x.rank - ax - 1), ...zeros(ax), asVec(after), ...zeros(x.rank - ax - 1)],
    0,
  );
  shape[ax] = g.freshDim('pad');
  return padWith(x, pads, shape);
}

/**
 * ONNX Pad with a full int64 pads vector ([begin_0..begin_{r-1}, end_0..end_{r-1}]); negative
 * amounts remove elements. `shape` is the output shape when the caller knows it.
 */
export function padWith(x: Tensor, pads: Tensor, shape?: Shape): Tensor {
  if (pads.dtype !== 'int64' || pads.rank !== 1) throw new ShapeError('Pad', 'pads must be an int64 vector', [x, pads]);
  const out = shape ? [...shape] : x.shape.map(() => x.graph.freshDim('pad'));
  return node1(x.graph, 'Pad', [x, pads], {}, x.dtype, out);
}
