/**
 * Rows longer than the model's context (max_position_embeddings) cannot run: the position
 * embedding (or rotary table) has no row for them, and ONNX Runtime fails mid-run, possibly after
 * hours of training. The max length a run tokenizes to is therefore capped at the model's context,
 * up front, with a note naming the limit.
 */
import type { CausalLM } from '../models/types.js';

/** `maxLength`, or the model's context when that is shorter (noted through `log`). */
export function fitToContext(maxLength: number, model: CausalLM, modelName: string, log: (message: string) => void): number {
  const limit = model.config.maxPositions;
  if (maxLength <= limit) return maxLength;
  log(`note: max-length ${maxLength} exceeds the context of ${modelName} (max_position_embeddings ${limit}): rows are truncated to ${limit} tokens`);
  return limit;
}
