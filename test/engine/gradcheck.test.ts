/**
 * Float64 central-difference gradient checks for every differentiable primitive of ops.ts and
 * every composite of nn.ts, through the same ONNX Runtime path that trains.
 */
import { describe, expect, it } from 'vitest';
import { grad, hasGradientRule } from '../../src/engine/autodiff.js';
import { gradcheck, type GradcheckInput, type GradcheckOptions } from '../../src/engine/gradcheck.js';
import type { Graph, Tensor } from '../../src/engine/graph.js';
import * as nn from '../../src/engine/nn.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import type { Shape } from '../../src/engine/shape.js';

// ------------------------------------------------------------------ helpers

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

const size = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

/** Uniform values in [lo, hi]. */
function uniform(shape: readonly number[], lo: number, hi: number, seed = 7): number[] {
  const r = lcg(seed);
  return Array.from({ length: size(shape) }, () => lo + (hi - lo) * r());
}

/** Values in [-2, -0.2] ∪ [0.2, 2]: away from the kinks of abs/relu/max. */
function awayFromZero(shape: readonly number[], seed = 11): number[] {
  const r = lcg(seed);
  return Array.from({ length: size(shape) }, () => (r() < 0.5 ? -1 : 1) * (0.2 + 1.8 * r()));
}

/** Distinct values (a shuffled ramp), so max/min/reduce-max have no ties. */
function distinct(shape: readonly number[], seed = 5, scale = 0.37): number[] {
  const n = size(shape);
  const r = lcg(seed);
  const v = Array.from({ length: n }, (_, i) => (i - n / 2) * scale);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [v[i], v[j]] = [v[j], v[i]];
  }
  return v;
}

const ids = (values: readonly number[], dims: readonly number[]): HostTensor => ({
  data: BigInt64Array.from(values.map((v) => BigInt(v))),
  dims,
});
const mask = (values: readonly number[], dims: readonly number[]): HostTensor => ({ data: Uint8Array.from(values), dims });

interface Case {
  name: string;
  inputs: GradcheckInput[];
  fn: (x: Record<string, Tensor>, g: Graph) => Tensor;
  options?: GradcheckOptions;
  tol?: number;
}

const inp = (name: string, shape: readonly number[], values?: readonly number[]): GradcheckInput => ({ name, shape, values });
const dyn = (shapes: Record<string, Shape>): GradcheckOptions => ({ declaredShapes: shapes });

async function expectGradOk(c: Case): Promise<void> {
  const r = await gradcheck(c.inputs, c.fn, c.options);
  expect(r.checked).toBeGreaterThan(0);
  expect(r.maxRelError, `${c.name}: worst ${JSON.stringify(r.worst)}`).toBeLessThan(c.tol ?? 1e-6);
}

function runCases(title: string, cases: Case[]): void {
  describe(title, () => {
    for (const c of cases) it(c.name, () => expectGradOk(c));
  });
}

// ------------------------------------------------------------------ primitives

const pos = (shape: readonly number[], seed = 3): number[] => uniform(shape, 0.5, 2, seed);

