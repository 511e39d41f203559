/**
 * Pieces shared by the decoders whose checkpoints use transformers' "model.layers.{i}…" layout
 * (Llama, Qwen2/3, Mistral, SmolLM3, Gemma 2/3, Phi-3).
 */
import type { Graph, Tensor } from '../engine/graph.js';
import { attentionMask, type MaskInputs } from './attention.js';
import type { CausalLMConfig, LinearModule } from './types.js';

/**
 * A checkpoint key -> parameter name: "model." added when a save path dropped it, rotary
 * inv_freq buffers skipped, lm_head.weight dropped when the head is tied to embed_tokens.
 */
export function modelPrefixedKey(fileKey: string, tieWordEmbeddings: boolean): string | undefined {
  if (fileKey.endsWith('.rotary_emb.inv_freq')) return undefined; // buffer
  if (fileKey === 'lm_head.weight') return tieWordEmbeddings ? undefined : fileKey;
  return fileKey.startsWith('model.') ? fileKey : `model.${fileKey}`;
}

/** The seven torch Linear projections of a Llama-style layer (self_attn q/k/v/o, mlp gate/up/down), every layer. */
export function llamaStyleLinearModules(config: CausalLMConfig, intermediate: number): LinearModule[] {
  const { hiddenSize: e, numHeads, numKeyValueHeads, headDim } = config;
  const mods: LinearModule[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    const add = (path: string, role: string, inF: number, outF: number): void => {
      mods.push({ path, role, weight: `${path}.weight`, layout: 'out_in', inFeatures: inF, outFeatures: outF });
    };
    const p = `model.layers.${l}`;
    add(`${p}.self_attn.q_proj`, 'q_proj', e, numHeads * headDim);
    add(`${p}.self_attn.k_proj`, 'k_proj', e, numKeyValueHeads * headDim);
    add(`${p}.self_attn.v_proj`, 'v_proj', e, numKeyValueHeads * headDim);
    add(`${p}.self_attn.o_proj`, 'o_proj', numHeads * headDim, e);
    add(`${p}.mlp.gate_proj`, 'gate_proj', e, intermediate);
    add(`${p}.mlp.up_proj`, 'up_proj', e, intermediate);
    add(`${p}.mlp.down_proj`, 'down_proj', intermediate, e);
  }
  return mods;
}

/**
 * Attention masks by sliding window (undefined: full causal), each built once per forward and
 * shared by the layers with that window.
 */
export class WindowMasks {
  private readonly masks = new Map<number | undefined, Tensor>();

  constructor(
    private readonly g: Graph,
    private readonly inputs: MaskInputs,
  ) {}

  get(query: Tensor, key: Tensor, window: number | undefined): Tensor {
    let mask = this.masks.get(window);
    if (!mask) {
      mask = attentionMask(this.g, query, key, this.inputs, window);
      this.masks.set(window, mask);
    }
    return mask;
  }
}
