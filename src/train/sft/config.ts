/** SFTConfig: every option of `dpo sft`, with TRL SFTConfig's names and defaults. */
import { z } from 'zod';
import { PREFERENCE_FORMATS } from '../../data/preference-format.js';
import { SFT_FORMATS } from '../../data/sft-format.js';
import { dataOption, defineConfig, option, ScoredBatchShape, TrainingOptionsSchema } from '../core/config.js';
import type { SFTConfigDocs } from '../core/config-docs.js';

/** Formats `dpo sft` accepts: SFT layouts and every preference layout (chosen completions). */
export const SFT_DATA_FORMATS = [...SFT_FORMATS, ...PREFERENCE_FORMATS] as const;

export const SFTConfigSchema = TrainingOptionsSchema.extend({
  ...ScoredBatchShape,
  data: dataOption(
    'SFT data (text, prompt/completion or messages rows) or preference data (trains on the chosen completions): a .jsonl/.json/.parquet file or a folder (library: or an array of rows)',
  ),
  evalData: dataOption('held-out data for eval_* metrics (same kinds as --data) (library: or an array of rows)').optional(),
  format: option(z.enum(['auto', ...SFT_DATA_FORMATS] as [string, ...string[]]).default('auto'), 'data layout (detected per file by default)', 'name'),
  batchSize: option(z.number().int().positive().default(8), 'rows per micro-batch'),
  /** TRL SFTConfig's default. */
  learningRate: option(z.number().positive().default(2e-5), 'peak learning rate', 'lr'),
}).strict();

/** SFT config as given (defaults not yet filled); each key's doc comment is its help (core/config-docs.ts). */
export type SFTConfigInput = z.input<typeof SFTConfigSchema> & SFTConfigDocs;
export type SFTConfig = z.output<typeof SFTConfigSchema>;

export const SFT_CONFIG = defineConfig(SFTConfigSchema);

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export const parseSftConfig: (input: unknown, source?: string) => SFTConfig = SFT_CONFIG.parse;
