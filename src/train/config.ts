/**
 * The trainer configs: every option of `dpo train` (DPOConfig), with TRL's defaults, and the
 * options every trainer shares (TrainingOptionsSchema). Each key carries its help text and its
 * value's placeholder as zod metadata ({@link OptionMeta}): the CLI's flags, choices, defaults
 * and help are derived from these schemas, so a default or a choice is written once.
 * The CLI's kebab-case flags and a run.yaml/json config file map onto the camelCase keys one to one.
 */
import { z } from 'zod';
import { DpoError } from '../errors.js';
import { PREFERENCE_FORMATS } from '../data/preference-format.js';
import { F_DIVERGENCE_TYPES, F_DIVERGENCES, LABEL_SMOOTHING_TYPES, LOSS_TYPE_ALIASES, LOSS_TYPES, type CombinedLossOptions, type LossType } from './losses.js';
import type { ScoringOptions } from './sequence-logps.js';
import { SAVE_DTYPES } from '../io/save-dtype.js';
import { parseShardSize } from '../io/shards.js';

/** Help of one config key: what it does, and the placeholder of its value (`--model <path>`). */
export interface OptionMeta {
  description: string;
  arg?: string;
}

/** Attaches help text (and the value's placeholder) to a config key's schema. */
export function option<T extends z.ZodType>(schema: T, description: string, arg?: string): T {
  return schema.meta(arg ? { description, arg } : { description });
}

export const LoraOptionsSchema = z
  .object({
    r: option(z.number().int().positive().default(8), 'LoRA rank (any --lora-* flag enables LoRA)'),
    alpha: option(z.number().positive().default(16), 'LoRA alpha'),
    dropout: option(z.number().min(0).max(1).default(0), "LoRA dropout on the adapters' input (training only)", 'p'),
    targetModules: option(
      z.union([z.array(z.string().min(1)).nonempty(), z.literal('all-linear')]).optional(),
      "LoRA target modules, comma-separated, or 'all-linear' (default: the family's attention projections)",
      'modules',
    ),
  })
  .strict();

