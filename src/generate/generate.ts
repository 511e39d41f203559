/** One-call generation: compile, generate, release. Keep a {@link Generator} to generate many times. */
import type { TextTokenizer } from '../io/tokenizer-types.js';
import type { RuntimeOptions } from '../engine/runtime.js';
import type { CausalLM } from '../models/types.js';
import { Generator } from './generator.js';
import type { ParamTransform, WeightInput } from './graphs.js';
import { generateText, type TextGenerationOptions, type TextGenerationResult } from './text.js';

export interface GenerateOptions extends TextGenerationOptions {
  /** Adapts the weight inputs in the graph (LoRA: `(g, p) => applyLora(model, p, p, config)`). */
  transform?: ParamTransform;
  /** Weight inputs when they are not exactly the model's parameters (LoRA adapters added). */
  inputs?: readonly WeightInput[];
  runtime?: RuntimeOptions;
}

/**
 * Completions for every prompt (`numSamples` each) with a KV-cache decoder compiled for this
 * call. `weights` holds a Float32Array per weight input (model parameters by checkpoint name,
 * plus adapters when `inputs`/`transform` add them).
 */
export async function generate(
  model: CausalLM,
  weights: ReadonlyMap<string, Float32Array>,
  tokenizer: TextTokenizer,
  prompts: readonly string[],
  options: GenerateOptions = {},
): Promise<TextGenerationResult> {
  const generator = await Generator.create(model, { transform: options.transform, inputs: options.inputs, runtime: options.runtime });
  try {
    return await generateText(generator, weights, tokenizer, prompts, options);
  } finally {
    await generator.release();
  }
}
