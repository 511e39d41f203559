/** Reading config.json fields with clear errors. */
import type { CausalLMConfig } from './types.js';

type Raw = Readonly<Record<string, unknown>>;

export function num(raw: Raw, key: string): number {
  const v = raw[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`config.json: '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

export function optNum(raw: Raw, key: string): number | undefined {
  return raw[key] == null ? undefined : num(raw, key);
}

/** The common fields, given each family's key names for them. */
export function readCommonConfig(
  raw: Raw,
  keys: { vocabSize: string; hiddenSize: string; numLayers: string; numHeads: string; maxPositions: string; numKeyValueHeads?: string },
): CausalLMConfig {
  const hiddenSize = num(raw, keys.hiddenSize);
  const numHeads = num(raw, keys.numHeads);
  const numKeyValueHeads = (keys.numKeyValueHeads && optNum(raw, keys.numKeyValueHeads)) || numHeads;
  const headDim = optNum(raw, 'head_dim') ?? hiddenSize / numHeads;
  if (!Number.isInteger(headDim)) throw new Error(`config.json: hidden size ${hiddenSize} is not divisible by ${numHeads} heads`);
  if (numHeads % numKeyValueHeads !== 0) {
    throw new Error(`config.json: ${numHeads} attention heads are not a multiple of ${numKeyValueHeads} key/value heads`);
  }
  const eos = raw.eos_token_id;
  return {
    modelType: String(raw.model_type),
    vocabSize: num(raw, keys.vocabSize),
    hiddenSize,
    numLayers: num(raw, keys.numLayers),
    numHeads,
    numKeyValueHeads,
    headDim,
    maxPositions: optNum(raw, keys.maxPositions) ?? 2048,
    tieWordEmbeddings: raw.tie_word_embeddings !== false,
    bosTokenId: optNum(raw, 'bos_token_id'),
    eosTokenId: Array.isArray(eos) ? (eos as number[]) : typeof eos === 'number' ? eos : undefined,
    padTokenId: optNum(raw, 'pad_token_id'),
    raw,
  };
}
