/**
 * Help metadata of a config key, attached to its zod schema: every command's flags, help text,
 * defaults and help groups are read off these schemas (src/cli/schema-options.ts), so a default,
 * a choice or a description is written once, where the library validates the key.
 */
import type { z } from 'zod';

/**
 * The help groups, in the order `--help` shows them: the sections of TRL's config docs (model,
 * data, loss, optimisation, LoRA, reference, checkpoints, logging, runtime) plus sampling and
 * reward for the commands that generate.
 */
export const OPTION_GROUPS = ['model', 'data', 'loss', 'generation', 'reward', 'optimisation', 'lora', 'reference', 'checkpoints', 'logging', 'runtime'] as const;
export type OptionGroup = (typeof OPTION_GROUPS)[number];

/** Help of one config key. */
export interface OptionMeta {
  description: string;
  /** The placeholder of its value (`--model <path>`). */
  arg?: string;
  /** Its help group (default: {@link groupOfKey}). */
  group?: OptionGroup;
  /** The default as help shows it, for a key whose default is not a zod default ('generation_config.json, else 1'). */
  defaultText?: string;
  /** A list key whose flag is given once per value (`--pairs a.jsonl --pairs b.jsonl`). */
  repeat?: boolean;
}

/** Attaches help text (and the value's placeholder, or more metadata) to a config key's schema. */
export function option<T extends z.ZodType>(schema: T, description: string, arg?: string | Omit<OptionMeta, 'description'>): T {
  const more = typeof arg === 'string' ? { arg } : (arg ?? {});
  return schema.meta({ description, ...more });
}

/**
 * The group of keys that carry none in their metadata, by key name: a name means the same in
 * every trainer's config (learningRate is optimisation in DPO, SFT, PPO...), so it is grouped
 * once here. Keys named nowhere are the method's own (loss) options.
 */
const KEY_GROUPS: Record<Exclude<OptionGroup, 'loss'>, readonly string[]> = {
  model: ['model', 'keepDropout'],
  data: [
    'data', 'evalData', 'prompts', 'evalPrompts', 'pairs', 'format', 'maxLength', 'maxPromptLength', 'maxCompletionLength', 'truncationMode',
    'onBadRow', 'paddingFree', 'prefixSharing', 'padToMultipleOf', 'groupByLength',
  ],
  generation: ['maxNewTokens', 'temperature', 'topK', 'topP', 'numSamples', 'stop', 'greedy', 'maxPromptTokens'],
  reward: ['rewardModel', 'scorer', 'template', 'judgeUrl', 'judgeModel', 'judgeApiKeyEnv', 'judgeTemplate', 'judgeConcurrency', 'judgeMaxAttempts', 'judgeTimeout', 'missingEosPenalty'],
  optimisation: [
    'batchSize', 'miniBatchSize', 'optimizer', 'learningRate', 'weightDecay', 'lrScheduler', 'warmupSteps', 'gradientAccumulationSteps',
    'maxGradNorm', 'maxSteps', 'numEpochs', 'ppoEpochs', 'seed',
  ],
  lora: ['lora'],
  reference: ['refModel', 'referenceFree', 'reference', 'syncRefEvery', 'syncRefAlpha', 'cacheDir'],
  checkpoints: ['output', 'json', 'overwriteOutput', 'resume', 'saveSteps', 'saveTotalLimit', 'saveDtype', 'maxShardSize'],
  logging: ['loggingSteps', 'evalSteps', 'evalOnStart'],
  runtime: ['threads', 'device', 'stepsPerRun', 'gradientCheckpointing'],
};

const GROUP_BY_KEY = new Map(Object.entries(KEY_GROUPS).flatMap(([g, keys]) => keys.map((k) => [k, g as OptionGroup] as const)));

/** A key's help group: its metadata's, else the table's by (top-level) key name, else 'loss'. */
export function groupOfKey(key: string, meta?: OptionMeta): OptionGroup {
  return meta?.group ?? GROUP_BY_KEY.get(key.split('.')[0]) ?? 'loss';
}
