/**
 * PPOConfig: every option of `dpo ppo`, with the names and defaults of TRL's PPOTrainer (and
 * Ziegler et al.'s adaptive KL controller). The CLI's kebab-case flags and a config file map onto
 * these camelCase keys one to one.
 */
import { z } from 'zod';
import { DpoError } from '../../errors.js';
import { formatZodError, TrainingOptionsSchema } from '../config.js';

/** A prompts file/folder (`{"prompt": ...}` rows, as `dpo generate` reads) or the prompts themselves. */
const PromptsSchema = z.union([z.string().min(1), z.array(z.string()).nonempty()]);

export const PPOConfigSchema = TrainingOptionsSchema.pick({
  model: true,
  output: true,
  optimizer: true,
  weightDecay: true,
  lrScheduler: true,
  warmupSteps: true,
  maxGradNorm: true,
  seed: true,
  saveSteps: true,
  evalSteps: true,
  resume: true,
  threads: true,
  device: true,
})
  .extend({
    /** Prompts to roll out from. */
    prompts: PromptsSchema,
    /** Held-out prompts: eval_objective/scores and eval_objective/kl every evalSteps and at the end. */
    evalPrompts: PromptsSchema.optional(),
    /** Also evaluate before the first update (transformers' eval_on_start). */
    evalOnStart: z.boolean().default(false),
    /** A reward model folder (`dpo reward train` output) ... */
    rewardModel: z.string().min(1).optional(),
    /** ... or a built-in scorer ('sentiment' = the paper's PPO-GT). Exactly one of the two. */
    scorer: z.string().min(1).optional(),
    /** The frozen reference of the KL penalty (default: the starting policy). */
    refModel: z.string().min(1).optional(),
    /** TRL PPOConfig's learning_rate. */
    learningRate: z.number().positive().default(1.41e-5),
    /** Episodes (prompts, one response each) per rollout. */
    batchSize: z.number().int().positive().default(16),
    /** Episodes per optimizer step (default: batchSize, one minibatch per rollout). */
    miniBatchSize: z.number().int().positive().optional(),
    /** Passes over each rollout's minibatches. */
    ppoEpochs: z.number().int().positive().default(4),
    /** PPO updates (rollout + ppoEpochs of optimizer steps); overrides numEpochs. */
    maxSteps: z.number().int().positive().optional(),
    /** Passes over the prompts (may be fractional). */
    numEpochs: z.number().positive().default(1),
    /** Response length limit in tokens (sampling stops earlier at EOS). */
    maxNewTokens: z.number().int().positive().default(32),
    /** Keep only the last n prompt tokens (TRL truncates prompts from the left). */
    maxPromptLength: z.number().int().positive().optional(),
    /** Initial coefficient beta of the per-token KL penalty. */
    initKlCoef: z.number().min(0).default(0.2),
    /** Target sequence-level KL (nats) of the adaptive controller; omitted: beta stays fixed. */
    targetKl: z.number().positive().optional(),
    /** Horizon of the adaptive controller (episodes). */
    klHorizon: z.number().positive().default(10000),
    /** Discount factor. */
    gamma: z.number().min(0).max(1).default(1),
    /** GAE lambda. */
    lam: z.number().min(0).max(1).default(0.95),
    /** Clip range of the probability ratio. */
    cliprange: z.number().positive().default(0.2),
    /** Clip range of the value predictions around the rollout's values. */
    cliprangeValue: z.number().positive().default(0.2),
    /** Weight of the value loss. */
    vfCoef: z.number().min(0).default(0.1),
    /** Whiten the per-token rewards (scale only) before GAE; advantages are always whitened. */
    whitenRewards: z.boolean().default(false),
    /** Write metrics every n PPO updates. */
    loggingSteps: z.number().int().positive().default(1),
  })
  .strict();

export type PPOConfigInput = z.input<typeof PPOConfigSchema>;
export type PPOConfig = z.output<typeof PPOConfigSchema>;

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export function parsePpoConfig(input: unknown, source = 'ppo'): PPOConfig {
  const r = PPOConfigSchema.safeParse(input);
  if (!r.success) throw new DpoError(formatZodError(r.error, source));
  const c = r.data;
  if (!c.rewardModel === !c.scorer) throw new DpoError(`${source}: give exactly one of rewardModel (a reward model folder) and scorer (e.g. 'sentiment')`);
  if (c.miniBatchSize !== undefined && c.miniBatchSize > c.batchSize) {
    throw new DpoError(`${source}: miniBatchSize (${c.miniBatchSize}) is larger than batchSize (${c.batchSize})`);
  }
  return c;
}
