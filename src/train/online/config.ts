/**
 * OnlineDPOConfig: every option of `dpo online`, with the names and defaults of TRL's
 * OnlineDPOConfig (learning rate 5e-7, temperature 0.9, 64 new tokens, max length 512, beta 0.1,
 * loss sigmoid|ipo). Each key carries its help text (config.ts option()): the CLI's flags,
 * defaults and help are derived from this schema.
 */
import { z } from 'zod';
import { DpoError } from '../../errors.js';
import { JUDGE_TEMPLATES } from '../../eval/judge.js';
import { defineConfig, option, TrainingOptionsSchema } from '../core/config.js';
import type { OnlineDPOConfigDocs } from '../core/config-docs.js';

/** A prompts file/folder (`{"prompt": ...}` or `{"messages": [...]}` rows, as `dpo generate` reads) or, in the library, the prompts themselves. */
const prompts = (description: string) => option(z.union([z.string().min(1), z.array(z.string()).nonempty()]), description, 'path');

export const ONLINE_LOSS_TYPES = ['sigmoid', 'ipo'] as const;
export type OnlineLossType = (typeof ONLINE_LOSS_TYPES)[number];

const shared = TrainingOptionsSchema.shape;

export const OnlineDPOConfigSchema = z
  .object({
    model: shared.model,
    prompts: prompts(
      'prompts to sample from: {"prompt": text or messages} or {"messages": [...]} rows in .jsonl/.json/.parquet, or a folder of them (default: the quickstart\'s Brown-corpus openings)',
    ).optional(),
    output: shared.output,
    rewardModel: option(z.string().min(1).optional(), 'rank the two samples with this reward model folder (`dpo reward train` output)', 'path'),
    scorer: option(z.string().min(1).optional(), "rank the two samples with a built-in scorer ('sentiment', 'length', ...)", 'name'),
    judgeUrl: option(z.string().min(1).optional(), 'rank the two samples with an LLM judge: OpenAI-compatible API base URL (…/v1) or …/chat/completions', 'url'),
    judgeModel: option(z.string().min(1).optional(), 'model name sent to the judge endpoint', 'name'),
    judgeApiKeyEnv: option(z.string().min(1).default('OPENAI_API_KEY'), 'environment variable holding the judge API key, sent as Bearer', 'var'),
    judgeTemplate: option(z.enum(JUDGE_TEMPLATES as readonly ['dialogue', 'summarization']).default('dialogue'), 'comparison prompt of the judge', 'name'),
    judgeConcurrency: option(z.number().int().positive().default(4), 'judge requests in flight at once'),
    judgeMaxAttempts: option(z.number().int().positive().default(6), 'tries per judge request (first one included)'),
    judgeTimeout: option(z.number().positive().default(120), 'seconds one judge request may take before it is abandoned (and retried)', 'seconds'),
    refModel: option(z.string().min(1).optional(), 'frozen reference model (default: the starting policy; with LoRA, the base without adapters)', 'path'),
    evalPrompts: prompts('held-out prompts: eval_objective/kl (and eval_objective/scores with a reward) every --eval-steps and at the end').optional(),
    evalOnStart: option(z.boolean().default(false), 'also evaluate on --eval-prompts before the first step (step 0)'),
    lossType: option(z.enum(ONLINE_LOSS_TYPES).default('sigmoid'), 'sigmoid (DPO) or ipo, on summed completion log-probs as TRL online DPO', 'type'),
    beta: option(
      z.preprocess((v) => (typeof v === 'number' ? [v] : v), z.array(z.number().positive()).nonempty()).default([0.1]),
      'beta, or one beta per epoch, comma-separated (the last one stays for later epochs)',
      'betas',
    ),
    missingEosPenalty: option(z.number().min(0).optional(), 'subtract this from the reward of a sample that ends without EOS (reward model or scorer)', 'penalty'),
    maxNewTokens: option(z.number().int().positive().default(64), 'tokens sampled per completion at most (sampling stops earlier at EOS)'),
    temperature: option(z.number().positive().default(0.9), 'sampling temperature'),
    topK: option(z.number().int().min(0).default(0), 'sample from the k most likely tokens (0: all)'),
    topP: option(z.number().gt(0).max(1).default(1), 'nucleus sampling: the smallest set of tokens with this much probability', 'p'),
    maxLength: option(z.number().int().positive().default(512), "prompt + completion tokens at most: prompts keep their last maxLength - maxNewTokens tokens (capped at the model's context)"),
    batchSize: option(z.number().int().positive().default(8), 'prompts per micro-batch (two samples each)'),
    learningRate: option(z.number().positive().default(5e-7), 'peak learning rate (TRL OnlineDPOConfig)', 'lr'),
    ...TrainingOptionsSchema.pick({ gradientAccumulationSteps: true, maxSteps: true }).shape,
    numEpochs: option(z.number().positive().default(3), 'passes over the prompts (may be fractional)'),
    ...TrainingOptionsSchema.pick({ optimizer: true, weightDecay: true, lrScheduler: true, warmupSteps: true, maxGradNorm: true, gradientCheckpointing: true }).shape,
    seed: option(z.number().int().default(42), 'seed of the prompt order, the samples and LoRA init'),
    ...TrainingOptionsSchema.pick({ keepDropout: true, loggingSteps: true, evalSteps: true, saveSteps: true, saveTotalLimit: true, overwriteOutput: true, resume: true, lora: true, threads: true, device: true, saveDtype: true, maxShardSize: true }).shape,
  })
  .strict();

/** OnlineDPO config as given (defaults not yet filled); each key's doc comment is its help (core/config-docs.ts). */
export type OnlineDPOConfigInput = z.input<typeof OnlineDPOConfigSchema> & OnlineDPOConfigDocs;
export type OnlineDPOConfig = z.output<typeof OnlineDPOConfigSchema>;

export const ONLINE_DPO_CONFIG = defineConfig(OnlineDPOConfigSchema, {
  source: 'online',
  check(c, source) {
    const rankers = [c.rewardModel, c.scorer, c.judgeUrl].filter((v) => v !== undefined).length;
    if (rankers !== 1) throw new DpoError(`${source}: give exactly one of rewardModel, scorer and judgeUrl (what ranks the two samples of a prompt)`);
    if (c.judgeUrl && !c.judgeModel) throw new DpoError(`${source}: judgeUrl needs judgeModel (the model name the endpoint serves)`);
    if (c.judgeModel && !c.judgeUrl) throw new DpoError(`${source}: judgeModel needs judgeUrl`);
    if (c.judgeUrl && c.missingEosPenalty !== undefined) throw new DpoError(`${source}: missingEosPenalty applies to rewards (rewardModel or scorer), not to a judge's verdicts`);
    if (c.maxNewTokens >= c.maxLength) throw new DpoError(`${source}: maxNewTokens (${c.maxNewTokens}) leaves no room for the prompt in maxLength (${c.maxLength})`);
  },
});

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export const parseOnlineDpoConfig: (input: unknown, source?: string) => OnlineDPOConfig = ONLINE_DPO_CONFIG.parse;

/** TRL's beta of an epoch: the epoch's entry of the list, the last one past its end. */
export function betaForEpoch(betas: readonly number[], epoch: number): number {
  return betas[Math.min(Math.max(0, Math.floor(epoch)), betas.length - 1)];
}