runCases('gradcheck: elementwise binary (with broadcasting)', [
  { name: 'Add [2,3]+[3]', inputs: [inp('a', [2, 3]), inp('b', [3])], fn: ({ a, b }) => op.add(a, b) },
  { name: 'Add [2,1,3]+[4,1]', inputs: [inp('a', [2, 1, 3]), inp('b', [4, 1])], fn: ({ a, b }) => op.add(a, b) },
  {
    name: 'Add [batch,3]+[3] (dynamic)',
    inputs: [inp('a', [4, 3]), inp('b', [3])],
    fn: ({ a, b }) => op.add(a, b),
    options: dyn({ a: ['batch', 3] }),
  },
  { name: 'Add tensor+number', inputs: [inp('a', [2, 3])], fn: ({ a }) => op.add(a, 1.5) },
  { name: 'Sub [2,3]-[2,1]', inputs: [inp('a', [2, 3]), inp('b', [2, 1])], fn: ({ a, b }) => op.sub(a, b) },
  { name: 'Sub number-tensor', inputs: [inp('a', [2, 3])], fn: ({ a }) => op.sub(1, a) },
  {
    name: 'Sub [batch,seq,2]-[batch,1,2] (dynamic)',
    inputs: [inp('a', [2, 3, 2]), inp('b', [2, 1, 2])],
    fn: ({ a, b }) => op.sub(a, b),
    options: dyn({ a: ['batch', 'seq', 2], b: ['batch', 1, 2] }),
  },
  { name: 'Mul [3,1]*[1,4]', inputs: [inp('a', [3, 1]), inp('b', [1, 4])], fn: ({ a, b }) => op.mul(a, b) },
  { name: 'Mul [] * [2,3]', inputs: [inp('a', []), inp('b', [2, 3])], fn: ({ a, b }) => op.mul(a, b) },
  { name: 'Mul x*x (shared input)', inputs: [inp('a', [2, 3])], fn: ({ a }) => op.mul(a, a) },
  {
    name: 'Mul chains with scalar constants (folded in the gradient)',
    inputs: [inp('a', [2, 3]), inp('b', [3])],
    fn: ({ a, b }) => op.mul(op.mul(op.mul(op.mul(a, a), 0.25), b), op.mul(op.mul(op.mul(b, 3), -0.5), 2)),
  },
  {
    name: 'Mul scalar-constant chain feeding a broadcast',
    inputs: [inp('a', [3]), inp('b', [2, 3])],
    fn: ({ a, b }) => op.add(op.mul(op.mul(op.mul(a, 1.5), 2), b), op.mul(op.mul(b, b), 0.1)),
  },
  { name: 'Div [2,3]/[3]', inputs: [inp('a', [2, 3]), inp('b', [3], pos([3]))], fn: ({ a, b }) => op.div(a, b) },
  { name: 'Div [3]/[2,3]', inputs: [inp('a', [3]), inp('b', [2, 3], pos([2, 3]))], fn: ({ a, b }) => op.div(a, b) },
  {
    name: 'Div [batch,3]/[batch,1] (dynamic)',
    inputs: [inp('a', [2, 3]), inp('b', [2, 1], pos([2, 1]))],
    fn: ({ a, b }) => op.div(a, b),
    options: dyn({ a: ['batch', 3], b: ['batch', 1] }),
  },
  {
    name: 'Pow [2,3]^[3] (both differentiable)',
    inputs: [inp('a', [2, 3], pos([2, 3])), inp('b', [3])],
    fn: ({ a, b }) => op.pow(a, b),
  },
  { name: 'Pow x^3 (constant exponent)', inputs: [inp('a', [2, 3])], fn: ({ a }) => op.pow(a, 3) },
  { name: 'Pow x^0.5', inputs: [inp('a', [2, 3], pos([2, 3]))], fn: ({ a }) => op.pow(a, 0.5) },
  {
    name: 'Max [2,3] vs [3]',
    inputs: [inp('a', [2, 3], distinct([2, 3], 1)), inp('b', [3], [0.05, -0.15, 0.25])],
    fn: ({ a, b }) => op.maximum(a, b),
  },
  { name: 'Max x vs 0.1', inputs: [inp('a', [2, 3], distinct([2, 3], 2))], fn: ({ a }) => op.maximum(a, 0.1) },
  {
    name: 'Min [2,3] vs [2,1]',
    inputs: [inp('a', [2, 3], distinct([2, 3], 3)), inp('b', [2, 1], [0.05, -0.15])],
    fn: ({ a, b }) => op.minimum(a, b),
  },
]);

runCases('gradcheck: elementwise unary', [
  { name: 'Neg', inputs: [inp('x', [2, 3])], fn: ({ x }) => op.neg(x) },
  { name: 'Exp', inputs: [inp('x', [2, 3])], fn: ({ x }) => op.exp(x) },
  { name: 'Log (positive)', inputs: [inp('x', [2, 3], pos([2, 3]))], fn: ({ x }) => op.log(x) },
  { name: 'Tanh', inputs: [inp('x', [2, 3], uniform([2, 3], -2, 2))], fn: ({ x }) => op.tanh(x) },
  { name: 'Sigmoid', inputs: [inp('x', [2, 3], uniform([2, 3], -3, 3))], fn: ({ x }) => op.sigmoid(x) },
  { name: 'Sqrt (positive)', inputs: [inp('x', [2, 3], pos([2, 3]))], fn: ({ x }) => op.sqrt(x) },
  { name: 'rsqrt (positive)', inputs: [inp('x', [2, 3], pos([2, 3]))], fn: ({ x }) => op.rsqrt(x) },
  { name: 'Reciprocal', inputs: [inp('x', [2, 3], awayFromZero([2, 3]))], fn: ({ x }) => op.reciprocal(x) },
  { name: 'Abs (away from 0)', inputs: [inp('x', [2, 3], awayFromZero([2, 3]))], fn: ({ x }) => op.abs(x) },
  { name: 'Relu (away from 0)', inputs: [inp('x', [2, 3], awayFromZero([2, 3], 4))], fn: ({ x }) => op.relu(x) },
  { name: 'Sin', inputs: [inp('x', [2, 3], uniform([2, 3], -3, 3))], fn: ({ x }) => op.sin(x) },
  { name: 'Cos', inputs: [inp('x', [2, 3], uniform([2, 3], -3, 3))], fn: ({ x }) => op.cos(x) },
  // float64 Erf is a series at export (ORT has no double Erf kernel): slightly looser.
  { name: 'Erf', inputs: [inp('x', [2, 3], uniform([2, 3], -2.5, 2.5))], fn: ({ x }) => op.erf(x), tol: 1e-5 },
  { name: 'Identity', inputs: [inp('x', [2, 3])], fn: ({ x }) => op.identity(x) },
  {
    name: 'Cast float64 -> float64 node',
    inputs: [inp('x', [2, 3])],
    // op.cast returns x itself for a no-op cast; emit the node explicitly to exercise the rule.
    fn: ({ x }, g) => g.addNode('Cast', [x], { to: 'float64' }, [{ dtype: 'float64', shape: [...x.shape] }])[0],
  },
  {
    name: 'Cast float64 -> float32 -> float64 (round trip, float32 precision)',
    inputs: [inp('x', [2, 3])],
    fn: ({ x }) => op.cast(op.cast(x, 'float32'), 'float64'),
    options: { eps: 1e-3 },
    tol: 1e-3,
  },
  {
    name: 'Cast bool mask -> float64 (no gradient into the mask)',
    inputs: [inp('x', [2, 3])],
    fn: ({ x, m }) => op.mul(x, op.cast(m, 'float64')),
    options: {
      extraInputs: (g) => ({ m: g.input('m', 'bool', [2, 3]) }),
      extraFeeds: { m: mask([1, 0, 1, 1, 1, 0], [2, 3]) },
    },
  },
  {
    name: 'Where [2,3] cond, [2,3] / [3] branches',
    inputs: [inp('a', [2, 3]), inp('b', [3])],
    fn: ({ a, b, c }) => op.where(c, a, b),
    options: {
      extraInputs: (g) => ({ c: g.input('c', 'bool', [2, 3]) }),
      extraFeeds: { c: mask([1, 0, 1, 0, 0, 1], [2, 3]) },
    },
  },
  {
    name: 'Where [batch,1] cond, tensor / scalar branch (dynamic)',
    inputs: [inp('a', [3, 2])],
    fn: ({ a, c }) => op.where(c, a, -3),
    options: {
      declaredShapes: { a: ['batch', 2] },
      extraInputs: (g) => ({ c: g.input('c', 'bool', ['batch', 1]) }),
      extraFeeds: { c: mask([1, 0, 1], [3, 1]) },
    },
  },
  {
    name: 'Where with comparison mask (less)',
    inputs: [inp('a', [2, 3], awayFromZero([2, 3])), inp('b', [2, 3])],
    fn: ({ a, b }) => op.where(op.less(a, 0), op.mul(a, b), op.exp(b)),
  },
]);

