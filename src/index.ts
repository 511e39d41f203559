/**
 * dpo-ts: Direct Preference Optimization for causal language models on Node.js.
 *
 *   import { DPOTrainer, type DPOConfig, evaluateDpo, loadPretrained } from 'dpo-ts';
 *   const r = await new DPOTrainer({ model: './gpt2', data: 'prefs.jsonl', output: 'runs/a' }).train();
 *
 * The low-level engine (graphs, autodiff, ONNX Runtime, optimizers) is the `engine` namespace.
 */
import { DPOConfigSchema, type DPOConfig as ParsedDPOConfig } from './train/dpo/config.js';

export { DpoError } from './errors.js';

// Training.
/** The DPO configuration: as a type, the parsed config (camelCase keys, defaults filled); as a value, its zod schema. */
export const DPOConfig = DPOConfigSchema;
export type DPOConfig = ParsedDPOConfig;
export { DPOConfigSchema, parseDpoConfig, type DPOConfigInput } from './train/dpo/config.js';
export {
  LoraOptionsSchema,
  TrainingOptionsSchema,
  parseConfig,
  defineConfig,
  checkedConfig,
  option,
  formatZodError,
  type ConfigDefinition,
  type OptionMeta,
  type DefinedConfig,
  type LoraOptions,
} from './train/core/config.js';
export {
  runTrainer,
  loadPolicy,
  resumeDigest,
  resumeOptions,
  runtimeOf,
  guardedRun,
  StopRequest,
  type StopOptions,
  type TrainerRun,
  type TrainerResult,
  type RunTools,
  type LoadedPolicy,
} from './train/core/runner.js';
export { runTrainingLoop, EvalGraph, type LoopHooks, type LoopResult, type TrainingOptions } from './train/core/loop.js';
export { DPOTrainer, type DPOTrainerOptions, type TrainResult } from './train/dpo/trainer.js';
export {
  evaluateDpo,
  evaluateRows,
  parseEvalConfig,
  EvalConfigSchema,
  checkLossTypesForCompletions,
  type EvalConfig,
  type EvalConfigInput,
  type EvaluateDpoOptions,
  type EvaluateDpoResult,
  type EvaluateRowsOptions,
  type EvaluateRowsResult,
  type PerExampleResult,
} from './train/dpo/evaluate.js';
export { loadModelOrAdapter } from './models/load-model.js';
export { modelFolderKind, type ModelFolderKind } from './io/model-folder-kind.js';
export {
  LOSS_TYPES,
  LOSS_TYPE_ALIASES,
  LABEL_SMOOTHING_TYPES,
  F_DIVERGENCES,
  F_DIVERGENCE_TYPES,
  fDivergenceLogits,
  sortBatch,
  logRatios,
  pairLoss,
  plackettLuceLoss,
  sftLoss,
  preferenceLoss,
  preferenceLossPerRow,
  type LossType,
  type FDivergence,
  type LossOptions,
  type CombinedLossOptions,
  type SequenceLogps,
} from './train/dpo/losses.js';
export { compileRowLoss, type RowLossGraph } from './train/dpo/row-loss.js';
export { sequenceLogps, declareScoredInputs, scoredFeeds, ldTokenWeights, type ScoredInputs, type SequenceScores, type ScoringOptions } from './scoring/sequence-logps.js';
export { Scorer, type BatchScores, type ParamTransform } from './scoring/scorer.js';
export { computeReferenceLogps, defaultCacheDir, weightsDigest, rowsDigest, type ReferenceOptions, type ReferenceResult } from './scoring/reference-cache.js';
export { MetricsAccumulator, appendMetrics, type BatchSequenceStats } from './train/core/metrics.js';
export { createProgress, silentProgress, type ProgressReporter } from './progress.js';
export { learningRateAt, type LrScheduler } from './train/core/schedule.js';
export {
  saveTrainingCheckpoint,
  loadTrainingCheckpoint,
  findResumableCheckpoint,
  listCheckpoints,
  checkpointDir,
  pruneCheckpoints,
  removePartialCheckpoints,
  type CheckpointContents,
  type CheckpointExpectation,
  type TrainerState,
} from './train/core/checkpoint.js';
export { buildPolicy, type Policy } from './train/core/policy.js';
export { guardOutput, RUN_MARKER_FILE, type GuardedOutput, type OutputGuardOptions } from './train/core/output-guard.js';
export { acquireRunLock, RUN_LOCK_FILE, type RunLock } from './io/run-lock.js';
export { fitToContext } from './models/context-limit.js';
export {
  SFTTrainer,
  SFTConfigSchema,
  parseSftConfig,
  prepareSftSplit,
  detectSftDataKind,
  tokenNll,
  type SFTConfig,
  type SFTConfigInput,
  type SFTTrainerOptions,
} from './train/sft/index.js';
export {
  RewardTrainer,
  RewardConfigSchema,
  parseRewardConfig,
  bradleyTerryLoss,
  rankingPairs,
  type RewardConfig,
  type RewardConfigInput,
} from './train/reward/index.js';
export { loadRewardModel, saveRewardModel, RewardScorer, SCORE_WEIGHT } from './scoring/reward-model.js';
export {
  KTOTrainer,
  KTOConfigSchema,
  KTO_LOSS_TYPES,
  parseKtoConfig,
  ktoLoss,
  ktoKl,
  tokenizeKto,
  type KTOConfig,
  type KTOConfigInput,
  type KTOTrainerOptions,
  type KtoLossOptions,
  type KtoLossType,
} from './train/kto/index.js';
export { CPOTrainer, CPOConfigSchema, parseCpoConfig, type CPOConfig, type CPOConfigInput, type CPOTrainerOptions } from './train/reference-free/index.js';
export { ORPOTrainer, ORPOConfigSchema, parseOrpoConfig, type ORPOConfig, type ORPOConfigInput, type ORPOTrainerOptions } from './train/reference-free/index.js';
export { CPO_LOSS_TYPES, cpoLoss, orpoLoss, orpoLogOdds, alphaReward, type CpoLossType, type CpoLossOptions } from './train/reference-free/losses.js';
export * from './train/ppo/index.js';
export * from './train/online/index.js';

