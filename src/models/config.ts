/** Reading config.json fields with clear errors. */
import { DpoError } from '../errors.js';
import type { CausalLMConfig } from './types.js';

type Raw = Readonly<Record<string, unknown>>;

export function num(raw: Raw, key: string): number {
  const v = raw[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new DpoError(`config.json: '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** A size (vocabulary, width, layers, heads, positions): a positive integer. */
export function size(raw: Raw, key: string): number {
  const v = num(raw, key);
  if (!Number.isInteger(v) || v < 1) throw new DpoError(`config.json: '${key}' must be a positive integer, got ${v}`);
  return v;
}

function optSize(raw: Raw, key: string): number | undefined {
  return raw[key] == null ? undefined : size(raw, key);
}

export function optNum(raw: Raw, key: string): number | undefined {
  return raw[key] == null ? undefined : num(raw, key);
}

/** The common fields, given each family's key names for them. */
export function readCommonConfig(
  raw: Raw,
  keys: { vocabSize: string; hiddenSize: string; numLayers: string; numHeads: string; maxPositions: string; numKeyValueHeads?: string },
): CausalLMConfig {
  const hiddenSize = size(raw, keys.hiddenSize);
  const numHeads = size(raw, keys.numHeads);
  const numKeyValueHeads = (keys.numKeyValueHeads && optSize(raw, keys.numKeyValueHeads)) || numHeads;
  const headDim = optSize(raw, 'head_dim') ?? hiddenSize / numHeads;
  if (!Number.isInteger(headDim)) throw new DpoError(`config.json: hidden size ${hiddenSize} is not divisible by ${numHeads} heads`);
  if (numHeads % numKeyValueHeads !== 0) {
    throw new DpoError(`config.json: ${numHeads} attention heads are not a multiple of ${numKeyValueHeads} key/value heads`);
  }
  const eos = raw.eos_token_id;
  return {
    modelType: String(raw.model_type),
    vocabSize: size(raw, keys.vocabSize),
    hiddenSize,
    numLayers: size(raw, keys.numLayers),
    numHeads,
    numKeyValueHeads,
    headDim,
    maxPositions: optSize(raw, keys.maxPositions) ?? 2048,
    tieWordEmbeddings: raw.tie_word_embeddings !== false,
    bosTokenId: optNum(raw, 'bos_token_id'),
    eosTokenId: Array.isArray(eos) ? (eos as number[]) : typeof eos === 'number' ? eos : undefined,
    padTokenId: optNum(raw, 'pad_token_id'),
    raw,
  };
}
