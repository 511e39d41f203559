/**
 * Dropout at a model's dropout sites during training (`--keep-dropout`). Each site gets its own
 * seed, derived from the run's seed and the site's order in the graph, so masks differ between
 * sites and repeat exactly across runs with the same seed.
 */
import type { Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';

export class DropoutSites {
  private sites = 0;

  constructor(private readonly seed: number) {}

  /** x with dropout probability `p` applied (x itself when p is 0 or unset). */
  apply(x: Tensor, p: number | undefined): Tensor {
    if (!p) return x;
    // ORT takes the seed as an int attribute; keep it in the positive int32 range.
    const seed = (Math.abs(this.seed) * 7919 + ++this.sites * 104729) % 2147483647;
    return op.dropout(x, p, seed);
  }
}

/** A dropout probability from config.json (absent or null: 0). */
export function dropoutProbability(raw: Readonly<Record<string, unknown>>, key: string): number {
  const v = raw[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

export interface ModelDropout {
  /** On the embeddings. */
  embd(x: Tensor): Tensor;
  /** On the attention probabilities; undefined when this site has no dropout (attention can then be recomputed in the backward). */
  probs?: (x: Tensor) => Tensor;
  /** On each block's attention and MLP outputs before the residual add. */
  resid(x: Tensor): Tensor;
}

/** The dropout sites of a family, with probabilities read from config.json keys; identity when off. */
export function modelDropout(
  sites: DropoutSites | undefined,
  raw: Readonly<Record<string, unknown>>,
  keys: { embd?: string; attn?: string; resid?: string },
): ModelDropout {
  const at = (key: string | undefined) => (x: Tensor): Tensor => (sites && key ? sites.apply(x, dropoutProbability(raw, key)) : x);
  const probsOn = sites !== undefined && keys.attn !== undefined && dropoutProbability(raw, keys.attn) > 0;
  return { embd: at(keys.embd), probs: probsOn ? at(keys.attn) : undefined, resid: at(keys.resid) };
}
