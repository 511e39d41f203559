/** The io layer: safetensors, Hugging Face model folders, the hub cache, tokenizers. */
export * from './safetensors.js';
export * from './safetensors-write.js';
export { DTYPE_SIZES, type FloatOutputDtype } from './dtypes.js';
export * from './hf-folder.js';
export { resolveModel, hubCacheDir, parseModelRef, type ModelRef, type ResolveModelOptions, type ResolvedModel } from './hub.js';
export { loadTokenizer, HfTokenizer, type LoadTokenizerOptions } from './tokenizer.js';
export type { ChatMessage, TextTokenizer } from './tokenizer-types.js';
export type { JsonObject } from './json-file.js';
export { SAVE_DTYPES, resolveSaveDtype, checkpointDtype, torchDtypeName, type SaveDtype, type ModelSaveOptions } from './save-dtype.js';
export { DEFAULT_MAX_SHARD_SIZE, parseShardSize } from './shards.js';
export { writeModelWeights, type WriteWeightsOptions } from './weights-write.js';
export { modelFolderKind, type ModelFolderKind } from './model-folder-kind.js';
