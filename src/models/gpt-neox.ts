/**
 * GPT-NeoX / Pythia, as transformers' modeling_gpt_neox.py (GPTNeoXForCausalLM): fused qkv laid
 * out per head ([head][q|k|v][head_dim]), RoPE with rotate_half pairing on the first
 * `rotary_pct` of each head, parallel or sequential residual, untied `embed_out`.
 */
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { layerNorm, linearT } from '../engine/nn.js';
import { projection, type ModelParams } from './linear.js';
import { decoderLayer } from './layer-checkpoint.js';
import { activation } from './activations.js';
import { attentionMask, mergeHeads, scaledDotProductAttention, withPast } from './attention.js';
import { num, optNum, readCommonConfig } from './config.js';
import { defaultPositions } from './positions.js';
import { modelDropout } from './dropout.js';
import { applyRotary, ropeFrequencies, ropeSettings, rotaryTables, type RopeFrequencies } from './rotary.js';
import type { CausalLM, CausalLMConfig, ForwardInputs, ForwardOutputs, KeyValue, LinearModule, ParamInfo } from './types.js';

export class GPTNeoX implements CausalLM {
  readonly modelType = 'gpt_neox';
  readonly config: CausalLMConfig;
  private readonly intermediate: number;
  private readonly eps: number;
  private readonly act: (x: Tensor) => Tensor;
  private readonly rope: RopeFrequencies;
  private readonly parallelResidual: boolean;
  private readonly bias: boolean;

  constructor(raw: Readonly<Record<string, unknown>>) {
    const common = readCommonConfig(raw, {
      vocabSize: 'vocab_size',
      hiddenSize: 'hidden_size',
      numLayers: 'num_hidden_layers',
      numHeads: 'num_attention_heads',
      maxPositions: 'max_position_embeddings',
    });
    // GPTNeoXConfig defaults tie_word_embeddings to false; head_dim is always hidden / heads.
    const headDim = common.hiddenSize / common.numHeads;
    this.config = { ...common, headDim, numKeyValueHeads: common.numHeads, tieWordEmbeddings: raw.tie_word_embeddings === true };
    this.intermediate = num(raw, 'intermediate_size');
    this.eps = optNum(raw, 'layer_norm_eps') ?? 1e-5;
    this.act = activation('gpt_neox', typeof raw.hidden_act === 'string' ? raw.hidden_act : 'gelu');
    this.parallelResidual = raw.use_parallel_residual !== false;
    this.bias = raw.attention_bias !== false;
    // transformers < 5: rotary_pct, rotary_emb_base (or rope_theta), rope_scaling; 5: rope_parameters.
    const settings = ropeSettings('gpt_neox', raw);
    const rotaryNdims = Math.floor(headDim * (optNum(raw, 'rotary_pct') ?? settings.partialRotaryFactor ?? 0.25));
    const base = settings.theta ?? optNum(raw, 'rotary_emb_base') ?? 10000;
    this.rope = ropeFrequencies('gpt_neox', rotaryNdims, base, settings.scaling, { maxPositions: common.maxPositions });
  }

  parameters(): ParamInfo[] {
    const { vocabSize: v, hiddenSize: e, numLayers } = this.config;
    const i = this.intermediate;
    const ps: ParamInfo[] = [{ name: 'gpt_neox.embed_in.weight', shape: [v, e] }];
    const lin = (name: string, out: number, inF: number): void => {
      ps.push({ name: `${name}.weight`, shape: [out, inF] });
      if (this.bias) ps.push({ name: `${name}.bias`, shape: [out] });
    };
    for (let l = 0; l < numLayers; l++) {
      const p = `gpt_neox.layers.${l}`;
      ps.push(
        { name: `${p}.input_layernorm.weight`, shape: [e] },
        { name: `${p}.input_layernorm.bias`, shape: [e] },
        { name: `${p}.post_attention_layernorm.weight`, shape: [e] },
        { name: `${p}.post_attention_layernorm.bias`, shape: [e] },
      );
      lin(`${p}.attention.query_key_value`, 3 * e, e);
      lin(`${p}.attention.dense`, e, e);
      lin(`${p}.mlp.dense_h_to_4h`, i, e);
      lin(`${p}.mlp.dense_4h_to_h`, e, i);
    }
    ps.push({ name: 'gpt_neox.final_layer_norm.weight', shape: [e] }, { name: 'gpt_neox.final_layer_norm.bias', shape: [e] });
    if (!this.config.tieWordEmbeddings) ps.push({ name: 'embed_out.weight', shape: [v, e] });
    return ps;
  }

