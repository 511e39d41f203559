/**
 * What the frontier shows, in sentences computed from the pooled points (never written by hand):
 * the reference's reward, each method's best point and whether it clears the reference's
 * interval, how every method compares with DPO at equal KL (DPO's runs interpolated linearly in
 * KL between their checkpoints, with their 95% intervals), and whether PPO reached its KL targets.
 */
import type { PooledPoint } from './pooling.js';
import type { SentimentExperimentSummary } from './summary.js';

const f = (v: number, d = 3): string => (Number.isFinite(v) ? v.toFixed(d) : '—');
const ci = (c: readonly [number, number], d = 3): string => `[${f(c[0], d)}, ${f(c[1], d)}]`;
const label = (p: Pick<PooledPoint, 'method' | 'setting'>): string => (p.setting ? `${p.method} ${p.setting}` : p.method);

/** A run's curve: the reference, then its checkpoints by step. */
export function runCurves(pooled: readonly PooledPoint[], method: string): PooledPoint[][] {
  const ref = pooled.find((p) => p.method === 'reference');
  const bySetting = new Map<string, PooledPoint[]>();
  for (const p of pooled.filter((x) => x.method === method)) bySetting.set(p.setting, [...(bySetting.get(p.setting) ?? []), p]);
  return [...bySetting.values()].map((ps) => [...(ref ? [ref] : []), ...[...ps].sort((a, b) => a.step - b.step)]);
}

interface AtKl {
  reward: number;
  low: number;
  high: number;
  run: string;
}

/** The best of `curves` at `kl`, interpolating between consecutive points (undefined beyond every curve's KL range). */
export function bestAtKl(curves: readonly PooledPoint[][], kl: number): AtKl | undefined {
  let best: AtKl | undefined;
  for (const c of curves) {
    for (let i = 0; i + 1 < c.length; i++) {
      const [a, b] = [c[i], c[i + 1]];
      const [lo, hi] = a.kl <= b.kl ? [a, b] : [b, a];
      if (kl < lo.kl || kl > hi.kl) continue;
      const t = hi.kl > lo.kl ? (kl - lo.kl) / (hi.kl - lo.kl) : 0;
      const lerp = (x: number, y: number): number => x + t * (y - x);
      const at = { reward: lerp(lo.reward, hi.reward), low: lerp(lo.rewardCi[0], hi.rewardCi[0]), high: lerp(lo.rewardCi[1], hi.rewardCi[1]), run: label(c[c.length - 1]) };
      if (!best || at.reward > best.reward) best = at;
    }
  }
  return best;
}

export function readFrontier(s: Pick<SentimentExperimentSummary, 'pooled' | 'runs' | 'settings' | 'pooledWinRates'>): string[] {
  const out: string[] = [];
  const pooled = s.pooled;
  const seeds = s.settings.seeds;
  const ref = pooled.find((p) => p.method === 'reference');
  if (!ref) return ['No reference point yet: nothing to compare with.'];
  const over = seeds > 1 ? `${seeds} seeds` : 'one seed (intervals over samples only)';
  out.push(`The reference scores ${f(ref.reward)} ${ci(ref.rewardCi)} (mean ${s.settings.scorer} reward, 95% interval over ${over}).`);

  const methods = [...new Set(pooled.map((p) => p.method))].filter((m) => m !== 'reference');
  const best = methods.map((m) => pooled.filter((p) => p.method === m).reduce((a, b) => (b.reward > a.reward ? b : a)));
  const clear = best.filter((b) => b.rewardCi[0] > ref.rewardCi[1]);
  const notClear = best.filter((b) => b.rewardCi[0] <= ref.rewardCi[1]);
  if (clear.length) {
    out.push(
      `Above the reference beyond both intervals: ${clear
        .sort((a, b) => b.reward - a.reward)
        .map((b) => `${label(b)} (best ${f(b.reward)} ${ci(b.rewardCi)} at KL ${f(b.kl, 1)}${b.method === 'Best-of-N' ? '' : `, step ${b.step}`})`)
        .join('; ')}.`,
    );
  }
  if (notClear.length) out.push(`Not clearly above the reference at any point: ${notClear.map((b) => `${label(b)} (best ${f(b.reward)} ${ci(b.rewardCi)})`).join('; ')}.`);

  // Every other method against DPO at equal KL.
  const dpo = runCurves(pooled, 'DPO');
  if (dpo.length) {
    for (const m of methods.filter((x) => x !== 'DPO')) {
      let above = 0;
      let below = 0;
      let level = 0;
      let diff = 0;
      let n = 0;
      for (const p of pooled.filter((x) => x.method === m)) {
        const d = bestAtKl(dpo, p.kl);
        if (!d) continue;
        n++;
        diff += d.reward - p.reward;
        if (d.low > p.rewardCi[1]) above++;
        else if (d.high < p.rewardCi[0]) below++;
        else level++;
      }
      if (!n) {
        out.push(`${m}: no point within DPO's KL range, so no comparison at equal KL.`);
        continue;
      }
      const parts = [above && `DPO above at ${above}`, below && `${m} above at ${below}`, level && `intervals overlap at ${level}`].filter(Boolean).join(', ');
      out.push(`${m} vs DPO at equal KL (${n} of ${m}'s points within DPO's KL range): ${parts}; DPO − ${m} = ${diff / n >= 0 ? '+' : ''}${f(diff / n)} on average.`);
    }
  }

  // The win rate against the reference at the lowest and highest temperature: each method's best setting.
  const temps = [...new Set(s.pooledWinRates.map((w) => w.temperature))].sort((a, b) => a - b);
  for (const t of temps.length > 1 ? [temps[0], temps[temps.length - 1]] : temps) {
    const at = s.pooledWinRates.filter((w) => w.temperature === t);
    const bestOf = [...new Set(at.map((w) => w.method))].map((m) => at.filter((w) => w.method === m).reduce((a, b) => (b.winRate > a.winRate ? b : a)));
    bestOf.sort((a, b) => b.winRate - a.winRate);
    out.push(`Win rate against the reference's samples at temperature ${t} (best setting per method): ${bestOf.map((w) => `${label(w)} ${f(w.winRate)} ${ci(w.winRateCi)}${w.winRateCi[0] > 0.5 ? '' : ' (not clearly above 0.5)'}`).join('; ')}.`);
  }

  // PPO's KL control: the rollout KL of the last update against the target.
  const ppo = s.runs.filter((r) => r.trace?.length && /target_kl=/.test(r.setting));
  if (ppo.length) {
    const rows = ppo.map((r) => {
      const target = Number(r.setting.split('=')[1]);
      const last = (r.trace ?? [])[(r.trace ?? []).length - 1];
      return { name: `${r.method} ${f(target, 0)}${seeds > 1 ? ` (seed ${r.seed})` : ''}`, kl: last.kl, off: last.kl / target - 1 };
    });
    const within = rows.filter((r) => Math.abs(r.off) <= 0.3).length;
    out.push(
      `PPO's KL control (rollout KL at the last update vs target): ${rows.map((r) => `${r.name}: ${f(r.kl, 2)} (${r.off >= 0 ? '+' : ''}${f(100 * r.off, 0)}%)`).join('; ')} — ${within} of ${rows.length} within ±30%.`,
    );
  }
  return out;
}
