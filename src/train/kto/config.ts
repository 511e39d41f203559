/** KTOConfig: every option of `dpo kto`, with TRL KTOConfig's names and defaults. */
import { z } from 'zod';
import { KTO_FORMATS } from '../../data/kto-format.js';
import { dataOption, defineConfig, option, TrainingOptionsSchema } from '../core/config.js';
import type { KTOConfigDocs } from '../core/config-docs.js';

export const KTO_LOSS_TYPES = ['kto', 'apo_zero_unpaired'] as const;
export type KtoLossType = (typeof KTO_LOSS_TYPES)[number];

export const KTOConfigSchema = TrainingOptionsSchema.extend({
  data: dataOption(
    'prompt/completion/label rows (label true = desirable), or preference pairs (split into chosen: true, rejected: false): a .jsonl/.json/.parquet file or a folder (library: or an array of rows)',
  ),
  evalData: dataOption('held-out data for eval_* metrics (same kinds as --data) (library: or an array of rows)').optional(),
  format: option(z.enum(['auto', ...KTO_FORMATS] as [string, ...string[]]).default('auto'), 'data layout (detected per file by default)', 'name'),
  batchSize: option(z.number().int().positive().default(8), 'examples (completions) per micro-batch'),
  beta: option(z.number().positive().default(0.1), 'temperature beta (strength of the KL constraint)'),
  lossType: option(z.enum(KTO_LOSS_TYPES).default('kto'), 'kto, or apo_zero_unpaired (no KL term)', 'type'),
  desirableWeight: option(z.number().positive().default(1), 'weight w_d of the desirable examples\' losses', 'w'),
  undesirableWeight: option(z.number().positive().default(1), 'weight w_u of the undesirable examples\' losses', 'w'),
  refModel: option(z.string().min(1).optional(), 'reference model (default: the starting policy)', 'path'),
}).strict();

/** KTO config as given (defaults not yet filled); each key's doc comment is its help (core/config-docs.ts). */
export type KTOConfigInput = z.input<typeof KTOConfigSchema> & KTOConfigDocs;
export type KTOConfig = z.output<typeof KTOConfigSchema>;

export const KTO_CONFIG = defineConfig(KTOConfigSchema);

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export const parseKtoConfig: (input: unknown, source?: string) => KTOConfig = KTO_CONFIG.parse;