runCases('gradcheck: reductions', [
  { name: 'ReduceSum all', inputs: [inp('x', [2, 3, 2])], fn: ({ x }) => op.sum(x) },
  { name: 'ReduceSum axis 1', inputs: [inp('x', [2, 3, 2])], fn: ({ x }) => op.sum(x, 1) },
  { name: 'ReduceSum axes [0,2] keepdims', inputs: [inp('x', [2, 3, 2])], fn: ({ x }) => op.sum(x, [0, 2], true) },
  { name: 'ReduceSum axis -1', inputs: [inp('x', [2, 3, 2])], fn: ({ x }) => op.sum(x, -1) },
  {
    name: 'ReduceSum [batch,seq,2] axis 1 (dynamic)',
    inputs: [inp('x', [2, 3, 2])],
    fn: ({ x }) => op.sum(x, 1),
    options: dyn({ x: ['batch', 'seq', 2] }),
  },
  { name: 'ReduceSumSquare all', inputs: [inp('x', [2, 3, 2])], fn: ({ x }) => op.sumSquares(x) },
  { name: 'ReduceSumSquare axis 1', inputs: [inp('x', [2, 3, 2])], fn: ({ x }) => op.sumSquares(x, 1) },
  { name: 'ReduceSumSquare axes [0,2] keepdims', inputs: [inp('x', [2, 3, 2])], fn: ({ x }) => op.sumSquares(x, [0, 2], true) },
  { name: 'ReduceMean all', inputs: [inp('x', [2, 3, 2])], fn: ({ x }) => op.mean(x) },
  { name: 'ReduceMean axis -1 keepdims', inputs: [inp('x', [2, 3, 2])], fn: ({ x }) => op.mean(x, -1, true) },
  { name: 'ReduceMean axes [0,1]', inputs: [inp('x', [2, 3, 2])], fn: ({ x }) => op.mean(x, [0, 1]) },
  {
    name: 'ReduceMean [batch,seq] axis 1 (dynamic sizes read at run time)',
    inputs: [inp('x', [2, 5])],
    fn: ({ x }) => op.mean(x, 1),
    options: dyn({ x: ['batch', 'seq'] }),
  },
  {
    name: 'ReduceMean all (dynamic)',
    inputs: [inp('x', [3, 2])],
    fn: ({ x }) => op.mean(x),
    options: dyn({ x: ['batch', 2] }),
  },
  { name: 'ReduceMax axis -1', inputs: [inp('x', [3, 4], distinct([3, 4]))], fn: ({ x }) => op.max(x, -1) },
  { name: 'ReduceMax axis 0 keepdims', inputs: [inp('x', [3, 4], distinct([3, 4], 9))], fn: ({ x }) => op.max(x, 0, true) },
  { name: 'ReduceMax all', inputs: [inp('x', [3, 4], distinct([3, 4], 10))], fn: ({ x }) => op.max(x) },
  {
    name: 'ReduceMax [batch,4] axis 1 (dynamic)',
    inputs: [inp('x', [3, 4], distinct([3, 4], 12))],
    fn: ({ x }) => op.max(x, 1),
    options: dyn({ x: ['batch', 4] }),
  },
  { name: 'ReduceProd (nonzero)', inputs: [inp('x', [2, 3], pos([2, 3]))], fn: ({ x }) => op.reduceProd(x) },
]);

