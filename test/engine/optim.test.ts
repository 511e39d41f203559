/**
 * In-graph optimizers against plain TypeScript references of torch.optim's formulas (SGD with
 * momentum, AdamW, RMSprop, all with weight decay), global-norm clipping as
 * torch.nn.utils.clip_grad_norm_, frozen parameters, and resuming with restore().
 */
import { describe, expect, it } from 'vitest';
import type { Graph, Tensor } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import type { OptimizerConfig } from '../../src/engine/optim.js';
import type { RuntimeOptions } from '../../src/engine/runtime.js';
import { TrainStep, type ParamSpec } from '../../src/engine/train-step.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

const SHAPES: Record<string, number[]> = { w: [3, 4], b: [5] };
const LRS = [0.1, 0.05, 0.08, 0.02, 0.1];

interface Problem {
  /** Initial parameter values (float32-representable). */
  p0: Record<string, Float32Array>;
  /** Per-step coefficient vectors c: the loss is sum(p * c) + 0.5 sum(p^2), so grad = c + p. */
  cs: Record<string, Float32Array>[];
}

function makeProblem(seed: number, cScale = 1): Problem {
  const rand = lcg(seed);
  const vec = (n: number, scale: number): Float32Array => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const p0: Record<string, Float32Array> = {};
  for (const [k, s] of Object.entries(SHAPES)) p0[k] = vec(s.reduce((a, d) => a * d, 1), 1);
  const cs = LRS.map(() => Object.fromEntries(Object.entries(p0).map(([k, v]) => [k, vec(v.length, cScale)])));
  return { p0, cs };
}

const specsOf = (p: Record<string, Float32Array>, frozen: string[] = []): ParamSpec[] =>
  Object.entries(p).map(([name, data]) => ({ name, shape: SHAPES[name], data: Float32Array.from(data), trainable: !frozen.includes(name) }));

function buildLoss(g: Graph, params: Record<string, Tensor>): { loss: Tensor } {
  let loss: Tensor | undefined;
  for (const [name, p] of Object.entries(params)) {
    const c = g.input(`c_${name}`, 'float32', p.shape);
    const term = op.add(op.sum(op.mul(p, c)), op.mul(op.sum(op.mul(p, p)), 0.5));
    loss = loss ? op.add(loss, term) : term;
  }
  return { loss: loss as Tensor };
}

const feedsOf = (c: Record<string, Float32Array>): Record<string, { data: Float32Array; dims: number[] }> =>
  Object.fromEntries(Object.entries(c).map(([k, v]) => [`c_${k}`, { data: v, dims: SHAPES[k] }]));

// ------------------------------------------------------------------ references (float32 arithmetic)

type Vecs = Record<string, number[]>;

interface RefResult {
  params: Vecs[];
  gradNorms: number[];
}

/** Rounds to float32 after every operation, as the compiled float32 graph does. */
const f = Math.fround;

/**
 * torch.optim reference, one step at a time, in float32 arithmetic (every intermediate rounded
 * with Math.fround); grad = c + p, then clipping, then the optimizer. The schedule scalars (lr,
 * bias corrections) are computed in float64 and rounded once, as they are fed to the graph.
 */
function reference(cfg: OptimizerConfig, prob: Problem, frozen: string[] = [], steps = LRS.length): RefResult {
  const p: Vecs = Object.fromEntries(Object.entries(prob.p0).map(([k, v]) => [k, Array.from(v)]));
  const zeros = (): Vecs => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.map(() => 0)]));
  const buf = zeros();
  const m = zeros();
  const v = zeros();
  const sq = zeros();
  const wd = f(cfg.weightDecay ?? 0);
  const out: RefResult = { params: [], gradNorms: [] };
  for (let t = 1; t <= steps; t++) {
    const lr = f(LRS[t - 1]);
    const names = Object.keys(p).filter((k) => !frozen.includes(k));
    const grads: Vecs = Object.fromEntries(names.map((k) => [k, p[k].map((pi, i) => f(prob.cs[t - 1][k][i] + pi))]));
    // torch.nn.utils.clip_grad_norm_: total = ||(||g_1||, ||g_2||, ...)||; coef = max/(total + 1e-6) clamped at 1.
    const norm = f(Math.sqrt(names.reduce((s, k) => f(s + grads[k].reduce((a, x) => f(a + f(x * x)), 0)), 0)));
    out.gradNorms.push(norm);
    if (cfg.maxGradNorm) {
      const coef = Math.min(f(f(cfg.maxGradNorm) / f(norm + f(1e-6))), 1);
      for (const k of names) grads[k] = grads[k].map((x) => f(x * coef));
    }
    for (const k of names) {
      const g = grads[k];
      for (let i = 0; i < g.length; i++) {
        let gi = g[i];
        switch (cfg.name) {
          case 'sgd': {
            // torch.optim.SGD (dampening 0, nesterov false): buf = g on the first step.
            if (wd) gi = f(gi + f(wd * p[k][i]));
            if (cfg.momentum) {
              buf[k][i] = t === 1 ? gi : f(f(f(cfg.momentum) * buf[k][i]) + gi);
              gi = buf[k][i];
            }
            p[k][i] = f(p[k][i] - f(lr * gi));
            break;
          }
          case 'adamw': {
            // torch.optim.AdamW (amsgrad false): decoupled decay, then the Adam step.
            const b1 = cfg.beta1 ?? 0.9;
            const b2 = cfg.beta2 ?? 0.999;
            const eps = f(cfg.eps ?? 1e-8);
            p[k][i] = f(p[k][i] * f(1 - f(lr * wd)));
            m[k][i] = f(f(f(b1) * m[k][i]) + f(f(1 - b1) * gi));
            v[k][i] = f(f(f(b2) * v[k][i]) + f(f(1 - b2) * f(gi * gi)));
            const bc1 = f(1 - b1 ** t);
            const bc2 = f(1 - b2 ** t);
            const denom = f(f(Math.sqrt(v[k][i])) / f(Math.sqrt(bc2))) + eps;
            p[k][i] = f(p[k][i] - f(f(lr / bc1) * f(m[k][i] / f(denom))));
            break;
          }
          case 'rmsprop': {
            // torch.optim.RMSprop (centered false, momentum 0).
            const alpha = cfg.alpha ?? 0.99;
            const eps = f(cfg.eps ?? 1e-8);
            if (wd) gi = f(gi + f(wd * p[k][i]));
            sq[k][i] = f(f(f(alpha) * sq[k][i]) + f(f(1 - alpha) * f(gi * gi)));
            p[k][i] = f(p[k][i] - f(f(lr * gi) / f(f(Math.sqrt(sq[k][i])) + eps)));
            break;
          }
        }
      }
    }
    out.params.push(Object.fromEntries(Object.entries(p).map(([k, x]) => [k, [...x]])));
  }
  return out;
}

