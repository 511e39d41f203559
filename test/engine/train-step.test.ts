import { describe, expect, it } from 'vitest';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { geluTanh } from '../../src/engine/nn.js';
import { grad } from '../../src/engine/autodiff.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { TrainStep, type ParamSpec } from '../../src/engine/train-step.js';
import type { OptimizerConfig } from '../../src/engine/optim.js';

function rand(seed: number, n: number, scale = 0.3): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296 - 0.5) * 2 * scale;
  });
}

const D = 16;
const H = 64;
function mlpLoss(g: Graph, p: Record<string, Tensor>): Tensor {
  const x = g.input('x', 'float32', ['batch', D]);
  const y = g.input('y', 'float32', ['batch', D]);
  const h = geluTanh(op.add(op.matmul(x, p.w1), p.b1));
  const out = op.add(op.matmul(h, p.w2), p.b2);
  const err = op.sub(out, y);
  return op.mean(op.mul(err, err));
}
const specs = (): ParamSpec[] => [
  { name: 'w1', shape: [D, H], data: rand(1, D * H) },
  { name: 'b1', shape: [H], data: rand(2, H) },
  { name: 'w2', shape: [H, D], data: rand(3, H * D) },
  { name: 'b2', shape: [D], data: rand(4, D) },
];
const batch = (seed: number, n: number): Record<string, HostTensor> => ({
  x: { data: rand(seed, n * D, 1), dims: [n, D] },
  y: { data: rand(seed + 100, n * D, 1), dims: [n, D] },
});

async function gradients(ps: ParamSpec[], feeds: Record<string, HostTensor>): Promise<Float32Array[]> {
  const g = new Graph();
  const p: Record<string, Tensor> = {};
  for (const s of ps) p[s.name] = g.input(s.name, 'float32', s.shape);
  const gs = grad(mlpLoss(g, p), ps.map((s) => p[s.name]));
  const c = await CompiledGraph.compile(Object.fromEntries(gs.map((t, i) => [`g${i}`, t])));
  const out = await c.run({ ...feeds, ...Object.fromEntries(ps.map((s) => [s.name, { data: s.data, dims: s.shape }])) });
  return ps.map((_, i) => out[`g${i}`].data as Float32Array);
}

describe('TrainStep', () => {
  it('updates parameters in place exactly as SGD on separately computed gradients', async () => {
    const ps = specs();
    const before = ps.map((s) => Float32Array.from(s.data));
    const feeds = batch(7, 32);
    const gs = await gradients(ps.map((s, i) => ({ ...s, data: before[i] })), feeds);
    const step = await TrainStep.create(ps, (g, p) => ({ loss: mlpLoss(g, p) }), { name: 'sgd' });
    await step.step(feeds, 0.5);
    const after = step.parameters();
    ps.forEach((s, i) => {
      expect(after.get(s.name)).toBe(s.data); // the caller's buffer is the live one
      for (let j = 0; j < s.data.length; j++) expect(s.data[j]).toBeCloseTo(before[i][j] - 0.5 * gs[i][j], 5);
    });
  });

  it('accumulating two micro-batches equals one step on their union', async () => {
    const a = batch(11, 8);
    const b = batch(12, 8);
    const union: Record<string, HostTensor> = {
      x: { data: Float32Array.from([...a.x.data as Float32Array, ...b.x.data as Float32Array]), dims: [16, D] },
      y: { data: Float32Array.from([...a.y.data as Float32Array, ...b.y.data as Float32Array]), dims: [16, D] },
    };
    const cfg = { name: 'adamw' as const, weightDecay: 0.01, maxGradNorm: 0.5 };
    const s1 = await TrainStep.create(specs(), (g, p) => ({ loss: mlpLoss(g, p) }), cfg);
    const s2 = await TrainStep.create(specs(), (g, p) => ({ loss: mlpLoss(g, p) }), cfg);
    for (let i = 0; i < 3; i++) {
      const r1 = await s1.step([a, b], 1e-2);
      const r2 = await s2.step(union, 1e-2);
      expect(r1.gradNorm).toBeCloseTo(r2.gradNorm, 5);
      expect(r1.loss).toBeCloseTo(r2.loss, 5);
    }
    for (const [name, v] of s1.parameters()) {
      const w = s2.parameters().get(name) as Float32Array;
      for (let j = 0; j < v.length; j++) expect(v[j]).toBeCloseTo(w[j], 5);
    }
  });

  // A one-micro-batch step is one fused graph that writes the parameters in place while its own
  // backward reads them; two identical micro-batches take the two-graph accumulating path and
  // average to the same gradients. Plain SGD without clipping is the case where an update could
  // otherwise run before the backward of an earlier layer has read the old weights.
  for (const cfg of [{ name: 'sgd' as const }, { name: 'adamw' as const, weightDecay: 0.01, maxGradNorm: 0.1 }]) {
    it(`the fused one-micro-batch step equals the accumulating path (${cfg.name})`, async () => {
      const feeds = batch(7, 32);
      const fused = await TrainStep.create(specs(), (g, p) => ({ loss: mlpLoss(g, p) }), cfg);
      const twoGraphs = await TrainStep.create(specs(), (g, p) => ({ loss: mlpLoss(g, p) }), cfg);
      for (let i = 0; i < 3; i++) {
        const r1 = await fused.step(feeds, 0.5);
        const r2 = await twoGraphs.step([feeds, feeds], 0.5);
        expect(r1.gradNorm).toBe(r2.gradNorm);
        expect(r1.loss).toBe(r2.loss);
      }
      for (const [name, v] of fused.parameters()) expect(v).toEqual(twoGraphs.parameters().get(name));
      expect(fused.optimizerState().state).toEqual(twoGraphs.optimizerState().state);
    });
  }

  it('metrics read the parameters before the in-place update writes them', async () => {
    const ps = specs();
    const w1 = Float32Array.from(ps[0].data);
    const expected = w1.reduce((a, x) => a + x * x, 0);
    const build = (g: Graph, p: Record<string, Tensor>) => ({ loss: mlpLoss(g, p), outputs: { w1_sq: op.sum(op.mul(p.w1, p.w1)) } });
    const step = await TrainStep.create(ps, build, { name: 'sgd' });
    const r = await step.step(batch(7, 32), 5);
    expect(Number(r.outputs.w1_sq.data[0])).toBeCloseTo(expected, 4);
    expect(ps[0].data).not.toEqual(w1);
  });
});

