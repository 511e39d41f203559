/**
 * LoRA on the activation path (the models' `projection` hook): exact adapter gradients, no
 * weight-sized gradient for the frozen weights, and LoRA dropout in training graphs only.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../src/engine/autodiff.js';
import { gradcheck, type GradcheckInput } from '../../src/engine/gradcheck.js';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { DropoutSites } from '../../src/models/dropout.js';
import { GPT2 } from '../../src/models/gpt2.js';
import { Llama } from '../../src/models/llama.js';
import { applyLora, loraConfig, loraParameters, loraTargets, type LoraConfig } from '../../src/models/lora.js';
import type { CausalLM } from '../../src/models/types.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

const tinyGpt2 = (): GPT2 => new GPT2({ model_type: 'gpt2', vocab_size: 11, n_embd: 8, n_layer: 2, n_head: 2, n_positions: 8 });
const tinyLlama = (): Llama =>
  new Llama({
    model_type: 'llama',
    vocab_size: 11,
    hidden_size: 8,
    intermediate_size: 12,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 4,
    attention_bias: true,
    tie_word_embeddings: false,
  });

const IDS = [
  [3, 7, 1],
  [0, 5, 9],
];
const idsFeed = (): HostTensor => ({ data: BigInt64Array.from(IDS.flat().map(BigInt)), dims: [2, 3] });

describe('LoRA on the activation path', () => {
  for (const [family, make] of [
    ['gpt2', tinyGpt2],
    ['llama', tinyLlama],
  ] as const) {
    it(`${family}: float64 gradients w.r.t. every A and B (all linear layers) match finite differences; base weights frozen`, async () => {
      const model: CausalLM = make();
      const config = loraConfig(family, { r: 2, alpha: 3, targetModules: 'all-linear' });
      const rand = lcg(11);
      const values = (shape: readonly number[], scale: number, offset = 0): number[] =>
        Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => offset + scale * rand());
      const base: GradcheckInput[] = model.parameters().map((p) => ({
        name: p.name,
        shape: p.shape,
        values: values(p.shape, p.name.includes('norm') || p.name.includes('ln_') ? 0.2 : 0.8, p.name.endsWith('norm.weight') || /ln_\w+\.weight$/.test(p.name) ? 1 : 0),
        differentiable: false,
      }));
      // B nonzero (PEFT starts it at 0) so that gradients flow through every adapter into A.
      const adapters: GradcheckInput[] = loraParameters(model, config).map((p) => ({ name: p.name, shape: p.shape, values: values(p.shape, 0.8) }));
      const result = await gradcheck(
        [...base, ...adapters],
        (x) => {
          const params = applyLora(model, x, x, config);
          return model.logits(params, model.forward(params, { inputIds: x.input_ids }).hidden);
        },
        { extraInputs: (g) => ({ input_ids: g.input('input_ids', 'int64', [2, 3]) }), extraFeeds: { input_ids: idsFeed() } },
      );
      expect(result.checked).toBe(adapters.reduce((a, i) => a + i.values!.length, 0));
      expect(result.maxRelError, JSON.stringify(result.worst)).toBeLessThan(1e-6);
    });
  }

  it('the backward computes no weight-sized gradient for frozen weights (only the adapters get weight gradients)', () => {
    const model = tinyGpt2();
    const config = loraConfig('gpt2', { r: 2, targetModules: 'all-linear' });
    const g = new Graph();
    const params: Record<string, Tensor> = {};
    for (const p of [...model.parameters(), ...loraParameters(model, config)]) params[p.name] = g.input(p.name, 'float32', p.shape);
    const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
    const adapted = applyLora(model, params, params, config);
    const loss = op.sum(model.logits(adapted, model.forward(adapted, { inputIds }).hidden));
    const grads = grad(loss, loraParameters(model, config).map((p) => params[p.name]));
    // The nodes the exported graph keeps: those the gradients depend on.
    const reached = new Set<number>();
    const stack = [...grads];
    for (let t = stack.pop(); t; t = stack.pop()) {
      if (!t.node || reached.has(t.node.id)) continue;
      reached.add(t.node.id);
      stack.push(...t.node.inputs);
    }
    const weightShapes = new Set(loraTargets(model, config).flatMap((t) => [`${t.module.inFeatures},${t.module.outFeatures}`, `${t.module.outFeatures},${t.module.inFeatures}`]));
    const weightSized = g.nodes.filter((n) => reached.has(n.id) && n.op === 'MatMul' && n.outputs.some((o) => weightShapes.has(o.shape.join(','))));
    expect(reached.size).toBeGreaterThan(100);
    expect(weightSized.map((n) => `${n.op} -> [${n.outputs[0].shape}]`)).toEqual([]);
  });

  it('LoRA dropout: applied to the adapter input in training graphs only, reproducible for a seed', async () => {
    const model = tinyGpt2();
    const config: LoraConfig = loraConfig('gpt2', { r: 2, alpha: 4, dropout: 0.5, targetModules: 'all-linear' });
    const rand = lcg(5);
    const feeds: Record<string, HostTensor> = { input_ids: idsFeed() };
    for (const p of [...model.parameters(), ...loraParameters(model, config)]) {
      feeds[p.name] = { data: Float32Array.from({ length: p.shape.reduce((a, d) => a * d, 1) }, () => 0.5 * rand()), dims: p.shape };
    }
    const logitsWith = async (options: { dropout?: DropoutSites; enabled?: boolean }): Promise<Float32Array[]> => {
      const g = new Graph();
      const params: Record<string, Tensor> = {};
      for (const p of [...model.parameters(), ...loraParameters(model, config)]) params[p.name] = g.input(p.name, 'float32', p.shape);
      const adapted = applyLora(model, params, params, config, options);
      const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
      const lg = model.logits(adapted, model.forward(adapted, { inputIds }).hidden);
      const compiled = await CompiledGraph.compile({ logits: lg }, { threads: 1 });
      const runs = [(await compiled.run(feeds)).logits.data as Float32Array, (await compiled.run(feeds)).logits.data as Float32Array];
      await compiled.release();
      return runs;
    };
    const [evalA, evalB] = await logitsWith({});
    const [base] = await logitsWith({ enabled: false });
    const [train1, train2] = await logitsWith({ dropout: new DropoutSites(3) });
    const [again1, again2] = await logitsWith({ dropout: new DropoutSites(3) });
    expect(evalB).toEqual(evalA); // no dropout without sites
    expect(train1).not.toEqual(evalA); // masks drawn
    expect(train2).not.toEqual(train1); // a fresh mask each run
    expect([again1, again2]).toEqual([train1, train2]); // same seed, same masks
    // Base weights are never dropped out: with B = 0 the adapters vanish and dropout changes nothing.
    for (const p of loraParameters(model, config)) if (p.name.endsWith('lora_B.weight')) feeds[p.name] = { data: new Float32Array(p.shape[0] * p.shape[1]), dims: p.shape };
    const [zeroB] = await logitsWith({ dropout: new DropoutSites(3) });
    expect(zeroB).toEqual(base);
  });
});