async function engineRun(
  cfg: OptimizerConfig,
  prob: Problem,
  frozen: string[] = [],
  runtime: RuntimeOptions = { threads: 1 },
): Promise<RefResult & { step: TrainStep }> {
  const step = await TrainStep.create(specsOf(prob.p0, frozen), buildLoss, cfg, runtime);
  const out: RefResult = { params: [], gradNorms: [] };
  for (let t = 0; t < LRS.length; t++) {
    const r = await step.step(feedsOf(prob.cs[t]), LRS[t]);
    out.gradNorms.push(r.gradNorm);
    out.params.push(Object.fromEntries([...step.parameters()].map(([k, x]) => [k, Array.from(x)])));
  }
  return { ...out, step };
}

/**
 * Largest normwise relative error max|a - b| / max|b| over each parameter tensor and step (an
 * elementwise ratio would blow up for entries that cross zero, where float32 keeps an absolute
 * error of an ulp of the values they came from).
 */
function maxRelError(a: Vecs[], b: Vecs[]): number {
  let worst = 0;
  a.forEach((s, t) => {
    for (const k of Object.keys(s)) {
      const ref = b[t][k];
      const scale = Math.max(...ref.map(Math.abs));
      const err = Math.max(...s[k].map((x, i) => Math.abs(x - ref[i])));
      worst = Math.max(worst, err / scale);
    }
  });
  return worst;
}

const CONFIGS: [string, OptimizerConfig][] = [
  ['SGD', { name: 'sgd' }],
  ['SGD + weight decay', { name: 'sgd', weightDecay: 0.1 }],
  ['SGD + momentum', { name: 'sgd', momentum: 0.9 }],
  ['SGD + momentum + weight decay', { name: 'sgd', momentum: 0.8, weightDecay: 0.05 }],
  ['AdamW', { name: 'adamw', weightDecay: 0 }],
  ['AdamW + weight decay', { name: 'adamw', weightDecay: 0.1 }],
  ['AdamW + custom betas/eps', { name: 'adamw', beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.01 }],
  ['RMSprop', { name: 'rmsprop' }],
  ['RMSprop + weight decay', { name: 'rmsprop', weightDecay: 0.1, alpha: 0.9 }],
  ['AdamW + clipping (active)', { name: 'adamw', weightDecay: 0.01, maxGradNorm: 0.5 }],
  ['SGD + momentum + clipping (active)', { name: 'sgd', momentum: 0.9, maxGradNorm: 1 }],
  ['RMSprop + clipping (inactive: norm < max)', { name: 'rmsprop', maxGradNorm: 1e3 }],
];

describe('optimizers agree with torch.optim references over 5 steps (float32, rel 1e-6)', () => {
  it.each(CONFIGS)('%s', async (_name, cfg) => {
    const prob = makeProblem(17, 2);
    const ref = reference(cfg, prob);
    const got = await engineRun(cfg, prob);
    await got.step.release();
    expect(maxRelError(got.params, ref.params)).toBeLessThan(1e-6);
    got.gradNorms.forEach((n, t) => expect(Math.abs(n - ref.gradNorms[t]) / ref.gradNorms[t]).toBeLessThan(1e-6));
    // Every parameter moved.
    for (const [k, v] of Object.entries(got.params[LRS.length - 1])) expect(v).not.toEqual(Array.from(prob.p0[k]));
  });
});

