/**
 * Float64 central-difference gradient checking through the same runtime that trains: builds the
 * function in float64, compiles value and gradients together, and compares every gradient
 * element with (f(x + eps) - f(x - eps)) / 2 eps.
 */
import { grad } from './autodiff.js';
import { Graph, type Tensor } from './graph.js';
import * as op from './ops.js';
import { CompiledGraph, type HostTensor } from './runtime.js';
import type { Shape } from './shape.js';

export interface GradcheckInput {
  name: string;
  shape: readonly number[];
  /** Values; default: seeded uniform in [-1, 1] (override for ops with restricted domains). */
  values?: readonly number[];
  /** Compare gradients for this input (default true); false for inputs like masks. */
  differentiable?: boolean;
}

export interface GradcheckResult {
  maxAbsError: number;
  maxRelError: number;
  /** Worst element: input name and flat index. */
  worst: { input: string; index: number; analytic: number; numeric: number } | undefined;
  checked: number;
}

export interface GradcheckOptions {
  eps?: number;
  seed?: number;
  /** Extra non-float inputs (ids, masks) fed unchanged. */
  extraFeeds?: Record<string, HostTensor>;
  /** Declared (possibly symbolic) shapes of inputs; default: the static shapes. */
  declaredShapes?: Record<string, Shape>;
  extraInputs?: (g: Graph) => Record<string, Tensor>;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/**
 * `fn` maps float64 inputs (and any extra inputs) to an output of any shape; the checked scalar
 * is sum(output * R) for a fixed random R, so the whole Jacobian is exercised.
 */
export async function gradcheck(
  inputs: readonly GradcheckInput[],
  fn: (x: Record<string, Tensor>, g: Graph) => Tensor,
  options: GradcheckOptions = {},
): Promise<GradcheckResult> {
  const eps = options.eps ?? 1e-6;
  const rand = lcg(options.seed ?? 1234);
  const g = new Graph('gradcheck');
  const xs: Record<string, Tensor> = {};
  for (const inp of inputs) xs[inp.name] = g.input(inp.name, 'float64', options.declaredShapes?.[inp.name] ?? inp.shape);
  const extras = options.extraInputs?.(g) ?? {};
  const y = fn({ ...xs, ...extras }, g);
  if (y.dtype !== 'float64') throw new Error(`gradcheck: output must be float64, got ${y}`);
  const yShape = y.shape.map((d) => (typeof d === 'number' ? d : -1));
  const staticY = yShape.every((d) => d >= 0);
  const rInput = staticY ? undefined : g.input('gradcheck_projection', 'float64', y.shape);
  const rValues = staticY ? Float64Array.from({ length: yShape.reduce((p, d) => p * d, 1) }, () => rand() * 2 - 1) : undefined;
  const r = rInput ?? op.constant(g, rValues as Float64Array, 'float64', y.shape);
  const loss = op.sum(op.mul(y, r));
  const checked = inputs.filter((i) => i.differentiable !== false);
  const grads = grad(loss, checked.map((i) => xs[i.name]));
  // Output names carry a prefix so that they cannot collide with the caller's input names.
  const outputs: Record<string, Tensor> = { gradcheck_loss: loss };
  checked.forEach((inp, k) => (outputs[`gradcheck_grad_${inp.name}`] = grads[k]));
  const compiled = await CompiledGraph.compile(outputs, { threads: 1, optimizationLevel: 'disabled' });

  const feeds: Record<string, HostTensor> = { ...options.extraFeeds };
  for (const inp of inputs) {
    const n = inp.shape.reduce((p, d) => p * d, 1);
    const data = inp.values ? Float64Array.from(inp.values) : Float64Array.from({ length: n }, () => rand() * 2 - 1);
    if (data.length !== n) throw new Error(`gradcheck: ${inp.name} has ${data.length} values for shape [${inp.shape}]`);
    feeds[inp.name] = { data, dims: inp.shape };
  }
  if (rInput) {
    // Symbolic output shape: run once to learn it, then feed a projection of that shape.
    const probe = await CompiledGraph.compile({ gradcheck_output: y }, { threads: 1, optimizationLevel: 'disabled' });
    const dims = (await probe.run(feeds)).gradcheck_output.dims;
    await probe.release();
    const n = dims.reduce((p, d) => p * d, 1);
    feeds.gradcheck_projection = { data: Float64Array.from({ length: n }, () => rand() * 2 - 1), dims };
  }

  const analytic = await compiled.run(feeds);
  const lossAt = async (): Promise<number> => (await compiled.run(feeds)).gradcheck_loss.data[0] as number;
  const result: GradcheckResult = { maxAbsError: 0, maxRelError: 0, worst: undefined, checked: 0 };
  for (const inp of checked) {
    const data = feeds[inp.name].data as Float64Array;
    const ga = analytic[`gradcheck_grad_${inp.name}`].data as Float64Array;
    for (let i = 0; i < data.length; i++) {
      const x0 = data[i];
      data[i] = x0 + eps;
      const fp = await lossAt();
      data[i] = x0 - eps;
      const fm = await lossAt();
      data[i] = x0;
      const numeric = (fp - fm) / (2 * eps);
      const abs = Math.abs(numeric - ga[i]);
      const rel = abs / Math.max(1, Math.abs(numeric), Math.abs(ga[i]));
      result.checked++;
      if (rel > result.maxRelError) {
        result.maxRelError = rel;
        result.worst = { input: inp.name, index: i, analytic: ga[i], numeric };
      }
      result.maxAbsError = Math.max(result.maxAbsError, abs);
    }
  }
  await compiled.release();
  return result;
}
