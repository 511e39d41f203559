/**
 * Rows longer than the model's context (max_position_embeddings) cannot run: the position
 * embedding (or rotary table) has no row for them, and ONNX Runtime fails mid-run, possibly after
 * hours of training. The max length a run tokenizes to is therefore capped at the model's context
 * before the data is read; the data report then names it ("N rows truncated to max-length 256").
 */
import type { CausalLM } from './types.js';

/** `maxLength`, or the model's context (max_position_embeddings) when that is shorter. */
export function fitToContext(maxLength: number, model: CausalLM): number {
  return Math.min(maxLength, model.config.maxPositions);
}
