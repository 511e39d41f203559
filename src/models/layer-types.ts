/**
 * Which layers attend through a sliding window: transformers' `config.layer_types`
 * ("sliding_attention" / "full_attention" per layer), or, in configs that predate it, the
 * family's own rule for deriving it.
 */
import { DpoError } from '../errors.js';

type Raw = Readonly<Record<string, unknown>>;

export type LayerType = 'sliding_attention' | 'full_attention';

/**
 * `layer_types` from config.json when present (validated), else `derive(layer)`.
 * Errors name the config key.
 */
export function layerTypes(family: string, raw: Raw, numLayers: number, derive: (layer: number) => LayerType): LayerType[] {
  const given = raw.layer_types;
  if (given == null) return Array.from({ length: numLayers }, (_, l) => derive(l));
  if (!Array.isArray(given) || given.length < numLayers || !given.every((t) => t === 'sliding_attention' || t === 'full_attention')) {
    throw new DpoError(
      `${family}: config.json 'layer_types' must list "sliding_attention" or "full_attention" for each of the ${numLayers} layers, got ${JSON.stringify(given)}`,
    );
  }
  return (given as LayerType[]).slice(0, numLayers);
}

/** Per layer, the sliding window of the "sliding_attention" layers (undefined: full causal attention). */
export function layerWindows(types: readonly LayerType[], window: number | undefined): (number | undefined)[] {
  return types.map((t) => (t === 'sliding_attention' ? window : undefined));
}

/** A positive integer sliding_window, or undefined when the key is absent or null. */
export function slidingWindowOf(family: string, raw: Raw): number | undefined {
  const w = raw.sliding_window;
  if (w == null) return undefined;
  if (typeof w !== 'number' || !Number.isInteger(w) || w <= 0) {
    throw new DpoError(`${family}: config.json 'sliding_window' must be a positive integer or null, got ${JSON.stringify(w)}`);
  }
  return w;
}