export const TrainingOptionsSchema = z.object({
  model: option(z.string().min(1), 'policy model: a Hugging Face model folder or hub id (org/name[@revision])', 'path'),
  data: option(z.string().min(1), 'preference data: a .jsonl/.json/.parquet file or a folder of them', 'path'),
  output: option(z.string().min(1), 'output folder: final model, metrics.jsonl, checkpoints', 'dir'),
  evalData: option(z.string().min(1).optional(), 'held-out preference data for eval_* metrics', 'path'),
  format: option(z.enum(['auto', ...PREFERENCE_FORMATS] as [string, ...string[]]).default('auto'), 'data layout (detected per file by default)', 'name'),
  maxLength: option(z.number().int().positive().default(1024), "max tokens of prompt + completion (capped at the model's max_position_embeddings)"),
  maxPromptLength: option(z.number().int().positive().optional(), 'max prompt tokens'),
  maxCompletionLength: option(z.number().int().positive().optional(), 'max completion tokens'),
  truncationMode: option(z.enum(['keep_start', 'keep_end']).default('keep_end'), 'which end of a too-long prompt to keep', 'mode'),
  onBadRow: option(z.enum(['error', 'skip']).default('error'), 'malformed rows: stop before training, or skip and report them', 'action'),
  /** Rows (pairs) per optimizer micro-batch. */
  batchSize: option(z.number().int().positive().default(8), 'rows (pairs / rankings) per micro-batch'),
  optimizer: option(z.enum(['adamw', 'rmsprop', 'sgd']).default('adamw'), 'optimizer', 'name'),
  learningRate: option(z.number().positive().default(1e-6), 'peak learning rate', 'lr'),
  weightDecay: option(z.number().min(0).default(0), 'decoupled weight decay'),
  lrScheduler: option(z.enum(['constant', 'linear', 'cosine']).default('linear'), 'learning-rate schedule after warm-up', 'name'),
  warmupSteps: option(z.number().int().min(0).default(0), 'linear warm-up steps'),
  gradientAccumulationSteps: option(z.number().int().positive().default(1), 'micro-batches per optimizer step'),
  /**
   * K optimizer steps per ONNX Runtime run (TrainStep.steps): the same updates, but the weights and
   * optimizer state leave ONNX Runtime once per K steps (onnxruntime-node copies every output).
   */
  stepsPerRun: option(
    z.number().int().positive().default(1),
    'optimizer steps per ONNX Runtime run (same results; weights and optimizer state are copied out once per run; longer compile, more memory; see BENCHMARKS.md)',
    'k',
  ),
  maxGradNorm: option(z.number().min(0).default(1.0), 'clip the global gradient norm (0 disables)'),
  maxSteps: option(z.number().int().positive().optional(), 'optimizer steps (overrides --num-epochs)'),
  numEpochs: option(z.number().positive().default(3), 'passes over the data (may be fractional)'),
  seed: option(z.number().int().default(42), 'seed of shuffling and LoRA init'),
  groupByLength: option(z.boolean().default(false), 'batch rows of similar length together (less padding)'),
  /**
   * Keep the model's dropout (config.json's probabilities) in the training forward pass. Off by
   * default, as TRL. Masks come from a generator seeded by `seed`: a run is reproducible, but a
   * resumed run draws a fresh mask sequence rather than continuing the interrupted one.
   */
  keepDropout: option(z.boolean().default(false), "keep the model's dropout (config.json probabilities) in training; off by default, as TRL"),
  /**
   * Recompute each decoder layer's forward in the backward instead of keeping its activations
   * (transformers' gradient_checkpointing): activation memory drops to one hidden-state tensor per
   * layer, for about one more forward of the layers per step. Results are unchanged (up to float
   * rounding), so it may change on resume.
   */
  gradientCheckpointing: option(
    z.boolean().default(false),
    "recompute each decoder layer's forward in the backward instead of keeping its activations: far less memory, about one more forward's time",
  ),
  padToMultipleOf: option(z.number().int().positive().optional(), 'pad sequence length to a multiple of n'),
  loggingSteps: option(z.number().int().positive().default(10), 'write metrics every n steps'),
  evalSteps: option(z.number().int().positive().optional(), 'evaluate on --eval-data every n steps (and always at the end)'),
  saveSteps: option(z.number().int().positive().optional(), 'save a checkpoint every n steps (and at the last step)'),
  saveTotalLimit: option(z.number().int().positive().optional(), 'keep only the newest n checkpoints (older ones are deleted)'),
  /** Write into a non-empty --output that is not a run of this command (transformers' overwrite_output_dir). */
  overwriteOutput: option(z.boolean().default(false), 'write into a non-empty --output that is not a run of this command'),
  /** true: continue from the newest checkpoint in `output`; a path: from that checkpoint. */
  resume: option(z.union([z.boolean(), z.string().min(1)]).default(false), 'continue from the newest checkpoint in --output, or from the given one', 'checkpoint'),
  lora: LoraOptionsSchema.optional(),
  /** Where reference log-probs are cached (default $DPO_TS_CACHE or ~/.cache/dpo-ts). */
  cacheDir: option(z.string().min(1).optional(), 'reference log-prob cache (default $DPO_TS_CACHE or ~/.cache/dpo-ts)', 'dir'),
  threads: option(z.number().int().positive().optional(), 'ONNX Runtime intra-op threads (default: all cores; capped at the core count)'),
  device: option(z.enum(['cpu', 'cuda']).default('cpu'), 'execution provider', 'name'),
  saveDtype: option(
    z.enum(SAVE_DTYPES).default('auto'),
    "dtype of the saved model: auto keeps the loaded checkpoint's (bf16 saves as bf16; LoRA adapters float32, as PEFT)",
    'dtype',
  ),
  /** "2GB", "500MB", "1GiB" or a byte count (parseShardSize); a number in a config file is bytes. */
  maxShardSize: option(
    z.coerce
      .string()
      .superRefine((value, ctx) => {
        try {
          parseShardSize(value);
        } catch (e) {
          ctx.addIssue({ code: 'custom', message: (e as Error).message });
        }
      })
      .default('2GB'),
    "largest weight file of the saved model; bigger models are sharded as transformers' save_pretrained does",
    'size',
  ),
});

/** Options of the trainers that score completions with a causal LM (`dpo train`, `dpo sft`). */
export const ScoredBatchShape = {
  paddingFree: option(
    z.boolean().default(false),
    'pack several sequences into each row (positions restart, attention stays within each sequence), so padding costs no compute',
  ),
};

