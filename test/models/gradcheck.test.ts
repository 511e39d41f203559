/**
 * The whole model differentiates correctly: a tiny llama built in float64 (parameters as float64
 * inputs) against central differences, through RoPE, GQA, masking with left padding, RMSNorm,
 * SwiGLU and biases.
 */
import { expect, it } from 'vitest';
import { gradcheck } from '../../src/engine/gradcheck.js';
import type { Tensor } from '../../src/engine/graph.js';
import { Llama } from '../../src/models/llama.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

it('tiny float64 llama: gradients of the logits w.r.t. every parameter match finite differences', async () => {
  const model = new Llama(
    {
      model_type: 'llama',
      vocab_size: 11,
      hidden_size: 8,
      intermediate_size: 12,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      head_dim: 4,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      rope_scaling: { rope_type: 'linear', factor: 2 },
      attention_bias: true,
      tie_word_embeddings: false,
    },
    'llama',
  );
  const rand = lcg(7);
  const inputs = model.parameters().map((p) => {
    const n = p.shape.reduce((a, d) => a * d, 1);
    const isNorm = p.name.endsWith('norm.weight');
    return { name: p.name, shape: p.shape, values: Array.from({ length: n }, () => (isNorm ? 1 + 0.2 * rand() : 0.8 * rand())), key: p.name };
  });
  const ids = [
    [3, 7, 1],
    [0, 5, 9],
  ];
  const result = await gradcheck(
    inputs,
    (x) => {
      const params: Record<string, Tensor> = {};
      for (const inp of inputs) params[inp.key] = x[inp.name];
      const { hidden } = model.forward(params, { inputIds: x.input_ids, attentionMask: x.attention_mask, positionIds: x.position_ids });
      return model.logits(params, hidden);
    },
    {
      extraInputs: (g) => ({
        input_ids: g.input('input_ids', 'int64', [2, 3]),
        attention_mask: g.input('attention_mask', 'float64', [2, 3]),
        position_ids: g.input('position_ids', 'int64', [2, 3]),
      }),
      extraFeeds: {
        input_ids: { data: BigInt64Array.from(ids.flat().map(BigInt)), dims: [2, 3] },
        // Second row left-padded by one token, positions as generate() builds them.
        attention_mask: { data: Float64Array.from([1, 1, 1, 0, 1, 1]), dims: [2, 3] },
        position_ids: { data: BigInt64Array.from([0n, 1n, 2n, 0n, 0n, 1n]), dims: [2, 3] },
      },
    },
  );
  console.log("llama float64 gradcheck", result.checked, result.maxAbsError, result.maxRelError);
  expect(result.checked).toBe(inputs.reduce((a, i) => a + i.values.length, 0));
  expect(result.maxRelError, JSON.stringify(result.worst)).toBeLessThan(1e-6);
});