// Generation and evaluation.
export * from './generate/index.js';
export * from './eval/index.js';
export { runQuickstart, preferencePairs, SHIPPED_MODEL, type QuickstartOptions, type QuickstartSummary } from './quickstart/run.js';
export { TRAIN_PROMPTS, HELD_OUT_PROMPTS } from './data/builtin-prompts.js';
export { renderSvg } from './quickstart/report.js';
export {
  runSentimentExperiment,
  experimentRuns,
  METHODS as EXPERIMENT_METHODS,
  type SentimentExperimentOptions,
  type SentimentExperimentSummary,
  type ExperimentSettings,
  type RunRecord,
} from './experiment/sentiment.js';
export { FrontierEvaluator, type FrontierPoint, type PolicyEvaluation } from './experiment/frontier.js';
export { trainedRunPoints, type ExperimentRun, type MethodContext } from './experiment/methods.js';

// Data.
export * from './data/index.js';

// Models, LoRA, tokenizers.
export {
  loadPretrained,
  savePretrained,
  checkpointTensors,
  type LoadPretrainedOptions,
  type Pretrained,
  type SavePretrainedOptions,
} from './models/pretrained.js';
export { createModel, supportedModelTypes } from './models/registry.js';
export type { CausalLM, CausalLMConfig, ParamInfo, ForwardInputs, ForwardOutputs } from './models/types.js';
export {
  loraConfig,
  defaultTargetModules,
  checkLoraConfig,
  loraScale,
  loraTargets,
  loraParameters,
  initLora,
  applyLora,
  mergeLora,
  adapterConfigJson,
  saveLoraAdapter,
  loadLoraAdapter,
  parseAdapterConfig,
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  DEFAULT_TARGET_MODULES,
  type LoraConfig,
  type LoraTarget,
  type ApplyLoraOptions,
  type SaveLoraOptions,
  type LoadedLoraAdapter,
} from './models/lora.js';
// Gradient checkpointing of decoder layers: weights marked so that a model's forward recomputes each layer in the backward.
export { withGradientCheckpointing, gradientCheckpointing } from './models/linear.js';
export { loadTokenizer, HfTokenizer, type LoadTokenizerOptions, type TextTokenizer } from './io/index.js';
export { resolveModel, hubCacheDir, parseModelRef, type ModelRef, type ResolveModelOptions, type ResolvedModel } from './io/index.js';

// Export for other runtimes: an ONNX folder transformers.js loads (Optimum's layout).
export { exportOnnx, buildOptimumDecoderGraph, type ExportOnnxOptions, type ExportOnnxResult, type ExternalDataMode } from './export/index.js';

// Preference labelling by hand: the `dpo label` page and its session/files.
export { runLabel, LabelSession, LabelStore, startLabelServer, type LabelOptions, type RunningLabel, type Decision, type LabelState } from './label/index.js';

// The engine: graphs, ops, autodiff, ONNX Runtime, optimizers, TrainStep.
export * as engine from './engine/index.js';
// File formats (safetensors, Hugging Face folders).
export * as io from './io/index.js';

// The command line, for embedding (`main(['train', ...])`).
export { main } from './cli/main.js';
