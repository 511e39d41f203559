/** The configs of the reference-free pair trainers: CPOConfig (`dpo cpo`) and ORPOConfig (`dpo orpo`), with TRL's names and defaults. */
import { z } from 'zod';
import { dataOption, defineConfig, option, PairBatchShape, TrainingOptionsSchema } from '../core/config.js';
import { CPO_LOSS_TYPES } from './losses.js';
import type { CPOConfigDocs, ORPOConfigDocs } from '../core/config-docs.js';


/** The options every reference-free pair trainer shares (TrainingOptions, pairs only, beta). */
export const ReferenceFreeOptionsSchema = TrainingOptionsSchema.extend({
  data: dataOption('preference pairs (prompt/chosen/rejected, chosen/rejected, conversational...): a .jsonl/.json/.parquet file or a folder (library: or an array of rows)'),
  evalData: dataOption('held-out preference pairs for eval_* metrics (library: or an array of rows)').optional(),
  batchSize: option(z.number().int().positive().default(8), 'pairs per micro-batch'),
  ...PairBatchShape,
});

// CPO, SimPO, AlphaPO: trainer in cpo.ts.
export const CPOConfigSchema = ReferenceFreeOptionsSchema.extend({
  beta: option(z.number().positive().default(0.1), 'temperature beta of the preference term'),
  lossType: option(z.enum(CPO_LOSS_TYPES).default('sigmoid'), 'preference term (ipo, simpo and alphapo compare token-mean log-probs)', 'type'),
  labelSmoothing: option(z.number().min(0).lt(0.5).default(0), 'label smoothing eps of sigmoid, simpo and alphapo', 'eps'),
  cpoAlpha: option(z.number().min(0).default(1), "weight of the chosen completions' NLL term (0 with simpo: SimPO proper; alphapo sets it to 0, as TRL)", 'alpha'),
  simpoGamma: option(z.number().default(0.5), 'target reward margin gamma of simpo and alphapo', 'gamma'),
  alpha: option(z.number().default(0), "AlphaPO's reward shape alpha, applied to every loss type as TRL: each side's reward is (1 - p^-alpha) / alpha of its probability p (token-mean for ipo, simpo, alphapo; 0 = log p)"),
}).strict();

/** CPO config as given (defaults not yet filled); each key's doc comment is its help (core/config-docs.ts). */
export type CPOConfigInput = z.input<typeof CPOConfigSchema> & CPOConfigDocs;
export type CPOConfig = z.output<typeof CPOConfigSchema>;

export const CPO_CONFIG = defineConfig(CPOConfigSchema);

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export const parseCpoConfig: (input: unknown, source?: string) => CPOConfig = CPO_CONFIG.parse;

// ORPO: trainer in orpo.ts.
export const ORPOConfigSchema = ReferenceFreeOptionsSchema.extend({
  beta: option(z.number().positive().default(0.1), "weight lambda of the odds-ratio term (TRL's beta)"),
}).strict();

/** ORPO config as given (defaults not yet filled); each key's doc comment is its help (core/config-docs.ts). */
export type ORPOConfigInput = z.input<typeof ORPOConfigSchema> & ORPOConfigDocs;
export type ORPOConfig = z.output<typeof ORPOConfigSchema>;

export const ORPO_CONFIG = defineConfig(ORPOConfigSchema);

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export const parseOrpoConfig: (input: unknown, source?: string) => ORPOConfig = ORPO_CONFIG.parse;
