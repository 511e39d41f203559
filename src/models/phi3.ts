/**
 * Phi-3 / Phi-3.5 / Phi-4-mini, as transformers' modeling_phi3.py (Phi3ForCausalLM): the Llama
 * decoder with fused projections and LongRoPE.
 *
 * - `self_attn.qkv_proj` [(H + 2·KV)·D, E]: q, k, v are its consecutive row blocks;
 * - `mlp.gate_up_proj` [2·I, E]: gate is the first half of its output, up the second;
 *   mlp(x) = down(up · act(gate));
 * - RoPE rotate_half on the first head_dim · partial_rotary_factor dims; `rope_scaling` "longrope"
 *   (legacy "su"/"yarn" type names mean longrope for Phi-3, as Phi3Config renames them) picks
 *   short or long factors by max(position_ids) + 1 against the top-level
 *   `original_max_position_embeddings`;
 * - `sliding_window` on every layer when set (Phi-3-mini-4k: 2047);
 * - no biases; lm_head untied by default.
 */
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import { linearT, rmsNorm } from '../engine/nn.js';
import { activation } from './activations.js';
import { attentionMask, mergeHeads, scaledDotProductAttention, splitHeads, withPast } from './attention.js';
import { num, optNum, readCommonConfig } from './config.js';
import { modelDropout } from './dropout.js';
import { slidingWindowOf } from './layer-types.js';
import { modelPrefixedKey } from './decoder-layout.js';
import { projection, type ModelParams } from './linear.js';
import { decoderLayer } from './layer-checkpoint.js';
import { defaultPositions } from './positions.js';
import { applyRotary, ropeFrequencies, ropeSettings, rotaryTables, type RopeFrequencies } from './rotary.js';
import type { CausalLM, CausalLMConfig, ForwardInputs, ForwardOutputs, KeyValue, LinearModule, ParamInfo } from './types.js';

type Raw = Readonly<Record<string, unknown>>;

/** Phi3Config._rope_scaling_adjustment: the legacy type names "su" and "yarn" are longrope. */
function phi3RopeScaling(scaling: unknown): unknown {
  if (scaling == null || typeof scaling !== 'object' || Array.isArray(scaling)) return scaling;
  const s = scaling as Raw;
  return s.rope_type == null && (s.type === 'su' || s.type === 'yarn') ? { ...s, type: 'longrope' } : scaling;
}

export class Phi3 implements CausalLM {
  readonly modelType = 'phi3';
  readonly config: CausalLMConfig;
  private readonly intermediate: number;
  private readonly eps: number;
  private readonly act: (x: Tensor) => Tensor;
  private readonly rope: RopeFrequencies;
  private readonly window: number | undefined;

  constructor(raw: Raw) {
    const common = readCommonConfig(raw, {
      vocabSize: 'vocab_size',
      hiddenSize: 'hidden_size',
      numLayers: 'num_hidden_layers',
      numHeads: 'num_attention_heads',
      numKeyValueHeads: 'num_key_value_heads',
      maxPositions: 'max_position_embeddings',
    });
    // Phi3Config defaults tie_word_embeddings to false.
    this.config = { ...common, tieWordEmbeddings: raw.tie_word_embeddings === true };
    this.intermediate = num(raw, 'intermediate_size');
    this.eps = optNum(raw, 'rms_norm_eps') ?? 1e-5;
    this.act = activation('phi3', typeof raw.hidden_act === 'string' ? raw.hidden_act : 'silu');
    const settings = ropeSettings('phi3', raw);
    const rotaryDim = Math.floor(common.headDim * (settings.partialRotaryFactor ?? 1));
    this.rope = ropeFrequencies('phi3', rotaryDim, settings.theta ?? 10000, phi3RopeScaling(settings.scaling), {
      maxPositions: common.maxPositions,
      originalMaxPositions: optNum(raw, 'original_max_position_embeddings'),
    });
    this.window = slidingWindowOf('phi3', raw);
  }