  canonicalKey(fileKey: string): string | undefined {
    if (/\.attention\.(bias|masked_bias)$/.test(fileKey) || fileKey.endsWith('rotary_emb.inv_freq')) return undefined;
    if (fileKey === 'embed_out.weight') return this.config.tieWordEmbeddings ? undefined : fileKey;
    return fileKey.startsWith('gpt_neox.') ? fileKey : `gpt_neox.${fileKey}`;
  }

  linearModules(): LinearModule[] {
    const e = this.config.hiddenSize;
    const i = this.intermediate;
    const mods: LinearModule[] = [];
    for (let l = 0; l < this.config.numLayers; l++) {
      const p = `gpt_neox.layers.${l}`;
      const add = (path: string, role: string, inF: number, outF: number): void => {
        mods.push({ path, role, weight: `${path}.weight`, layout: 'out_in', inFeatures: inF, outFeatures: outF });
      };
      add(`${p}.attention.query_key_value`, 'query_key_value', e, 3 * e);
      add(`${p}.attention.dense`, 'dense', e, e);
      add(`${p}.mlp.dense_h_to_4h`, 'dense_h_to_4h', e, i);
      add(`${p}.mlp.dense_4h_to_h`, 'dense_4h_to_h', i, e);
    }
    return mods;
  }

  /** RoPE has no table to run off: any length works. */
  checkSequenceLength(_n: number): void {}

  forward(p: ModelParams, inputs: ForwardInputs): ForwardOutputs {
    const g = inputs.inputIds.graph;
    const { numHeads: heads, headDim, numLayers } = this.config;
    const embed = p['gpt_neox.embed_in.weight'];
    const positions = inputs.positionIds ?? defaultPositions(inputs.inputIds, inputs.past);
    const rope = rotaryTables(positions, this.rope, embed.dtype as 'float32' | 'float64', 'half');
    const drop = modelDropout(inputs.dropout, this.config.raw, { embd: 'hidden_dropout', attn: 'attention_dropout', resid: 'hidden_dropout' });
    let h = drop.embd(op.gather(embed, inputs.inputIds));
    const present: KeyValue[] = [];
    let mask: Tensor | undefined;
    const scale = 1 / Math.sqrt(headDim);
    const [b, t] = inputs.inputIds.shape;
    for (let l = 0; l < numLayers; l++) {
      const w = (name: string): Tensor => p[`gpt_neox.layers.${l}.${name}`];
      const lin = (x: Tensor, name: string): Tensor => projection(p, `gpt_neox.layers.${l}.${name}`, x, 'out_in', this.bias);
      h = decoderLayer(p, inputs, h, present, (h) => {
        // GPTNeoXAttention: qkv [B, T, H, 3 * hd] -> [B, H, T, 3 * hd] -> q, k, v per head.
        const a = layerNorm(h, w('input_layernorm.weight'), w('input_layernorm.bias'), this.eps);
        const qkv = op.transpose(op.reshape(lin(a, 'attention.query_key_value'), [b, t, heads, 3 * headDim]), [0, 2, 1, 3]);
        const [q0, k0, v] = op.split(qkv, -1, [headDim, headDim, headDim]);
        const q = applyRotary(q0, rope);
        const kv = withPast({ key: applyRotary(k0, rope), value: v }, inputs.past?.[l]);
        mask ??= attentionMask(g, q, kv.key, inputs);
        const attnOut = drop.resid(lin(mergeHeads(scaledDotProductAttention(q, kv.key, kv.value, mask, scale, drop.probs)), 'attention.dense'));
        const mlp = (x: Tensor): Tensor => lin(this.act(lin(x, 'mlp.dense_h_to_4h')), 'mlp.dense_4h_to_h');
        const post = (x: Tensor): Tensor => layerNorm(x, w('post_attention_layernorm.weight'), w('post_attention_layernorm.bias'), this.eps);
        // parallel: x = x + attn(ln1(x)) + mlp(ln2(x)); else x = x + attn(ln1(x)); x = x + mlp(ln2(x))
        if (this.parallelResidual) return { hidden: op.add(op.add(drop.resid(mlp(post(h))), attnOut), h), kv };
        const mid = op.add(attnOut, h);
        return { hidden: op.add(drop.resid(mlp(post(mid))), mid), kv };
      });
    }
    const hidden = layerNorm(h, p['gpt_neox.final_layer_norm.weight'], p['gpt_neox.final_layer_norm.bias'], this.eps);
    return { hidden, present };
  }

  logits(p: ModelParams, hidden: Tensor): Tensor {
    return linearT(hidden, this.config.tieWordEmbeddings ? p['gpt_neox.embed_in.weight'] : p['embed_out.weight']);
  }
}
