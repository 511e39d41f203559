/**
 * The linear projections of every model family go through `projection`, so that an adapter
 * (LoRA) can add its term on the activation path: y = x Wᵀ (+ b) + adapter(x).
 *
 * Why a hook rather than a changed weight: with W frozen and the adapter a separate term, the
 * backward of a projection needs only dx = dy W (no weight-gradient GEMM for W, no optimizer state
 * for it), and the adapter can drop out its own input (LoRA dropout), which a merged weight
 * W + s·B A cannot express.
 *
 * The adapters travel with the params record under a symbol key, so every place that turns
 * graph inputs into weights (`ParamTransform`) can add them without the callers of
 * `CausalLM.forward` knowing; object spread (`{ ...params }`) keeps them.
 */
import type { Tensor } from '../engine/graph.js';
import { linear, linearT } from '../engine/nn.js';
import * as op from '../engine/ops.js';

/** The extra term of one projection, from the projection's input x [..., in] to [..., out]. */
export type LinearAdapter = (x: Tensor) => Tensor;

const ADAPTERS: unique symbol = Symbol('linear adapters');
const LAYER_CHECKPOINTS: unique symbol = Symbol('gradient checkpointing');

/**
 * The weights a model's forward reads: tensors by checkpoint key, optionally with adapters by
 * module path (a LinearModule's `path`, e.g. 'transformer.h.0.attn.c_attn'), and optionally
 * marked for gradient checkpointing of the decoder layers (layer-checkpoint.ts).
 */
export type ModelParams = Readonly<Record<string, Tensor>> & {
  readonly [ADAPTERS]?: ReadonlyMap<string, LinearAdapter>;
  readonly [LAYER_CHECKPOINTS]?: boolean;
};

/**
 * `params` marked so that the model's forward checkpoints every decoder layer (transformers'
 * gradient_checkpointing_enable()): the backward keeps each layer's input only and recomputes the
 * layer. It travels with the record like the adapters, so every trainer's loss gets it from the
 * weights its training step passes in; graphs without a backward gain nothing from it.
 */
export function withGradientCheckpointing(params: ModelParams, enabled = true): ModelParams {
  return { ...params, [LAYER_CHECKPOINTS]: enabled };
}

/** Whether `params` asks for checkpointed decoder layers. */
export function gradientCheckpointing(params: ModelParams): boolean {
  return params[LAYER_CHECKPOINTS] === true;
}

/** `params` plus `adapters` (added to any the record already carries; a path in both is an error). */
export function withLinearAdapters(params: ModelParams, adapters: ReadonlyMap<string, LinearAdapter>): ModelParams {
  const merged = new Map(params[ADAPTERS] ?? []);
  for (const [path, adapter] of adapters) {
    if (merged.has(path)) throw new Error(`linear adapters: "${path}" already has an adapter`);
    merged.set(path, adapter);
  }
  return { ...params, [ADAPTERS]: merged };
}

/** The adapters a params record carries, by module path (empty when none). */
export function linearAdapters(params: ModelParams): ReadonlyMap<string, LinearAdapter> {
  return params[ADAPTERS] ?? new Map();
}

/**
 * Module `path` applied to x: weight `${path}.weight` stored 'out_in' ([out, in], torch Linear:
 * x Wᵀ) or 'in_out' ([in, out], GPT-2's Conv1D: x W), plus `${path}.bias` when `bias`, plus the
 * module's adapter when `p` carries one.
 */
export function projection(p: ModelParams, path: string, x: Tensor, layout: 'out_in' | 'in_out', bias: boolean): Tensor {
  const w = p[`${path}.weight`];
  const b = bias ? p[`${path}.bias`] : undefined;
  if (!w) throw new Error(`projection: no weight "${path}.weight"`);
  if (bias && !b) throw new Error(`projection: no bias "${path}.bias"`);
  const y = layout === 'out_in' ? linearT(x, w, b) : linear(x, w, b);
  const adapter = p[ADAPTERS]?.get(path);
  return adapter ? op.add(y, adapter(x)) : y;
}
