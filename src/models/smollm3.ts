/**
 * SmolLM3, as transformers' modeling_smollm3.py (SmolLM3ForCausalLM): the Llama decoder
 * (llama.ts) in which the layers marked 0 in `no_rope_layers` skip RoPE (NoPE; by default every
 * `no_rope_layer_interval`-th layer, i.e. layers 3, 7, 11, ...). With `use_sliding_window` the NoPE
 * layers are the ones that attend through `sliding_window` (unless `layer_types` says otherwise).
 * Biases as Llama (`attention_bias`, `mlp_bias`); embeddings tied by default; rope_theta 2e6.
 */
import { DpoError } from '../errors.js';
import { optNum } from './config.js';
import { Llama, type DecoderLayout } from './llama.js';
import { layerTypes, layerWindows, slidingWindowOf } from './layer-types.js';

type Raw = Readonly<Record<string, unknown>>;

function noRopeLayers(raw: Raw, numLayers: number): boolean[] {
  const given = raw.no_rope_layers;
  if (given == null) {
    const interval = optNum(raw, 'no_rope_layer_interval') ?? 4;
    return Array.from({ length: numLayers }, (_, l) => (l + 1) % interval !== 0);
  }
  if (!Array.isArray(given) || given.length < numLayers || !given.every((x) => x === 0 || x === 1)) {
    throw new DpoError(`smollm3: config.json 'no_rope_layers' must list 0 or 1 for each of the ${numLayers} layers, got ${JSON.stringify(given)}`);
  }
  return given.slice(0, numLayers).map((x) => x === 1);
}

function smollm3Layout(raw: Raw, numLayers: number): DecoderLayout {
  const rope = noRopeLayers(raw, numLayers);
  const window = raw.use_sliding_window === true ? slidingWindowOf('smollm3', raw) : undefined;
  const types = layerTypes('smollm3', raw, numLayers, (l) => (window !== undefined && !rope[l] ? 'sliding_attention' : 'full_attention'));
  const bias = raw.attention_bias === true;
  return {
    qkvBias: bias,
    oBias: bias,
    mlpBias: raw.mlp_bias === true,
    qkNorm: false,
    windows: layerWindows(types, window),
    rope,
    tieByDefault: true,
    defaultRopeTheta: 2000000,
  };
}

export class SmolLM3 extends Llama {
  constructor(raw: Raw) {
    super(raw, 'smollm3', smollm3Layout);
  }
}
