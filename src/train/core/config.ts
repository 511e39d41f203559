/**
 * The options every trainer shares (TrainingOptionsSchema, LoRA's, the scored-batch layout) and
 * the machinery of a trainer's config: {@link option} (help text as zod metadata),
 * {@link defineConfig} (a schema, its cross-key checks and its parser) and {@link parseConfig}.
 * Each key carries its help text and its value's placeholder as zod metadata ({@link OptionMeta}):
 * the CLI's flags, choices, defaults and help are derived from these schemas, so a default or a
 * choice is written once. The CLI's kebab-case flags and a run.yaml/json config file map onto the
 * camelCase keys one to one. Each method's own keys are in its folder's config.ts.
 */
import { z } from 'zod';
import { DpoError } from '../../errors.js';
import { PREFERENCE_FORMATS } from '../../data/preference-format.js';
import { SAVE_DTYPES } from '../../io/save-dtype.js';
import { parseShardSize } from '../../io/shards.js';
import { LORA_DEFAULTS, loraNumbersProblem } from '../../models/lora.js';
import { option } from '../../config/option.js';
import { RuntimeOptionsSchema } from '../../config/runtime.js';

export { option, type OptionMeta } from '../../config/option.js';

/** LoRA's keys: defaults are PEFT's ({@link LORA_DEFAULTS}), ranges are checked by models/lora.ts's one check. */
export const LoraOptionsSchema = z
  .object({
    r: option(z.number().int().default(LORA_DEFAULTS.r), "LoRA rank (PEFT's default; any --lora-* flag enables LoRA)"),
    alpha: option(z.number().default(LORA_DEFAULTS.alpha), "LoRA alpha: the update is scaled by alpha / r (PEFT's default)"),
    dropout: option(z.number().default(LORA_DEFAULTS.dropout), "LoRA dropout on the adapters' input, in [0, 1) (training only; PEFT's default)", 'p'),
    targetModules: option(
      z.union([z.array(z.string().min(1)).nonempty(), z.literal('all-linear')]).optional(),
      "LoRA target modules, comma-separated, or 'all-linear' (default: the family's attention projections)",
      'modules',
    ),
  })
  .strict()
  .superRefine((c, ctx) => {
    const problem = loraNumbersProblem(c);
    if (problem) ctx.addIssue({ code: 'custom', path: [problem.key], message: problem.message });
  });

/**
 * A data key: a .jsonl/.json/.parquet file or a folder of them, or (library only) the rows
 * themselves, an array of row objects in any of the file formats.
 */
export function dataOption(description: string): z.ZodUnion<[z.ZodString, z.ZodArray<z.ZodCustom<object, object>>]> {
  return option(z.union([z.string().min(1), z.array(z.custom<object>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), 'expected a row object')).min(1)]), description, 'path');
}

export const TrainingOptionsSchema = z.object({
  model: option(z.string().min(1), 'policy model: a Hugging Face model folder or hub id (org/name[@revision])', 'path'),
  data: dataOption('preference data: a .jsonl/.json/.parquet file or a folder of them (library: or an array of rows)'),
  output: option(z.string().min(1), 'output folder: final model, metrics.jsonl, checkpoints', 'dir'),
  evalData: dataOption('held-out preference data for eval_* metrics (library: or an array of rows)').optional(),
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
  lora: option(LoraOptionsSchema.optional(), 'train LoRA adapters with the default rank/alpha (also enabled by any --lora-* flag)'),
  /** Where reference log-probs are cached (default $DPO_TS_CACHE or ~/.cache/dpo-ts). */
  cacheDir: option(z.string().min(1).optional(), 'reference log-prob cache (default $DPO_TS_CACHE or ~/.cache/dpo-ts)', 'dir'),
  ...RuntimeOptionsSchema.shape,
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

/** Options of the trainers whose rows are pairs (`dpo train`, `dpo cpo`, `dpo orpo`). */
export const PairBatchShape = {
  prefixSharing: option(
    z.enum(['auto', 'on', 'off']).default('auto'),
    "each pair's prompt computed once: one sequence prompt + chosen + rejected, the rejected tokens masked from the chosen ones and their positions continuing from the prompt (same log-probs); auto: for batches where that makes the rows shorter",
    'mode',
  ),
};

export type LoraOptions = z.output<typeof LoraOptionsSchema>;

/** A config schema and the cross-key checks zod cannot express: what validating a trainer's config means. */
export interface ConfigDefinition<S extends z.ZodObject = z.ZodObject> {
  schema: S;
  /** Throws a DpoError (prefixed with `source`) when keys contradict each other. */
  check?(c: z.output<S>, source: string): void;
}

/** A trainer's config definition with its parser: what defineConfig returns. */
export interface DefinedConfig<S extends z.ZodObject> extends ConfigDefinition<S> {
  /** Validates `input` and fills defaults; a problem becomes one DpoError naming the key, prefixed with `source`. */
  parse(input: unknown, source?: string): z.output<S>;
}

/**
 * A config definition from its schema and cross-key checks, with its parser (`parse`), whose
 * error messages start with `source` unless the caller names another.
 */
export function defineConfig<S extends z.ZodObject>(
  schema: S,
  o: { source?: string; check?: (c: z.output<S>, source: string) => void } = {},
): DefinedConfig<S> {
  const def: DefinedConfig<S> = {
    schema,
    ...(o.check ? { check: o.check } : {}),
    parse: (input, source = o.source ?? 'config') => parseConfig(def, input, source),
  };
  return def;
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
  // Conflicts between the shared training options, for every trainer: found before any work
  // (not after the reference pass, where the runner would find them).
  const t = c as Partial<Record<'stepsPerRun' | 'gradientAccumulationSteps', number>>;
  if (t.stepsPerRun !== undefined && t.stepsPerRun > 1 && t.gradientAccumulationSteps !== undefined && t.gradientAccumulationSteps > 1) {
    throw new DpoError(`${source}: stepsPerRun ${t.stepsPerRun} does not combine with gradientAccumulationSteps ${t.gradientAccumulationSteps}: use one of them (or a larger batchSize)`);
  }
  def.check?.(c, source);
  parsed.set(c as object, def as ConfigDefinition);
  return c;
}

export function formatZodError(error: z.ZodError, source: string): string {
  // Every problem, not the first and a count: fixing one at a time costs a run each.
  const told = error.issues.map((issue) => `'${issue.path.join('.') || '(root)'}': ${issue.message}`);
  return told.length > 1 ? `${source}: ${told.length} problems: ${told.join('; ')}` : `${source}: ${told[0]}`;
}