runCases('gradcheck: matmul and softmax', [
  { name: 'MatMul [2,3]x[3,4]', inputs: [inp('a', [2, 3]), inp('b', [3, 4])], fn: ({ a, b }) => op.matmul(a, b) },
  { name: 'Gemm [2,3]x[3,4] + c', inputs: [inp('a', [2, 3]), inp('b', [3, 4]), inp('c', [2, 4])], fn: ({ a, b, c }) => op.gemm(a, b, c) },
  { name: 'Gemm transA transB', inputs: [inp('a', [3, 2]), inp('b', [4, 3]), inp('c', [2, 4])], fn: ({ a, b, c }) => op.gemm(a, b, c, true, true) },
  {
    name: 'weight used by two matmuls, once transposed (the sum becomes a Gemm, the transposed one Bᵀ A)',
    inputs: [inp('x', [5, 3]), inp('y', [4, 2]), inp('w', [3, 2])],
    fn: ({ x, y, w }) => op.add(op.sum(op.mul(op.matmul(x, w), op.matmul(x, w))), op.sum(op.matmul(y, op.transpose(w, [1, 0])))),
  },
  {
    name: 'tied weight: gather + three transposed uses (Gemm accumulation, gather scatter into it)',
    inputs: [inp('w', [6, 3]), inp('h', [4, 3])],
    fn: ({ w, h }) => {
      const ids = op.constant(w.graph, [1, 4, 1], 'int64', [3]);
      const wt = op.transpose(w, [1, 0]);
      const uses = [0, 1, 2].map((i) => op.sum(op.mul(op.matmul(op.mul(h, i + 1), wt), op.matmul(h, wt))));
      return op.add(op.add(op.add(uses[0], uses[1]), uses[2]), op.sum(op.mul(op.gather(w, ids), op.gather(w, ids))));
    },
  },
  { name: 'MatMul [2,3,4]x[4,5] (batch broadcast)', inputs: [inp('a', [2, 3, 4]), inp('b', [4, 5])], fn: ({ a, b }) => op.matmul(a, b) },
  { name: 'MatMul [3,4]x[2,4,2] (batch broadcast of a)', inputs: [inp('a', [3, 4]), inp('b', [2, 4, 2])], fn: ({ a, b }) => op.matmul(a, b) },
  {
    name: 'MatMul [2,1,3,4]x[3,4,2] (both broadcast)',
    inputs: [inp('a', [2, 1, 3, 4]), inp('b', [3, 4, 2])],
    fn: ({ a, b }) => op.matmul(a, b),
  },
  {
    name: 'MatMul [batch,seq,4]x[4,3] (dynamic)',
    inputs: [inp('a', [2, 3, 4]), inp('b', [4, 3])],
    fn: ({ a, b }) => op.matmul(a, b),
    options: dyn({ a: ['batch', 'seq', 4] }),
  },
  {
    name: 'MatMul [batch,seq,4]x[batch,4,seq] (attention-like, dynamic)',
    inputs: [inp('q', [2, 3, 4]), inp('k', [2, 4, 3])],
    fn: ({ q, k }) => op.matmul(q, k),
    options: dyn({ q: ['batch', 'seq', 4], k: ['batch', 4, 'seq'] }),
  },
  { name: 'Softmax axis -1', inputs: [inp('x', [2, 4], uniform([2, 4], -2, 2))], fn: ({ x }) => op.softmax(x, -1) },
  { name: 'Softmax axis 0', inputs: [inp('x', [3, 2, 2], uniform([3, 2, 2], -2, 2))], fn: ({ x }) => op.softmax(x, 0) },
  {
    name: 'Softmax [batch,seq] (dynamic)',
    inputs: [inp('x', [2, 5], uniform([2, 5], -2, 2))],
    fn: ({ x }) => op.softmax(x, -1),
    options: dyn({ x: ['batch', 'seq'] }),
  },
]);

