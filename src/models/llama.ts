/**
 * Llama, Qwen2 and Mistral, as transformers' modeling_llama.py / modeling_qwen2.py /
 * modeling_mistral.py (…ForCausalLM): RMSNorm, RoPE (rotate_half over the full head_dim, with
 * rope_theta and rope_scaling), grouped-query attention, SwiGLU MLP, optional tied lm_head.
 * Qwen3 and SmolLM3 (qwen3.ts, smollm3.ts) are this decoder with a different `DecoderLayout`,
 * as their transformers modular files derive them from Llama/Qwen2.
 *
 * The three differ only in biases and windowing:
 * - llama: `attention_bias` puts biases on q/k/v/o, `mlp_bias` on gate/up/down (both default false);
 * - qwen2: q/k/v always have biases, o_proj and the MLP never; with `use_sliding_window`, layers
 *   from `max_window_layers` on (or those `layer_types` marks) attend through `sliding_window`;
 * - mistral: no biases; every layer attends through `sliding_window` when it is set.
 */
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { linearT, rmsNorm } from '../engine/nn.js';
import { activation } from './activations.js';
import { mergeHeads, scaledDotProductAttention, splitHeads, withPast } from './attention.js';
import { llamaStyleLinearModules, modelPrefixedKey, WindowMasks } from './decoder-layout.js';
import { projection, type ModelParams } from './linear.js';
import { decoderLayer } from './layer-checkpoint.js';
import { num, optNum, readCommonConfig } from './config.js';
import { layerTypes, layerWindows, slidingWindowOf } from './layer-types.js';
import { defaultPositions } from './positions.js';
import { modelDropout } from './dropout.js';
import { applyRotary, ropeFrequencies, ropeSettings, rotaryTables, type RopeFrequencies } from './rotary.js';
import type { CausalLM, CausalLMConfig, ForwardInputs, ForwardOutputs, KeyValue, LinearModule, ParamInfo } from './types.js';

type Raw = Readonly<Record<string, unknown>>;

/** What distinguishes the members of the Llama decoder family. */
export interface DecoderLayout {
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  /** Qwen3: an RMSNorm over head_dim on every query and key head (q_norm / k_norm), before RoPE. */
  qkNorm: boolean;
  /** Per layer, its sliding window (undefined: full causal attention). */
  windows: (number | undefined)[];
  /** Per layer, whether it applies RoPE (SmolLM3's NoPE layers do not). */
  rope: boolean[];
  /** tie_word_embeddings when config.json omits it (the family's config class default). */
  tieByDefault: boolean;
  /** rope_theta when config.json omits it. */
  defaultRopeTheta: number;
}

/** The layout of llama / qwen2 / mistral from their config.json. */
function llamaLayout(raw: Raw, family: string, numLayers: number): DecoderLayout {
  const attentionBias = raw.attention_bias === true;
  const window = slidingWindowOf(family, raw);
  let windows: (number | undefined)[] = Array.from({ length: numLayers }, () => undefined);
  if (family === 'mistral') windows = windows.map(() => window);
  if (family === 'qwen2') windows = qwenWindows(family, raw, numLayers);
  return {
    qkvBias: family === 'qwen2' || (family === 'llama' && attentionBias),
    oBias: family === 'llama' && attentionBias,
    mlpBias: family === 'llama' && raw.mlp_bias === true,
    qkNorm: false,
    windows,
    rope: windows.map(() => true),
    tieByDefault: false,
    defaultRopeTheta: 10000,
  };
}

/**
 * Qwen2/Qwen3Config: sliding_window counts only with use_sliding_window; layer_types defaults to
 * "sliding_attention" for layers from max_window_layers on.
 */
export function qwenWindows(family: string, raw: Raw, numLayers: number): (number | undefined)[] {
  const window = raw.use_sliding_window === true ? slidingWindowOf(family, raw) : undefined;
  const maxWindowLayers = optNum(raw, 'max_window_layers') ?? 28;
  const types = layerTypes(family, raw, numLayers, (l) => (window !== undefined && l >= maxWindowLayers ? 'sliding_attention' : 'full_attention'));
  return layerWindows(types, window);
}

export type LlamaFamily = 'llama' | 'qwen2' | 'mistral';

export class Llama implements CausalLM {
  readonly modelType: string;
  readonly config: CausalLMConfig;
  protected readonly layout: DecoderLayout;
  private readonly intermediate: number;
  private readonly eps: number;
  private readonly act: (x: Tensor) => Tensor;
  private readonly rope: RopeFrequencies;

  constructor(raw: Raw, family: string = 'llama', layout?: (raw: Raw, numLayers: number) => DecoderLayout) {
    this.modelType = family;
    const common = readCommonConfig(raw, {
      vocabSize: 'vocab_size',
      hiddenSize: 'hidden_size',
      numLayers: 'num_hidden_layers',
      numHeads: 'num_attention_heads',
      numKeyValueHeads: 'num_key_value_heads',
      maxPositions: 'max_position_embeddings',
    });
    this.layout = layout ? layout(raw, common.numLayers) : llamaLayout(raw, family, common.numLayers);
    const tie = raw.tie_word_embeddings == null ? this.layout.tieByDefault : raw.tie_word_embeddings === true;
    this.config = { ...common, tieWordEmbeddings: tie };
    this.intermediate = num(raw, 'intermediate_size');
    this.eps = optNum(raw, 'rms_norm_eps') ?? 1e-6;
    this.act = activation(family, typeof raw.hidden_act === 'string' ? raw.hidden_act : 'silu');
    const rope = ropeSettings(family, raw);
    this.rope = ropeFrequencies(family, this.config.headDim, rope.theta ?? this.layout.defaultRopeTheta, rope.scaling, {
      maxPositions: common.maxPositions,
    });
  }

