/** One-call generation: compile, generate, release. Keep a {@link Generator} to generate many times. */
import { DpoError } from '../errors.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';
import type { RuntimeOptions } from '../engine/runtime.js';
import type { CausalLM } from '../models/types.js';
import { Generator } from './generator.js';
import type { ParamTransform, WeightInput } from './graphs.js';
import { generateText, type TextGenerationOptions, type TextGenerationResult } from './text.js';

/**
 * What generate() needs of a model: `loadPretrained()` / `loadModelOrAdapter()` give all of it
 * (a LoRA adapter folder comes back merged into its base).
 */
export interface GenerationModel {
  model: CausalLM;
  /** One Float32Array per weight input (model parameters by checkpoint name, plus adapters when `inputs`/`transform` add them). */
  weights: ReadonlyMap<string, Float32Array>;
  /** The folder's tokenizer; `options.tokenizer` overrides it. */
  tokenizer?: TextTokenizer;
  /** generation_config.json: its EOS ids and sampling defaults apply unless `options.generationConfig` is given. */
  generationConfig?: TextGenerationOptions['generationConfig'];
}

export interface GenerateOptions extends TextGenerationOptions {
  /** The tokenizer, when the model has none (or to use another). */
  tokenizer?: TextTokenizer;
  /** Adapts the weight inputs in the graph (LoRA: `(g, p) => applyLora(model, p, p, config)`). */
  transform?: ParamTransform;
  /** Weight inputs when they are not exactly the model's parameters (LoRA adapters added). */
  inputs?: readonly WeightInput[];
  runtime?: RuntimeOptions;
}

/**
 * Completions for every prompt (`numSamples` each) with a KV-cache decoder compiled for this call:
 * `await generate(await loadPretrained('org/name'), ['The movie was'], { maxNewTokens: 20 })`.
 */
export async function generate(pretrained: GenerationModel, prompts: readonly string[], options: GenerateOptions = {}): Promise<TextGenerationResult> {
  const tokenizer = options.tokenizer ?? pretrained.tokenizer;
  if (!tokenizer) throw new DpoError('generate: the model has no tokenizer (no tokenizer.json); pass options.tokenizer');
  const generationConfig = options.generationConfig ?? pretrained.generationConfig;
  const generator = await Generator.create(pretrained.model, { transform: options.transform, inputs: options.inputs, runtime: options.runtime });
  try {
    return await generateText(generator, pretrained.weights, tokenizer, prompts, { ...options, ...(generationConfig ? { generationConfig } : {}) });
  } finally {
    await generator.release();
  }
}
