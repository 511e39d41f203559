/**
 * dpo-ts: Direct Preference Optimization (and SFT, reward models, KTO, CPO/ORPO, PPO, online DPO)
 * for causal language models on Node.js.
 *
 *   import { DPOTrainer, evaluatePreferences, generate, loadPretrained } from 'dpo-ts';
 *   const r = await new DPOTrainer({ model: './gpt2', data: 'prefs.jsonl', output: 'runs/a' }).train();
 *
 * The package root holds what users do, grouped by task. Everything else is in subpaths:
 * `dpo-ts/train` (configs, losses, the runner, for trainer authors), `dpo-ts/models`, `dpo-ts/data`,
 * `dpo-ts/generate`, `dpo-ts/eval`, `dpo-ts/scoring`, `dpo-ts/export`, `dpo-ts/io`, `dpo-ts/engine`
 * (graphs, autodiff, ONNX Runtime, optimizers) and `dpo-ts/cli` (`main`, the quickstart, the
 * experiment, the labelling page). test/package/root-exports.test.ts pins this list.
 */

// Trainers and their configs (the config you write: camelCase keys, TRL's names and defaults).
export { DPOTrainer } from './train/dpo/trainer.js';
export type { DPOConfigInput } from './train/dpo/config.js';
export { SFTTrainer } from './train/sft/trainer.js';
export type { SFTConfigInput } from './train/sft/config.js';
export { RewardTrainer } from './train/reward/trainer.js';
export type { RewardConfigInput } from './train/reward/config.js';
export { KTOTrainer } from './train/kto/trainer.js';
export type { KTOConfigInput } from './train/kto/config.js';
export { CPOTrainer } from './train/reference-free/cpo.js';
export { ORPOTrainer } from './train/reference-free/orpo.js';
export type { CPOConfigInput, ORPOConfigInput } from './train/reference-free/config.js';
export { PPOTrainer } from './train/ppo/trainer.js';
export type { PPOConfigInput } from './train/ppo/config.js';
export { OnlineDPOTrainer } from './train/online/trainer.js';
export type { OnlineDPOConfigInput } from './train/online/config.js';
export type { TrainerResult } from './train/core/runner.js';

// Generate.
export { generate, type GenerateOptions } from './generate/generate.js';
export { Generator } from './generate/generator.js';

// Evaluate: a policy on preference pairs (`dpo eval`), or its generations on prompts (`dpo evaluate`).
export { evaluatePreferences } from './train/dpo/evaluate.js';
export type { EvalConfigInput } from './train/dpo/config.js';
export { evaluateGenerations, type EvaluationReport } from './eval/evaluate.js';

// Models, LoRA and saving.
export { loadPretrained, savePretrained, type Pretrained } from './models/pretrained.js';
export { loadModelOrAdapter } from './models/load-model.js';
export { loadTokenizer } from './io/tokenizer.js';
export { loraConfig, mergeLora, type LoraConfig } from './models/lora.js';
export { saveLoraAdapter, loadLoraAdapter } from './models/lora-files.js';
export { exportOnnx } from './export/onnx-folder.js';

// Data.
export { loadPreferenceData } from './data/load.js';
export { tokenizePreferences } from './data/tokenize.js';
export { loadPrompts } from './generate/prompts.js';

// Errors and progress.
export { DpoError } from './errors.js';
export { createProgress, silentProgress, type ProgressReporter } from './progress.js';
