/**
 * Online DPO's ranking of two samples per prompt and its metrics, as TRL's OnlineDPOTrainer
 * computes them, as pure functions of per-sample numbers.
 *
 * Layout: for B prompts, 2B samples; sample i is prompt i's first completion and sample B + i its
 * second (TRL's first and second halves).
 */
import type { Outcome } from '../../eval/judge.js';

/**
 * Rewards after TRL's missing-EOS penalty: `penalty` is subtracted from every sample that ended
 * without an EOS token (none when undefined).
 */
export function penalizedScores(scores: ArrayLike<number>, containsEos: readonly boolean[], penalty: number | undefined): Float64Array {
  const out = Float64Array.from(scores);
  if (penalty !== undefined) for (let n = 0; n < out.length; n++) if (!containsEos[n]) out[n] -= penalty;
  return out;
}

/** Per prompt: true when its first sample is chosen. Rewards: the higher wins; a tie goes to the first (TRL's first >= second). */
export function firstChosenByScores(scores: ArrayLike<number>): boolean[] {
  const B = scores.length / 2;
  return Array.from({ length: B }, (_, i) => scores[i] >= scores[B + i]);
}

/**
 * Per prompt: true when its first sample is chosen, from the judge's verdicts with the first
 * sample in the policy's place (judgePairs asks both orders): a win chooses the first, a loss the
 * second; a tie or a malformed verdict goes to the first, as a reward tie does.
 */
export function firstChosenByJudge(outcomes: readonly Outcome[]): boolean[] {
  return outcomes.map((o) => o !== 'loss');
}

/** Sample indices of the chosen and the rejected completion of every prompt (TRL's chosen_indices, rejected_indices). */
export function pairIndices(firstChosen: readonly boolean[]): { chosen: number[]; rejected: number[] } {
  const B = firstChosen.length;
  return { chosen: firstChosen.map((f, i) => (f ? i : B + i)), rejected: firstChosen.map((f, i) => (f ? B + i : i)) };
}

export interface OnlineStepStats {
  /** [2B] summed completion log-probs under the policy, chosen then rejected (sequence k*B + i). */
  policy: ArrayLike<number>;
  /** [2B] the same under the reference. */
  reference: ArrayLike<number>;
  /** [2B] rewards in the same order (after the missing-EOS penalty); undefined when a judge ranked. */
  scores?: ArrayLike<number>;
  /** [2B] whether each sample contains an EOS token. */
  containsEos: readonly boolean[];
  beta: number;
}

/**
 * TRL online DPO's statistics of one batch: objective/kl (mean summed log pi - log pi_ref),
 * objective/entropy (-mean summed log pi), objective/non_score_reward (mean -beta KL),
 * objective/rlhf_reward and objective/scores(_margin) (rewards only), rewards/*, logps/*,
 * val/contain_eos_token, beta.
 */
export function onlineStepMetrics(s: OnlineStepStats): Record<string, number> {
  const N = s.policy.length;
  const B = N / 2;
  const mean = (f: (n: number) => number, from = 0, to = N): number => {
    let sum = 0;
    for (let n = from; n < to; n++) sum += f(n);
    return sum / (to - from);
  };
  const kl = (n: number): number => s.policy[n] - s.reference[n];
  const reward = (n: number): number => s.beta * kl(n);
  const margin = (i: number): number => reward(i) - reward(B + i);
  const out: Record<string, number> = {};
  if (s.scores) {
    const scores = s.scores;
    out['objective/scores_margin'] = mean((i) => scores[i] - scores[B + i], 0, B);
    out['objective/scores'] = mean((n) => scores[n]);
  }
  out['val/contain_eos_token'] = mean((n) => (s.containsEos[n] ? 1 : 0));
  out['logps/chosen'] = mean((n) => s.policy[n], 0, B);
  out['logps/rejected'] = mean((n) => s.policy[n], B, N);
  out['objective/kl'] = mean(kl);
  out['objective/non_score_reward'] = mean((n) => -s.beta * kl(n));
  if (s.scores) {
    const scores = s.scores;
    out['objective/rlhf_reward'] = mean((n) => scores[n] - s.beta * kl(n));
  }
  out['objective/entropy'] = -mean((n) => s.policy[n]);
  out['rewards/chosen'] = mean(reward, 0, B);
  out['rewards/rejected'] = mean(reward, B, N);
  out['rewards/margins'] = mean(margin, 0, B);
  out['rewards/accuracies'] = mean((i) => (margin(i) > 0 ? 1 : 0), 0, B);
  out.beta = s.beta;
  return out;
}
