import { describe, expect, it } from 'vitest';
import { grad } from '../../src/engine/autodiff.js';
import { checkpoint } from '../../src/engine/checkpoint.js';
import { gradcheck } from '../../src/engine/gradcheck.js';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import * as nn from '../../src/engine/nn.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph } from '../../src/engine/runtime.js';

function values(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296 - 0.5) * 2;
  });
}

/** A vocabulary-projection-like piece: token log-probs of rows of h under weights w, plus a metric. */
function head(h: Tensor, w: Tensor, targets: Tensor): Tensor[] {
  const logits = op.matmul(h, op.transpose(w, [1, 0]));
  const lp = op.sub(op.squeeze(op.gatherElements(logits, op.unsqueeze(targets, 1), 1), 1), nn.logSumExp(logits, -1));
  return [nn.geluTanh(lp), op.stopGradient(op.mean(logits, -1))];
}

describe('checkpoint', () => {
  it('gradients through a checkpointed piece match float64 central differences', async () => {
    const r = await gradcheck(
      [
        { name: 'h', shape: [5, 3], values: values(15, 1) },
        { name: 'w', shape: [7, 3], values: values(21, 2) },
      ],
      ({ h, w }, g) => {
        const targets = g.input('targets', 'int64', [5]);
        // Two chunks of rows, each checkpointed, as the LM head does (the second piece's gradient is
        // recomputed after the first's); h is also used outside.
        // The rows depend on w as well (as an LM head's hidden states depend on tied embeddings).
        const rows = (a: number, b: number): Tensor => op.slice(op.add(op.mul(h, 1.5), op.mean(w)), 0, a, b);
        const t1 = op.slice(targets, 0, 0, 2);
        const t2 = op.slice(targets, 0, 2, 5);
        const [a] = checkpoint([rows(0, 2), w], ([x, ww]) => head(x, ww, t1));
        const [b] = checkpoint([rows(2, 5), w], ([x, ww]) => head(x, ww, t2));
        return op.add(op.concat([a, b], 0), op.sum(op.mul(h, h)));
      },
      { extraFeeds: { targets: { data: BigInt64Array.from([0n, 6n, 3n, 2n, 5n]), dims: [5] } } },
    );
    expect(r.checked).toBe(36);
    expect(r.maxAbsError).toBeLessThan(1e-7);
  });

  it('gives the gradients of the same graph without checkpointing, and the same values', async () => {
    const build = (useCheckpoint: boolean) => {
      const g = new Graph();
      const x = g.input('x', 'float32', ['rows', 4]);
      const w = g.input('w', 'float32', [4, 6]);
      const y = useCheckpoint ? checkpoint([op.matmul(x, w)], ([z]) => [nn.geluTanh(z)])[0] : nn.geluTanh(op.matmul(x, w));
      const loss = op.sum(op.mul(y, y));
      const [gx, gw] = grad(loss, [x, w]);
      return { loss, gx, gw };
    };
    const feeds = { x: { data: Float32Array.from(values(12, 3)), dims: [3, 4] }, w: { data: Float32Array.from(values(24, 4)), dims: [4, 6] } };
    const plain = await (await CompiledGraph.compile(build(false))).run(feeds);
    const ckpt = await (await CompiledGraph.compile(build(true))).run(feeds);
    for (const k of ['loss', 'gx', 'gw']) expect(Array.from(ckpt[k].data as Float32Array)).toEqual(Array.from(plain[k].data as Float32Array));
  });

  it('recomputes in the backward: no forward intermediate of the piece is read by the gradient', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['rows', 4]);
    const [y] = checkpoint([op.mul(x, 2)], ([z]) => [op.sigmoid(op.mul(z, z))]);
    const forward = new Set(g.nodes.map((n) => n.id));
    const inner = g.nodes.filter((n) => n.op === 'Sigmoid' || (n.op === 'Mul' && n.inputs[0] === n.inputs[1]));
    const [gx] = grad(op.sum(y), [x]);
    const backward = g.nodes.filter((n) => !forward.has(n.id));
    const innerOuts = new Set(inner.flatMap((n) => n.outputs.map((t) => t.id)));
    expect(backward.some((n) => n.inputs.some((t) => innerOuts.has(t.id)))).toBe(false);
    expect(backward.some((n) => n.op === 'Sigmoid')).toBe(true); // recomputed
    expect(gx.shape).toEqual(['rows', 4]);
  });

  it('gradients reach the tensors the piece closes over (weights not passed as inputs), float64', async () => {
    const r = await gradcheck(
      [
        { name: 'h', shape: [3, 4], values: values(12, 5) },
        { name: 'w', shape: [4, 4], values: values(16, 6) },
        { name: 'v', shape: [4], values: values(4, 7) },
      ],
      ({ h, w, v }) => {
        const wt = op.transpose(w, [1, 0]); // made before the piece, as LoRA's transposed adapters are
        const [y] = checkpoint([h], ([x]) => [nn.silu(op.add(op.matmul(x, wt), v))]);
        // Two pieces in a row, each closing over w: the second's recomputation waits for the first's gradients.
        const [z] = checkpoint([y], ([x]) => [op.mul(op.matmul(x, w), op.sigmoid(x))]);
        return z;
      },
    );
    expect(r.checked).toBe(32);
    expect(r.maxAbsError, JSON.stringify(r.worst)).toBeLessThan(1e-7);
  });

  it('a recomputed piece reuses the dropout masks its forward drew (exact gradients with dropout)', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [2048]);
    const r = g.input('r', 'float32', [2048]);
    // Two sites inside the piece, one nested in an inner checkpoint.
    const [y] = checkpoint([x], ([v]) => {
      const a = op.dropout(op.mul(v, 2), 0.5, 5);
      const [b] = checkpoint([a], ([u]) => [op.dropout(op.mul(u, u), 0.25, 9)]);
      return [b];
    });
    const [gx] = grad(op.sum(op.mul(y, r)), [x]);
    expect(g.nodes.filter((n) => n.op === 'Dropout')).toHaveLength(2); // drawn once each, never in the backward
    const c = await CompiledGraph.compile({ y, gx });
    const xv = Float32Array.from(values(2048, 8));
    const rv = Float32Array.from(values(2048, 9));
    const out = await c.run({ x: { data: xv, dims: [2048] }, r: { data: rv, dims: [2048] } });
    const yv = out.y.data as Float32Array;
    const gv = out.gx.data as Float32Array;
    // y = m1 m2 (2x)^2 / (0.5 * 0.75), so dy/dx = 2 y / x where kept and 0 where dropped.
    let kept = 0;
    for (let i = 0; i < 2048; i++) {
      if (yv[i] !== 0) kept++;
      expect(gv[i]).toBeCloseTo(yv[i] === 0 ? 0 : (rv[i] * 2 * yv[i]) / xv[i], 3);
    }
    expect(kept / 2048).toBeGreaterThan(0.3); // 0.5 * 0.75 of them
    expect(kept / 2048).toBeLessThan(0.45);
    await c.release();
  });
});
