/**
 * PPOConfig: every option of `dpo ppo`, with the names and defaults of TRL's PPOTrainer (and
 * Ziegler et al.'s adaptive KL controller). Each key carries its help text (config.ts option()):
 * the CLI's flags, defaults and help are derived from this schema.
 */
import { z } from 'zod';
import { DpoError } from '../../errors.js';
import { defineConfig, option, TrainingOptionsSchema } from '../core/config.js';
import type { PPOConfigDocs } from '../core/config-docs.js';

/** A prompts file/folder (`{"prompt": ...}` rows, as `dpo generate` reads) or, in the library, the prompts themselves. */
const prompts = (description: string) => option(z.union([z.string().min(1), z.array(z.string()).nonempty()]), description, 'path');

export const PPOConfigSchema = z
  .object({
    model: option(z.string().min(1), 'starting policy: a Hugging Face model folder or hub id (a PPO output continues with its value head)', 'path'),
    prompts: prompts('prompts to roll out from: {"prompt": ...} rows in .jsonl/.json/.parquet, or a folder of them'),
    output: option(z.string().min(1), 'output folder: final policy with its value head, metrics.jsonl, checkpoints', 'dir'),
    rewardModel: option(z.string().min(1).optional(), "reward model folder (`dpo reward train` output); rewards are raw minus its reward_offset", 'path'),
    scorer: option(z.string().min(1).optional(), "built-in reward instead of a reward model ('sentiment' is the DPO paper's PPO-GT; 'length')", 'name'),
    refModel: option(z.string().min(1).optional(), 'frozen reference of the KL penalty (default: the starting policy)', 'path'),
    evalPrompts: prompts('held-out prompts: eval_objective/scores and eval_objective/kl every --eval-steps and at the end').optional(),
    evalOnStart: option(z.boolean().default(false), 'also evaluate on --eval-prompts before the first update (step 0)'),
    batchSize: option(z.number().int().positive().default(16), 'episodes (prompts, one sampled response each) per rollout'),
    miniBatchSize: option(z.number().int().positive().optional(), 'episodes per optimizer step (default: --batch-size)'),
    gradientAccumulationSteps: option(
      z.number().int().positive().default(1),
      'micro-batches each minibatch is cut into (one forward/backward each, gradients summed before the step): the same step as the whole minibatch at a fraction of the memory',
    ),
    ppoEpochs: option(z.number().int().positive().default(4), 'passes over each rollout, in shuffled minibatches'),
    maxSteps: option(z.number().int().positive().optional(), 'PPO updates (rollout + its optimizer steps); overrides --num-epochs'),
    numEpochs: option(z.number().positive().default(1), 'passes over the prompts (may be fractional)'),
    maxNewTokens: option(z.number().int().positive().default(32), 'response length limit (sampling stops earlier at EOS)'),
    maxPromptLength: option(z.number().int().positive().optional(), 'keep only the last n prompt tokens (TRL truncates prompts from the left)'),
    learningRate: option(z.number().positive().default(1.41e-5), 'peak learning rate (TRL PPOConfig)', 'lr'),
    initKlCoef: option(z.number().min(0).default(0.2), 'initial coefficient beta of the per-token KL penalty -beta (log pi - log pi_ref)', 'beta'),
    targetKl: option(z.number().positive().optional(), 'adaptive KL controller: steer the sequence-level KL to this target (default: beta fixed)', 'nats'),
    klHorizon: option(z.number().positive().default(10000), 'adaptive controller horizon: beta *= 1 + clip(KL/target - 1, ±0.2) * episodes / horizon', 'episodes'),
    klControl: option(
      z.enum(['adaptive', 'latched']).default('adaptive'),
      "how beta follows --target-kl: 'adaptive' (Ziegler/TRL, above) or 'latched' (beta held until the KL first reaches half the target, then corrected towards the KL extrapolated one update ahead, by up to x2 up or /1.5 down per update (down only once the KL stops rising), resting within 15% of the target, at most 10x its initial value)",
      'name',
    ),
    gamma: option(z.number().min(0).max(1).default(1), 'discount factor'),
    lam: option(z.number().min(0).max(1).default(0.95), 'GAE lambda', 'lambda'),
    cliprange: option(z.number().positive().default(0.2), 'clip range of the probability ratio (surrogate objective)', 'eps'),
    cliprangeValue: option(z.number().positive().default(0.2), 'clip range of the value predictions around the rollout values', 'eps'),
    vfCoef: option(z.number().min(0).default(0.1), 'weight of the value loss', 'c'),
    whitenRewards: option(z.boolean().default(false), 'whiten the per-token rewards (scale only) before GAE; advantages are always whitened'),
    ...TrainingOptionsSchema.pick({ optimizer: true, weightDecay: true }).shape,
    lrScheduler: option(z.enum(['constant', 'linear', 'cosine']).default('linear'), 'learning-rate schedule over the updates, after warm-up', 'name'),
    warmupSteps: option(z.number().int().min(0).default(0), 'linear warm-up updates'),
    ...TrainingOptionsSchema.pick({ maxGradNorm: true, gradientCheckpointing: true, lora: true }).shape,
    seed: option(z.number().int().default(42), 'seed of the prompt order, the samples and the minibatch order'),
    loggingSteps: option(z.number().int().positive().default(1), 'write metrics every n updates'),
    evalSteps: option(z.number().int().positive().optional(), 'evaluate on --eval-prompts every n updates (and always at the end)'),
    saveSteps: option(z.number().int().positive().optional(), 'save a checkpoint every n updates'),
    ...TrainingOptionsSchema.pick({ saveTotalLimit: true, resume: true, overwriteOutput: true, threads: true, device: true, saveDtype: true, maxShardSize: true }).shape,
  })
  .strict();

/** PPO config as given (defaults not yet filled); each key's doc comment is its help (core/config-docs.ts). */
export type PPOConfigInput = z.input<typeof PPOConfigSchema> & PPOConfigDocs;
export type PPOConfig = z.output<typeof PPOConfigSchema>;

export const PPO_CONFIG = defineConfig(PPOConfigSchema, {
  source: 'ppo',
  check(c, source) {
    if (!c.rewardModel === !c.scorer) throw new DpoError(`${source}: give exactly one of rewardModel (a reward model folder) and scorer (e.g. 'sentiment')`);
    if (c.miniBatchSize !== undefined && c.miniBatchSize > c.batchSize) {
      throw new DpoError(`${source}: miniBatchSize (${c.miniBatchSize}) is larger than batchSize (${c.batchSize})`);
    }
    const miniBatch = c.miniBatchSize ?? c.batchSize;
    if (c.gradientAccumulationSteps > miniBatch) {
      throw new DpoError(`${source}: gradientAccumulationSteps (${c.gradientAccumulationSteps}) is larger than the ${miniBatch} episodes of a minibatch: each micro-batch needs at least one`);
    }
  },
});

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export const parsePpoConfig: (input: unknown, source?: string) => PPOConfig = PPO_CONFIG.parse;
