/** Errors name the op and the shapes at graph-build time, and say what is wrong at compile and run time. */
import { describe, expect, it } from 'vitest';
import { grad } from '../../src/engine/autodiff.js';
import { Graph } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph } from '../../src/engine/runtime.js';

const f32 = (n: number): Float32Array => new Float32Array(n).fill(0.5);

describe('shape errors at graph-build time', () => {
  it('matmul with different inner dims names the op, the dims and both shapes', () => {
    const g = new Graph();
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [4, 5]);
    expect(() => op.matmul(a, b)).toThrow('MatMul: inner dims 3 and 4 differ (inputs: float32[2, 3], float32[4, 5])');
  });

  it('matmul with different named inner dims', () => {
    const g = new Graph();
    const a = g.input('a', 'float32', ['batch', 'seq', 8]);
    const b = g.input('b', 'float32', ['batch', 'ctx', 8]);
    expect(() => op.matmul(a, b)).toThrow(/MatMul: inner dims 8 and ctx differ.*\[batch, seq, 8\].*\[batch, ctx, 8\]/);
  });

  it('matmul with non-broadcasting batch dims, rank < 2, or mixed dtypes', () => {
    const g = new Graph();
    const a = g.input('a', 'float32', [2, 3, 4]);
    const b = g.input('b', 'float32', [3, 4, 5]);
    expect(() => op.matmul(a, b)).toThrow(/MatMul: batch dims do not broadcast.*\[2, 3, 4\].*\[3, 4, 5\]/);
    expect(() => op.matmul(g.input('v', 'float32', [4]), b)).toThrow(/MatMul: operands must have rank >= 2/);
    expect(() => op.matmul(g.input('d', 'float64', [5, 3]), a)).toThrow(/MatMul: operands must share a float dtype.*float64\[5, 3\].*float32\[2, 3, 4\]/);
  });

  it('elementwise broadcast failure names the op and both shapes', () => {
    const g = new Graph();
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [4]);
    expect(() => op.add(a, b)).toThrow('Add: shapes [2, 3] and [4] do not broadcast (inputs: float32[2, 3], float32[4])');
    expect(() => op.mul(a, g.input('c', 'float32', [3, 2]))).toThrow(/^Mul: shapes \[2, 3\] and \[3, 2\] do not broadcast/);
    const s = g.input('s', 'float32', ['batch', 'seq']);
    const t = g.input('t', 'float32', ['batch', 'ctx']);
    expect(() => op.sub(s, t)).toThrow(/Sub: shapes \[batch, seq\] and \[batch, ctx\] do not broadcast/);
  });

  it('elementwise dtype mismatch', () => {
    const g = new Graph();
    const a = g.input('a', 'float32', [2]);
    const b = g.input('b', 'float64', [2]);
    expect(() => op.add(a, b)).toThrow(/Add: dtypes differ.*float32\[2\].*float64\[2\]/);
    expect(() => op.exp(g.input('i', 'int64', [2]))).toThrow(/Exp: needs a float tensor.*int64\[2\]/);
  });

  it('reshape to a different element count', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 3]);
    expect(() => op.reshape(x, [4, 2])).toThrow('Reshape: cannot reshape 6 elements to [4, 2] (inputs: float32[2, 3])');
    expect(() => op.reshape(x, [-1, 4])).toThrow(/Reshape: cannot reshape to \[-1, 4\]/);
    expect(() => op.reshape(x, [-1, -1])).toThrow(/Reshape: at most one -1/);
  });

  it('concat with a mismatched dim or rank', () => {
    const g = new Graph();
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [3, 3]);
    expect(() => op.concat([a, b], 1)).toThrow('Concat: dim 0 differs (inputs: float32[2, 3], float32[3, 3])');
    expect(() => op.concat([a, g.input('c', 'float32', [2, 3, 1])], 0)).toThrow(/Concat: ranks or dtypes differ/);
  });

  it('squeeze of a dim that is not 1', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 1, 3]);
    expect(() => op.squeeze(x, 0)).toThrow('Squeeze: dim 0 is 2, not 1 (inputs: float32[2, 1, 3])');
    const y = g.input('y', 'float32', ['batch', 3]);
    expect(() => op.squeeze(y, 0)).toThrow(/Squeeze: dim 0 is batch, not 1/);
  });

  it('other layout ops', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 3]);
    expect(() => op.transpose(x, [0, 0])).toThrow(/Transpose: invalid permutation \[0, 0\].*\[2, 3\]/);
    expect(() => op.expand(x, [4, 2])).toThrow(/Expand: cannot broadcast to \[4, 2\].*\[2, 3\]/);
    expect(() => op.split(x, 1, [1, 1])).toThrow(/Split: sizes \[1, 1\] do not add up to 3/);
    expect(() => op.sum(x, 2)).toThrow(/axis 2 out of range for rank 2/);
    expect(() => op.where(x as never, x, x)).toThrow(/Where: condition must be bool/);
    expect(() => op.gather(x, x)).toThrow(/Gather: ids must be int64 or int32/);
  });

  it('tensors from another graph', () => {
    const g1 = new Graph();
    const g2 = new Graph();
    const a = g1.input('a', 'float32', [2]);
    const b = g2.input('b', 'float32', [2]);
    expect(() => op.add(a, b)).toThrow(/Add: input b: float32\[2\] belongs to another graph/);
  });

  it('duplicate and invalid input names', () => {
    const g = new Graph();
    g.input('x', 'float32', [2]);
    expect(() => g.input('x', 'float32', [2])).toThrow("graph input 'x' is declared twice");
    expect(() => g.input('1bad name', 'float32', [2])).toThrow(/not a valid ONNX name/);
  });
});