/** The loss options `dpo train` and `dpo eval` share. */
const DpoLossShape = {
  beta: option(z.number().positive().default(0.1), 'DPO temperature beta (strength of the KL constraint)'),
  lossType: option(
    z
      .array(z.enum([...LOSS_TYPES, ...(Object.keys(LOSS_TYPE_ALIASES) as [string, ...string[]])]).transform((t) => LOSS_TYPE_ALIASES[t] ?? (t as LossType)))
      .nonempty()
      .default(['sigmoid']),
    `loss type(s), comma-separated (${Object.entries(LOSS_TYPE_ALIASES).map(([a, t]) => `${a} = ${t}`).join(', ')})`,
    'types',
  ),
  lossWeights: option(z.array(z.number()).nonempty().optional(), 'one weight per --loss-type, comma-separated (default 1 each)', 'weights'),
  /** alpha of loss type 'unlikelihood' (the DPO paper's coefficient on the unlikelihood term). */
  unlikelihoodAlpha: option(z.number().min(0).default(1), "weight of the rejected completion's unlikelihood term (loss type unlikelihood)", 'alpha'),
  labelSmoothing: option(
    z.number().min(0).lt(0.5).default(0),
    `label smoothing eps, used by ${LABEL_SMOOTHING_TYPES.join(', ')} (sigmoid: conservative DPO); the other loss types ignore it`,
    'eps',
  ),
  referenceFree: option(z.boolean().default(false), 'no reference model (log pi_ref = 0)'),
  refModel: option(z.string().min(1).optional(), 'reference model (default: the starting policy)', 'path'),
  discopopTau: option(z.number().positive().optional(), "discopop's temperature tau (default 0.05)", 'tau'),
  fDivergence: option(
    z.enum(F_DIVERGENCES).default('reverse_kl'),
    `f-DPO: the divergence of the pair logit f'(u_w) - f'(u_l), u = pi/pi_ref (used by ${F_DIVERGENCE_TYPES.join(', ')}; reverse_kl is DPO)`,
    'name',
  ),
  fAlphaDivergenceCoef: option(z.number().positive().optional(), 'alpha of --f-divergence alpha_divergence (default 1, which is forward_kl)', 'alpha'),
  ldAlpha: option(z.number().min(0).max(1).optional(), "LD-DPO: the policy's tokens past the pair's shorter completion count alpha times (1 = DPO)", 'alpha'),
  useWeighting: option(z.boolean().default(false), "WPO: weight each pair's loss by its completions' probability under the policy (no gradient)"),
  rpoAlpha: option(z.number().min(0).optional(), "RPO: add alpha x the chosen completions' token-mean NLL to the loss (TRL's rpo_alpha)", 'alpha'),
};

export const DPOConfigSchema = TrainingOptionsSchema.extend({
  ...DpoLossShape,
  ...ScoredBatchShape,
  reference: option(
    z.enum(['precompute', 'live']).default('precompute'),
    'reference log-probs computed once and cached, or by a frozen copy every step',
    'mode',
  ),
  syncRefEvery: option(z.number().int().min(0).default(0), 'TR-DPO: update the reference every n steps (needs --reference live)'),
  syncRefAlpha: option(z.number().min(0).max(1).default(0.6), 'TR-DPO: pi_ref <- alpha pi + (1 - alpha) pi_ref', 'alpha'),
}).strict();

export type DPOConfigInput = z.input<typeof DPOConfigSchema>;
export type DPOConfig = z.output<typeof DPOConfigSchema>;
export type LoraOptions = z.output<typeof LoraOptionsSchema>;

/** A config schema and the cross-key checks zod cannot express: what validating a trainer's config means. */
export interface ConfigDefinition<S extends z.ZodObject = z.ZodObject> {
  schema: S;
  /** Throws a DpoError (prefixed with `source`) when keys contradict each other. */
  check?(c: z.output<S>, source: string): void;
}

/** Configs that went through {@link parseConfig}: a trainer given one does not validate it again. */
const parsed = new WeakMap<object, ConfigDefinition>();

/** Validates `input` against a definition and fills defaults; a problem becomes one DpoError naming the key. */
export function parseConfig<S extends z.ZodObject>(def: ConfigDefinition<S>, input: unknown, source = 'config'): z.output<S> {
  if (typeof input === 'object' && input !== null && parsed.get(input) === def) return input as z.output<S>;
  const r = def.schema.safeParse(input);
  if (!r.success) throw new DpoError(formatZodError(r.error, source));
  return checkedConfig(def, r.data, source);
}

