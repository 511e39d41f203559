/** RewardConfig: every option of `dpo reward train`, with TRL RewardConfig's names and defaults. */
import { z } from 'zod';
import { dataOption, defineConfig, option, TrainingOptionsSchema } from '../core/config.js';
import type { RewardConfigDocs } from '../core/config-docs.js';

export const RewardConfigSchema = TrainingOptionsSchema.extend({
  data: dataOption('preference data (pairs in any `dpo train` format, or rankings): a .jsonl/.json/.parquet file or a folder (library: or an array of rows)'),
  evalData: dataOption('held-out data for eval_* metrics (same kinds as --data) (library: or an array of rows)').optional(),
  batchSize: option(z.number().int().positive().default(8), 'rows per micro-batch'),
  /** TRL RewardConfig's default. */
  learningRate: option(z.number().positive().default(1e-4), 'peak learning rate', 'lr'),
  /**
   * TRL's center_rewards_coefficient (Eisenstein et al. 2023, eq. 2): adds
   * coef * mean over rows of (sum of the row's rewards)^2, which for pairs is TRL's (r_w + r_l)^2.
   */
  centerRewardsCoefficient: option(
    z.number().min(0).optional(),
    "TRL's center_rewards_coefficient: + c * mean((r_w + r_l)^2) (recommended 0.01)",
    'c',
  ),
}).strict();

/** Reward config as given (defaults not yet filled); each key's doc comment is its help (core/config-docs.ts). */
export type RewardConfigInput = z.input<typeof RewardConfigSchema> & RewardConfigDocs;
export type RewardConfig = z.output<typeof RewardConfigSchema>;

export const REWARD_CONFIG = defineConfig(RewardConfigSchema);

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export const parseRewardConfig: (input: unknown, source?: string) => RewardConfig = REWARD_CONFIG.parse;