runCases('gradcheck: layout', [
  { name: 'Reshape [2,3,4]->[6,4]', inputs: [inp('x', [2, 3, 4])], fn: ({ x }) => op.reshape(x, [6, 4]) },
  { name: 'Reshape [2,3,4]->[-1,2]', inputs: [inp('x', [2, 3, 4])], fn: ({ x }) => op.reshape(x, [-1, 2]) },
  {
    name: 'Reshape [batch,3,4]->[batch,12] (dynamic)',
    inputs: [inp('x', [2, 3, 4])],
    fn: ({ x }) => op.reshape(x, ['batch', 12]),
    options: dyn({ x: ['batch', 3, 4] }),
  },
  {
    name: 'Reshape [batch,seq,2]->[batch*seq,2] (dynamic)',
    inputs: [inp('x', [2, 3, 2])],
    fn: ({ x }) => op.reshape(x, ['batch*seq', 2]),
    options: dyn({ x: ['batch', 'seq', 2] }),
  },
  { name: 'Transpose [2,3,4] perm [2,0,1]', inputs: [inp('x', [2, 3, 4])], fn: ({ x }) => op.transpose(x, [2, 0, 1]) },
  { name: 'Transpose default (reverse)', inputs: [inp('x', [2, 3])], fn: ({ x }) => op.transpose(x) },
  {
    name: 'Transpose [batch,seq,3] last two (dynamic)',
    inputs: [inp('x', [2, 4, 3])],
    fn: ({ x }) => op.transposeLast2(x),
    options: dyn({ x: ['batch', 'seq', 3] }),
  },
  { name: 'Unsqueeze axis 1', inputs: [inp('x', [2, 3])], fn: ({ x }) => op.unsqueeze(x, 1) },
  { name: 'Unsqueeze axis -1', inputs: [inp('x', [2, 3])], fn: ({ x }) => op.unsqueeze(x, -1) },
  { name: 'Squeeze axes [0,2]', inputs: [inp('x', [1, 3, 1, 2])], fn: ({ x }) => op.squeeze(x, [0, 2]) },
  {
    name: 'Squeeze [batch,1,3] (dynamic)',
    inputs: [inp('x', [2, 1, 3])],
    fn: ({ x }) => op.squeeze(x, 1),
    options: dyn({ x: ['batch', 1, 3] }),
  },
  { name: 'Expand [3,1]->[2,3,4]', inputs: [inp('x', [3, 1])], fn: ({ x }) => op.expand(x, [2, 3, 4]) },
  {
    name: 'Expand [1,3]->[batch,3] (dynamic, dim read from another input)',
    inputs: [inp('x', [1, 3]), inp('y', [4, 3])],
    fn: ({ x, y }) => op.mul(op.expand(x, ['batch', 3]), y),
    options: dyn({ y: ['batch', 3] }),
  },
  {
    name: 'expandLike',
    inputs: [inp('x', [3]), inp('y', [2, 3])],
    fn: ({ x, y }) => op.add(op.expandLike(x, y), y),
  },
  { name: 'Slice axis 1 [1:3]', inputs: [inp('x', [3, 5])], fn: ({ x }) => op.slice(x, 1, 1, 3) },
  { name: 'Slice axis 0 [-2:]', inputs: [inp('x', [4, 3])], fn: ({ x }) => op.slice(x, 0, -2) },
  { name: 'Slice axis -1 [1:-1]', inputs: [inp('x', [2, 5])], fn: ({ x }) => op.slice(x, -1, 1, -1) },
  { name: 'Slice axis 1 [-4:-1]', inputs: [inp('x', [2, 5])], fn: ({ x }) => op.slice(x, 1, -4, -1) },
  { name: 'Slice past the end [2:100]', inputs: [inp('x', [2, 5])], fn: ({ x }) => op.slice(x, 1, 2, 100) },
  {
    name: 'Slice [seq] [1:] (dynamic)',
    inputs: [inp('x', [2, 5])],
    fn: ({ x }) => op.slice(x, 1, 1),
    options: dyn({ x: [2, 'seq'] }),
  },
  {
    name: 'Slice [seq] [:-1] (dynamic)',
    inputs: [inp('x', [2, 5])],
    fn: ({ x }) => op.slice(x, 1, 0, -1),
    options: dyn({ x: [2, 'seq'] }),
  },
  {
    name: 'Slice [seq] [1:3] (dynamic)',
    inputs: [inp('x', [2, 5])],
    fn: ({ x }) => op.slice(x, 1, 1, 3),
    options: dyn({ x: [2, 'seq'] }),
  },
  {
    name: 'Slice [seq] [-2:] (dynamic)',
    inputs: [inp('x', [2, 5])],
    fn: ({ x }) => op.slice(x, 1, -2),
    options: dyn({ x: [2, 'seq'] }),
  },
  {
    name: 'Slice [seq] [-3:-1] (dynamic)',
    inputs: [inp('x', [2, 5])],
    fn: ({ x }) => op.slice(x, 1, -3, -1),
    options: dyn({ x: [2, 'seq'] }),
  },
  {
    name: 'Slice [seq] [2:-1] (dynamic)',
    inputs: [inp('x', [5, 2])],
    fn: ({ x }) => op.slice(x, 0, 2, -1),
    options: dyn({ x: ['seq', 2] }),
  },
  { name: 'Pad axis 1 by (2, 1)', inputs: [inp('x', [2, 3])], fn: ({ x }) => op.pad(x, 1, 2, 1) },
  { name: 'Pad axis 0 by (0, 2)', inputs: [inp('x', [2, 3])], fn: ({ x }) => op.pad(x, 0, 0, 2) },
  {
    name: 'Pad with run-time amounts (int64 tensors)',
    inputs: [inp('x', [2, 3])],
    fn: ({ x }, g) => op.pad(x, 1, op.constant(g, [1], 'int64', [1]), op.reshape(op.dimTensor(g, 'batch', x), [1])),
    options: dyn({ x: ['batch', 3] }),
  },
  {
    name: 'Concat axis 1 of three',
    inputs: [inp('a', [2, 1]), inp('b', [2, 3]), inp('c', [2, 2])],
    fn: ({ a, b, c }) => op.concat([a, b, c], 1),
  },
  {
    name: 'Concat axis 0 with a repeated input',
    inputs: [inp('a', [2, 3])],
    fn: ({ a }) => op.concat([a, op.exp(a), a], 0),
  },
  {
    name: 'Concat [batch,p]+[batch,r] along dynamic axis',
    inputs: [inp('a', [2, 3]), inp('b', [2, 2])],
    fn: ({ a, b }) => op.concat([a, b], 1),
    options: dyn({ a: [2, 'p'], b: [2, 'r'] }),
  },
  {
    name: 'Split [1,2,2] all outputs used',
    inputs: [inp('x', [2, 5])],
    fn: ({ x }) => {
      const [p, q, r] = op.split(x, 1, [1, 2, 2]);
      return op.concat([op.exp(p), op.mul(q, r), q], 1);
    },
  },
  {
    name: 'Split with an unused output',
    inputs: [inp('x', [4, 2])],
    fn: ({ x }) => op.split(x, 0, [1, 3])[1],
  },
  {
    name: 'Split [seq] into [2, seq-2] (dynamic)',
    inputs: [inp('x', [5, 2])],
    fn: ({ x }) => {
      const [head, tail] = op.split(x, 0, [2, 'seq-2']);
      return op.add(op.sum(op.mul(head, head)), op.sum(op.exp(tail)));
    },
    options: dyn({ x: ['seq', 2] }),
  },
]);

