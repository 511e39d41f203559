/**
 * Gemma 3 text, as transformers' modeling_gemma3.py (Gemma3ForCausalLM, model_type
 * "gemma3_text"): the Gemma 2 decoder (gemma2.ts) plus
 * - q_norm / k_norm: Gemma RMSNorm over head_dim on each query and key head, before RoPE;
 * - five sliding-window layers per global one: layer l slides unless (l + 1) is a multiple of
 *   `sliding_window_pattern` (6), or as `layer_types` says;
 * - two RoPEs: sliding layers use base `rope_local_base_freq` (10000) without scaling, global
 *   layers `rope_theta` (1e6) with `rope_scaling`;
 * - no attention-logit soft-capping (Gemma3Attention ignores attn_logit_softcapping);
 *   final_logit_softcapping when config.json sets it.
 */
import { DpoError } from '../errors.js';
import { optNum } from './config.js';
import { Gemma2, softcapOf, type GemmaLayout } from './gemma2.js';
import { layerTypes, layerWindows, slidingWindowOf } from './layer-types.js';
import { ropeFrequencies, ropeSettings } from './rotary.js';
import type { CausalLMConfig } from './types.js';

type Raw = Readonly<Record<string, unknown>>;

function gemma3Layout(raw: Raw, common: CausalLMConfig): GemmaLayout {
  if (raw.use_bidirectional_attention === true) {
    throw new DpoError('gemma3_text: use_bidirectional_attention (an embedding model) is not a causal LM');
  }
  const window = slidingWindowOf('gemma3_text', raw) ?? 4096;
  const pattern = optNum(raw, 'sliding_window_pattern') ?? 6;
  const types = layerTypes('gemma3_text', raw, common.numLayers, (l) => ((l + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention'));
  const context = { maxPositions: common.maxPositions };
  const full = ropeSettings('gemma3_text', raw, 'full_attention');
  const global = ropeFrequencies('gemma3_text', common.headDim, full.theta ?? 1000000, full.scaling, context);
  // transformers < 5: rope_local_base_freq, no scaling; 5: rope_parameters.sliding_attention.
  const sliding = raw.rope_parameters != null ? ropeSettings('gemma3_text', raw, 'sliding_attention') : { theta: optNum(raw, 'rope_local_base_freq'), scaling: null };
  const local = ropeFrequencies('gemma3_text', common.headDim, sliding.theta ?? 10000, sliding.scaling, context);
  return {
    qkNorm: true,
    windows: layerWindows(types, window),
    ropeOfLayer: types.map((t) => (t === 'sliding_attention' ? 1 : 0)),
    ropes: [global, local],
    attnSoftcap: undefined,
    finalSoftcap: softcapOf(raw, 'final_logit_softcapping', undefined),
  };
}

export class Gemma3Text extends Gemma2 {
  constructor(raw: Raw) {
    super(raw, 'gemma3_text', gemma3Layout);
  }
}
