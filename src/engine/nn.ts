/**
 * Layers and functions composed from the primitives in ops.ts. None has a gradient rule of its
 * own: autodiff sees only primitives. Activation functions are checkpointed (checkpoint.ts):
 * their backward recomputes the few elementwise passes from the input instead of keeping
 * [tokens, intermediate]-sized temporaries alive from forward to backward.
 */
import { checkpoint } from './checkpoint.js';
import type { Graph, Tensor } from './graph.js';
import type { Dim } from './shape.js';
import * as op from './ops.js';

/**
 * log(sum(exp(x))) along `axis`, stable: one ReduceLogSumExp forward, one Softmax backward. This
 * is what keeps the vocabulary-sized work of a language-model loss at a few passes.
 */
export function logSumExp(x: Tensor, axis = -1, keepDims = false): Tensor {
  return op.reduceLogSumExp(x, axis, keepDims);
}

/** log-softmax as max/sub/exp/sum/log (WebGPU has no LogSoftmax kernel). */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return op.sub(x, logSumExp(x, axis, true));
}

/**
 * log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|)), with max(x, 0) written as
 * (x + |x|)/2 so that both kinks at 0 go through one Abs and their subgradients cancel: the
 * gradient at exactly 0 is the true 1/2. (With Relu'(0) = 0 it would be -1/2, and every DPO run
 * starts at exactly 0, where the reference equals the policy.)
 */
export function softplus(x: Tensor): Tensor {
  const a = op.abs(x);
  return op.add(op.mul(op.add(x, a), 0.5), op.log(op.add(op.exp(op.neg(a)), 1)));
}

/** log(sigmoid(x)) = -softplus(-x). */
export function logSigmoid(x: Tensor): Tensor {
  return op.neg(softplus(op.neg(x)));
}

const GELU_K1 = 2 * Math.sqrt(2 / Math.PI);
const GELU_K2 = GELU_K1 * 0.044715;

/**
 * GELU with the tanh approximation (transformers' gelu_new / gelu_pytorch_tanh):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). The forward is written exactly so, the
 * pattern ONNX Runtime's FastGeluFusion turns into one FastGelu kernel (float32 on CPU; other
 * providers and float64 run the plain ops). The backward recomputes the identical
 * x * sigmoid(x (k1 + k2 x^2)), k1 = 2 sqrt(2/pi), k2 = 0.044715 k1, whose gradient takes 11
 * elementwise passes instead of 15 (it sits between the two big matmuls of every MLP).
 */
export function geluTanh(x: Tensor): Tensor {
  return checkpoint(
    [x],
    ([v]) => {
      const z = op.mul(v, op.add(op.mul(op.mul(v, v), GELU_K2), GELU_K1));
      return [op.mul(v, op.sigmoid(z))];
    },
    ([v]) => {
      const inner = op.mul(op.add(v, op.mul(op.pow(v, 3), 0.044715)), Math.sqrt(2 / Math.PI));
      return [op.mul(op.mul(v, 0.5), op.add(op.tanh(inner), 1))];
    },
  )[0];
}

/** Exact GELU: x Φ(x) (transformers' "gelu"). */
export function geluErf(x: Tensor): Tensor {
  return checkpoint([x], ([v]) => [op.mul(op.mul(v, 0.5), op.add(op.erf(op.mul(v, Math.SQRT1_2)), 1))])[0];
}

/** x * sigmoid(x) (SiLU / swish). */
export function silu(x: Tensor): Tensor {
  return checkpoint([x], ([v]) => [op.mul(v, op.sigmoid(v))])[0];
}

/**
 * LayerNorm over the last axis with biased variance, as torch.nn.LayerNorm. Checkpointed: the
 * backward keeps only x (a residual-stream tensor that exists anyway) instead of the centred,
 * normalised and scaled copies (gpt2-124m DPO step: ~50 MB per layer).
 */
export function layerNorm(x: Tensor, weight: Tensor | undefined, bias: Tensor | undefined, eps: number): Tensor {
  const params = [weight, bias].filter((t) => t !== undefined);
  return checkpoint([x, ...params], ([v, ...ps]) => {
    const [w, b] = [weight ? ps[0] : undefined, bias ? ps[weight ? 1 : 0] : undefined];
    const mu = op.mean(v, -1, true);
    const xc = op.sub(v, mu);
    const variance = op.mean(op.mul(xc, xc), -1, true);
    let y = op.mul(xc, op.rsqrt(op.add(variance, eps)));
    if (w) y = op.mul(y, w);
    if (b) y = op.add(y, b);
    return [y];
  })[0];
}

/** RMSNorm over the last axis, as LlamaRMSNorm (normalise, then scale by weight). Checkpointed like layerNorm. */
export function rmsNorm(x: Tensor, weight: Tensor | undefined, eps: number): Tensor {
  return checkpoint(weight ? [x, weight] : [x], ([v, w]) => {
    const ms = op.mean(op.mul(v, v), -1, true);
    const y = op.mul(v, op.rsqrt(op.add(ms, eps)));
    return [w ? op.mul(y, w) : y];
  })[0];
}

/** x @ w (+ b): `w` stored [in, out]. */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const y = op.matmul(x, w);
  return b ? op.add(y, b) : y;
}

/** x @ w^T (+ b): `w` stored [out, in], as torch.nn.Linear. */
export function linearT(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const y = op.matmul(x, op.transpose(w, [1, 0]));
  return b ? op.add(y, b) : y;
}

/**
 * Boolean [q, k] mask, true where query i may attend key j: j <= i + (k - q). With q = k this is
 * the usual lower triangle; with a KV cache the queries are the last q of the k positions.
 */
export function causalMask(g: Graph, qLen: Dim, kLen: Dim, hint?: Tensor): Tensor {
  // int32 positions: WebGPU runs int64 arithmetic and comparisons on the CPU.
  const q = op.arange(g, qLen, 'int32', hint);
  const k = op.arange(g, kLen, 'int32', hint);
  const shifted =
    qLen === kLen
      ? q
      : op.add(q, op.cast(op.sub(op.reshape(op.dimTensor(g, kLen, hint), []), op.reshape(op.dimTensor(g, qLen, hint), [])), 'int32'));
  return op.lessEqual(op.unsqueeze(k, 0), op.unsqueeze(shifted, 1));
}

/** Mean of `x` over positions where `mask` is 1 (mask broadcastable to x; float). */
export function maskedMean(x: Tensor, mask: Tensor): Tensor {
  return op.div(op.sum(op.mul(x, mask)), op.maximum(op.sum(mask), 1));
}