describe('compile errors', () => {
  it('an op ONNX Runtime does not know fails at compile with a clear message', async () => {
    const g = new Graph('with_unknown_op');
    const x = g.input('x', 'float32', [2]);
    // @ts-expect-error an op name outside OP_NAMES does not compile; forced past the types, it still fails clearly
    const [y] = g.addNode('FooBar', [x], {}, [{ dtype: 'float32', shape: [2] }]);
    await expect(CompiledGraph.compile({ y: op.exp(y) })).rejects.toThrow(
      /compile: ONNX Runtime rejected graph 'with_unknown_op'.*No Op registered for FooBar/,
    );
  });

  it('an output named like an input is rejected at export', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    await expect(CompiledGraph.compile({ x: op.exp(x) })).rejects.toThrow(/output name 'x' is also the name of a graph input/);
  });
});

describe('autodiff errors', () => {
  it('grad through an op without a rule names the op', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    // @ts-expect-error an op name outside OP_NAMES does not compile; forced past the types, it still fails clearly
    const [y] = g.addNode('FooBar', [x], {}, [{ dtype: 'float32', shape: [2] }]);
    expect(() => grad(op.sum(y), [x])).toThrow('grad: no gradient rule for op FooBar');
  });

  it('grad of a non-scalar loss without a seed', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2]);
    expect(() => grad(op.exp(x), [x])).toThrow(/grad: loss must be a scalar, got Exp#\d+: float32\[2\]/);
  });
});

describe('run-time feed errors', () => {
  async function compiled(): Promise<CompiledGraph> {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 3]);
    const w = g.input('w', 'float32', [3, 2]);
    return CompiledGraph.compile({ y: op.matmul(x, w) });
  }
  const w = { data: f32(6), dims: [3, 2] };

  it('accepts any size for a named dim', async () => {
    const c = await compiled();
    expect((await c.run({ x: { data: f32(3), dims: [1, 3] }, w })).y.dims).toEqual([1, 2]);
    expect((await c.run({ x: { data: f32(15), dims: [5, 3] }, w })).y.dims).toEqual([5, 2]);
    await c.release();
  });

  it('missing input', async () => {
    const c = await compiled();
    await expect(c.run({ x: { data: f32(6), dims: [2, 3] } })).rejects.toThrow("run: missing input 'w'");
    await c.release();
  });

  it('wrong dtype', async () => {
    const c = await compiled();
    await expect(c.run({ x: { data: new Float64Array(6), dims: [2, 3] }, w })).rejects.toThrow("run: input 'x' must be float32, got float64");
    await c.release();
  });

  it('wrong rank', async () => {
    const c = await compiled();
    await expect(c.run({ x: { data: f32(6), dims: [6] }, w })).rejects.toThrow("run: input 'x' must have rank 2 [batch, 3], got [6]");
    await c.release();
  });

  it('wrong static dim', async () => {
    const c = await compiled();
    await expect(c.run({ x: { data: f32(8), dims: [2, 4] }, w })).rejects.toThrow("run: input 'x' dim 1 must be 3, got [2, 4]");
    await c.release();
  });

  it('a named dim with different sizes in two inputs', async () => {
    const g = new Graph();
    const a = g.input('a', 'float32', ['batch', 'seq']);
    const b = g.input('b', 'float32', ['batch', 1]);
    const c = await CompiledGraph.compile({ y: op.mul(a, b) });
    await expect(c.run({ a: { data: f32(6), dims: [2, 3] }, b: { data: f32(3), dims: [3, 1] } })).rejects.toThrow(
      "run: dim 'batch' is 2 in input 'a' but 3 in input 'b' (dim 0)",
    );
    await c.release();
  });

  it('data length that does not match dims', async () => {
    const c = await compiled();
    await expect(c.run({ x: { data: f32(5), dims: [2, 3] }, w })).rejects.toThrow("run: input 'x' has 5 elements for dims [2, 3]");
    await c.release();
  });
});
