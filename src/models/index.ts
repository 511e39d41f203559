/**
 * Models (`dpo-ts/models`): the families (one file each, built from engine ops), loading and
 * saving Hugging Face folders, LoRA (PEFT's adapter format), gradient checkpointing.
 */
export {
  loadPretrained,
  savePretrained,
  checkpointTensors,
  type LoadPretrainedOptions,
  type Pretrained,
  type SavePretrainedOptions,
} from './pretrained.js';
export { loadModelOrAdapter } from './load-model.js';
export { createModel, supportedModelTypes } from './registry.js';
export type { CausalLM, CausalLMConfig, ParamInfo, ForwardInputs, ForwardOutputs } from './types.js';
export { fitToContext } from './context-limit.js';
export {
  LORA_DEFAULTS,
  loraConfig,
  defaultTargetModules,
  checkLoraConfig,
  loraNumbersProblem,
  loraScale,
  loraTargets,
  loraParameters,
  initLora,
  applyLora,
  mergeLora,
  adapterConfigJson,
  loraAdapterTensors,
  parseAdapterConfig,
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  DEFAULT_TARGET_MODULES,
  type LoraConfig,
  type LoraTarget,
  type ApplyLoraOptions,
} from './lora.js';
export { saveLoraAdapter, loadLoraAdapter, type SaveLoraOptions, type LoadedLoraAdapter } from './lora-files.js';
// Gradient checkpointing of decoder layers: weights marked so that a model's forward recomputes each layer in the backward.
export { withGradientCheckpointing, gradientCheckpointing } from './linear.js';
export { DropoutSites } from './dropout.js';
