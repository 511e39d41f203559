/**
 * The distribution-shift study (`dpo experiment sentiment --shift`): the DPO paper's Table 1
 * (policies trained on TL;DR posts, judged on CNN/DailyMail articles) in miniature. Every method
 * trains on prompts from some genres of the Brown corpus (the press: reportage, editorials,
 * reviews) and every trained run's final policy is evaluated twice, the same way: on held-out
 * prompts from the same genres (other documents: in distribution) and on prompts from other genres
 * (fiction and humor: shifted). Each evaluation is the frontier's (mean ground-truth reward and
 * KL(pi || pi_ref) of fresh pure samples) plus the win rate against the reference's completions at
 * the experiment's win temperatures (ground truth, and the LLM judge when one is given).
 *
 * Each seed's unit result keeps every sample's reward, log-ratio and win, so the table, pooled over
 * seeds with the frontier's 95% intervals (pooling.ts; the judge's win rate: a Wilson interval over
 * its comparisons), can be checked against them.
 */
import { HELD_OUT_PROMPTS, TRAIN_PROMPTS } from '../data/builtin-prompts.js';
import { SHIFT_IN_DISTRIBUTION_PROMPTS, SHIFT_SHIFTED_PROMPTS, SHIFT_TRAIN_PROMPTS } from '../data/shift-prompts.js';
import { deriveSeed } from '../data/rng.js';
import { DpoError } from '../errors.js';
import { wilsonInterval } from '../eval/intervals.js';
import type { FrontierEvaluator, JudgeSetup, PolicyEvaluation, WinRate } from './frontier.js';
import { pooledInterval } from './pooling.js';

/** The prompts the experiment trains and evaluates on. */
export interface ExperimentPrompts {
  train: readonly string[];
  /** Held-out prompts: the frontier's, and the shift study's in-distribution set. */
  heldOut: readonly string[];
  /** The shift study's shifted held-out prompts (absent without the study). */
  shifted?: readonly string[];
}

export interface PromptChoice {
  /** Run the distribution-shift study (implied by `shiftPrompts`). */
  shift?: boolean;
  trainPrompts?: readonly string[];
  heldOutPrompts?: readonly string[];
  shiftPrompts?: readonly string[];
}

/**
 * The experiment's prompts. Without the study: the given ones or the built-in openings. With it:
 * the given ones or the built-in Brown-corpus sets (data/shift-prompts.ts); given training prompts
 * and no held-out ones, every third training prompt (the 3rd, 6th, ...) is held out as the
 * in-distribution set. A held-out prompt that is also a training prompt is refused.
 */
export function experimentPrompts(o: PromptChoice): ExperimentPrompts {
  const empty = (xs: readonly string[] | undefined, what: string): void => {
    if (xs && !xs.length) throw new DpoError(`experiment: no ${what}`);
  };
  empty(o.trainPrompts, 'training prompts');
  empty(o.heldOutPrompts, 'held-out prompts');
  empty(o.shiftPrompts, 'shifted prompts');
  if (!o.shift && !o.shiftPrompts) return { train: o.trainPrompts ?? TRAIN_PROMPTS, heldOut: o.heldOutPrompts ?? HELD_OUT_PROMPTS };
  let train = o.trainPrompts ?? SHIFT_TRAIN_PROMPTS;
  let heldOut = o.heldOutPrompts ?? SHIFT_IN_DISTRIBUTION_PROMPTS;
  if (o.trainPrompts && !o.heldOutPrompts) {
    if (o.trainPrompts.length < 3) throw new DpoError(`experiment: ${o.trainPrompts.length} training prompts; the shift study holds out every third of them as the in-distribution set, so it needs at least 3 (or give held-out prompts)`);
    heldOut = o.trainPrompts.filter((_, i) => i % 3 === 2);
    train = o.trainPrompts.filter((_, i) => i % 3 !== 2);
  }
  const shifted = o.shiftPrompts ?? SHIFT_SHIFTED_PROMPTS;
  const known = new Set(train);
  for (const [what, xs] of [['in-distribution held-out', heldOut], ['shifted', shifted]] as const) {
    const both = xs.filter((p) => known.has(p));
    if (both.length) throw new DpoError(`experiment: ${both.length} ${what} prompt${both.length > 1 ? 's are' : ' is'} also a training prompt ('${both[0]}'); held-out prompts must be new to the policy`);
  }
  return { train, heldOut, shifted };
}

/** The sampling seed of the shifted prompts' evaluation, from the in-distribution one. */
export function shiftedSeed(evalSeed: number): number {
  return deriveSeed(evalSeed, 26);
}