/** Runs a definition's cross-key checks on schema-valid values and marks them validated. */
export function checkedConfig<S extends z.ZodObject>(def: ConfigDefinition<S>, c: z.output<S>, source: string): z.output<S> {
  def.check?.(c, source);
  parsed.set(c as object, def as ConfigDefinition);
  return c;
}

/** The loss keys of DPOConfig and EvalConfig. */
export type DpoLossKeys = z.output<z.ZodObject<typeof DpoLossShape>>;

/** The loss functions' options from a config's loss keys. */
export function lossOptionsOf(c: DpoLossKeys): CombinedLossOptions {
  return {
    beta: c.beta,
    labelSmoothing: c.labelSmoothing,
    unlikelihoodAlpha: c.unlikelihoodAlpha,
    lossTypes: c.lossType,
    lossWeights: c.lossWeights,
    discopopTau: c.discopopTau,
    fDivergence: c.fDivergence,
    fAlphaDivergenceCoef: c.fAlphaDivergenceCoef,
    rpoAlpha: c.rpoAlpha,
  };
}

/** What the policy's scoring graph must compute besides log-probs (LD-DPO, WPO). */
export function scoringOptionsOf(c: DpoLossKeys): ScoringOptions {
  return { ...(c.ldAlpha !== undefined ? { ldAlpha: c.ldAlpha } : {}), ...(c.useWeighting ? { wpo: true } : {}) };
}

function checkLossKeys(c: DpoLossKeys, source: string): void {
  if (c.lossWeights && c.lossWeights.length !== c.lossType.length) {
    throw new DpoError(`${source}: lossWeights has ${c.lossWeights.length} values for ${c.lossType.length} loss types`);
  }
  if (c.referenceFree && c.refModel) throw new DpoError(`${source}: referenceFree and refModel exclude each other`);
  if (c.discopopTau !== undefined && !c.lossType.includes('discopop')) throw new DpoError(`${source}: discopopTau is the discopop loss type's; add discopop to lossType`);
  if (c.fAlphaDivergenceCoef !== undefined && c.fDivergence !== 'alpha_divergence') {
    throw new DpoError(`${source}: fAlphaDivergenceCoef is alpha_divergence's; set fDivergence: alpha_divergence`);
  }
}

export const DPO_CONFIG: ConfigDefinition<typeof DPOConfigSchema> = {
  schema: DPOConfigSchema,
  check(c, source) {
    checkLossKeys(c, source);
    if (c.syncRefEvery > 0 && c.reference !== 'live' && !c.lora) {
      throw new DpoError(`${source}: syncRefEvery (TR-DPO) updates the reference during training; set reference: live`);
    }
    if (c.syncRefEvery > 0 && c.lora) throw new DpoError(`${source}: syncRefEvery (TR-DPO) does not combine with LoRA (the reference is the frozen base)`);
  },
};

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export function parseDpoConfig(input: unknown, source = 'config'): DPOConfig {
  return parseConfig(DPO_CONFIG, input, source);
}

export function formatZodError(error: z.ZodError, source: string): string {
  // Every problem, not the first and a count: fixing one at a time costs a run each.
  const told = error.issues.map((issue) => `'${issue.path.join('.') || '(root)'}': ${issue.message}`);
  return told.length > 1 ? `${source}: ${told.length} problems: ${told.join('; ')}` : `${source}: ${told[0]}`;
}

/** The options of {@link evaluateDpo}: the data and loss keys of DPOConfig, plus `model`. */
export const EvalConfigSchema = z
  .object({
    model: option(z.string().min(1), 'the policy: a Hugging Face model folder or hub id (org/name[@revision])', 'path'),
    data: TrainingOptionsSchema.shape.data,
    ...TrainingOptionsSchema.pick({ format: true, maxLength: true, maxPromptLength: true, maxCompletionLength: true, truncationMode: true, onBadRow: true, batchSize: true }).shape,
    ...DpoLossShape,
    ...TrainingOptionsSchema.pick({ threads: true, device: true }).shape,
    /** Return per-example results (in input order). */
    perExample: z.boolean().default(false),
  })
  .strict();

export type EvalConfigInput = z.input<typeof EvalConfigSchema>;
export type EvalConfig = z.output<typeof EvalConfigSchema>;

export const EVAL_CONFIG: ConfigDefinition<typeof EvalConfigSchema> = { schema: EvalConfigSchema, check: checkLossKeys };

export function parseEvalConfig(input: unknown, source = 'eval'): EvalConfig {
  return parseConfig(EVAL_CONFIG, input, source);
}
