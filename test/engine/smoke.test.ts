import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { grad } from '../../src/engine/autodiff.js';
import { CompiledGraph } from '../../src/engine/runtime.js';
import { gradcheck } from '../../src/engine/gradcheck.js';

describe('engine smoke', () => {
  it('computes a matmul + tanh and its gradient', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', ['batch', 3]);
    const w = g.input('w', 'float32', [3, 2]);
    const y = op.tanh(op.matmul(x, w));
    const loss = op.sum(y);
    const [gw] = grad(loss, [w]);
    const c = await CompiledGraph.compile({ loss, gw });
    const out = await c.run({
      x: { data: Float32Array.from([1, 2, 3, 4, 5, 6]), dims: [2, 3] },
      w: { data: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), dims: [3, 2] },
    });
    expect(out.gw.dims).toEqual([3, 2]);
    expect(Number.isFinite(out.loss.data[0] as number)).toBe(true);
  });

  it('gradchecks a small composite', async () => {
    const r = await gradcheck(
      [{ name: 'a', shape: [2, 3] }, { name: 'b', shape: [3] }],
      ({ a, b }) => op.softmax(op.mul(op.exp(a), b), -1),
    );
    expect(r.maxRelError).toBeLessThan(1e-6);
  });
});
