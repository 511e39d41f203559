import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { grad } from '../../src/engine/autodiff.js';
import { CompiledGraph } from '../../src/engine/runtime.js';

describe('dropout', () => {
  it('zeroes about p of the elements, scales the rest by 1/(1-p), and its gradient uses the same mask', async () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [4096]);
    const r = g.input('r', 'float32', [4096]);
    const y = op.dropout(x, 0.25, 3);
    const [gx] = grad(op.sum(op.mul(y, r)), [x]);
    const c = await CompiledGraph.compile({ y, gx });
    const rv = Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i));
    const out = await c.run({ x: { data: new Float32Array(4096).fill(1), dims: [4096] }, r: { data: rv, dims: [4096] } });
    const yv = out.y.data as Float32Array;
    const kept = yv.filter((v) => v !== 0).length / yv.length;
    expect(kept).toBeGreaterThan(0.72);
    expect(kept).toBeLessThan(0.78);
    for (const v of yv) expect([0, Math.fround(1 / 0.75)]).toContainEqual(v);
    // x = 1, so y = mask / (1 - p) and d sum(y r)/dx = r * mask / (1 - p) = r * y.
    (out.gx.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(rv[i] * yv[i], 5));
    await c.release();
  });

  it('draws a new mask every run, and the same sequence in a new session with the same seed', async () => {
    const masks = async (): Promise<string[]> => {
      const g = new Graph();
      const x = g.input('x', 'float32', [64]);
      const c = await CompiledGraph.compile({ y: op.dropout(x, 0.5, 11) });
      const runs: string[] = [];
      for (let i = 0; i < 2; i++) {
        const o = await c.run({ x: { data: new Float32Array(64).fill(1), dims: [64] } });
        runs.push(Array.from(o.y.data as Float32Array, (v) => (v ? '1' : '0')).join(''));
      }
      await c.release();
      return runs;
    };
    const a = await masks();
    const b = await masks();
    expect(a[0]).not.toBe(a[1]);
    expect(b).toEqual(a);
  });

  it('survives ONNX Runtime when nothing needs its mask (a forward-only graph, dropout inside the graph)', async () => {
    // ORT deletes a Dropout node whose mask output is unused; ops.dropout builds its result from the mask.
    const g = new Graph();
    const x = g.input('x', 'float32', [2, 4]);
    const w = op.constant(g, new Float32Array(16).fill(1), 'float32', [4, 4]);
    const y = op.matmul(op.dropout(op.reshape(x, [1, 2, 4]), 0.5, 17), w);
    const c = await CompiledGraph.compile({ y });
    const outs = new Set<string>();
    for (let i = 0; i < 6; i++) outs.add(Array.from((await c.run({ x: { data: new Float32Array(8).fill(1), dims: [2, 4] } })).y.data as Float32Array).join(','));
    await c.release();
    expect(outs.size).toBeGreaterThan(1);
  });

  it('is the identity at p = 0 and rejects p outside [0, 1)', () => {
    const g = new Graph();
    const x = g.input('x', 'float32', [3]);
    expect(op.dropout(x, 0, 1)).toBe(x);
    expect(() => op.dropout(x, 1, 1)).toThrow(/Dropout/);
  });
});
