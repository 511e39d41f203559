/**
 * Qwen3, as transformers' modeling_qwen3.py (Qwen3ForCausalLM): the Llama decoder (llama.ts)
 * without any projection bias (`attention_bias` adds them to q/k/v/o), with an RMSNorm over
 * head_dim on each query and key head (`self_attn.q_norm` / `k_norm`, before RoPE), head_dim read
 * from config.json (128 in Qwen3-0.6B, not hidden_size / heads), and Qwen2's sliding-window
 * layers (`use_sliding_window`, `max_window_layers`, `layer_types`).
 */
import { Llama, qwenWindows, type DecoderLayout } from './llama.js';

type Raw = Readonly<Record<string, unknown>>;

function qwen3Layout(raw: Raw, numLayers: number): DecoderLayout {
  const bias = raw.attention_bias === true;
  const windows = qwenWindows('qwen3', raw, numLayers);
  return {
    qkvBias: bias,
    oBias: bias,
    mlpBias: false,
    qkNorm: true,
    windows,
    rope: windows.map(() => true),
    tieByDefault: false, // Qwen3Config; the small checkpoints set it to true in config.json
    defaultRopeTheta: 10000,
  };
}

export class Qwen3 extends Llama {
  constructor(raw: Raw) {
    // Qwen3Config's head_dim default (128) applies when config.json omits it.
    super(raw.head_dim == null ? { ...raw, head_dim: 128 } : raw, 'qwen3', qwen3Layout);
  }
}