/** One seed's evaluation of a policy on one distribution's held-out prompts. */
export interface DistributionResult {
  reward: number;
  rewardStderr: number;
  kl: number;
  klStderr: number;
  samples: number;
  /** Against the reference's completions, per win temperature (none for the reference itself). */
  winRates: WinRate[];
  /** Every sample's reward and log pi/pi_ref, and every comparison's win (1, 0.5 tie, 0) per temperature. */
  perSample: { rewards: number[]; logRatios: number[]; wins: number[][] };
}

/** A run's final policy (or the reference, step 0) in distribution and shifted, for one seed. */
export interface ShiftResult {
  step: number;
  inDistribution: DistributionResult;
  shifted: DistributionResult;
}

function distribution(e: PolicyEvaluation, w: { rates: WinRate[]; wins: number[][] }): DistributionResult {
  if (!e.perSample) throw new Error('shift study: an evaluation without per-sample results');
  return { reward: e.reward, rewardStderr: e.rewardStderr, kl: e.kl, klStderr: e.klStderr, samples: e.samples, winRates: w.rates, perSample: { ...e.perSample, wins: w.wins } };
}

/**
 * A policy's final checkpoint on both distributions: `inEval` is its in-distribution evaluation
 * (the frontier's last point), the win rates are measured here on both.
 */
export async function evaluateShift(
  evaluators: { inDistribution: FrontierEvaluator; shifted: FrontierEvaluator },
  weights: ReadonlyMap<string, Float32Array>,
  step: number,
  inEval: PolicyEvaluation,
  temperatures: readonly number[],
  label: string,
  judge?: JudgeSetup,
): Promise<ShiftResult> {
  const wins = (ev: FrontierEvaluator, l: string) => (temperatures.length ? ev.winRatesWithSamples(weights, temperatures, l, judge) : Promise.resolve({ rates: [], wins: [] }));
  const inDistribution = distribution(inEval, await wins(evaluators.inDistribution, `${label} win rate`));
  const shiftedEval = await evaluators.shifted.evaluate(weights, `${label} (shifted prompts)`);
  const shifted = distribution(shiftedEval, await wins(evaluators.shifted, `${label} win rate (shifted prompts)`));
  return { step, inDistribution, shifted };
}

/** The reference on both distributions (KL 0; no win rate against itself). */
export async function referenceShift(shiftedEvaluator: FrontierEvaluator, weights: ReadonlyMap<string, Float32Array>, inEval: PolicyEvaluation): Promise<ShiftResult> {
  const none = { rates: [], wins: [] };
  return { step: 0, inDistribution: distribution(inEval, none), shifted: distribution(await shiftedEvaluator.evaluate(weights, 'evaluating the reference (shifted prompts)'), none) };
}

/** A win rate in the table, pooled over seeds. */
export interface ShiftWinRate {
  temperature: number;
  winRate: number;
  winRateCi: [number, number];
  /** Comparisons over all seeds. */
  pairs: number;
  /** The LLM judge's, when it judged: win rate over all its comparisons with a 95% Wilson interval. */
  judgeWinRate?: number;
  judgeWinRateCi?: [number, number];
  judgePairs?: number;
}

/** One method and distribution of the table, pooled over seeds (95% intervals as the frontier's). */
export interface ShiftCell {
  reward: number;
  rewardCi: [number, number];
  kl: number;
  klCi: [number, number];
  samples: number;
  winRates: ShiftWinRate[];
}

export interface ShiftRow {
  method: string;
  setting: string;
  /** The final checkpoint's step (0 for the reference). */
  step: number;
  seeds: number;
  inDistribution: ShiftCell;
  shifted: ShiftCell;
}

/** What summary.json holds of the study: the paper's Table 1, method x distribution. */
export interface ShiftTable {
  prompts: { train: number; inDistribution: number; shifted: number };
  /** The genres, when the built-in prompts were used. */
  genres?: { train: string; shifted: string };
  rows: ShiftRow[];
}

const ci = (mean: number, half: number): [number, number] => [mean - half, mean + half];

function poolCell(ds: readonly DistributionResult[]): ShiftCell {
  const r = pooledInterval(ds.map((d) => d.reward), ds.map((d) => d.rewardStderr));
  const k = pooledInterval(ds.map((d) => d.kl), ds.map((d) => d.klStderr));
  const temps = [...new Set(ds.flatMap((d) => d.winRates.map((w) => w.temperature)))];
  const winRates = temps.map((temperature): ShiftWinRate => {
    const at = ds.map((d) => d.winRates.find((w) => w.temperature === temperature)).filter((w): w is WinRate => w !== undefined);
    const p = pooledInterval(at.map((w) => w.winRate), at.map((w) => w.winRateStderr));
    const out: ShiftWinRate = { temperature, winRate: p.mean, winRateCi: ci(p.mean, p.half), pairs: at.reduce((a, w) => a + w.pairs, 0) };
    const judged = at.filter((w) => w.judgePairs && Number.isFinite(w.judgeWinRate));
    if (judged.length) {
      // Ties count half, so wins + ties/2 = rate x comparisons (what judgeWinRate's interval counts).
      const n = judged.reduce((a, w) => a + (w.judgePairs as number), 0);
      const successes = judged.reduce((a, w) => a + (w.judgeWinRate as number) * (w.judgePairs as number), 0);
      out.judgeWinRate = successes / n;
      out.judgeWinRateCi = wilsonInterval(Math.min(n, Math.max(0, successes)), n) ?? undefined;
      out.judgePairs = n;
    }
    return out;
  });
  return { reward: r.mean, rewardCi: ci(r.mean, r.half), kl: k.mean, klCi: ci(k.mean, k.half), samples: ds.reduce((a, d) => a + d.samples, 0), winRates };
}

