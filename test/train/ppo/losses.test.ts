/**
 * PPO's clipped losses against float64 references written from the formulas (TRL's
 * PPOTrainer / Schulman et al. 2017): values, gradients against central differences of the
 * reference formulas, and a gradcheck of the graphs themselves.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../../src/engine/autodiff.js';
import { gradcheck } from '../../../src/engine/gradcheck.js';
import { Graph, type Tensor } from '../../../src/engine/graph.js';
import { CompiledGraph } from '../../../src/engine/runtime.js';
import { clippedPolicyLoss, clippedValueLoss } from '../../../src/train/ppo/losses.js';

const EPS = 0.2;
// Ratios exp(logp - old) spread over [0.5, 1.6], none within 0.02 of the clip edges 0.8 and 1.2.
const logp = [-1.0, -2.3, -0.4, -1.7, -3.1, -0.9, -2.0, -1.2];
const oldLogp = [-1.5, -2.0, -0.6, -1.75, -2.5, -0.95, -2.35, -0.8];
const adv = [0.7, -1.3, 0.4, -0.2, 1.1, -0.8, -0.5, 0.9];
const values = [0.3, -0.9, 1.5, 0.05, -0.4, 0.8, 2.2, -1.1];
const oldValues = [0.0, -0.6, 1.0, 0.1, -0.45, 1.3, 1.9, -0.5];
const returns = [1.2, -0.2, 0.9, -0.4, 0.6, 0.5, 2.6, -0.3];

function refPolicyLoss(lp: number[]): { loss: number; clipfrac: number; approxkl: number; ratio: number } {
  let loss = 0;
  let clipped = 0;
  let kl = 0;
  let ratio = 0;
  lp.forEach((l, i) => {
    const r = Math.exp(l - oldLogp[i]);
    const a = -adv[i] * r;
    const b = -adv[i] * Math.min(Math.max(r, 1 - EPS), 1 + EPS);
    loss += Math.max(a, b);
    if (b > a) clipped++;
    kl += 0.5 * (l - oldLogp[i]) ** 2;
    ratio += r;
  });
  const n = lp.length;
  return { loss: loss / n, clipfrac: clipped / n, approxkl: kl / n, ratio: ratio / n };
}

function refValueLoss(v: number[]): { loss: number; clipfrac: number } {
  let loss = 0;
  let clipped = 0;
  v.forEach((x, i) => {
    const c = Math.min(Math.max(x, oldValues[i] - EPS), oldValues[i] + EPS);
    const l1 = (x - returns[i]) ** 2;
    const l2 = (c - returns[i]) ** 2;
    loss += 0.5 * Math.max(l1, l2);
    if (l2 > l1) clipped++;
  });
  return { loss: loss / v.length, clipfrac: clipped / v.length };
}

/** Central differences of a float64 reference function. */
function numericGrad(f: (x: number[]) => number, x: number[], h = 1e-6): number[] {
  return x.map((_, i) => {
    const up = [...x];
    const down = [...x];
    up[i] += h;
    down[i] -= h;
    return (f(up) - f(down)) / (2 * h);
  });
}

const f64 = (a: number[]): { data: Float64Array; dims: number[] } => ({ data: Float64Array.from(a), dims: [a.length] });

async function runGraph(build: (g: Graph, x: Tensor, y: Tensor, z: Tensor) => Record<string, Tensor>, x: number[], y: number[], z: number[]): Promise<Record<string, number[]>> {
  const g = new Graph();
  const [tx, ty, tz] = ['x', 'y', 'z'].map((n) => g.input(n, 'float64', ['m']));
  const c = await CompiledGraph.compile(build(g, tx, ty, tz), { threads: 1 });
  const out = await c.run({ x: f64(x), y: f64(y), z: f64(z) });
  await c.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v.data as Float64Array)]));
}

describe('clipped surrogate (policy) loss', () => {
  it('matches the formula: loss, clip fraction, approx KL, mean ratio', async () => {
    const got = await runGraph((_g, x, y, z) => {
      const t = clippedPolicyLoss(x, y, z, EPS);
      return { loss: t.loss, clipfrac: t.clipfrac, approxkl: t.approxkl, ratio: t.ratio };
    }, logp, oldLogp, adv);
    const ref = refPolicyLoss(logp);
    expect(got.loss[0]).toBeCloseTo(ref.loss, 12);
    expect(got.clipfrac[0]).toBeCloseTo(ref.clipfrac, 12);
    expect(ref.clipfrac).toBeGreaterThan(0); // the cases exercise both branches
    expect(ref.clipfrac).toBeLessThan(1);
    expect(got.approxkl[0]).toBeCloseTo(ref.approxkl, 12);
    expect(got.ratio[0]).toBeCloseTo(ref.ratio, 12);
  });

  it('has the gradient of the formula with respect to the new log-probs', async () => {
    const got = await runGraph((_g, x, y, z) => ({ grad: grad(clippedPolicyLoss(x, y, z, EPS).loss, [x])[0] }), logp, oldLogp, adv);
    const expected = numericGrad((lp) => refPolicyLoss(lp).loss, logp);
    got.grad.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 8));
    // Clipped tokens get no gradient; the others -A r / n.
    expect(got.grad.filter((v) => v === 0).length).toBe(Math.round(refPolicyLoss(logp).clipfrac * logp.length));
  });

  it('passes a float64 gradcheck', async () => {
    const r = await gradcheck(
      [{ name: 'x', shape: [8], values: logp }, { name: 'y', shape: [8], values: oldLogp, differentiable: false }, { name: 'z', shape: [8], values: adv, differentiable: false }],
      (x) => clippedPolicyLoss(x.x, x.y, x.z, EPS).perToken,
    );
    expect(r.maxRelError, JSON.stringify(r.worst)).toBeLessThan(1e-7);
  });
});

describe('clipped value loss', () => {
  it('matches the formula: loss and clip fraction', async () => {
    const got = await runGraph((_g, x, y, z) => {
      const t = clippedValueLoss(x, y, z, EPS);
      return { loss: t.loss, clipfrac: t.clipfrac };
    }, values, oldValues, returns);
    const ref = refValueLoss(values);
    expect(got.loss[0]).toBeCloseTo(ref.loss, 12);
    expect(got.clipfrac[0]).toBeCloseTo(ref.clipfrac, 12);
    expect(ref.clipfrac).toBeGreaterThan(0);
    expect(ref.clipfrac).toBeLessThan(1);
  });

  it('has the gradient of the formula with respect to the predicted values', async () => {
    const got = await runGraph((_g, x, y, z) => ({ grad: grad(clippedValueLoss(x, y, z, EPS).loss, [x])[0] }), values, oldValues, returns);
    const expected = numericGrad((v) => refValueLoss(v).loss, values);
    got.grad.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 8));
  });

  it('passes a float64 gradcheck', async () => {
    const r = await gradcheck(
      [{ name: 'x', shape: [8], values }, { name: 'y', shape: [8], values: oldValues, differentiable: false }, { name: 'z', shape: [8], values: returns, differentiable: false }],
      (x) => clippedValueLoss(x.x, x.y, x.z, EPS).perToken,
    );
    expect(r.maxRelError, JSON.stringify(r.worst)).toBeLessThan(1e-7);
  });
});
