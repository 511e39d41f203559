/**
 * FLOPs counted from the graph (src/engine/flops.ts) against hand counts: plain and batched
 * MatMul, Gemm with transposes, nodes the outputs do not need, and a training step whose frozen
 * weight gets no gradient product.
 */
import { describe, expect, it } from 'vitest';
import { evalDim, matmulFlops } from '../../src/engine/flops.js';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { TrainStep, type ParamSpec } from '../../src/engine/train-step.js';
import { checkpoint } from '../../src/engine/checkpoint.js';

describe('matmulFlops', () => {
  it('counts 2·m·k·n per product at the run sizes, only for nodes the outputs need', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['n', 4]);
    const w = g.input('w', 'float32', [4, 8]);
    const b = g.input('b', 'float32', [3, 'n', 4]);
    const y = op.matmul(x, w); // 2·n·4·8
    const z = op.matmul(b, op.transpose(op.matmul(y, op.transpose(w, [1, 0])), [1, 0])); // 2·n·8·4, then 3 × 2·n·4·n
    op.matmul(y, op.transpose(w, [1, 0])); // not needed by the outputs: not counted
    const n = 5;
    const f = matmulFlops([z], { n });
    expect(f.nodes).toBe(3);
    expect(f.byOp.MatMul).toBe(2 * n * 4 * 8 + 2 * n * 8 * 4 + 3 * 2 * n * 4 * n);
    expect(f.total).toBe(f.byOp.MatMul);
    // The 2-D products by shape (the batched one is not among them).
    expect(f.shapes).toEqual([
      { m: n, k: 4, n: 8, flops: 2 * n * 4 * 8, nodes: 1 },
      { m: n, k: 8, n: 4, flops: 2 * n * 8 * 4, nodes: 1 },
    ]);
  });

  it('Gemm: k from the transposed operand', () => {
    const g = new Graph();
    const a = g.input('a', 'float32', ['rows', 6]); // aᵀ: [6, rows]
    const b = g.input('b', 'float32', ['rows', 3]);
    const c = g.input('c', 'float32', [6, 3]);
    const f = matmulFlops([op.gemm(a, b, c, true, false)], { rows: 10 });
    expect(f.byOp.Gemm).toBe(2 * 6 * 10 * 3);
    expect(f.nodes).toBe(1);
  });

  it('derived dim names evaluate; an unknown name is an error', () => {
    expect(evalDim('(batch*seq)+1', { batch: 3, seq: 5 })).toBe(16);
    expect(evalDim('a-b*2', { a: 9, b: 2 })).toBe(5);
    expect(evalDim(7, {})).toBe(7);
    expect(() => evalDim('batch*len', { batch: 2 })).toThrow(/no size for dim 'len'/);
  });

  it('a train step: no weight-gradient product for a frozen weight, recomputation counted once more', async () => {
    const D = 4;
    const H = 6;
    const loss = (g: Graph, p: Record<string, Tensor>, ckpt: boolean): Tensor => {
      const x = g.input('x', 'float32', ['n', D]);
      const body = (h: Tensor): Tensor => op.tanh(op.matmul(op.tanh(op.matmul(h, p.w1)), p.w2));
      const out = ckpt ? checkpoint([x], ([h]) => [body(h)])[0] : body(x);
      return op.mean(op.mul(out, out));
    };
    const specs = (): ParamSpec[] => [
      { name: 'w1', shape: [D, H], data: new Float32Array(D * H).fill(0.1), trainable: false },
      { name: 'w2', shape: [H, D], data: new Float32Array(H * D).fill(0.1) },
    ];
    const n = 7;
    const feeds = { x: { data: new Float32Array(n * D).fill(0.5), dims: [n, D] } };
    const prod = 2 * n * D * H; // every product here is n × D × H in some order
    const plain = await TrainStep.create(specs(), (g, p) => ({ loss: loss(g, p, false) }), { name: 'sgd' }, { threads: 1, compileCache: false });
    // Forward 2; backward: dW2 = hᵀ·dy only (w1 is frozen and x an input, so no dh = dy·w2ᵀ, no dW1).
    expect(plain.matmulFlops(feeds)).toMatchObject({ total: 3 * prod, nodes: 3 });
    await plain.release();
    const ckpt = await TrainStep.create(specs(), (g, p) => ({ loss: loss(g, p, true) }), { name: 'sgd' }, { threads: 1, compileCache: false });
    // The same plus the recomputed forward (2 more).
    expect(ckpt.matmulFlops(feeds)).toMatchObject({ total: 5 * prod, nodes: 5 });
    await ckpt.release();
  });
});

describe('matmulFlops with sizes made by Range', () => {
  it('works out a Range length from shapes and constants (the lm_head chunk rows)', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['rows', 4]);
    const w = g.input('w', 'float32', [4, 5]);
    const m = op.reshape(op.dimTensor(g, 'rows', x), []);
    const int = (v: number): Tensor => op.scalar(g, v, 'int64');
    // Rows [ceil(m/3), min(2·ceil(m/3), m)) of x, as scoredHead picks a chunk.
    const size = op.div(op.add(m, int(2)), int(3));
    const idx = op.range(size, op.minimum(op.mul(size, int(2)), m));
    const y = op.matmul(op.gather(x, idx), w);
    expect(matmulFlops([y], { rows: 10 }).total).toBe(2 * 4 * 4 * 5); // rows 4..7
    expect(matmulFlops([y], { rows: 2 }).total).toBe(2 * 1 * 4 * 5); // row 1 only
  });
});
