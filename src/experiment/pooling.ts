/**
 * Pooling a frontier point over seeds: its mean over the seeds' points and a 95% interval that
 * covers both sources of noise, the held-out samples and the seed (pairs, reward model, training
 * order and samples all change with it).
 *
 * With one seed the interval is the samples' normal interval, mean ± 1.96 se. With n >= 2 seeds
 * each seed's mean already carries its sampling noise, so the spread of the seed means measures
 * both; the interval is Student's t over them, mean ± t(0.975, n - 1) sd / sqrt(n), and never
 * narrower than the pooled sampling noise alone, 1.96 sqrt(sum se_i^2) / n (two seeds that agree
 * by chance do not make a point exact).
 */
import type { FrontierPoint } from './frontier.js';

/** A (method, setting, step) over every seed that has it. */
export interface PooledPoint {
  method: string;
  setting: string;
  step: number;
  /** Seeds pooled, and their samples together. */
  seeds: number;
  samples: number;
  reward: number;
  /** 95% interval of the mean reward [low, high]. */
  rewardCi: [number, number];
  kl: number;
  /** 95% interval of the mean KL (width 0 where every seed's KL is exact, as Best-of-N's). */
  klCi: [number, number];
}

/** Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074,
  2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function tQuantile975(df: number): number {
  return df >= 1 && df <= T975.length ? T975[df - 1] : 1.96;
}

/** Mean and 95% half-width of per-seed means with their standard errors (see the module comment). */
export function pooledInterval(means: readonly number[], stderrs: readonly number[]): { mean: number; half: number } {
  const n = means.length;
  const mean = means.reduce((a, b) => a + b, 0) / n;
  const sampling = (1.96 * Math.sqrt(stderrs.reduce((a, s) => a + s * s, 0))) / n;
  if (n < 2) return { mean, half: sampling };
  const sd = Math.sqrt(means.reduce((a, m) => a + (m - mean) ** 2, 0) / (n - 1));
  return { mean, half: Math.max(sampling, (tQuantile975(n - 1) * sd) / Math.sqrt(n)) };
}

/** Points grouped by (method, setting, step) in the order they first appear, each pooled over its seeds. */
export function poolPoints(points: readonly FrontierPoint[]): PooledPoint[] {
  const groups = new Map<string, FrontierPoint[]>();
  for (const p of points) {
    const key = JSON.stringify([p.method, p.setting, p.step]);
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  return [...groups.values()].map((ps) => {
    const r = pooledInterval(ps.map((p) => p.reward), ps.map((p) => p.rewardStderr));
    const k = pooledInterval(ps.map((p) => p.kl), ps.map((p) => p.klStderr));
    return {
      method: ps[0].method,
      setting: ps[0].setting,
      step: ps[0].step,
      seeds: ps.length,
      samples: ps.reduce((a, p) => a + p.samples, 0),
      reward: r.mean,
      rewardCi: [r.mean - r.half, r.mean + r.half],
      kl: k.mean,
      klCi: [k.mean - k.half, k.mean + k.half],
    };
  });
}