/** The table from the unit results that carry the study, one row per method and setting (in their order), pooled over seeds. */
export function shiftRows(results: readonly { method: string; setting: string; shift?: ShiftResult }[]): ShiftRow[] {
  const groups = new Map<string, { method: string; setting: string; shifts: ShiftResult[] }>();
  for (const r of results) {
    if (!r.shift) continue;
    const key = JSON.stringify([r.method, r.setting]);
    const g = groups.get(key) ?? { method: r.method, setting: r.setting, shifts: [] };
    g.shifts.push(r.shift);
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => ({
    method: g.method,
    setting: g.setting,
    step: g.shifts[0].step,
    seeds: g.shifts.length,
    inDistribution: poolCell(g.shifts.map((s) => s.inDistribution)),
    shifted: poolCell(g.shifts.map((s) => s.shifted)),
  }));
}

const f = (v: number | undefined, d = 3): string => (v !== undefined && Number.isFinite(v) ? v.toFixed(d) : '—');
const range = (c: readonly [number, number] | undefined, d = 3): string => (c ? `[${f(c[0], d)}, ${f(c[1], d)}]` : '');
const name = (r: Pick<ShiftRow, 'method' | 'setting'>): string => (r.setting ? `${r.method} ${r.setting}` : r.method);
const klText = (c: ShiftCell): string => (c.klCi[1] > c.klCi[0] ? `${f(c.kl, 2)} ${range(c.klCi, 2)}` : `${f(c.kl, 2)} (exact)`);

/** What the table shows, computed (never written by hand): the reference on both, and each method's best win rate on both at the extreme temperatures. */
export function readShift(t: ShiftTable): string[] {
  const out: string[] = [];
  const ref = t.rows.find((r) => r.method === 'reference');
  if (ref) out.push(`Distribution shift: the reference scores ${f(ref.inDistribution.reward)} ${range(ref.inDistribution.rewardCi)} in distribution and ${f(ref.shifted.reward)} ${range(ref.shifted.rewardCi)} on the shifted prompts.`);
  const runs = t.rows.filter((r) => r.method !== 'reference');
  const temps = [...new Set(runs.flatMap((r) => r.shifted.winRates.map((w) => w.temperature)))].sort((a, b) => a - b);
  for (const temp of temps.length > 1 ? [temps[0], temps[temps.length - 1]] : temps) {
    const at = (r: ShiftRow, c: 'inDistribution' | 'shifted') => r[c].winRates.find((w) => w.temperature === temp);
    const best = [...new Set(runs.map((r) => r.method))].map((m) =>
      runs.filter((r) => r.method === m && at(r, 'shifted')).reduce<ShiftRow | undefined>((a, b) => (!a || (at(b, 'shifted')?.winRate ?? -1) > (at(a, 'shifted')?.winRate ?? -1) ? b : a), undefined),
    ).filter((r): r is ShiftRow => r !== undefined);
    best.sort((a, b) => (at(b, 'shifted')?.winRate ?? 0) - (at(a, 'shifted')?.winRate ?? 0));
    if (!best.length) continue;
    out.push(
      `Win rate against the reference at temperature ${temp}, shifted (in distribution) — best setting per method: ${best
        .map((r) => `${name(r)} ${f(at(r, 'shifted')?.winRate)} ${range(at(r, 'shifted')?.winRateCi)} (${f(at(r, 'inDistribution')?.winRate)})`)
        .join('; ')}.`,
    );
    const dpo = best.find((r) => r.method === 'DPO');
    const ppo = best.find((r) => r.method === 'PPO');
    if (dpo && ppo) {
      const [d, p] = [at(dpo, 'shifted') as ShiftWinRate, at(ppo, 'shifted') as ShiftWinRate];
      const verdict = d.winRateCi[0] > p.winRateCi[1] ? 'DPO above PPO beyond both intervals' : p.winRateCi[0] > d.winRateCi[1] ? 'PPO above DPO beyond both intervals' : 'DPO and PPO level (the intervals overlap)';
      out.push(`Under the shift at temperature ${temp}: ${verdict} (the paper: DPO 0.36 vs PPO 0.26 at temperature 0 on CNN/DailyMail).`);
    }
  }
  return out;
}

