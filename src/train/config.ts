/**
 * DPOConfig: every option of `dpo train`, with TRL's defaults. The CLI's kebab-case flags and a
 * run.yaml/json config file map onto these camelCase keys one to one.
 */
import { z } from 'zod';
import { DpoError } from '../errors.js';
import { PREFERENCE_FORMATS } from '../data/preference-format.js';
import { LOSS_TYPES } from './losses.js';

export const LoraOptionsSchema = z
  .object({
    r: z.number().int().positive().default(8),
    alpha: z.number().positive().default(16),
    dropout: z.number().min(0).max(1).default(0),
    targetModules: z.union([z.array(z.string().min(1)).nonempty(), z.literal('all-linear')]).optional(),
  })
  .strict();

export const TrainingOptionsSchema = z.object({
  /** Policy model: a local Hugging Face folder or a hub id. */
  model: z.string().min(1),
  /** Training data: a file (JSONL, JSON, Parquet) or a folder of them. */
  data: z.string().min(1),
  /** Output folder: final model, metrics.jsonl, checkpoints. */
  output: z.string().min(1),
  evalData: z.string().min(1).optional(),
  format: z.enum(['auto', ...PREFERENCE_FORMATS] as [string, ...string[]]).default('auto'),
  optimizer: z.enum(['adamw', 'rmsprop', 'sgd']).default('adamw'),
  learningRate: z.number().positive().default(1e-6),
  weightDecay: z.number().min(0).default(0),
  lrScheduler: z.enum(['constant', 'linear', 'cosine']).default('linear'),
  warmupSteps: z.number().int().min(0).default(0),
  /** Rows (pairs) per optimizer micro-batch. */
  batchSize: z.number().int().positive().default(8),
  gradientAccumulationSteps: z.number().int().positive().default(1),
  /** Global gradient-norm clipping; 0 disables. */
  maxGradNorm: z.number().min(0).default(1.0),
  maxSteps: z.number().int().positive().optional(),
  numEpochs: z.number().positive().default(3),
  seed: z.number().int().default(42),
  maxLength: z.number().int().positive().default(1024),
  maxPromptLength: z.number().int().positive().optional(),
  maxCompletionLength: z.number().int().positive().optional(),
  truncationMode: z.enum(['keep_start', 'keep_end']).default('keep_end'),
  onBadRow: z.enum(['error', 'skip']).default('error'),
  groupByLength: z.boolean().default(false),
  /**
   * Keep the model's dropout (config.json's probabilities) in the training forward pass. Off by
   * default, as TRL. Masks come from a generator seeded by `seed`: a run is reproducible, but a
   * resumed run draws a fresh mask sequence rather than continuing the interrupted one.
   */
  keepDropout: z.boolean().default(false),
  padToMultipleOf: z.number().int().positive().optional(),
  loggingSteps: z.number().int().positive().default(10),
  evalSteps: z.number().int().positive().optional(),
  saveSteps: z.number().int().positive().optional(),
  /** true: continue from the newest checkpoint in `output`; a path: from that checkpoint. */
  resume: z.union([z.boolean(), z.string().min(1)]).default(false),
  threads: z.number().int().positive().optional(),
  device: z.enum(['cpu', 'cuda']).default('cpu'),
  lora: LoraOptionsSchema.optional(),
  /** Where reference log-probs are cached (default $DPO_TS_CACHE or ~/.cache/dpo-ts). */
  cacheDir: z.string().min(1).optional(),
});

export const DPOConfigSchema = TrainingOptionsSchema.extend({
  beta: z.number().positive().default(0.1),
  lossType: z.array(z.enum(LOSS_TYPES)).nonempty().default(['sigmoid']),
  lossWeights: z.array(z.number()).nonempty().optional(),
  labelSmoothing: z.number().min(0).lt(0.5).default(0),
  /** alpha of loss type 'unlikelihood' (the DPO paper's coefficient on the unlikelihood term). */
  unlikelihoodAlpha: z.number().min(0).default(1),
  referenceFree: z.boolean().default(false),
  /** precompute: reference log-probs once, cached on disk; live: a frozen reference copy scores every batch. */
  reference: z.enum(['precompute', 'live']).default('precompute'),
  refModel: z.string().min(1).optional(),
  /** TR-DPO: every N steps pi_ref <- alpha pi + (1 - alpha) pi_ref (needs reference 'live'; 0 disables). */
  syncRefEvery: z.number().int().min(0).default(0),
  syncRefAlpha: z.number().min(0).max(1).default(0.6),
}).strict();

export type DPOConfigInput = z.input<typeof DPOConfigSchema>;
export type DPOConfig = z.output<typeof DPOConfigSchema>;
export type LoraOptions = z.output<typeof LoraOptionsSchema>;

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export function parseDpoConfig(input: unknown, source = 'config'): DPOConfig {
  const r = DPOConfigSchema.safeParse(input);
  if (!r.success) throw new DpoError(formatZodError(r.error, source));
  const c = r.data;
  if (c.lossWeights && c.lossWeights.length !== c.lossType.length) {
    throw new DpoError(`${source}: lossWeights has ${c.lossWeights.length} values for ${c.lossType.length} loss types`);
  }
  if (c.syncRefEvery > 0 && c.reference !== 'live' && !c.lora) {
    throw new DpoError(`${source}: syncRefEvery (TR-DPO) updates the reference during training; set reference: live`);
  }
  if (c.syncRefEvery > 0 && c.lora) throw new DpoError(`${source}: syncRefEvery (TR-DPO) does not combine with LoRA (the reference is the frozen base)`);
  if (c.referenceFree && c.refModel) throw new DpoError(`${source}: referenceFree and refModel exclude each other`);
  return c;
}

export function formatZodError(error: z.ZodError, source: string): string {
  const issue = error.issues[0];
  const key = issue.path.join('.') || '(root)';
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problems)` : '';
  return `${source}: '${key}': ${issue.message}${more}`;
}

/** The options of {@link evaluateDpo}: the data and loss keys of DPOConfig, plus `model`. */
export const EvalConfigSchema = DPOConfigSchema.pick({
  data: true,
  refModel: true,
  format: true,
  batchSize: true,
  maxLength: true,
  maxPromptLength: true,
  maxCompletionLength: true,
  truncationMode: true,
  onBadRow: true,
  threads: true,
  device: true,
  beta: true,
  lossType: true,
  lossWeights: true,
  labelSmoothing: true,
  unlikelihoodAlpha: true,
  referenceFree: true,
})
  .extend({
    /** The policy: a local Hugging Face folder or a hub id. */
    model: z.string().min(1),
    /** Return per-example results (in input order). */
    perExample: z.boolean().default(false),
  })
  .strict();

export type EvalConfigInput = z.input<typeof EvalConfigSchema>;
export type EvalConfig = z.output<typeof EvalConfigSchema>;

export function parseEvalConfig(input: unknown, source = 'eval'): EvalConfig {
  const r = EvalConfigSchema.safeParse(input);
  if (!r.success) throw new DpoError(formatZodError(r.error, source));
  const c = r.data;
  if (c.lossWeights && c.lossWeights.length !== c.lossType.length) {
    throw new DpoError(`${source}: lossWeights has ${c.lossWeights.length} values for ${c.lossType.length} loss types`);
  }
  if (c.referenceFree && c.refModel) throw new DpoError(`${source}: referenceFree and refModel exclude each other`);
  return c;
}