describe('optimizer outputs in chunks', () => {
  it('AdamW with every state output split into chunks of 5 elements matches the reference', async () => {
    const prob = makeProblem(23, 2);
    const cfg: OptimizerConfig = { name: 'adamw', weightDecay: 0.1, maxGradNorm: 1 };
    const ref = reference(cfg, prob);
    const got = await engineRun(cfg, prob, [], { threads: 2, outputChunkElements: 5, outputChunkMinBytes: 0 });
    await got.step.release();
    expect(maxRelError(got.params, ref.params)).toBeLessThan(1e-6);
  });
});

describe('gradient clipping', () => {
  it('scales by max_norm / (norm + 1e-6) and grad_norm reports the pre-clip norm', async () => {
    const prob = makeProblem(3, 10);
    const cfg: OptimizerConfig = { name: 'sgd', maxGradNorm: 0.25 };
    const step = await TrainStep.create(specsOf(prob.p0), buildLoss, cfg, { threads: 1 });
    const r = await step.step(feedsOf(prob.cs[0]), 1);
    // grad = c + p; with plain SGD and lr 1, p1 = p0 - clip(grad).
    let sq = 0;
    for (const k of Object.keys(prob.p0)) prob.p0[k].forEach((p, i) => (sq += (prob.cs[0][k][i] + p) ** 2));
    const norm = Math.sqrt(sq);
    expect(norm).toBeGreaterThan(1);
    expect(Math.abs(r.gradNorm - norm) / norm).toBeLessThan(1e-6);
    const coef = 0.25 / (norm + 1e-6);
    let movedSq = 0;
    for (const [k, p1] of step.parameters()) {
      p1.forEach((x, i) => {
        const p0 = prob.p0[k][i];
        const expected = p0 - coef * (prob.cs[0][k][i] + p0);
        expect(Math.abs(x - expected)).toBeLessThan(1e-6 * Math.max(1, Math.abs(expected)));
        movedSq += (x - p0) ** 2;
      });
    }
    // The applied update has norm max_norm (up to the 1e-6 in the denominator).
    expect(Math.sqrt(movedSq)).toBeCloseTo(0.25, 5);
    await step.release();
  });
});

describe('frozen parameters and resuming', () => {
  it('frozen parameters (trainable: false) stay unchanged and the rest matches the reference', async () => {
    const prob = makeProblem(29, 1);
    const cfg: OptimizerConfig = { name: 'adamw', weightDecay: 0.1, maxGradNorm: 1 };
    const ref = reference(cfg, prob, ['b']);
    const got = await engineRun(cfg, prob, ['b']);
    expect(maxRelError(got.params, ref.params)).toBeLessThan(1e-6);
    for (const snapshot of got.params) expect(snapshot.b).toEqual(Array.from(prob.p0.b));
    expect(got.step.optimizerState().state.has('b')).toBe(false);
    expect([...got.step.optimizerState().state.get('w')!.exp_avg].some((x) => x !== 0)).toBe(true);
    await got.step.release();
  });

  it.each([
    ['AdamW', { name: 'adamw', weightDecay: 0.1 } as OptimizerConfig],
    ['SGD + momentum', { name: 'sgd', momentum: 0.9, weightDecay: 0.01 } as OptimizerConfig],
    ['RMSprop', { name: 'rmsprop', weightDecay: 0.01, maxGradNorm: 0.5 } as OptimizerConfig],
  ])('%s: restore() after 2 steps and continuing gives identical results to an uninterrupted run', async (_n, cfg) => {
    const prob = makeProblem(41, 2);
    const full = await engineRun(cfg, prob);
    await full.step.release();

    const first = await TrainStep.create(specsOf(prob.p0), buildLoss, cfg, { threads: 1 });
    for (let t = 0; t < 2; t++) await first.step(feedsOf(prob.cs[t]), LRS[t]);
    // A checkpoint: copies of the parameters and state.
    const params = new Map([...first.parameters()].map(([k, v]) => [k, Float32Array.from(v)]));
    const saved = first.optimizerState();
    const state = new Map(
      [...saved.state].map(([k, slots]) => [k, Object.fromEntries(Object.entries(slots).map(([s, v]) => [s, Float32Array.from(v)]))]),
    );
    await first.release();

    // A fresh step starting from different values, restored from the checkpoint.
    const resumed = await TrainStep.create(specsOf(makeProblem(99).p0), buildLoss, cfg, { threads: 1 });
    resumed.restore(params, state, saved.step);
    expect(resumed.optimizerState().step).toBe(2);
    for (let t = 2; t < LRS.length; t++) {
      await resumed.step(feedsOf(prob.cs[t]), LRS[t]);
      const now = Object.fromEntries([...resumed.parameters()].map(([k, x]) => [k, Array.from(x)]));
      expect(now).toEqual(full.params[t]);
    }
    await resumed.release();
  });
});
