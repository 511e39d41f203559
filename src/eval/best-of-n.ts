/**
 * Best-of-N sampling: draw N completions per prompt from the policy and keep the one a reward
 * (a reward model or a scorer) ranks highest. The DPO paper's strong but costly baseline: no
 * training, N times the sampling and scoring at inference.
 *
 * Its KL from the sampling policy has a closed form used by the reward-KL frontier
 * ({@link bestOfNKl}).
 */
import { DpoError } from '../errors.js';
import { GenerationStopped, type Generator } from '../generate/generator.js';
import type { TextGenerationOptions, TextGenerationResult } from '../generate/text.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';
import type { RewardFn } from './rewards.js';

export interface BestOfNOptions extends TextGenerationOptions {
  /** Candidates per kept completion (N >= 1). */
  n: number;
  /** The reward that ranks the candidates. */
  reward: RewardFn;
}

export interface BestOfNResult extends TextGenerationResult {
  /** Per prompt, the kept completions' rewards (`numSamples` each). */
  rewards: number[][];
  /** Per prompt, the rewards of all `numSamples * n` candidates, in sampling order. */
  candidateRewards: number[][];
}

/**
 * `numSamples` (default 1) best-of-`n` completions per prompt: candidates j*n .. j*n + n - 1
 * compete for kept completion j; a tie goes to the earlier candidate. Token ids, finish reasons
 * and completions of the result are those of the kept candidates.
 */
export async function bestOfN(
  generator: Generator,
  weights: ReadonlyMap<string, Float32Array>,
  tokenizer: TextTokenizer,
  prompts: readonly string[],
  options: BestOfNOptions,
): Promise<BestOfNResult> {
  const { n, reward, ...generation } = options;
  if (!Number.isInteger(n) || n < 1) throw new DpoError(`best-of-N: N must be an integer >= 1, got ${n}`);
  const k = generation.numSamples ?? 1;
  let r: TextGenerationResult;
  let stop: GenerationStopped<TextGenerationResult> | undefined;
  try {
    r = await generator.generateText(weights, tokenizer, prompts, { ...generation, numSamples: k * n });
  } catch (e) {
    if (!(e instanceof GenerationStopped)) throw e;
    // Stopped: rank the prompts that finished, then throw with their result.
    stop = e as GenerationStopped<TextGenerationResult>;
    r = stop.partial;
  }
  const ranked = prompts.map((p, i) => (stop && !stop.done[i] ? undefined : p));
  const scores = !ranked.some((p) => p !== undefined) ? new Float64Array(0) : await reward(
    ranked.flatMap((p, i) => (p === undefined ? [] : r.completions[i].map(() => p))),
    ranked.flatMap((p, i) => (p === undefined ? [] : r.completions[i])),
    'best-of-n candidates',
  );
  const result: BestOfNResult = { completions: [], tokenIds: [], finishReasons: [], promptTokenIds: r.promptTokenIds, stats: r.stats, rewards: [], candidateRewards: [] };
  let offset = 0;
  ranked.forEach((p, i) => {
    if (p === undefined) {
      for (const list of [result.completions, result.tokenIds, result.finishReasons, result.rewards, result.candidateRewards]) list.push([]);
      return;
    }
    const all = Array.from(scores.subarray(offset, offset + k * n));
    offset += k * n;
    const kept = Array.from({ length: k }, (_, j) => {
      let best = j * n;
      for (let c = j * n + 1; c < (j + 1) * n; c++) if (all[c] > all[best]) best = c;
      return best;
    });
    result.completions.push(kept.map((c) => r.completions[i][c]));
    result.tokenIds.push(kept.map((c) => r.tokenIds[i][c]));
    result.finishReasons.push(kept.map((c) => r.finishReasons[i][c]));
    result.rewards.push(kept.map((c) => all[c]));
    result.candidateRewards.push(all);
  });
  if (stop) throw new GenerationStopped(stop.done, result);
  return result;
}

/**
 * KL(best-of-N || pi) = log N - (N - 1) / N nats per sequence: the standard closed form (Stiennon
 * et al. 2020; an upper bound when the reward has ties, Beirami et al. 2024).
 */
export function bestOfNKl(n: number): number {
  return Math.log(n) - (n - 1) / n;
}