runCases('gradcheck: indexing', [
  {
    name: 'Gather (embedding) with repeated ids',
    inputs: [inp('table', [5, 3])],
    fn: ({ table, ids }) => op.gather(table, ids),
    options: {
      extraInputs: (g) => ({ ids: g.input('ids', 'int64', [2, 3]) }),
      extraFeeds: { ids: ids([0, 4, 2, 2, 0, 1], [2, 3]) },
    },
  },
  {
    name: 'Gather [batch,seq] ids (dynamic)',
    inputs: [inp('table', [4, 2])],
    fn: ({ table, ids }) => op.gather(table, ids),
    options: {
      extraInputs: (g) => ({ ids: g.input('ids', 'int64', ['batch', 'seq']) }),
      extraFeeds: { ids: ids([3, 3, 1, 0, 1, 3], [3, 2]) },
    },
  },
  {
    name: 'GatherElements axis -1 (token log-probs)',
    inputs: [inp('x', [3, 4])],
    fn: ({ x, index }) => op.gatherElements(x, index, -1),
    options: {
      extraInputs: (g) => ({ index: g.input('index', 'int64', [3, 2]) }),
      extraFeeds: { index: ids([0, 3, 2, 2, 1, 0], [3, 2]) },
    },
  },
  {
    name: 'GatherElements axis 0',
    inputs: [inp('x', [3, 2])],
    fn: ({ x, index }) => op.gatherElements(x, index, 0),
    options: {
      extraInputs: (g) => ({ index: g.input('index', 'int64', [4, 2]) }),
      extraFeeds: { index: ids([0, 2, 2, 2, 1, 0, 0, 1], [4, 2]) },
    },
  },
  {
    name: 'GatherElements [batch,seq,V] with [batch,seq,1] (dynamic)',
    inputs: [inp('x', [2, 3, 4])],
    fn: ({ x, index }) => op.squeeze(op.gatherElements(x, index, -1), -1),
    options: {
      declaredShapes: { x: ['batch', 'seq', 4] },
      extraInputs: (g) => ({ index: g.input('index', 'int64', ['batch', 'seq', 1]) }),
      extraFeeds: { index: ids([0, 3, 2, 1, 1, 0], [2, 3, 1]) },
    },
  },
  {
    name: 'ScatterElements (scatterAdd) with repeated indices',
    inputs: [inp('data', [3, 4]), inp('updates', [3, 2])],
    fn: ({ data, updates, index }) => op.scatterAdd(data, index, updates, -1),
    options: {
      extraInputs: (g) => ({ index: g.input('index', 'int64', [3, 2]) }),
      extraFeeds: { index: ids([0, 0, 3, 1, 2, 2], [3, 2]) },
    },
  },
  {
    name: 'ScatterElements (scatterAdd) axis 0',
    inputs: [inp('data', [3, 2]), inp('updates', [2, 2])],
    fn: ({ data, updates, index }) => op.mul(op.scatterAdd(data, index, updates, 0), data),
    options: {
      extraInputs: (g) => ({ index: g.input('index', 'int64', [2, 2]) }),
      extraFeeds: { index: ids([2, 0, 2, 1], [2, 2]) },
    },
  },
  {
    name: 'ScatterND (scatterAddRows) with repeated ids',
    inputs: [inp('data', [5, 3]), inp('updates', [4, 3])],
    fn: ({ data, updates, ids: i }) => op.scatterAddRows(data, i, updates),
    options: {
      extraInputs: (g) => ({ ids: g.input('ids', 'int64', [4]) }),
      extraFeeds: { ids: ids([1, 4, 1, 0], [4]) },
    },
  },
  {
    name: 'ScatterND (scatterAddRows) [batch,seq] ids (dynamic)',
    inputs: [inp('data', [4, 2]), inp('updates', [2, 3, 2])],
    fn: ({ data, updates, ids: i }) => op.scatterAddRows(data, i, updates),
    options: {
      declaredShapes: { updates: ['batch', 'seq', 2] },
      extraInputs: (g) => ({ ids: g.input('ids', 'int64', ['batch', 'seq']) }),
      extraFeeds: { ids: ids([0, 3, 3, 1, 0, 0], [2, 3]) },
    },
  },
  {
    name: 'GatherND (first-axis rows)',
    inputs: [inp('data', [4, 3])],
    fn: ({ data, idx }) => op.gatherND(data, idx),
    options: {
      extraInputs: (g) => ({ idx: g.input('idx', 'int64', [5, 1]) }),
      extraFeeds: { idx: ids([3, 0, 3, 2, 0], [5, 1]) },
    },
  },
]);

