/**
 * The sampling options of the commands that generate from a model (`dpo generate`, `dpo
 * evaluate`, `dpo label`, `dpo quickstart`, `dpo experiment`), described and bounded once. A
 * command picks the keys it has; where its default differs (evaluate samples purely, temperature
 * 1 and no top-k, for an unbiased KL) it re-wraps the key with {@link withDefault}, which keeps
 * the description. Keys without a default fall back to the model's generation_config.json, as
 * transformers' generate() does.
 */
import { z } from 'zod';
import { option } from './option.js';

const fromGenerationConfig = (fallback: string): string => `generation_config.json, else ${fallback}`;

export const SamplingOptionsSchema = z.object({
  numSamples: option(z.number().int().min(1), 'completions per prompt', { arg: 'k', group: 'generation' }).default(1),
  maxNewTokens: option(z.number().int().positive(), 'new tokens per completion at most', { group: 'generation', defaultText: fromGenerationConfig('64') }).optional(),
  temperature: option(z.number().min(0), 'sampling temperature; 0 decodes greedily', { arg: 't', group: 'generation', defaultText: fromGenerationConfig('1') }).optional(),
  topK: option(z.number().int().min(0), 'keep the k most likely tokens; 0 disables', { arg: 'k', group: 'generation', defaultText: fromGenerationConfig('50') }).optional(),
  topP: option(z.number().gt(0).max(1), 'nucleus sampling: keep the smallest set of tokens with probability >= p; 1 disables', {
    arg: 'p',
    group: 'generation',
    defaultText: fromGenerationConfig('1'),
  }).optional(),
  greedy: option(z.boolean(), 'greedy decoding (argmax) instead of sampling', { group: 'generation' }).default(false),
  stop: option(z.array(z.string().min(1)).nonempty(), 'stop a completion at any of these strings (excluded from the output); \\n, \\t and \\\\ are unescaped', {
    arg: 'strings...',
    group: 'generation',
  }).optional(),
  maxPromptTokens: option(z.number().int().positive(), 'keep only the last n prompt tokens (BOS stays), as TRL truncates prompts', { group: 'generation' }).optional(),
  seed: option(z.number().int().min(0), 'random seed of the samples (they do not depend on batch size or order)', { arg: 's', group: 'generation' }).default(0),
  batchSize: option(z.number().int().positive(), 'sequences decoded (and scored) together', { group: 'runtime' }).default(8),
});

/** Where the prompts come from: the model that samples, the prompt file, and what to do with malformed rows. */
export const PromptSourceSchema = z.object({
  model: option(z.string().min(1), 'the model that samples: a Hugging Face model folder, hub id ("org/name[@revision]") or LoRA adapter folder', {
    arg: 'path|hub-id',
    group: 'model',
  }),
  prompts: option(z.string().min(1), 'prompts file or folder (.jsonl, .json, .parquet): {"prompt": ...}, conversational or {"messages": [...]} rows', {
    arg: 'path',
    group: 'data',
  }),
  onBadRow: option(z.enum(['error', 'skip']), 'malformed prompt rows: error (list them and stop) or skip (report them)', { arg: 'action', group: 'data' }).default('error'),
});

/** `key` with another default (its description, metadata and bounds kept). */
export function withDefault<T extends z.ZodType>(key: z.ZodOptional<T> | z.ZodDefault<T>, value: z.output<T>): z.ZodDefault<T> {
  const withValue = (key.unwrap() as T).default(value as never) as z.ZodDefault<T>;
  // Metadata given to the wrapper (option(z.number().default(1), ...)) is the wrapper's; carry it over.
  const meta = key.meta();
  return meta ? withValue.meta(meta) : withValue;
}
