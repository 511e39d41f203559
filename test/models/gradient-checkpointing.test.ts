/**
 * Gradient checkpointing of decoder layers (`--gradient-checkpointing`): every family gives the
 * gradients it gives without it, a float64 gradcheck passes through checkpointed layers carrying
 * LoRA adapters, and the backward reads no layer intermediate kept from the forward.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../src/engine/autodiff.js';
import { gradcheck, type GradcheckInput } from '../../src/engine/gradcheck.js';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { withGradientCheckpointing } from '../../src/models/linear.js';
import { applyLora, loraConfig, loraParameters } from '../../src/models/lora.js';
import { createModel } from '../../src/models/registry.js';
import type { CausalLM } from '../../src/models/types.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

const TINY = { vocab_size: 11, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4, rms_norm_eps: 1e-6 };
const FAMILIES: Record<string, Record<string, unknown>> = {
  gpt2: { model_type: 'gpt2', vocab_size: 11, n_embd: 8, n_layer: 2, n_head: 2, n_positions: 8 },
  gptj: { model_type: 'gptj', vocab_size: 11, n_embd: 8, n_layer: 2, n_head: 2, n_positions: 8, rotary_dim: 2 },
  gpt_neox: { model_type: 'gpt_neox', vocab_size: 11, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, rotary_pct: 0.5, max_position_embeddings: 8, use_parallel_residual: false },
  llama: { ...TINY, model_type: 'llama', attention_bias: true },
  qwen3: { ...TINY, model_type: 'qwen3', tie_word_embeddings: true },
  gemma2: { ...TINY, model_type: 'gemma2', query_pre_attn_scalar: 3, sliding_window: 2, attn_logit_softcapping: 1.5, final_logit_softcapping: 2 },
  phi3: { ...TINY, model_type: 'phi3', head_dim: undefined, max_position_embeddings: 8 },
};

const B = 2;
const T = 4;
const IDS = [3, 2, 1, 4, 0, 4, 3, 2];
// Second row left-padded by one token.
const MASK = [1, 1, 1, 1, 0, 1, 1, 1];

function values(shape: readonly number[], rand: () => number, name: string): number[] {
  const n = shape.reduce((a, d) => a * d, 1);
  const norm = /norm\.weight$|ln_\w+\.weight$|layernorm\.weight$/.test(name);
  return Array.from({ length: n }, () => (norm ? 1 + 0.2 * rand() : 0.8 * rand()));
}

/** float32 loss sum(logits * R) and its gradient w.r.t. every parameter, with and without checkpointed layers. */
async function gradients(model: CausalLM, checkpointed: boolean): Promise<Record<string, HostTensor>> {
  const g = new Graph();
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float32', p.shape);
  const ids = g.input('input_ids', 'int64', [B, T]);
  const mask = g.input('attention_mask', 'float32', [B, T]);
  const r = g.input('r', 'float32', [B, T, model.config.vocabSize]);
  const weights = checkpointed ? withGradientCheckpointing(params) : params;
  const logits = model.logits(weights, model.forward(weights, { inputIds: ids, attentionMask: mask }).hidden);
  const loss = op.sum(op.mul(logits, r));
  const names = Object.keys(params);
  const grads = grad(loss, names.map((n) => params[n]));
  const c = await CompiledGraph.compile({ loss, ...Object.fromEntries(names.map((n, i) => [`d:${n}`, grads[i]])) });
  const rand = lcg(3);
  const feeds: Record<string, HostTensor> = {
    input_ids: { data: BigInt64Array.from(IDS.map(BigInt)), dims: [B, T] },
    attention_mask: { data: Float32Array.from(MASK), dims: [B, T] },
    r: { data: Float32Array.from({ length: B * T * model.config.vocabSize }, rand), dims: [B, T, model.config.vocabSize] },
  };
  for (const p of model.parameters()) feeds[p.name] = { data: Float32Array.from(values(p.shape, rand, p.name)), dims: p.shape };
  const out = await c.run(feeds);
  await c.release();
  return out;
}