// ------------------------------------------------------------------ composites (nn.ts)

runCases('gradcheck: composites', [
  { name: 'logSumExp axis -1', inputs: [inp('x', [3, 4], uniform([3, 4], -3, 3))], fn: ({ x }) => nn.logSumExp(x, -1) },
  { name: 'logSumExp axis 0 keepDims', inputs: [inp('x', [3, 4], uniform([3, 4], -3, 3))], fn: ({ x }) => nn.logSumExp(x, 0, true) },
  {
    name: 'logSumExp with large values (stability)',
    inputs: [inp('x', [2, 3], [500, 501, 499, -700, -701, -699.5])],
    fn: ({ x }) => nn.logSumExp(x, -1),
  },
  { name: 'logSoftmax axis -1', inputs: [inp('x', [3, 4], uniform([3, 4], -3, 3))], fn: ({ x }) => nn.logSoftmax(x) },
  {
    name: 'logSoftmax [batch,seq,V] (dynamic)',
    inputs: [inp('x', [2, 3, 4], uniform([2, 3, 4], -3, 3))],
    fn: ({ x }) => nn.logSoftmax(x, -1),
    options: dyn({ x: ['batch', 'seq', 4] }),
  },
  {
    name: 'token log-probs: gatherElements(logSoftmax) (dynamic)',
    inputs: [inp('logits', [2, 3, 5], uniform([2, 3, 5], -3, 3))],
    fn: ({ logits, labels }) => op.squeeze(op.gatherElements(nn.logSoftmax(logits), op.unsqueeze(labels, -1), -1), -1),
    options: {
      declaredShapes: { logits: ['batch', 'seq', 5] },
      extraInputs: (g) => ({ labels: g.input('labels', 'int64', ['batch', 'seq']) }),
      extraFeeds: { labels: ids([0, 4, 2, 1, 1, 3], [2, 3]) },
    },
  },
  {
    name: 'softplus (wide range)',
    inputs: [inp('x', [2, 4], [-30, -5, -1, -0.3, 0.4, 2, 8, 40])],
    fn: ({ x }) => nn.softplus(x),
  },
  {
    name: 'logSigmoid (wide range)',
    inputs: [inp('x', [2, 4], [-40, -6, -1.5, -0.25, 0.35, 1, 7, 30])],
    fn: ({ x }) => nn.logSigmoid(x),
  },
  { name: 'geluTanh', inputs: [inp('x', [2, 4], uniform([2, 4], -3, 3))], fn: ({ x }) => nn.geluTanh(x) },
  { name: 'geluErf', inputs: [inp('x', [2, 4], uniform([2, 4], -3, 3))], fn: ({ x }) => nn.geluErf(x), tol: 1e-5 },
  { name: 'silu', inputs: [inp('x', [2, 4], uniform([2, 4], -3, 3))], fn: ({ x }) => nn.silu(x) },
  {
    name: 'layerNorm with weight and bias',
    inputs: [inp('x', [3, 4]), inp('w', [4]), inp('b', [4])],
    fn: ({ x, w, b }) => nn.layerNorm(x, w, b, 1e-5),
  },
  { name: 'layerNorm without affine', inputs: [inp('x', [2, 5])], fn: ({ x }) => nn.layerNorm(x, undefined, undefined, 1e-5) },
  {
    name: 'layerNorm [batch,seq,4] (dynamic)',
    inputs: [inp('x', [2, 3, 4]), inp('w', [4]), inp('b', [4])],
    fn: ({ x, w, b }) => nn.layerNorm(x, w, b, 1e-5),
    options: dyn({ x: ['batch', 'seq', 4] }),
  },
  { name: 'rmsNorm with weight', inputs: [inp('x', [3, 4]), inp('w', [4])], fn: ({ x, w }) => nn.rmsNorm(x, w, 1e-6) },
  { name: 'rmsNorm without weight', inputs: [inp('x', [3, 4])], fn: ({ x }) => nn.rmsNorm(x, undefined, 1e-6) },
  {
    name: 'rmsNorm [batch,seq,4] (dynamic)',
    inputs: [inp('x', [2, 3, 4]), inp('w', [4])],
    fn: ({ x, w }) => nn.rmsNorm(x, w, 1e-6),
    options: dyn({ x: ['batch', 'seq', 4] }),
  },
  {
    name: 'linear with bias',
    inputs: [inp('x', [3, 4]), inp('w', [4, 2]), inp('b', [2])],
    fn: ({ x, w, b }) => nn.linear(x, w, b),
  },
  {
    name: 'linear [batch,seq,4] no bias (dynamic)',
    inputs: [inp('x', [2, 3, 4]), inp('w', [4, 2])],
    fn: ({ x, w }) => nn.linear(x, w),
    options: dyn({ x: ['batch', 'seq', 4] }),
  },
  {
    name: 'linear [batch,seq,4] with bias (bias gradient sums two leading axes)',
    inputs: [inp('x', [2, 3, 4]), inp('w', [4, 2]), inp('b', [2])],
    fn: ({ x, w, b }) => nn.linear(x, w, b),
    options: dyn({ x: ['batch', 'seq', 4] }),
  },
  {
    name: 'GELU MLP block (as in bench/engine.ts)',
    inputs: [inp('x', [3, 4]), inp('w1', [4, 6]), inp('b1', [6]), inp('w2', [6, 4]), inp('b2', [4])],
    fn: ({ x, w1, b1, w2, b2 }) => nn.linear(nn.geluTanh(nn.linear(x, w1, b1)), w2, b2),
  },
  {
    name: 'linearT with bias',
    inputs: [inp('x', [2, 3, 4]), inp('w', [2, 4]), inp('b', [2])],
    fn: ({ x, w, b }) => nn.linearT(x, w, b),
  },
  {
    name: 'linearT [batch,seq,4] (dynamic)',
    inputs: [inp('x', [2, 3, 4]), inp('w', [3, 4]), inp('b', [3])],
    fn: ({ x, w, b }) => nn.linearT(x, w, b),
    options: dyn({ x: ['batch', 'seq', 4] }),
  },
  {
    name: 'maskedMean (float mask, not differentiated)',
    inputs: [inp('x', [2, 3]), { name: 'm', shape: [2, 3], values: [1, 0, 1, 1, 1, 0], differentiable: false }],
    fn: ({ x, m }) => nn.maskedMean(x, m),
  },
  {
    name: 'maskedMean with broadcast mask [batch,seq] x [batch,1]',
    inputs: [inp('x', [3, 2]), { name: 'm', shape: [3, 1], values: [1, 0, 1], differentiable: false }],
    fn: ({ x, m }) => nn.maskedMean(x, m),
    options: dyn({ x: ['batch', 2], m: ['batch', 1] }),
  },
  {
    name: 'causal-masked softmax attention (dynamic)',
    inputs: [inp('q', [2, 3, 4]), inp('k', [2, 3, 4]), inp('v', [2, 3, 4])],
    fn: ({ q, k, v }, g) => {
      const s = op.mul(op.matmul(q, op.transposeLast2(k)), 0.5);
      const m = nn.causalMask(g, 'seq', 'seq', q);
      return op.matmul(op.softmax(op.where(m, s, -1e9), -1), v);
    },
    options: dyn({ q: ['batch', 'seq', 4], k: ['batch', 'seq', 4], v: ['batch', 'seq', 4] }),
  },
]);

