/**
 * The host-side arithmetic of a PPO rollout, in float64, as TRL's PPOTrainer does it: per-token
 * rewards with the KL penalty, generalised advantage estimation, whitening.
 *
 * Token layout: the T_n response tokens of sequence n sit at flat indices
 * [offsets[n], offsets[n + 1]) (offsets has N + 1 entries), in time order: the order of the
 * scored positions of a collated batch (see sequence-logps.ts's scoredFeeds).
 */
import { DpoError } from '../../errors.js';

/** Per-token rewards r_t = -klCoef (log pi - log pi_ref)_t, plus the sequence's score on its last token. */
export interface PenalizedRewards {
  /** [M] the rewards above. */
  rewards: Float64Array;
  /** [M] log pi_t - log pi_ref_t (TRL's k1 estimator of the KL). */
  kl: Float64Array;
  /** [N] sum over the sequence of -klCoef * kl_t (TRL's non_score_reward). */
  nonScoreRewards: Float64Array;
}

function checkOffsets(offsets: ArrayLike<number>, m: number): void {
  if (offsets.length < 1 || offsets[0] !== 0 || offsets[offsets.length - 1] !== m) {
    throw new DpoError(`token offsets must run from 0 to ${m}, got ${offsets[0]}..${offsets[offsets.length - 1]}`);
  }
}

export function penalizedRewards(
  logps: ArrayLike<number>,
  refLogps: ArrayLike<number>,
  scores: ArrayLike<number>,
  offsets: ArrayLike<number>,
  klCoef: number,
): PenalizedRewards {
  const m = logps.length;
  checkOffsets(offsets, m);
  const n = offsets.length - 1;
  if (scores.length !== n) throw new DpoError(`${scores.length} scores for ${n} sequences`);
  const kl = new Float64Array(m);
  const rewards = new Float64Array(m);
  const nonScoreRewards = new Float64Array(n);
  for (let s = 0; s < n; s++) {
    const start = offsets[s];
    const end = offsets[s + 1];
    if (end <= start) throw new DpoError(`sequence ${s} has no response tokens`);
    for (let t = start; t < end; t++) {
      kl[t] = logps[t] - refLogps[t];
      rewards[t] = -klCoef * kl[t];
      nonScoreRewards[s] += rewards[t];
    }
    rewards[end - 1] += scores[s];
  }
  return { rewards, kl, nonScoreRewards };
}

/**
 * Generalised advantage estimation (Schulman et al. 2016), per sequence, with the value after
 * the last token taken as 0: delta_t = r_t + gamma V_{t+1} - V_t,
 * A_t = delta_t + gamma lam A_{t+1}; returns R_t = A_t + V_t (the value targets).
 */
export function generalizedAdvantages(
  rewards: ArrayLike<number>,
  values: ArrayLike<number>,
  offsets: ArrayLike<number>,
  gamma: number,
  lam: number,
): { advantages: Float64Array; returns: Float64Array } {
  const m = rewards.length;
  if (values.length !== m) throw new DpoError(`${values.length} values for ${m} rewards`);
  checkOffsets(offsets, m);
  const advantages = new Float64Array(m);
  const returns = new Float64Array(m);
  for (let s = 0; s + 1 < offsets.length; s++) {
    let last = 0;
    for (let t = offsets[s + 1] - 1; t >= offsets[s]; t--) {
      const next = t + 1 < offsets[s + 1] ? values[t + 1] : 0;
      const delta = rewards[t] + gamma * next - values[t];
      last = delta + gamma * lam * last;
      advantages[t] = last;
      returns[t] = last + values[t];
    }
  }
  return { advantages, returns };
}

/** Mean and unbiased variance (Bessel-corrected, as TRL's masked_var). */
export function meanVar(x: ArrayLike<number>): { mean: number; variance: number } {
  const n = x.length;
  if (n === 0) return { mean: NaN, variance: NaN };
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[i];
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (x[i] - mean) ** 2;
  return { mean, variance: n > 1 ? sq / (n - 1) : 0 };
}

/**
 * TRL's masked_whiten over every element: (x - mean) / sqrt(var + 1e-8); with `shiftMean` false
 * the mean is added back (only the scale changes: what whiten_rewards uses).
 */
export function whiten(x: ArrayLike<number>, shiftMean = true): Float64Array {
  const { mean, variance } = meanVar(x);
  const scale = 1 / Math.sqrt(variance + 1e-8);
  return Float64Array.from({ length: x.length }, (_, i) => (x[i] - mean) * scale + (shiftMean ? 0 : mean));
}
