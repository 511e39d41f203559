/**
 * The whole model differentiates correctly: tiny models built in float64 (parameters as float64
 * inputs) against central differences, through RoPE, GQA, masking with left padding, RMSNorm,
 * SwiGLU and biases; and the 2026 families' pieces: Gemma's (1 + w) norms, soft-capping and
 * sliding windows, Qwen3's q/k norms, Phi-3's fused projections with partial LongRoPE.
 */
import { expect, it } from 'vitest';
import { gradcheck } from '../../src/engine/gradcheck.js';
import type { Tensor } from '../../src/engine/graph.js';
import { Llama } from '../../src/models/llama.js';
import { createModel } from '../../src/models/registry.js';
import type { CausalLM } from '../../src/models/types.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

async function checkModel(model: CausalLM, seq: number): Promise<void> {
  const rand = lcg(7);
  const inputs = model.parameters().map((p) => {
    const n = p.shape.reduce((a, d) => a * d, 1);
    const isNorm = p.name.endsWith('norm.weight');
    return { name: p.name, shape: p.shape, values: Array.from({ length: n }, () => (isNorm ? 1 + 0.2 * rand() : 0.8 * rand())), key: p.name };
  });
  const ids = Array.from({ length: 2 * seq }, (_, i) => (i * 7 + 3) % model.config.vocabSize);
  // Second row left-padded by one token, positions as generate() builds them.
  const mask = Array.from({ length: 2 * seq }, (_, i) => (i === seq ? 0 : 1));
  const positions = Array.from({ length: 2 * seq }, (_, i) => (i < seq ? i : Math.max(0, i - seq - 1)));
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
        input_ids: g.input('input_ids', 'int64', [2, seq]),
        attention_mask: g.input('attention_mask', 'float64', [2, seq]),
        position_ids: g.input('position_ids', 'int64', [2, seq]),
      }),
      extraFeeds: {
        input_ids: { data: BigInt64Array.from(ids.map(BigInt)), dims: [2, seq] },
        attention_mask: { data: Float64Array.from(mask), dims: [2, seq] },
        position_ids: { data: BigInt64Array.from(positions.map(BigInt)), dims: [2, seq] },
      },
    },
  );
  expect(result.checked).toBe(inputs.reduce((a, i) => a + i.values.length, 0));
  expect(result.maxRelError, JSON.stringify(result.worst)).toBeLessThan(1e-6);
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
  await checkModel(model, 3);
});

const TINY = { vocab_size: 7, hidden_size: 8, intermediate_size: 6, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4, rms_norm_eps: 1e-6 };

it('tiny float64 gemma2 (soft-capping, (1 + w) norms, a 2-token window) and qwen3 (q/k norms): gradients match', async () => {
  await checkModel(
    createModel({ ...TINY, model_type: 'gemma2', num_hidden_layers: 1, query_pre_attn_scalar: 3, sliding_window: 2, attn_logit_softcapping: 1.5, final_logit_softcapping: 2 }),
    4,
  );
  await checkModel(createModel({ ...TINY, model_type: 'qwen3', num_hidden_layers: 1, tie_word_embeddings: true }), 3);
});

it('tiny float64 phi3 (fused qkv / gate_up, partial LongRoPE, window): gradients match', async () => {
  const phi3 = {
    ...TINY,
    model_type: 'phi3',
    num_hidden_layers: 1,
    head_dim: undefined,
    partial_rotary_factor: 0.5,
    sliding_window: 2,
    max_position_embeddings: 8,
    original_max_position_embeddings: 2,
    rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [3] },
  };
  await checkModel(createModel(phi3), 4);
});