/** The table for the terminal: reward, KL and the win rate at each temperature, in distribution and shifted. */
export function formatShiftTable(t: ShiftTable): string {
  const temps = [...new Set(t.rows.flatMap((r) => r.inDistribution.winRates.map((w) => w.temperature)))].sort((a, b) => a - b);
  const cell = (c: ShiftCell): string[] => [
    `${f(c.reward)} ${range(c.rewardCi)}`,
    klText(c),
    ...temps.map((temp) => {
      const w = c.winRates.find((x) => x.temperature === temp);
      return w ? `${f(w.winRate, 2)} ${range(w.winRateCi, 2)}${w.judgeWinRate !== undefined ? ` j${f(w.judgeWinRate, 2)}` : ''}` : '—';
    }),
  ];
  const head = ['reward [95%]', 'KL [95%]', ...temps.map((x) => `win T=${x}`)];
  const rows = [['', '', ...head.map((h) => `in: ${h}`), ...head.map((h) => `shifted: ${h}`)], ...t.rows.map((r) => [name(r), String(r.step), ...cell(r.inDistribution), ...cell(r.shifted)])];
  const widths = rows[0].map((_, j) => Math.max(...rows.map((row) => row[j].length)));
  const lines = rows.map((row) => row.map((v, j) => (j < 1 ? v.padEnd(widths[j]) : v.padStart(widths[j]))).join('  '));
  return ['', `Distribution shift (the paper's Table 1): final checkpoints on ${t.prompts.inDistribution} in-distribution and ${t.prompts.shifted} shifted held-out prompts${t.genres ? ` (trained on ${t.genres.train}; shifted: ${t.genres.shifted})` : ''}; j: LLM judge`, ...lines, ''].join('\n');
}

/** The table as report.html's section. */
export function shiftSectionHtml(t: ShiftTable, escape: (s: string) => string, scorer: string, judge?: { model: string }): string {
  const temps = [...new Set(t.rows.flatMap((r) => r.inDistribution.winRates.map((w) => w.temperature)))].sort((a, b) => a - b);
  const judged = t.rows.some((r) => [...r.inDistribution.winRates, ...r.shifted.winRates].some((w) => w.judgeWinRate !== undefined));
  const cols = 2 + temps.length * (judged ? 2 : 1);
  const cells = (c: ShiftCell): string =>
    [
      `${f(c.reward)} ${range(c.rewardCi)}`,
      klText(c),
      ...temps.flatMap((temp) => {
        const w = c.winRates.find((x) => x.temperature === temp);
        const gt = w ? `${f(w.winRate)} ${range(w.winRateCi)}` : '—';
        return judged ? [gt, w?.judgeWinRate !== undefined ? `${f(w.judgeWinRate)} ${range(w.judgeWinRateCi)}` : '—'] : [gt];
      }),
    ]
      .map((v) => `<td>${v}</td>`)
      .join('');
  const sub = ['reward', 'KL', ...temps.flatMap((x) => (judged ? [`win T=${x}`, `judge T=${x}`] : [`win T=${x}`]))].map((h) => `<th>${h}</th>`).join('');
  const rows = t.rows.map((r) => `<tr><td>${escape(r.method)}</td><td>${escape(r.setting)}</td><td>${r.step}</td>${cells(r.inDistribution)}${cells(r.shifted)}<td>${r.seeds}</td></tr>`).join('\n');
  return `<h2 id="shift">Distribution shift (the paper's Table 1, 95% intervals)</h2>
<p class="note">Every trained run's final checkpoint, and the reference, on ${t.prompts.inDistribution} held-out prompts from the training distribution and on ${t.prompts.shifted} from another
(${t.prompts.train} training prompts${t.genres ? `; trained on the Brown corpus's ${escape(t.genres.train)}; shifted: ${escape(t.genres.shifted)}` : ''}). Reward: mean ${escape(scorer)} reward of fresh pure samples; KL: mean log π/π_ref of the same samples;
win: share of comparisons with the reference's completion at the same temperature that the ground truth prefers (ties half)${judge ? `; judge: ${escape(judge.model)}'s win rate (both orders, Wilson interval)` : ''}.</p>
<table><tr><th rowspan="2">method</th><th rowspan="2">setting</th><th rowspan="2">step</th><th colspan="${cols}">in distribution</th><th colspan="${cols}">shifted</th><th rowspan="2">seeds</th></tr>
<tr>${sub}${sub}</tr>
${rows}
</table>`;
}
