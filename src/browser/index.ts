/**
 * The browser build of dpo-ts (bundled by src/browser/build.ts into one ES module): the engine,
 * the model families, the DPO losses and training step, scoring and generation, on
 * onnxruntime-web (WebGPU, or wasm). Nothing here or below it touches Node: the ONNX Runtime
 * binding is the browser implementation of engine/ort-platform (ort-platform.browser.ts), and
 * models and pairs come in as bytes and token ids.
 */
export { BrowserDpo, type BrowserDpoOptions, type BrowserStepMetrics, type OutputFile, type TokenPair } from './dpo.js';
export { readSafetensorsBytes, safetensorsBytes, type MemoryTensor } from './safetensors.js';
export { configureOrtWeb, platform } from '../engine/ort-platform.browser.js';
export { Graph, type Tensor } from '../engine/graph.js';
export * as op from '../engine/ops.js';
export { CompiledGraph, type HostTensor, type RuntimeOptions } from '../engine/runtime.js';
export { TrainStep, type ParamSpec } from '../engine/train-step.js';
export { createModel, supportedModelTypes } from '../models/registry.js';
export type { CausalLM } from '../models/types.js';
export { LORA_DEFAULTS, loraConfig, initLora, applyLora, mergeLora, adapterConfigJson, loraAdapterTensors, type LoraConfig } from '../models/lora.js';
export { preferenceLoss, LOSS_TYPES, type CombinedLossOptions } from '../train/dpo/losses.js';
export { buildDpoLoss } from '../train/dpo/loss-graph.js';
export { Scorer } from '../scoring/scorer.js';
export { Generator } from '../generate/generator.js';
export { collatePreferences, type PreferenceBatch } from '../data/collate.js';
