/**
 * Text-level generation: prompts in, completions out, with transformers' defaults (read from
 * generation_config.json when given) and its EOS conventions.
 */
import { DpoError } from '../errors.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';
import type { CausalLM } from '../models/types.js';
import { GenerationStopped, type FinishReason, type GeneratedSequence, type GenerateIdsOptions, type GenerationStats, type IdGenerator } from './types.js';

type JsonLike = Readonly<Record<string, unknown>>;

export interface TextGenerationOptions {
  /** Default: generation_config's max_new_tokens, else 64. */
  maxNewTokens?: number;
  /** Default: generation_config's do_sample, else false (greedy), as transformers. */
  doSample?: boolean;
  /** Default: generation_config's temperature, else 1. */
  temperature?: number;
  /** Default: generation_config's top_k, else 50 (transformers' default); 0 disables. */
  topK?: number;
  /** Default: generation_config's top_p, else 1. */
  topP?: number;
  /** Completions per prompt (default 1). */
  numSamples?: number;
  seed?: number;
  /** A row stops at the first of these in its decoded completion, which then excludes it. */
  stop?: readonly string[];
  /** Sequences decoded together (default 8). */
  batchSize?: number;
  /** generation_config.json (e.g. `Pretrained.generationConfig`): defaults and EOS ids. */
  generationConfig?: JsonLike;
  /** Override the EOS ids (default: generation_config, config.json and tokenizer EOS ids together). */
  eosTokenIds?: readonly number[];
  /**
   * Keep only the last N prompt tokens (the tokenizer's BOS, when it adds one, stays in front),
   * as TRL truncates prompts from the left. Default: no truncation.
   */
  maxPromptTokens?: number;
  /** Drop special tokens when decoding completions (default true, as TRL decodes samples). */
  skipSpecialTokens?: boolean;
  onProgress?: GenerateIdsOptions['onProgress'];
  /** See {@link GenerateIdsOptions.stopRequested}; the thrown GenerationStopped then holds a TextGenerationResult. */
  stopRequested?: GenerateIdsOptions['stopRequested'];
}

export interface TextGenerationResult {
  /** Per prompt, `numSamples` completions (EOS and stop strings excluded). */
  completions: string[][];
  /** Per prompt and sample, the generated token ids (the final EOS included when there is one). */
  tokenIds: number[][][];
  /** Per prompt and sample: 'eos', 'stop' (stop string) or 'length' (max new tokens). */
  finishReasons: FinishReason[][];
  /** The token ids each prompt was encoded to. */
  promptTokenIds: number[][];
  stats: GenerationStats;
}

function ids(value: unknown): number[] {
  if (typeof value === 'number' && Number.isInteger(value)) return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number' && Number.isInteger(v));
  return [];
}

/**
 * Every id that ends a sequence: generation_config's eos_token_id (number or list), config.json's
 * and the tokenizer's EOS, and the chat template's end-of-turn token (chat models often list their
 * end-of-turn token in only one of them, or nowhere: early Llama 3 folders name only <|end_of_text|>).
 */
export function resolveEosTokenIds(model: CausalLM, tokenizer: TextTokenizer | undefined, generationConfig?: JsonLike): number[] {
  const fromTokenizer = tokenizer ? [tokenizer.eosTokenId, ...(tokenizer.chatEndOfTurn ? [tokenizer.chatEndOfTurn.id] : [])] : [];
  const all = [...ids(generationConfig?.eos_token_id), ...ids(model.config.eosTokenId), ...fromTokenizer];
  return [...new Set(all)].filter((id) => id >= 0 && id < model.config.vocabSize);
}

function field<T>(config: JsonLike | undefined, key: string, check: (v: unknown) => v is T): T | undefined {
  const v = config?.[key];
  return v !== undefined && v !== null && check(v) ? v : undefined;
}
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

