/**
 * A PPO rollout: responses sampled from the policy for a batch of prompts, and the token layout
 * the rest of the update works on. Sequence n's response tokens are flat indices
 * [offsets[n], offsets[n + 1]); collating any subset of the rows (K = 1) scores exactly those
 * tokens, in the same order, so per-token arrays are fed by slicing.
 */
import { collatePreferences } from '../../data/collate.js';
import type { TokenizedPreference } from '../../data/tokenize.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { FinishReason } from '../../generate/generator.js';
import { scoredFeeds } from '../../scoring/sequence-logps.js';
import type { TokenScorer } from './graphs.js';

export interface Rollout {
  /** Prompt texts and decoded responses (EOS excluded), one per episode. */
  prompts: string[];
  completions: string[];
  finishReasons: FinishReason[];
  /** Prompt ids and the sampled response ids (EOS included when sampled), as the model reads them. */
  rows: TokenizedPreference[];
  /** N + 1 offsets of each sequence's response tokens in the flat per-token arrays. */
  offsets: Int32Array;
}

export function rolloutRows(promptIds: readonly (readonly number[])[], responses: readonly (readonly number[])[]): { rows: TokenizedPreference[]; offsets: Int32Array } {
  const offsets = new Int32Array(responses.length + 1);
  const rows = responses.map((ids, n) => {
    offsets[n + 1] = offsets[n] + ids.length;
    return { promptIds: [...promptIds[n]], completionIds: [[...ids]], origin: { file: 'rollout', line: n } };
  });
  return { rows, offsets };
}

/** Scoring feeds of some of the rollout's sequences, in the given order. */
export function sequenceFeeds(rows: readonly TokenizedPreference[], indices: readonly number[], padTokenId: number): Record<string, HostTensor> {
  return scoredFeeds(collatePreferences(indices.map((i) => rows[i]), { padTokenId }));
}

/** The per-token values of the given sequences, concatenated in their order. */
export function gatherTokens(values: ArrayLike<number>, offsets: Int32Array, indices: readonly number[]): Float32Array {
  let m = 0;
  for (const i of indices) m += offsets[i + 1] - offsets[i];
  const out = new Float32Array(m);
  let j = 0;
  for (const i of indices) for (let t = offsets[i]; t < offsets[i + 1]; t++) out[j++] = values[t];
  return out;
}

/**
 * Per-token log-probs (and values and entropies, from the policy's scorer) of every sequence of the rollout under `weights`, `chunk`
 * sequences per forward pass, as float64 arrays in the flat layout.
 */
export async function scoreRollout(
  scorer: TokenScorer,
  weights: ReadonlyMap<string, Float32Array>,
  rollout: Pick<Rollout, 'rows' | 'offsets'>,
  padTokenId: number,
  chunk: number,
): Promise<{ logps: Float64Array; values?: Float64Array; entropy?: Float64Array }> {
  const { rows, offsets } = rollout;
  const m = offsets[rows.length];
  const logps = new Float64Array(m);
  let values: Float64Array | undefined;
  let entropy: Float64Array | undefined;
  for (let s = 0; s < rows.length; s += chunk) {
    const indices = Array.from({ length: Math.min(chunk, rows.length - s) }, (_, i) => s + i);
    const out = await scorer.run(sequenceFeeds(rows, indices, padTokenId), weights);
    const start = offsets[s];
    const expected = offsets[s + indices.length] - start;
    if (out.logps.length !== expected) throw new Error(`PPO: scored ${out.logps.length} response tokens, expected ${expected}`);
    logps.set(out.logps, start);
    if (out.values) {
      values ??= new Float64Array(m);
      values.set(out.values, start);
    }
    if (out.entropy) {
      entropy ??= new Float64Array(m);
      entropy.set(out.entropy, start);
    }
  }
  return { logps, values, entropy };
}
