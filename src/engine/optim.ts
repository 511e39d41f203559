/**
 * Optimizers as graph code: the update of every parameter is appended to the training graph, so
 * one session.run does forward, loss, backward, clipping and update. Formulas follow PyTorch's
 * torch.optim (SGD and RMSprop with coupled L2 weight decay, AdamW with decoupled decay).
 */
import type { FloatDType } from './dtype.js';
import type { Graph, Tensor } from './graph.js';
import * as op from './ops.js';

export type OptimizerName = 'sgd' | 'adamw' | 'rmsprop';

export interface OptimizerConfig {
  name: OptimizerName;
  weightDecay?: number;
  /** SGD momentum (0 = plain SGD). */
  momentum?: number;
  /** AdamW betas. */
  beta1?: number;
  beta2?: number;
  /** AdamW / RMSprop epsilon. */
  eps?: number;
  /** RMSprop smoothing constant. */
  alpha?: number;
  /** Global gradient-norm clipping threshold; 0 or undefined disables. */
  maxGradNorm?: number;
}

/** Per-parameter state slots each optimizer keeps (same shape as the parameter). */
export function stateSlots(config: OptimizerConfig): string[] {
  switch (config.name) {
    case 'sgd':
      return config.momentum ? ['momentum'] : [];
    case 'adamw':
      return ['exp_avg', 'exp_avg_sq'];
    case 'rmsprop':
      return ['square_avg'];
  }
}

/** Scalars fed at every step (the schedule lives in JavaScript). */
export const STEP_SCALARS = ['lr', 'bias_correction1', 'bias_correction2'] as const;
export type StepScalars = Record<(typeof STEP_SCALARS)[number], number>;

export function stepScalars(config: OptimizerConfig, lr: number, step: number): StepScalars {
  return {
    lr,
    bias_correction1: 1 - Math.pow(config.beta1 ?? 0.9, step),
    bias_correction2: 1 - Math.pow(config.beta2 ?? 0.999, step),
  };
}

export interface OptimizerGraph {
  /** Scalar inputs to feed every step, by name. */
  scalars: Record<(typeof STEP_SCALARS)[number], Tensor>;
  /** state[i][slot] is the input holding parameter i's slot. */
  stateInputs: Record<string, Tensor>[];
  newParams: Tensor[];
  newState: Record<string, Tensor>[];
  /** Global L2 norm of the gradients before clipping (TRL's grad_norm). */
  gradNorm: Tensor;
}

/** Global L2 norm of all gradients: one ReduceSumSquare pass over each (no squared copy). */
export function globalNorm(grads: readonly Tensor[]): Tensor {
  let total: Tensor | undefined;
  for (const gr of grads) {
    const s = op.sumSquares(gr);
    total = total ? op.add(total, s) : s;
  }
  if (!total) throw new Error('globalNorm: no gradients');
  return op.sqrt(total);
}

/**
 * Appends clipping and the optimizer update for `params` (graph inputs named p.name) given their
 * gradients. State inputs are named `<param>.<slot>`. No parameter is written before all of
 * `grads` and `waitFor` (say, the loss and metrics of the same graph) are computed.
 *
 * Every parameter-sized pass costs a read and a write of the whole model (gpt2-124m: ~1.5 GB per
 * pass), so scalar work is done on scalars: the clipping factor is folded into the coefficients
 * that multiply the gradient anyway (never a separate g * coef pass), and AdamW's bias
 * corrections are folded into its step size and epsilon.
 */
