/**
 * The flags of `dpo train` / `dpo eval`, one per DPOConfig key (kebab-case of the camelCase key;
 * `lora.r` is `--lora-r`). Other subcommands (sft, reward...) can reuse the groups.
 */
import { PREFERENCE_FORMATS } from '../data/preference-format.js';
import { LOSS_TYPES } from '../train/losses.js';
import type { OptionSpec } from './options.js';

export const MODEL_DATA_OPTIONS: readonly OptionSpec[] = [
  { key: 'model', kind: 'string', arg: 'path', description: 'policy model: a Hugging Face model folder or hub id (org/name[@revision])' },
  { key: 'data', kind: 'string', arg: 'path', description: 'preference data: a .jsonl/.json/.parquet file or a folder of them' },
];

export const DATA_OPTIONS: readonly OptionSpec[] = [
  { key: 'format', kind: 'string', arg: 'name', choices: ['auto', ...PREFERENCE_FORMATS], defaultText: 'auto', description: 'data layout (detected per file by default)' },
  { key: 'maxLength', kind: 'integer', defaultText: '1024', description: 'max tokens of prompt + completion' },
  { key: 'maxPromptLength', kind: 'integer', description: 'max prompt tokens' },
  { key: 'maxCompletionLength', kind: 'integer', description: 'max completion tokens' },
  { key: 'truncationMode', kind: 'string', arg: 'mode', choices: ['keep_start', 'keep_end'], defaultText: 'keep_end', description: 'which end of a too-long prompt to keep' },
  { key: 'onBadRow', kind: 'string', arg: 'action', choices: ['error', 'skip'], defaultText: 'error', description: 'malformed rows: stop before training, or skip and report them' },
  { key: 'batchSize', kind: 'integer', defaultText: '8', description: 'rows (pairs / rankings) per micro-batch' },
];

export const LOSS_OPTIONS: readonly OptionSpec[] = [
  { key: 'beta', kind: 'number', defaultText: '0.1', description: 'DPO temperature beta (strength of the KL constraint)' },
  { key: 'lossType', kind: 'list', arg: 'types', defaultText: 'sigmoid', description: `loss type(s), comma-separated: ${LOSS_TYPES.join(', ')}` },
  { key: 'lossWeights', kind: 'numberList', arg: 'weights', description: 'one weight per --loss-type, comma-separated (default 1 each)' },
  { key: 'labelSmoothing', kind: 'number', arg: 'eps', defaultText: '0', description: 'label smoothing eps (conservative DPO, robust, exo_pair)' },
  { key: 'referenceFree', kind: 'boolean', negatable: true, description: 'no reference model (log pi_ref = 0)' },
  { key: 'refModel', kind: 'string', arg: 'path', description: 'reference model (default: the starting policy)' },
];

export const RUNTIME_OPTIONS: readonly OptionSpec[] = [
  { key: 'threads', kind: 'integer', description: 'ONNX Runtime intra-op threads (default: all cores)' },
  { key: 'device', kind: 'string', arg: 'name', choices: ['cpu', 'cuda'], defaultText: 'cpu', description: 'execution provider' },
];

export const TRAIN_ONLY_OPTIONS: readonly OptionSpec[] = [
  { key: 'output', kind: 'string', arg: 'dir', description: 'output folder: final model, metrics.jsonl, checkpoints' },
  { key: 'evalData', kind: 'string', arg: 'path', description: 'held-out preference data for eval_* metrics' },
  { key: 'optimizer', kind: 'string', arg: 'name', choices: ['adamw', 'rmsprop', 'sgd'], defaultText: 'adamw', description: 'optimizer' },
  { key: 'learningRate', kind: 'number', arg: 'lr', defaultText: '1e-6', description: 'peak learning rate' },
  { key: 'weightDecay', kind: 'number', defaultText: '0', description: 'decoupled weight decay' },
  { key: 'lrScheduler', kind: 'string', arg: 'name', choices: ['constant', 'linear', 'cosine'], defaultText: 'linear', description: 'learning-rate schedule after warm-up' },
  { key: 'warmupSteps', kind: 'integer', defaultText: '0', description: 'linear warm-up steps' },
  { key: 'gradientAccumulationSteps', kind: 'integer', defaultText: '1', description: 'micro-batches per optimizer step' },
  { key: 'maxGradNorm', kind: 'number', defaultText: '1', description: 'clip the global gradient norm (0 disables)' },
  { key: 'maxSteps', kind: 'integer', description: 'optimizer steps (overrides --num-epochs)' },
  { key: 'numEpochs', kind: 'number', defaultText: '3', description: 'passes over the data (may be fractional)' },
  { key: 'seed', kind: 'integer', defaultText: '42', description: 'seed of shuffling and LoRA init' },
  { key: 'groupByLength', kind: 'boolean', negatable: true, description: 'batch rows of similar length together (less padding)' },
  { key: 'keepDropout', kind: 'boolean', negatable: true, description: "keep the model's dropout (config.json probabilities) in training; off by default, as TRL" },
  { key: 'padToMultipleOf', kind: 'integer', description: 'pad sequence length to a multiple of n' },
  { key: 'loggingSteps', kind: 'integer', defaultText: '10', description: 'write metrics every n steps' },
  { key: 'evalSteps', kind: 'integer', description: 'evaluate on --eval-data every n steps (and always at the end)' },
  { key: 'saveSteps', kind: 'integer', description: 'save a checkpoint every n steps' },
  { key: 'resume', kind: 'optionalString', arg: 'checkpoint', description: 'continue from the newest checkpoint in --output, or from the given one' },
  { key: 'reference', kind: 'string', arg: 'mode', choices: ['precompute', 'live'], defaultText: 'precompute', description: 'reference log-probs computed once and cached, or by a frozen copy every step' },
  { key: 'syncRefEvery', kind: 'integer', defaultText: '0', description: 'TR-DPO: update the reference every n steps (needs --reference live)' },
  { key: 'syncRefAlpha', kind: 'number', arg: 'alpha', defaultText: '0.6', description: 'TR-DPO: pi_ref <- alpha pi + (1 - alpha) pi_ref' },
  { key: 'lora.r', kind: 'integer', defaultText: '8', description: 'LoRA rank (any --lora-* flag enables LoRA)' },
  { key: 'lora.alpha', kind: 'number', defaultText: '16', description: 'LoRA alpha' },
  { key: 'lora.dropout', kind: 'number', arg: 'p', defaultText: '0', description: "LoRA dropout on the adapters' input (training only)" },
  { key: 'lora.targetModules', kind: 'list', arg: 'modules', description: "LoRA target modules, comma-separated, or 'all-linear' (default: the family's attention projections)" },
  { key: 'cacheDir', kind: 'string', arg: 'dir', description: 'reference log-prob cache (default $DPO_TS_CACHE or ~/.cache/dpo-ts)' },
];

/** Keys whose config-file value may be a comma string instead of a list. */
export const LIST_KEYS = ['lossType', 'lora.targetModules'];

export const TRAIN_OPTIONS: readonly OptionSpec[] = [...MODEL_DATA_OPTIONS, ...TRAIN_ONLY_OPTIONS.slice(0, 2), ...DATA_OPTIONS, ...LOSS_OPTIONS, ...TRAIN_ONLY_OPTIONS.slice(2), ...RUNTIME_OPTIONS];

export const EVAL_OPTIONS: readonly OptionSpec[] = [...MODEL_DATA_OPTIONS, ...DATA_OPTIONS, ...LOSS_OPTIONS, ...RUNTIME_OPTIONS];
