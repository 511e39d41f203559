/**
 * Llama, Qwen2 and Mistral, as transformers' modeling_llama.py / modeling_qwen2.py /
 * modeling_mistral.py (…ForCausalLM): RMSNorm, RoPE (rotate_half over the full head_dim, with
 * rope_theta and rope_scaling), grouped-query attention, SwiGLU MLP, optional tied lm_head.
 *
 * The three differ only in biases and windowing:
 * - llama: `attention_bias` puts biases on q/k/v/o, `mlp_bias` on gate/up/down (both default false);
 * - qwen2: q/k/v always have biases, o_proj and the MLP never;
 * - mistral: no biases; `sliding_window` is not implemented, so longer sequences are refused.
 */
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { linearT, rmsNorm } from '../engine/nn.js';
import { DpoError } from '../errors.js';
import { activation } from './activations.js';
import { projection, type ModelParams } from './linear.js';
import { attentionMask, mergeHeads, scaledDotProductAttention, splitHeads, withPast } from './attention.js';
import { num, optNum, readCommonConfig } from './config.js';
import { defaultPositions } from './positions.js';
import { modelDropout } from './dropout.js';
import { applyRotary, ropeInverseFrequencies, rotaryTables } from './rotary.js';
import type { CausalLM, CausalLMConfig, ForwardInputs, ForwardOutputs, KeyValue, LinearModule, ParamInfo } from './types.js';

export type LlamaFamily = 'llama' | 'qwen2' | 'mistral';

export class Llama implements CausalLM {
  readonly modelType: LlamaFamily;
  readonly config: CausalLMConfig;
  private readonly intermediate: number;
  private readonly eps: number;
  private readonly act: (x: Tensor) => Tensor;
  private readonly invFreq: number[];
  private readonly qkvBias: boolean;
  private readonly oBias: boolean;
  private readonly mlpBias: boolean;
  /** Longest sequence attention handles exactly (sliding window not implemented). */
  private readonly slidingWindow: number | undefined;

  constructor(raw: Readonly<Record<string, unknown>>, family: LlamaFamily = 'llama') {
    this.modelType = family;
    const common = readCommonConfig(raw, {
      vocabSize: 'vocab_size',
      hiddenSize: 'hidden_size',
      numLayers: 'num_hidden_layers',
      numHeads: 'num_attention_heads',
      numKeyValueHeads: 'num_key_value_heads',
      maxPositions: 'max_position_embeddings',
    });
    // LlamaConfig / Qwen2Config / MistralConfig default tie_word_embeddings to false.
    this.config = { ...common, tieWordEmbeddings: raw.tie_word_embeddings === true };
    this.intermediate = num(raw, 'intermediate_size');
    this.eps = optNum(raw, 'rms_norm_eps') ?? 1e-6;
    this.act = activation(family, typeof raw.hidden_act === 'string' ? raw.hidden_act : 'silu');
    this.invFreq = ropeInverseFrequencies(family, this.config.headDim, optNum(raw, 'rope_theta') ?? 10000, raw.rope_scaling);
    const attentionBias = raw.attention_bias === true;
    this.qkvBias = family === 'qwen2' || (family === 'llama' && attentionBias);
    this.oBias = family === 'llama' && attentionBias;
    this.mlpBias = family === 'llama' && raw.mlp_bias === true;
    const window = optNum(raw, 'sliding_window');
    if (family === 'mistral') this.slidingWindow = window;
    else if (family === 'qwen2' && raw.use_sliding_window === true) this.slidingWindow = window;
  }

  parameters(): ParamInfo[] {
    const { vocabSize: v, hiddenSize: e, numLayers, numHeads, numKeyValueHeads, headDim } = this.config;
    const i = this.intermediate;
    const q = numHeads * headDim;
    const kv = numKeyValueHeads * headDim;
    const ps: ParamInfo[] = [{ name: 'model.embed_tokens.weight', shape: [v, e] }];
    const lin = (name: string, out: number, inF: number, bias: boolean): void => {
      ps.push({ name: `${name}.weight`, shape: [out, inF] });
      if (bias) ps.push({ name: `${name}.bias`, shape: [out] });
    };
    for (let l = 0; l < numLayers; l++) {
      const p = `model.layers.${l}`;
      lin(`${p}.self_attn.q_proj`, q, e, this.qkvBias);
      lin(`${p}.self_attn.k_proj`, kv, e, this.qkvBias);
      lin(`${p}.self_attn.v_proj`, kv, e, this.qkvBias);
      lin(`${p}.self_attn.o_proj`, e, q, this.oBias);
      lin(`${p}.mlp.gate_proj`, i, e, this.mlpBias);
      lin(`${p}.mlp.up_proj`, i, e, this.mlpBias);
      lin(`${p}.mlp.down_proj`, e, i, this.mlpBias);
      ps.push({ name: `${p}.input_layernorm.weight`, shape: [e] }, { name: `${p}.post_attention_layernorm.weight`, shape: [e] });
    }
    ps.push({ name: 'model.norm.weight', shape: [e] });
    if (!this.config.tieWordEmbeddings) ps.push({ name: 'lm_head.weight', shape: [v, e] });
    return ps;
  }