export function buildOptimizer(
  g: Graph,
  params: readonly Tensor[],
  grads: readonly Tensor[],
  config: OptimizerConfig,
  waitFor: readonly Tensor[] = [],
): OptimizerGraph {
  if (params.length !== grads.length) throw new Error('buildOptimizer: params and grads differ in length');
  const dtype = params[0].dtype as FloatDType;
  const scalars = {
    lr: g.input('lr', dtype, []),
    bias_correction1: g.input('bias_correction1', dtype, []),
    bias_correction2: g.input('bias_correction2', dtype, []),
  };
  const gradNorm = globalNorm(grads);
  // Every parameter write waits for every gradient and for `waitFor`: the learning rate the
  // updates use depends on them (Where with equal branches: the same value, NaN included). A fused
  // step (forward, backward and update in one graph) writes parameters in place, so no update may
  // run while the backward, the loss or a metric still reads the old values.
  let never = op.less(gradNorm, gradNorm);
  for (const t of waitFor) {
    const s = op.sum(t.dtype === 'bool' ? op.cast(t, dtype) : t);
    never = op.and(never, op.less(s, s));
  }
  const lr = op.where(never, scalars.lr, scalars.lr);
  // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), clamped at 1. A scalar that
  // multiplies each gradient where the update first reads it (`times`).
  const coef =
    config.maxGradNorm && config.maxGradNorm > 0
      ? op.minimum(op.div(op.scalar(g, config.maxGradNorm, dtype), op.add(gradNorm, 1e-6)), 1)
      : undefined;
  /** c * coef as a scalar (a number when there is no clipping). */
  const times = (c: number): Tensor | number => (coef ? op.mul(coef, c) : c);
  const slots = stateSlots(config);
  const stateInputs = params.map((p) => {
    const s: Record<string, Tensor> = {};
    for (const slot of slots) s[slot] = g.input(`${p.name}.${slot}`, dtype, p.shape);
    return s;
  });
  const wd = config.weightDecay ?? 0;
  const newParams: Tensor[] = [];
  const newState: Record<string, Tensor>[] = [];
  // AdamW's scalars, shared by every parameter. torch: p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps),
  // which is p -= (lr sqrt(bc2)/bc1) * m / (sqrt(v) + eps sqrt(bc2)): one Div pass fewer.
  const sqrtBc2 = config.name === 'adamw' ? op.sqrt(scalars.bias_correction2) : undefined;
  const adamStep = sqrtBc2 && op.div(op.mul(lr, sqrtBc2), scalars.bias_correction1);
  const adamEps = sqrtBc2 && op.mul(sqrtBc2, config.eps ?? 1e-8);
  params.forEach((p, i) => {
    const st = stateInputs[i];
    const gr = grads[i];
    switch (config.name) {
      case 'sgd': {
        // Coupled decay: d = coef g + wd p. Plain SGD takes lr * coef as one scalar.
        if (!wd && !config.momentum) {
          newParams.push(op.sub(p, op.mul(gr, coef ? op.mul(lr, coef) : lr)));
          newState.push({});
          break;
        }
        let d = coef ? op.mul(gr, coef) : gr;
        if (wd) d = op.add(d, op.mul(p, wd));
        if (config.momentum) {
          d = op.add(op.mul(st.momentum, config.momentum), d);
          newState.push({ momentum: d });
        } else newState.push({});
        newParams.push(op.sub(p, op.mul(d, lr)));
        break;
      }
      case 'rmsprop': {
        const alpha = config.alpha ?? 0.99;
        // d = s g with s the clipping factor; with coupled decay d = coef g + wd p is materialised,
        // otherwise s stays a scalar: square_avg = alpha sq + (1 - alpha) s² g², step lr s g.
        const d = wd ? op.add(coef ? op.mul(gr, coef) : gr, op.mul(p, wd)) : gr;
        const s = wd ? undefined : coef;
        const sq = op.add(op.mul(st.square_avg, alpha), op.mul(op.mul(d, d), s ? op.mul(op.mul(s, s), 1 - alpha) : 1 - alpha));
        newState.push({ square_avg: sq });
        newParams.push(op.sub(p, op.div(op.mul(d, s ? op.mul(lr, s) : lr), op.add(op.sqrt(sq), config.eps ?? 1e-8))));
        break;
      }
      case 'adamw': {
        const b1 = config.beta1 ?? 0.9;
        const b2 = config.beta2 ?? 0.999;
        // m = b1 m + (1 - b1) coef g; v = b2 v + (1 - b2) coef² g².
        const m = op.add(op.mul(st.exp_avg, b1), op.mul(gr, times(1 - b1)));
        const v2 = coef ? op.mul(op.mul(coef, coef), 1 - b2) : 1 - b2;
        const v = op.add(op.mul(st.exp_avg_sq, b2), op.mul(op.mul(gr, gr), v2));
        newState.push({ exp_avg: m, exp_avg_sq: v });
        const decayed = wd ? op.mul(p, op.sub(1, op.mul(lr, wd))) : p;
        const denom = op.add(op.sqrt(v), adamEps as Tensor);
        newParams.push(op.sub(decayed, op.mul(op.div(m, denom), adamStep as Tensor)));
        break;
      }
    }
  });
  return { scalars, stateInputs, newParams, newState, gradNorm };
}