/** Sampling settings: explicit options, then generation_config.json, then transformers' defaults. */
export function resolveSampling(options: TextGenerationOptions): { maxNewTokens: number; doSample: boolean; temperature: number; topK: number; topP: number } {
  const gc = options.generationConfig;
  return {
    maxNewTokens: options.maxNewTokens ?? field(gc, 'max_new_tokens', isNum) ?? 64,
    doSample: options.doSample ?? field(gc, 'do_sample', isBool) ?? false,
    temperature: options.temperature ?? field(gc, 'temperature', isNum) ?? 1,
    topK: options.topK ?? field(gc, 'top_k', isNum) ?? 50,
    topP: options.topP ?? field(gc, 'top_p', isNum) ?? 1,
  };
}

/**
 * Token ids of a prompt, as the data pipeline tokenizes prompts: no special tokens added except
 * the tokenizer's BOS in front (once; a chat template that already wrote it is not doubled).
 * An empty prompt starts from the BOS token (config.json's bos_token_id when the tokenizer adds none).
 */
export function encodePrompt(tokenizer: TextTokenizer, model: CausalLM, text: string): number[] {
  const out = tokenizer.encode(text);
  const bos = tokenizer.bosTokenId;
  if (bos !== undefined && out[0] !== bos) out.unshift(bos);
  if (out.length === 0) {
    const start = model.config.bosTokenId;
    if (start === undefined) throw new DpoError('an empty prompt needs a BOS token, and neither the tokenizer nor config.json has one');
    out.push(start);
  }
  return out;
}

/** The last `max` ids of a prompt, keeping a leading BOS in front. */
export function truncatePromptIds(ids: readonly number[], max: number, bos: number | undefined): number[] {
  if (!Number.isInteger(max) || max < 1) throw new DpoError(`max prompt tokens must be a positive integer, got ${max}`);
  if (ids.length <= max) return [...ids];
  if (bos !== undefined && ids[0] === bos) return max === 1 ? [bos] : [bos, ...ids.slice(ids.length - (max - 1))];
  return ids.slice(ids.length - max);
}

/** Runs a compiled Generator on text prompts (see {@link TextGenerationOptions} for defaults). */
export async function generateText(
  generator: IdGenerator,
  weights: ReadonlyMap<string, Float32Array>,
  tokenizer: TextTokenizer,
  prompts: readonly string[],
  options: TextGenerationOptions = {},
): Promise<TextGenerationResult> {
  const model = generator.model;
  const sampling = resolveSampling(options);
  const eos = options.eosTokenIds ?? resolveEosTokenIds(model, tokenizer, options.generationConfig);
  const eosSet = new Set(eos);
  const skip = options.skipSpecialTokens ?? true;
  const decode = (seq: readonly number[]): string => {
    const end = seq.length > 0 && eosSet.has(seq[seq.length - 1]) ? seq.length - 1 : seq.length;
    return tokenizer.decode(seq.slice(0, end), skip);
  };
  const max = options.maxPromptTokens;
  const promptTokenIds = prompts.map((p) => {
    const ids = encodePrompt(tokenizer, model, p);
    return max === undefined ? ids : truncatePromptIds(ids, max, tokenizer.bosTokenId);
  });
  const stop = options.stop?.filter((s) => s.length > 0);
  const toText = ({ sequences, stats }: { sequences: GeneratedSequence[][]; stats: GenerationStats }): TextGenerationResult => ({
    completions: sequences.map((samples) => samples.map((s) => s.stopText ?? decode(s.tokenIds))),
    tokenIds: sequences.map((samples) => samples.map((s) => s.tokenIds)),
    finishReasons: sequences.map((samples) => samples.map((s) => s.finishReason)),
    promptTokenIds,
    stats,
  });
  const ids = await generator.generateIds(weights, promptTokenIds, {
    ...sampling,
    numSamples: options.numSamples,
    seed: options.seed,
    batchSize: options.batchSize,
    eosTokenIds: eos,
    padTokenId: tokenizer.padTokenId < model.config.vocabSize ? tokenizer.padTokenId : eos[0] ?? 0,
    stop: stop && stop.length > 0 ? { strings: stop, decode } : undefined,
    onProgress: options.onProgress,
    stopRequested: options.stopRequested,
  }).catch((e: unknown) => {
    // The prompts that finished, as text.
    if (e instanceof GenerationStopped) throw new GenerationStopped(e.done, toText(e.partial as { sequences: GeneratedSequence[][]; stats: GenerationStats }));
    throw e;
  });
  return toText(ids);
}
