/**
 * Gemma 2, as transformers' modeling_gemma2.py (Gemma2ForCausalLM); Gemma 3 text
 * (gemma3.ts) is this decoder with q/k norms and a second RoPE base.
 *
 * - embeddings scaled by sqrt(hidden_size) (in the weights' dtype, as transformers);
 * - Gemma RMSNorm: x / sqrt(mean(x²) + eps) · (1 + w), around attention *and* MLP:
 *   h = h + post_attention_layernorm(attn(input_layernorm(h)));
 *   h = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)));
 * - GeGLU MLP: down(act(gate(x)) · up(x)) with `hidden_activation` (gelu_pytorch_tanh);
 * - attention scale query_pre_attn_scalar^-0.5 (not head_dim^-0.5), scores soft-capped by
 *   tanh(s / attn_logit_softcapping) · attn_logit_softcapping;
 * - every other layer (0, 2, 4, ...; or as `layer_types` says) attends through `sliding_window`;
 * - logits soft-capped by final_logit_softcapping; lm_head tied to embed_tokens by default.
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
import { modelDropout } from './dropout.js';
import { layerTypes, layerWindows, slidingWindowOf } from './layer-types.js';
import { defaultPositions } from './positions.js';
import { applyRotary, ropeFrequencies, ropeSettings, rotaryTables, type RopeFrequencies, type RotaryTables } from './rotary.js';
import type { CausalLM, CausalLMConfig, ForwardInputs, ForwardOutputs, KeyValue, LinearModule, ParamInfo } from './types.js';

type Raw = Readonly<Record<string, unknown>>;

/** What distinguishes Gemma 2 from Gemma 3 text. */
export interface GemmaLayout {
  /** Gemma 3: Gemma RMSNorm over head_dim on every query and key head, before RoPE. */
  qkNorm: boolean;
  /** Per layer, its sliding window (undefined: full causal attention). */
  windows: (number | undefined)[];
  /** Per layer, an index into `ropes`. */
  ropeOfLayer: number[];
  ropes: RopeFrequencies[];
  attnSoftcap: number | undefined;
  finalSoftcap: number | undefined;
}

/** A soft-capping value: the key's number, null/absent meaning none (or `fallback` when absent). */
export function softcapOf(raw: Raw, key: string, fallback: number | undefined): number | undefined {
  if (!(key in raw)) return fallback;
  return optNum(raw, key);
}

function gemma2Layout(raw: Raw, common: CausalLMConfig): GemmaLayout {
  const window = slidingWindowOf('gemma2', raw) ?? 4096;
  const types = layerTypes('gemma2', raw, common.numLayers, (l) => ((l + 1) % 2 !== 0 ? 'sliding_attention' : 'full_attention'));
  const settings = ropeSettings('gemma2', raw);
  const rope = ropeFrequencies('gemma2', common.headDim, settings.theta ?? 10000, settings.scaling, { maxPositions: common.maxPositions });
  return {
    qkNorm: false,
    windows: layerWindows(types, window),
    ropeOfLayer: types.map(() => 0),
    ropes: [rope],
    attnSoftcap: softcapOf(raw, 'attn_logit_softcapping', 50),
    finalSoftcap: softcapOf(raw, 'final_logit_softcapping', 30),
  };
}

export class Gemma2 implements CausalLM {
  readonly modelType: string;
  readonly config: CausalLMConfig;
  private readonly layout: GemmaLayout;
  private readonly intermediate: number;
  private readonly eps: number;
  private readonly act: (x: Tensor) => Tensor;
  private readonly attentionBias: boolean;
  private readonly scale: number;

  constructor(raw: Raw, family = 'gemma2', layout: (raw: Raw, common: CausalLMConfig) => GemmaLayout = gemma2Layout) {
    this.modelType = family;
    // Gemma2Config / Gemma3TextConfig default head_dim to 256 (not hidden_size / heads).
    const withHeadDim = raw.head_dim == null ? { ...raw, head_dim: 256 } : raw;
    const common = readCommonConfig(withHeadDim, {
      vocabSize: 'vocab_size',
      hiddenSize: 'hidden_size',
      numLayers: 'num_hidden_layers',
      numHeads: 'num_attention_heads',
      numKeyValueHeads: 'num_key_value_heads',
      maxPositions: 'max_position_embeddings',
    });
    this.config = { ...common, raw };
    this.layout = layout(raw, common);
    this.intermediate = num(raw, 'intermediate_size');
    this.eps = optNum(raw, 'rms_norm_eps') ?? 1e-6;
    const act = typeof raw.hidden_activation === 'string' ? raw.hidden_activation : typeof raw.hidden_act === 'string' ? raw.hidden_act : 'gelu_pytorch_tanh';
    this.act = activation(family, act);
    this.attentionBias = raw.attention_bias === true;
    this.scale = 1 / Math.sqrt(optNum(raw, 'query_pre_attn_scalar') ?? 256);
  }

