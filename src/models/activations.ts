/** transformers' ACT2FN names -> engine compositions. */
import { DpoError } from '../errors.js';
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { geluErf, geluTanh, silu } from '../engine/nn.js';

const ACTIVATIONS: Record<string, (x: Tensor) => Tensor> = {
  gelu: geluErf,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  gelu_fast: geluTanh,
  relu: op.relu,
  silu,
  swish: silu,
};

/** The activation `name` (config's hidden_act / activation_function); unknown names error. */
export function activation(family: string, name: string): (x: Tensor) => Tensor {
  const f = ACTIVATIONS[name];
  if (!f) throw new DpoError(`${family}: activation '${name}' is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`);
  return f;
}