  canonicalKey(fileKey: string): string | undefined {
    if (fileKey.endsWith('.rotary_emb.inv_freq')) return undefined; // buffer
    if (fileKey === 'lm_head.weight') return this.config.tieWordEmbeddings ? undefined : fileKey;
    return fileKey.startsWith('model.') ? fileKey : `model.${fileKey}`;
  }

  linearModules(): LinearModule[] {
    const { hiddenSize: e, numHeads, numKeyValueHeads, headDim } = this.config;
    const i = this.intermediate;
    const mods: LinearModule[] = [];
    for (let l = 0; l < this.config.numLayers; l++) {
      const add = (path: string, role: string, inF: number, outF: number): void => {
        mods.push({ path, role, weight: `${path}.weight`, layout: 'out_in', inFeatures: inF, outFeatures: outF });
      };
      const p = `model.layers.${l}`;
      add(`${p}.self_attn.q_proj`, 'q_proj', e, numHeads * headDim);
      add(`${p}.self_attn.k_proj`, 'k_proj', e, numKeyValueHeads * headDim);
      add(`${p}.self_attn.v_proj`, 'v_proj', e, numKeyValueHeads * headDim);
      add(`${p}.self_attn.o_proj`, 'o_proj', numHeads * headDim, e);
      add(`${p}.mlp.gate_proj`, 'gate_proj', e, i);
      add(`${p}.mlp.up_proj`, 'up_proj', e, i);
      add(`${p}.mlp.down_proj`, 'down_proj', i, e);
    }
    return mods;
  }

  checkSequenceLength(n: number): void {
    if (this.slidingWindow !== undefined && n > this.slidingWindow) {
      throw new DpoError(
        `${this.modelType}: sequence of ${n} tokens exceeds sliding_window ${this.slidingWindow}; sliding-window attention is not implemented`,
      );
    }
  }

  forward(p: ModelParams, inputs: ForwardInputs): ForwardOutputs {
    const g = inputs.inputIds.graph;
    const { numHeads, numKeyValueHeads, headDim, numLayers } = this.config;
    const embed = p['model.embed_tokens.weight'];
    // LlamaRotaryEmbedding: cos/sin once per forward, shared by every layer.
    const positions = inputs.positionIds ?? defaultPositions(inputs.inputIds, inputs.past);
    const rope = rotaryTables(positions, this.invFreq, embed.dtype as 'float32' | 'float64', 'half');
    const drop = modelDropout(inputs.dropout, this.config.raw, { attn: 'attention_dropout' });
    let h = op.gather(embed, inputs.inputIds);
    const present: KeyValue[] = [];
    let mask: Tensor | undefined;
    const scale = 1 / Math.sqrt(headDim);
    for (let l = 0; l < numLayers; l++) {
      const w = (name: string): Tensor => p[`model.layers.${l}.${name}`];
      const proj = (x: Tensor, name: string, bias: boolean): Tensor => projection(p, `model.layers.${l}.${name}`, x, 'out_in', bias);
      // LlamaAttention
      const a = rmsNorm(h, w('input_layernorm.weight'), this.eps);
      const q = applyRotary(splitHeads(proj(a, 'self_attn.q_proj', this.qkvBias), numHeads, headDim), rope);
      const k = applyRotary(splitHeads(proj(a, 'self_attn.k_proj', this.qkvBias), numKeyValueHeads, headDim), rope);
      const v = splitHeads(proj(a, 'self_attn.v_proj', this.qkvBias), numKeyValueHeads, headDim);
      const kv = withPast({ key: k, value: v }, inputs.past?.[l]);
      present.push(kv);
      mask ??= attentionMask(g, q, kv.key, inputs.attentionMask);
      const attn = mergeHeads(scaledDotProductAttention(q, kv.key, kv.value, mask, scale, drop.probs));
      h = op.add(h, proj(attn, 'self_attn.o_proj', this.oBias));
      // LlamaMLP: down(act(gate(x)) * up(x))
      const b = rmsNorm(h, w('post_attention_layernorm.weight'), this.eps);
      const gated = op.mul(this.act(proj(b, 'mlp.gate_proj', this.mlpBias)), proj(b, 'mlp.up_proj', this.mlpBias));
      h = op.add(h, proj(gated, 'mlp.down_proj', this.mlpBias));
    }
    return { hidden: rmsNorm(h, p['model.norm.weight'], this.eps), present };
  }

  logits(p: ModelParams, hidden: Tensor): Tensor {
    return linearT(hidden, this.config.tieWordEmbeddings ? p['model.embed_tokens.weight'] : p['lm_head.weight']);
  }
}