// ------------------------------------------------------------------ coverage and special rules

describe('gradient rule coverage', () => {
  it('hasGradientRule is false for an unknown op', () => {
    expect(hasGradientRule('NoSuchOp')).toBe(false);
  });

  it('stopGradient blocks the gradient (grad of sum(x * stopGradient(x)) is x)', async () => {
    const r = await gradcheckConstant();
    expect(r).toEqual([0.5, -1, 2]);
  });

  it('an input the loss does not depend on gets a zero gradient of its shape', async () => {
    const { Graph } = await import('../../src/engine/graph.js');
    const g = new Graph();
    const x = g.input('x', 'float64', ['n']);
    const y = g.input('y', 'float64', [2, 'n']);
    const [gx, gy] = grad(op.sum(op.exp(x)), [x, y]);
    const c = await CompiledGraph.compile({ gx, gy });
    const out = await c.run({
      x: { data: Float64Array.of(0, 1, 2), dims: [3] },
      y: { data: new Float64Array(6).fill(3), dims: [2, 3] },
    });
    const gxv = Array.from(out.gx.data as Float64Array);
    [1, Math.E, Math.exp(2)].forEach((v, i) => expect(gxv[i]).toBeCloseTo(v, 12));
    expect(out.gy.dims).toEqual([2, 3]);
    expect(Array.from(out.gy.data as Float64Array)).toEqual([0, 0, 0, 0, 0, 0]);
    await c.release();
  });
});

async function gradcheckConstant(): Promise<number[]> {
  const { Graph } = await import('../../src/engine/graph.js');
  const g = new Graph();
  const x = g.input('x', 'float64', [3]);
  const loss = op.sum(op.mul(x, op.stopGradient(x)));
  const [gx] = grad(loss, [x]);
  const c = await CompiledGraph.compile({ gx });
  const out = await c.run({ x: { data: Float64Array.of(0.5, -1, 2), dims: [3] } });
  await c.release();
  return Array.from(out.gx.data as Float64Array);
}

describe('geluTanh value', () => {
  it('equals 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) in float64', async () => {
    const { Graph } = await import('../../src/engine/graph.js');
    const g = new Graph();
    const x = g.input('x', 'float64', [9]);
    const c = await CompiledGraph.compile({ y: nn.geluTanh(x) });
    const xs = [-6, -3, -1.5, -0.5, 0, 0.3, 1, 2.5, 8];
    const y = Array.from((await c.run({ x: { data: Float64Array.from(xs), dims: [9] } })).y.data as Float64Array);
    xs.forEach((v, i) => {
      const want = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
      expect(Math.abs(y[i] - want)).toBeLessThan(1e-14 * Math.max(1, Math.abs(want)));
    });
    await c.release();
  });
});