describe('gradient checkpointing of decoder layers', () => {
  for (const [family, config] of Object.entries(FAMILIES)) {
    it(`${family}: the same loss and gradients as without (float32)`, async () => {
      const model = createModel(config);
      const plain = await gradients(model, false);
      const ckpt = await gradients(model, true);
      expect(Object.keys(ckpt).sort()).toEqual(Object.keys(plain).sort());
      for (const [k, v] of Object.entries(plain)) {
        const a = v.data as Float32Array;
        const b = ckpt[k].data as Float32Array;
        const scale = Math.max(1e-3, ...Array.from(a, Math.abs));
        for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i]) / scale, `${k}[${i}]`).toBeLessThan(1e-5);
      }
    });
  }

  it('float64 gradcheck through checkpointed llama layers with LoRA adapters (all parameters)', async () => {
    // Smaller than TINY: a gradcheck costs two runs per parameter value.
    const model = createModel({ ...FAMILIES.llama, vocab_size: 5, hidden_size: 4, intermediate_size: 6, head_dim: 2 });
    const config = loraConfig('llama', { r: 1, alpha: 3, targetModules: 'all-linear' });
    const rand = lcg(5);
    // B nonzero (PEFT starts it at 0) so that gradients flow through every adapter into A.
    const inputs: GradcheckInput[] = [...model.parameters(), ...loraParameters(model, config)].map((p) => ({ name: p.name, shape: p.shape, values: values(p.shape, rand, p.name) }));
    const result = await gradcheck(
      inputs,
      (x) => {
        const params = withGradientCheckpointing(applyLora(model, x, x, config));
        return model.logits(params, model.forward(params, { inputIds: x.input_ids, attentionMask: x.attention_mask }).hidden);
      },
      {
        extraInputs: (g) => ({ input_ids: g.input('input_ids', 'int64', [B, T]), attention_mask: g.input('attention_mask', 'float64', [B, T]) }),
        extraFeeds: {
          input_ids: { data: BigInt64Array.from(IDS.map(BigInt)), dims: [B, T] },
          attention_mask: { data: Float64Array.from(MASK), dims: [B, T] },
        },
      },
    );
    expect(result.checked).toBe(inputs.reduce((a, i) => a + (i.values?.length ?? 0), 0));
    expect(result.maxRelError, JSON.stringify(result.worst)).toBeLessThan(1e-6);
  });

  it('the backward reads no intermediate of a layer from the forward, only its input (and recomputes the layer)', () => {
    const model = createModel(FAMILIES.llama);
    const g = new Graph();
    const params: Record<string, Tensor> = {};
    for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float32', p.shape);
    const ids = g.input('input_ids', 'int64', [B, T]);
    const weights = withGradientCheckpointing(params);
    const hidden = model.forward(weights, { inputIds: ids }).hidden;
    const forwardNodes = g.nodes.length;
    const layerCheckpoints = g.nodes.filter((n) => n.op === 'Checkpoint' && n.inputs.some((t) => t === params['model.layers.1.mlp.down_proj.weight']));
    expect(layerCheckpoints).toHaveLength(1);
    // Everything the forward made inside layer 1: the ancestors of its output that are not ancestors of its input.
    const [layerOut] = layerCheckpoints[0].inputs;
    const layerIn = layerCheckpoints[0].inputs[1];
    const ancestors = (t: Tensor, stop: Tensor | undefined): Set<number> => {
      const seen = new Set<number>();
      const stack = [t];
      while (stack.length) {
        const x = stack.pop() as Tensor;
        if (seen.has(x.id) || x === stop) continue;
        seen.add(x.id);
        if (x.node) stack.push(...x.node.inputs);
      }
      return seen;
    };
    const before = ancestors(layerIn, undefined);
    const inside = new Set([...ancestors(layerOut, layerIn)].filter((id) => !before.has(id)));
    const floatInside = g.nodes.slice(0, forwardNodes).flatMap((n) => n.outputs).filter((t) => inside.has(t.id) && t.dtype === 'float32');
    expect(floatInside.length).toBeGreaterThan(20);
    grad(op.sum(model.logits(weights, hidden)), Object.values(params));
    const backward = g.nodes.slice(forwardNodes);
    const read = new Set(backward.flatMap((n) => n.inputs.map((t) => t.id)));
    expect(floatInside.filter((t) => read.has(t.id)).map(String)).toEqual([]);
    // Recomputed: layer 1's down_proj weight is read by the backward's MatMuls (forward again + input gradient).
    const downProjReads = backward.filter((n) => n.inputs.some((t) => t.node?.inputs[0] === params['model.layers.1.mlp.down_proj.weight'] || t === params['model.layers.1.mlp.down_proj.weight']));
    expect(downProjReads.length).toBeGreaterThan(0);
  });
});
