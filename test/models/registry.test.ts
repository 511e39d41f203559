import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/io/hf-folder.js';
import { createModel, modelTypes, supportedModelTypes } from '../../src/models/registry.js';
import { ropeFrequencies, ropeInverseFrequencies } from '../../src/models/rotary.js';
import { FIXTURES, NEW_FIXTURES } from './fixture-harness.js';

const FOLDERS = ['gpt2', 'gptj', 'gpt_neox', 'gpt_neox_sequential', 'llama', 'llama3_scaled', 'llama_linear_rope', 'qwen2', 'mistral', ...NEW_FIXTURES];
const config = (folder: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(FIXTURES, folder, 'config.json'), 'utf8')) as Record<string, unknown>;

describe('registry', () => {
  it('unknown model_type errors with the supported list', () => {
    const all = ['gemma2', 'gemma3_text', 'gpt2', 'gpt_neox', 'gptj', 'llama', 'mistral', 'phi3', 'qwen2', 'qwen3', 'smollm3'];
    expect(supportedModelTypes()).toEqual(all);
    expect(() => createModel({ model_type: 'bert' })).toThrow(`config.json: model_type "bert" is not supported (supported: ${all.join(', ')})`);
    expect(() => createModel({})).toThrow(/model_type undefined is not supported \(supported: gemma2, /);
  });

  for (const folder of FOLDERS) {
    it(`${folder}: every checkpoint key maps to a parameter of the same shape, buffers are skipped, nothing is missing`, async () => {
      const ckpt = await openCheckpoint(join(FIXTURES, folder));
      const model = createModel(ckpt.config);
      const params = new Map(model.parameters().map((p) => [p.name, p.shape]));
      expect(params.size).toBe(model.parameters().length);
      const seen = new Set<string>();
      for (const t of ckpt.names().map((n) => ckpt.info(n))) {
        const name = model.canonicalKey(t.name);
        if (name === undefined) {
          expect(t.name).toMatch(/\.(attn|attention)\.(bias|masked_bias)$|rotary_emb\.inv_freq$/);
          continue;
        }
        expect(params.get(name), t.name).toEqual(t.shape);
        seen.add(name);
      }
      expect([...params.keys()].filter((n) => !seen.has(n))).toEqual([]);
      await ckpt.close();
      for (const m of model.linearModules()) {
        const shape = params.get(m.weight);
        expect(shape, m.weight).toEqual(m.layout === 'out_in' ? [m.outFeatures, m.inFeatures] : [m.inFeatures, m.outFeatures]);
        expect(m.weight).toBe(`${m.path}.weight`);
      }
    });
  }
});

describe('canonicalKey prefixes and tied heads', () => {
  it('llama accepts keys with or without model., skips inv_freq, drops a tied lm_head', () => {
    const untied = createModel(config('llama'));
    expect(untied.canonicalKey('model.layers.0.self_attn.q_proj.weight')).toBe('model.layers.0.self_attn.q_proj.weight');
    expect(untied.canonicalKey('layers.0.self_attn.q_proj.weight')).toBe('model.layers.0.self_attn.q_proj.weight');
    expect(untied.canonicalKey('embed_tokens.weight')).toBe('model.embed_tokens.weight');
    expect(untied.canonicalKey('lm_head.weight')).toBe('lm_head.weight');
    expect(untied.canonicalKey('model.layers.1.self_attn.rotary_emb.inv_freq')).toBeUndefined();
    expect(createModel(config('qwen2')).canonicalKey('lm_head.weight')).toBeUndefined();
  });
  it('gptj accepts keys with or without transformer.', () => {
    const m = createModel(config('gptj'));
    expect(m.canonicalKey('h.0.attn.q_proj.weight')).toBe('transformer.h.0.attn.q_proj.weight');
    expect(m.canonicalKey('transformer.wte.weight')).toBe('transformer.wte.weight');
    expect(m.canonicalKey('lm_head.bias')).toBe('lm_head.bias');
    expect(m.canonicalKey('transformer.h.0.attn.bias')).toBeUndefined();
    expect(m.canonicalKey('h.0.attn.masked_bias')).toBeUndefined();
  });
  it('gpt_neox accepts keys with or without gpt_neox.', () => {
    const m = createModel(config('gpt_neox'));
    expect(m.canonicalKey('layers.0.attention.dense.weight')).toBe('gpt_neox.layers.0.attention.dense.weight');
    expect(m.canonicalKey('embed_out.weight')).toBe('embed_out.weight');
    expect(m.canonicalKey('gpt_neox.layers.0.attention.rotary_emb.inv_freq')).toBeUndefined();
    expect(m.canonicalKey('layers.1.attention.bias')).toBeUndefined();
  });
});

describe('linearModules roles (PEFT names)', () => {
  const roles = (folder: string): string[] => [...new Set(createModel(config(folder)).linearModules().map((m) => m.role))];
  it('per family', () => {
    expect(roles('llama')).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(roles('gptj')).toEqual(['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc_in', 'fc_out']);
    expect(roles('gpt_neox')).toEqual(['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h']);
    expect(createModel(config('llama')).linearModules()).toHaveLength(2 * 7);
  });
});

describe('checkSequenceLength', () => {
  it('sliding windows no longer limit the length (they are masked exactly)', () => {
    expect(() => createModel(config('mistral')).checkSequenceLength?.(100000)).not.toThrow();
    expect(() => createModel({ ...config('qwen2'), use_sliding_window: true }).checkSequenceLength?.(40000)).not.toThrow();
    for (const folder of ['gemma2', 'gemma3_text', 'phi3', 'qwen3', 'smollm3']) expect(() => createModel(config(folder)).checkSequenceLength?.(100000)).not.toThrow();
  });
  it('gpt2 and gptj stop at their position tables; llama and gpt_neox have no limit', () => {
    expect(() => createModel(config('gpt2')).checkSequenceLength?.(64)).not.toThrow();
    expect(() => createModel(config('gpt2')).checkSequenceLength?.(65)).toThrow('gpt2: sequence of 65 tokens exceeds n_positions 64');
    expect(() => createModel(config('gptj')).checkSequenceLength?.(65)).toThrow(/n_positions 64/);
    expect(() => createModel(config('llama')).checkSequenceLength?.(100000)).not.toThrow();
    expect(() => createModel(config('gpt_neox')).checkSequenceLength?.(100000)).not.toThrow();
  });
});

describe('registry metadata', () => {
  it("each model type's linearRoles are exactly the roles its linearModules() use, and its LoRA defaults are among them", () => {
    const folderOf: Record<string, string> = {};
    for (const folder of FOLDERS) folderOf[String(config(folder).model_type)] ??= folder;
    for (const info of modelTypes()) {
      const roles = [...new Set(createModel(config(folderOf[info.modelType])).linearModules().map((m) => m.role))];
      expect(roles, info.modelType).toEqual([...info.linearRoles]);
      for (const t of info.loraDefaultTargets) expect(info.linearRoles, info.modelType).toContain(t);
    }
  });
});

describe('layer types and windows', () => {
  it('layer_types must name each layer', () => {
    expect(() => createModel({ ...config('gemma2'), layer_types: ['sliding_attention'] })).toThrow(
      `gemma2: config.json 'layer_types' must list "sliding_attention" or "full_attention" for each of the 3 layers, got ["sliding_attention"]`,
    );
    expect(() => createModel({ ...config('qwen3'), layer_types: ['full_attention', 'local'] })).toThrow(/'layer_types' must list/);
    expect(() => createModel({ ...config('mistral'), sliding_window: 0 })).toThrow(
      "mistral: config.json 'sliding_window' must be a positive integer or null, got 0",
    );
    expect(() => createModel({ ...config('smollm3'), no_rope_layers: [1, 1] })).toThrow(/'no_rope_layers' must list 0 or 1 for each of the 4 layers/);
    expect(() => createModel({ ...config('gemma3_text'), use_bidirectional_attention: true })).toThrow(/not a causal LM/);
  });
});

describe('config semantics', () => {
  it('head_dim, GQA and tie_word_embeddings defaults as transformers', () => {
    const l3 = createModel(config('llama3_scaled')).config;
    expect([l3.headDim, l3.numHeads, l3.numKeyValueHeads, l3.tieWordEmbeddings]).toEqual([16, 4, 2, true]);
    const { tie_word_embeddings: _drop, ...noTie } = config('llama');
    // LlamaConfig defaults tie_word_embeddings to false.
    expect(createModel(noTie).config.tieWordEmbeddings).toBe(false);
  });
  it('rope_scaling: linear (rope_type or legacy type), llama3, unknown types error', () => {
    const base = ropeInverseFrequencies('llama', 8, 10000, null);
    expect(base).toEqual([1, 0.1, 0.01, 0.001].map((x, i) => (i === 0 ? 1 : x)));
    expect(ropeInverseFrequencies('llama', 8, 10000, { type: 'linear', factor: 2 })).toEqual(base.map((x) => x / 2));
    expect(ropeInverseFrequencies('llama', 8, 10000, { rope_type: 'linear', factor: 4 })).toEqual(base.map((x) => x / 4));
    expect(ropeInverseFrequencies('llama', 8, 10000, { rope_type: 'default' })).toEqual(base);
    const l3 = ropeInverseFrequencies('llama', 16, 10000, {
      rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32,
    });
    const raw = ropeInverseFrequencies('llama', 16, 10000, null);
    expect(l3[0]).toBe(raw[0]); // high frequency: unchanged
    expect(l3[7]).toBeCloseTo(raw[7] / 8, 15); // low frequency: divided by factor
    expect(() => ropeInverseFrequencies('llama', 8, 10000, { rope_type: 'ntk', factor: 2 })).toThrow(
      'llama: rope_scaling type "ntk" is not supported (supported: default, linear, dynamic, yarn, longrope, llama3)',
    );
    expect(() => createModel({ ...config('llama'), rope_scaling: { type: 'dynamic' } })).toThrow("llama: rope_scaling 'dynamic' needs a number 'factor', got undefined");
    // GPT-NeoX takes every rope_scaling type too (transformers' GPTNeoXRotaryEmbedding uses the same table).
    expect(() => createModel({ ...config('gpt_neox'), rope_scaling: { rope_type: 'dynamic', factor: 2 } })).not.toThrow();
  });
  it('yarn: ramp between extrapolated and interpolated frequencies, attention factor 0.1 ln(factor) + 1', () => {
    const rope = ropeFrequencies('qwen3', 16, 10000, { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 256 }, { maxPositions: 1024 });
    if (rope.type !== 'static') throw new Error(rope.type);
    const raw = ropeInverseFrequencies('qwen3', 16, 10000, null);
    // correction range [0, 4]: dim 0 extrapolates (unchanged), dims >= 4 interpolate (/ factor)
    expect(rope.invFreq[0]).toBeCloseTo(raw[0], 15);
    expect(rope.invFreq[2]).toBeCloseTo(raw[2] * 0.5 + (raw[2] / 4) * 0.5, 15);
    expect(rope.invFreq[7]).toBeCloseTo(raw[7] / 4, 15);
    expect(rope.attentionScaling).toBeCloseTo(0.1 * Math.log(4) + 1, 15);
  });
  it('longrope: short and long factors, attention scaling from max / original positions; phi3 reads legacy "su"', () => {
    const scaling = { type: 'longrope', short_factor: [1, 2], long_factor: [3, 4] };
    const rope = ropeFrequencies('phi3', 4, 10000, scaling, { maxPositions: 128, originalMaxPositions: 32 });
    expect(rope).toEqual({
      type: 'longrope',
      short: [1, 1 / (2 * 100)],
      long: [1 / 3, 1 / (4 * 100)],
      originalMaxPositions: 32,
      attentionScaling: Math.sqrt(1 + Math.log(4) / Math.log(32)),
    });
    expect(() => ropeFrequencies('phi3', 4, 10000, { type: 'longrope', short_factor: [1], long_factor: [1, 2] }, { maxPositions: 128 })).toThrow(
      "phi3: rope_scaling longrope needs 'short_factor' as a list of 2 numbers (rotary dim / 2)",
    );
    const phi3 = config('phi3');
    const su = { ...phi3, rope_scaling: { ...(phi3.rope_scaling as object), type: 'su' } };
    expect(createModel(su).parameters()).toEqual(createModel(phi3).parameters());
  });
});