// TrainStep.steps (K optimizer steps in one session.run) against K calls of TrainStep.step:
// bitwise equal on this model.

const D8 = 8;
const H32 = 32;
/** An MLP regression whose batch size is a dynamic dim, plus a metric that reads a weight directly. */
function buildWithMetrics(g: Graph, p: Record<string, Tensor>) {
  const x = g.input('x', 'float32', ['batch', D8]);
  const y = g.input('y', 'float32', ['batch', D8]);
  const h = geluTanh(op.add(op.matmul(x, p.w1), p.b1));
  const err = op.sub(op.add(op.matmul(h, p.w2), p.b2), y);
  return { loss: op.mean(op.mul(err, err)), outputs: { w1_sq: op.sum(op.mul(p.w1, p.w1)), row_err: op.mean(op.mul(err, err), [1]) } };
}
const stepsSpecs = (): ParamSpec[] => [
  { name: 'w1', shape: [D8, H32], data: rand(1, D8 * H32) },
  { name: 'b1', shape: [H32], data: rand(2, H32) },
  { name: 'w2', shape: [H32, D8], data: rand(3, H32 * D8) },
  { name: 'b2', shape: [D8], data: rand(4, D8) },
  { name: 'frozen', shape: [D8], data: rand(5, D8), trainable: false },
];
const stepsBatch = (seed: number, n: number): Record<string, HostTensor> => ({
  x: { data: rand(seed, n * D8, 1), dims: [n, D8] },
  y: { data: rand(seed + 100, n * D8, 1), dims: [n, D8] },
});

describe('TrainStep.steps', () => {
  // Clipping at 0.05 clips every step here; the learning rates follow a warm-up then decay.
  const configs: OptimizerConfig[] = [
    { name: 'adamw', weightDecay: 0.01, maxGradNorm: 0.05 },
    { name: 'sgd', momentum: 0.9 },
  ];
  for (const cfg of configs) {
    it(`3 steps in one run equal 3 single steps (${cfg.name}, clipping, schedule, batches of different sizes)`, async () => {
      const batches = [stepsBatch(11, 5), stepsBatch(12, 9), stepsBatch(13, 3), stepsBatch(14, 6), stepsBatch(15, 4), stepsBatch(16, 7)];
      const lrs = [0.01, 0.02, 0.015, 0.01, 0.005, 0.001];
      const single = await TrainStep.create(stepsSpecs(), buildWithMetrics, cfg);
      const grouped = await TrainStep.create(stepsSpecs(), buildWithMetrics, cfg);
      const a = [];
      for (let i = 0; i < 6; i++) a.push(await single.step(batches[i], lrs[i]));
      const b = [...(await grouped.steps(batches.slice(0, 3), lrs.slice(0, 3))), ...(await grouped.steps(batches.slice(3), lrs.slice(3)))];
      for (let i = 0; i < 6; i++) {
        expect(b[i].loss).toBe(a[i].loss);
        expect(b[i].gradNorm).toBe(a[i].gradNorm);
        expect(b[i].paramsFinite).toBe(true);
        expect(Number(b[i].outputs.w1_sq.data[0])).toBe(Number(a[i].outputs.w1_sq.data[0]));
        expect(b[i].outputs.row_err).toEqual(a[i].outputs.row_err);
      }
      expect(a[0].gradNorm).toBeGreaterThan(0.05);
      // Bitwise: the same kernels on the same values in the same order.
      expect(grouped.parameters()).toEqual(single.parameters());
      expect(grouped.optimizerState()).toEqual(single.optimizerState());
      expect(grouped.optimizerState().step).toBe(6);
      await single.release();
      await grouped.release();
    });
  }

  it('writes the caller buffers in place and flags a non-finite step', async () => {
    const ps = stepsSpecs();
    const step = await TrainStep.create(ps, buildWithMetrics, { name: 'sgd' });
    const bad = stepsBatch(2, 4);
    (bad.x.data as Float32Array)[3] = Infinity;
    const r = await step.steps([stepsBatch(1, 4), bad], [0.01, 0.01]);
    expect(step.parameters().get('w1')).toBe(ps[0].data);
    expect(r[0].paramsFinite).toBe(true);
    expect(r[1].paramsFinite).toBe(false);
    expect(ps[0].data.some((v) => !Number.isFinite(v))).toBe(true);
    await step.release();
  });

  it('rejects mismatched learning rates', async () => {
    const step = await TrainStep.create(stepsSpecs(), buildWithMetrics, { name: 'sgd' });
    await expect(step.steps([stepsBatch(1, 4)], [0.1, 0.2])).rejects.toThrow(/1 batches but 2 learning rates/);
    await step.release();
  });
});