  parameters(): ParamInfo[] {
    const { vocabSize: v, hiddenSize: e, numLayers, headDim } = this.config;
    const ps: ParamInfo[] = [{ name: 'model.embed_tokens.weight', shape: [v, e] }];
    const mods = this.linearModules();
    for (let l = 0; l < numLayers; l++) {
      const p = `model.layers.${l}`;
      for (const m of mods.filter((x) => x.path.startsWith(`${p}.`))) {
        ps.push({ name: m.weight, shape: [m.outFeatures, m.inFeatures] });
        if (this.attentionBias && m.path.includes('.self_attn.')) ps.push({ name: `${m.path}.bias`, shape: [m.outFeatures] });
      }
      if (this.layout.qkNorm) ps.push({ name: `${p}.self_attn.q_norm.weight`, shape: [headDim] }, { name: `${p}.self_attn.k_norm.weight`, shape: [headDim] });
      for (const n of ['input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm']) {
        ps.push({ name: `${p}.${n}.weight`, shape: [e] });
      }
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
    const { numHeads, numKeyValueHeads, headDim, numLayers, hiddenSize } = this.config;
    const { qkNorm, windows, ropeOfLayer, attnSoftcap } = this.layout;
    const embed = p['model.embed_tokens.weight'];
    const dtype = embed.dtype as 'float32' | 'float64';
    const positions = inputs.positionIds ?? defaultPositions(inputs.inputIds, inputs.past);
    const tables: RotaryTables[] = this.layout.ropes.map((r) => rotaryTables(positions, r, dtype, 'half'));
    const drop = modelDropout(inputs.dropout, this.config.raw, { attn: 'attention_dropout' });
    // GemmaModel: the normalizer sqrt(hidden_size) is cast to the embeddings' dtype.
    let h = op.mul(op.gather(embed, inputs.inputIds), dtype === 'float32' ? Math.fround(Math.sqrt(hiddenSize)) : Math.sqrt(hiddenSize));
    const present: KeyValue[] = [];
    const masks = new WindowMasks(g, inputs);
    const norm = (x: Tensor, weight: Tensor): Tensor => gemmaRmsNorm(x, weight, this.eps);
    for (let l = 0; l < numLayers; l++) {
      const w = (name: string): Tensor => p[`model.layers.${l}.${name}`];
      const proj = (x: Tensor, name: string, bias: boolean): Tensor => projection(p, `model.layers.${l}.${name}`, x, 'out_in', bias);
      const rope = tables[ropeOfLayer[l]];
      h = decoderLayer(p, inputs, h, present, (h) => {
        // Gemma2Attention / Gemma3Attention
        const a = norm(h, w('input_layernorm.weight'));
        let q = splitHeads(proj(a, 'self_attn.q_proj', this.attentionBias), numHeads, headDim);
        let k = splitHeads(proj(a, 'self_attn.k_proj', this.attentionBias), numKeyValueHeads, headDim);
        if (qkNorm) {
          q = norm(q, w('self_attn.q_norm.weight'));
          k = norm(k, w('self_attn.k_norm.weight'));
        }
        const v = splitHeads(proj(a, 'self_attn.v_proj', this.attentionBias), numKeyValueHeads, headDim);
        const kv = withPast({ key: applyRotary(k, rope), value: v }, inputs.past?.[l]);
        const query = applyRotary(q, rope);
        const mask = masks.get(query, kv.key, windows[l]);
        const attn = mergeHeads(scaledDotProductAttention(query, kv.key, kv.value, mask, this.scale, drop.probs, attnSoftcap));
        h = op.add(h, norm(proj(attn, 'self_attn.o_proj', this.attentionBias), w('post_attention_layernorm.weight')));
        // Gemma2MLP between pre/post feed-forward norms
        const b = norm(h, w('pre_feedforward_layernorm.weight'));
        const gated = op.mul(this.act(proj(b, 'mlp.gate_proj', false)), proj(b, 'mlp.up_proj', false));
        return { hidden: op.add(h, norm(proj(gated, 'mlp.down_proj', false), w('post_feedforward_layernorm.weight'))), kv };
      });
    }
    return { hidden: norm(h, p['model.norm.weight']), present };
  }

  logits(p: ModelParams, hidden: Tensor): Tensor {
    const logits = linearT(hidden, this.config.tieWordEmbeddings ? p['model.embed_tokens.weight'] : p['lm_head.weight']);
    const cap = this.layout.finalSoftcap;
    return cap === undefined ? logits : op.mul(op.tanh(op.mul(logits, 1 / cap)), cap);
  }
}

/** Gemma's RMSNorm: x / sqrt(mean(x²) + eps) · (1 + w) (its weights are stored centred on 0). */
export function gemmaRmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  return op.mul(rmsNorm(x, undefined, eps), op.add(weight, 1));
}