  parameters(): ParamInfo[] {
    const { vocabSize: v, hiddenSize: e, numLayers, headDim } = this.config;
    const ps: ParamInfo[] = [{ name: 'model.embed_tokens.weight', shape: [v, e] }];
    const { qkvBias, oBias, mlpBias } = this.layout;
    const byPath = new Map(this.linearModules().map((m) => [m.path, m]));
    const lin = (path: string, bias: boolean): void => {
      const m = byPath.get(path) as LinearModule;
      ps.push({ name: m.weight, shape: [m.outFeatures, m.inFeatures] });
      if (bias) ps.push({ name: `${path}.bias`, shape: [m.outFeatures] });
    };
    for (let l = 0; l < numLayers; l++) {
      const p = `model.layers.${l}`;
      for (const name of ['q_proj', 'k_proj', 'v_proj']) lin(`${p}.self_attn.${name}`, qkvBias);
      lin(`${p}.self_attn.o_proj`, oBias);
      if (this.layout.qkNorm) ps.push({ name: `${p}.self_attn.q_norm.weight`, shape: [headDim] }, { name: `${p}.self_attn.k_norm.weight`, shape: [headDim] });
      for (const name of ['gate_proj', 'up_proj', 'down_proj']) lin(`${p}.mlp.${name}`, mlpBias);
      ps.push({ name: `${p}.input_layernorm.weight`, shape: [e] }, { name: `${p}.post_attention_layernorm.weight`, shape: [e] });
    }
    ps.push({ name: 'model.norm.weight', shape: [e] });
    if (!this.config.tieWordEmbeddings) ps.push({ name: 'lm_head.weight', shape: [v, e] });
    return ps;
  }

  canonicalKey(fileKey: string): string | undefined {
    return modelPrefixedKey(fileKey, this.config.tieWordEmbeddings);
  }

  linearModules(): LinearModule[] {
    return llamaStyleLinearModules(this.config, this.intermediate);
  }

  /** RoPE has no length limit and sliding windows are masked exactly: any length is fine. */
  checkSequenceLength(_n: number): void {}

  forward(p: ModelParams, inputs: ForwardInputs): ForwardOutputs {
    const g = inputs.inputIds.graph;
    const { numHeads, numKeyValueHeads, headDim, numLayers } = this.config;
    const { qkvBias, oBias, mlpBias, qkNorm, windows } = this.layout;
    const embed = p['model.embed_tokens.weight'];
    // LlamaRotaryEmbedding: cos/sin once per forward, shared by every layer.
    const positions = inputs.positionIds ?? defaultPositions(inputs.inputIds, inputs.past);
    const rope = rotaryTables(positions, this.rope, embed.dtype as 'float32' | 'float64', 'half');
    const drop = modelDropout(inputs.dropout, this.config.raw, { attn: 'attention_dropout' });
    let h = op.gather(embed, inputs.inputIds);
    const present: KeyValue[] = [];
    const masks = new WindowMasks(g, inputs);
    const scale = 1 / Math.sqrt(headDim);
    for (let l = 0; l < numLayers; l++) {
      const w = (name: string): Tensor => p[`model.layers.${l}.${name}`];
      const proj = (x: Tensor, name: string, bias: boolean): Tensor => projection(p, `model.layers.${l}.${name}`, x, 'out_in', bias);
      const positional = (x: Tensor): Tensor => (this.layout.rope[l] ? applyRotary(x, rope) : x);
      h = decoderLayer(p, inputs, h, present, (h) => {
        // LlamaAttention (Qwen3Attention: q_norm / k_norm per head before RoPE)
        const a = rmsNorm(h, w('input_layernorm.weight'), this.eps);
        let q = splitHeads(proj(a, 'self_attn.q_proj', qkvBias), numHeads, headDim);
        let k = splitHeads(proj(a, 'self_attn.k_proj', qkvBias), numKeyValueHeads, headDim);
        if (qkNorm) {
          q = rmsNorm(q, w('self_attn.q_norm.weight'), this.eps);
          k = rmsNorm(k, w('self_attn.k_norm.weight'), this.eps);
        }
        const v = splitHeads(proj(a, 'self_attn.v_proj', qkvBias), numKeyValueHeads, headDim);
        const kv = withPast({ key: positional(k), value: v }, inputs.past?.[l]);
        const query = positional(q);
        const mask = masks.get(query, kv.key, windows[l]);
        const attn = mergeHeads(scaledDotProductAttention(query, kv.key, kv.value, mask, scale, drop.probs));
        h = op.add(h, proj(attn, 'self_attn.o_proj', oBias));
        // LlamaMLP: down(act(gate(x)) * up(x))
        const b = rmsNorm(h, w('post_attention_layernorm.weight'), this.eps);
        const gated = op.mul(this.act(proj(b, 'mlp.gate_proj', mlpBias)), proj(b, 'mlp.up_proj', mlpBias));
        return { hidden: op.add(h, proj(gated, 'mlp.down_proj', mlpBias)), kv };
      });
    }
    return { hidden: rmsNorm(h, p['model.norm.weight'], this.eps), present };
  }

  logits(p: ModelParams, hidden: Tensor): Tensor {
    return linearT(hidden, this.config.tieWordEmbeddings ? p['model.embed_tokens.weight'] : p['lm_head.weight']);
  }
}
