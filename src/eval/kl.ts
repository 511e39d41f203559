/**
 * Sequence-level KL(π‖π_ref) from samples of π: the mean over samples y ~ π(·|x) of
 * log π(y|x) − log π_ref(y|x), each a sum over the completion's tokens (the quantity the DPO
 * paper plots rewards against). Unbiased when the samples come from π itself (temperature 1, no
 * top-k/top-p); a single sample can be negative, the expectation cannot.
 */
import { collatePreferences } from '../data/collate.js';
import type { TokenizedPreference } from '../data/tokenize.js';
import { DpoError } from '../errors.js';
import type { RuntimeOptions } from '../engine/runtime.js';
import type { CausalLM } from '../models/types.js';
import { Scorer } from '../scoring/scorer.js';

/** A prompt and one completion, as token ids (the model reads prompt ++ completion). */
export interface TokenSequence {
  promptIds: readonly number[];
  completionIds: readonly number[];
}

export interface CompletionLogpsOptions {
  /** Sequences per forward pass (default 8). */
  batchSize?: number;
  /** Padding id (never read: padding is masked); default the model's pad/EOS id or 0. */
  padTokenId?: number;
  runtime?: RuntimeOptions;
  onProgress?: (done: number, total: number) => void;
}

/**
 * log π(y|x) of every sequence under `weights`: the sum of the completion tokens' log-probs given
 * the prompt and the completion tokens before them (prompt tokens not counted), computed with the
 * training Scorer, so it equals what `dpo train` / `dpo eval` compute for the same ids.
 */
export async function completionLogps(
  model: CausalLM,
  weights: ReadonlyMap<string, Float32Array>,
  sequences: readonly TokenSequence[],
  options: CompletionLogpsOptions = {},
): Promise<Float64Array> {
  const out = new Float64Array(sequences.length);
  if (sequences.length === 0) return out;
  const vocab = model.config.vocabSize;
  for (const s of sequences) {
    for (const id of [...s.promptIds, ...s.completionIds]) {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new DpoError(`token id ${id} is outside the vocabulary of ${model.modelType} (${vocab} tokens): policy and reference must share a tokenizer`);
    }
  }
  const bs = options.batchSize ?? 8;
  if (!Number.isInteger(bs) || bs < 1) throw new DpoError(`batch size must be a positive integer, got ${bs}`);
  const eos = model.config.eosTokenId;
  const pad = options.padTokenId ?? model.config.padTokenId ?? (Array.isArray(eos) ? eos[0] : eos) ?? 0;
  const params = model.parameters();
  const shapes = new Map<string, readonly number[]>(params.map((p) => [p.name, p.shape]));
  const modelWeights = new Map<string, Float32Array>();
  for (const p of params) {
    const w = weights.get(p.name);
    if (!w) throw new DpoError(`no weights for parameter "${p.name}"`);
    modelWeights.set(p.name, w);
  }
  const scorer = await Scorer.create(model, params, options.runtime);
  try {
    for (let s = 0; s < sequences.length; s += bs) {
      const rows: TokenizedPreference[] = sequences.slice(s, s + bs).map((q, i) => ({
        promptIds: [...q.promptIds],
        completionIds: [[...q.completionIds]],
        origin: { file: 'samples', line: s + i },
      }));
      const { logps } = await scorer.score(collatePreferences(rows, { padTokenId: pad }), modelWeights, shapes);
      out.set(logps, s);
      options.onProgress?.(Math.min(s + bs, sequences.length), sequences.length);
    }
  } finally {
    await scorer.release();
  }
  return out;
}

/** Mean, spread and range of a sample of numbers. */
export interface SampleStats {
  mean: number;
  /** Sample standard deviation (n − 1); 0 for one value. */
  std: number;
  /** Standard error of the mean: std / sqrt(n). */
  stderr: number;
  min: number;
  max: number;
  n: number;
}

export function sampleStats(values: ArrayLike<number>): SampleStats {
  const n = values.length;
  if (n === 0) return { mean: NaN, std: NaN, stderr: NaN, min: NaN, max: NaN, n: 0 };
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    sum += values[i];
    min = Math.min(min, values[i]);
    max = Math.max(max, values[i]);
  }
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (values[i] - mean) ** 2;
  const std = n > 1 ? Math.sqrt(sq / (n - 1)) : 0;
  return { mean, std, stderr: std / Math.sqrt(n), min, max, n };
}

export interface KlEstimate extends SampleStats {
  /** Per sample: log π(y|x) − log π_ref(y|x). */
  logRatios: Float64Array;
  policyLogpMean: number;
  refLogpMean: number;
}

/** KL(π‖π_ref) ≈ mean of log π(y|x) − log π_ref(y|x) over samples y ~ π. */
export function estimateKl(policyLogps: ArrayLike<number>, refLogps: ArrayLike<number>): KlEstimate {
  if (policyLogps.length !== refLogps.length) throw new DpoError(`estimateKl: ${policyLogps.length} policy log-probs but ${refLogps.length} reference log-probs`);
  const logRatios = Float64Array.from({ length: policyLogps.length }, (_, i) => policyLogps[i] - refLogps[i]);
  return { ...sampleStats(logRatios), logRatios, policyLogpMean: sampleStats(policyLogps).mean, refLogpMean: sampleStats(refLogps).mean };
}
