/**
 * Generation: KV-cache decoding (prefill + one-token steps), transformers' samplers, stop rules,
 * prompt files. {@link generate} for one call, {@link Generator} to compile once and reuse.
 */
export { generate, type GenerateOptions, type GenerationModel } from './generate.js';
export {
  Generator,
  GenerationStopped,
  firstStop,
  type FinishReason,
  type GeneratedSequence,
  type GenerateIdsOptions,
  type GenerationStats,
  type GeneratorOptions,
  type StopStrings,
} from './generator.js';
export type { IdGenerator } from './types.js';
export {
  buildPrefillGraph,
  buildStepGraph,
  DecodeGraphs,
  type DecodeGraphOptions,
  type ParamTransform,
  type WeightInput,
} from './graphs.js';
export { argmax, checkSamplingOptions, Sampler, type SamplingOptions } from './sampling.js';
export {
  encodePrompt,
  generateText,
  resolveEosTokenIds,
  resolveSampling,
  truncatePromptIds,
  type TextGenerationOptions,
  type TextGenerationResult,
} from './text.js';
export { loadPrompts, type LoadedPrompts, type PromptRow } from './prompts.js';