  parameters(): ParamInfo[] {
    const { vocabSize: v, hiddenSize: e, numLayers } = this.config;
    const ps: ParamInfo[] = [{ name: 'model.embed_tokens.weight', shape: [v, e] }];
    const mods = this.linearModules();
    for (let l = 0; l < numLayers; l++) {
      const p = `model.layers.${l}`;
      for (const m of mods.filter((x) => x.path.startsWith(`${p}.`))) ps.push({ name: m.weight, shape: [m.outFeatures, m.inFeatures] });
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
    const { hiddenSize: e, numHeads, numKeyValueHeads, headDim } = this.config;
    const i = this.intermediate;
    const mods: LinearModule[] = [];
    for (let l = 0; l < this.config.numLayers; l++) {
      const add = (path: string, role: string, inF: number, outF: number): void => {
        mods.push({ path, role, weight: `${path}.weight`, layout: 'out_in', inFeatures: inF, outFeatures: outF });
      };
      const p = `model.layers.${l}`;
      add(`${p}.self_attn.qkv_proj`, 'qkv_proj', e, (numHeads + 2 * numKeyValueHeads) * headDim);
      add(`${p}.self_attn.o_proj`, 'o_proj', numHeads * headDim, e);
      add(`${p}.mlp.gate_up_proj`, 'gate_up_proj', e, 2 * i);
      add(`${p}.mlp.down_proj`, 'down_proj', i, e);
    }
    return mods;
  }

  /** RoPE has no length limit and the sliding window is masked exactly: any length is fine. */
  checkSequenceLength(_n: number): void {}

  forward(p: ModelParams, inputs: ForwardInputs): ForwardOutputs {
    const g = inputs.inputIds.graph;
    const { numHeads, numKeyValueHeads, headDim, numLayers } = this.config;
    const embed = p['model.embed_tokens.weight'];
    const positions = inputs.positionIds ?? defaultPositions(inputs.inputIds, inputs.past);
    const rope = rotaryTables(positions, this.rope, embed.dtype as 'float32' | 'float64', 'half');
    const drop = modelDropout(inputs.dropout, this.config.raw, { embd: 'embd_pdrop', attn: 'attention_dropout', resid: 'resid_pdrop' });
    let h = drop.embd(op.gather(embed, inputs.inputIds));
    const present: KeyValue[] = [];
    let mask: Tensor | undefined;
    const q = numHeads * headDim;
    const kvWidth = numKeyValueHeads * headDim;
    for (let l = 0; l < numLayers; l++) {
      const w = (name: string): Tensor => p[`model.layers.${l}.${name}`];
      const proj = (x: Tensor, name: string): Tensor => projection(p, `model.layers.${l}.${name}`, x, 'out_in', false);
      h = decoderLayer(p, inputs, h, present, (h) => {
        // Phi3Attention: one fused projection, split into q | k | v row blocks
        const a = rmsNorm(h, w('input_layernorm.weight'), this.eps);
        const [qx, kx, vx] = op.split(proj(a, 'self_attn.qkv_proj'), -1, [q, kvWidth, kvWidth]);
        const kv = withPast(
          { key: applyRotary(splitHeads(kx, numKeyValueHeads, headDim), rope), value: splitHeads(vx, numKeyValueHeads, headDim) },
          inputs.past?.[l],
        );
        const query = applyRotary(splitHeads(qx, numHeads, headDim), rope);
        mask ??= attentionMask(g, query, kv.key, inputs, this.window);
        const attn = mergeHeads(scaledDotProductAttention(query, kv.key, kv.value, mask, 1 / Math.sqrt(headDim), drop.probs));
        h = op.add(h, drop.resid(proj(attn, 'self_attn.o_proj')));
        // Phi3MLP: gate, up = gate_up_proj(x).chunk(2); down(up * act(gate))
        const b = rmsNorm(h, w('post_attention_layernorm.weight'), this.eps);
        const [gate, up] = op.split(proj(b, 'mlp.gate_up_proj'), -1, [this.intermediate, this.intermediate]);
        return { hidden: op.add(h, drop.resid(proj(op.mul(up, this.act(gate)), 'mlp.down_proj'))), kv };
      });
    }
    return { hidden: rmsNorm(h, p['model.norm.weight'], this.eps), present };
  }

  logits(p: ModelParams, hidden: Tensor): Tensor {
    return linearT(hidden, this.config.tieWordEmbeddings ? p['model.embed_tokens.weight'] : p['lm_head.weight']);
  }
}
