/**
 * The experiment's self-contained HTML report, read like the paper's Figure 2 and more: the
 * reward-KL frontier (one colour per method, one marker per setting, a legend for both, 95% error
 * bars in reward and KL, each run joined from the reference through its checkpoints, a tooltip on
 * every point), reward and KL against training step per run, PPO's rollout KL per update against
 * its target, the computed reading (reading.ts), and tables of the pooled and per-seed points.
 * Vega-Lite rendered to inline SVG in Node, as the quickstart's; tooltips are SVG <title>s, which
 * browsers show on hover without any script.
 */
import { writeFile } from 'node:fs/promises';
import type { TopLevelSpec } from 'vega-lite';
import { escapeHtml, renderSvg } from '../quickstart/report.js';
import type { PooledPoint } from './pooling.js';
import { shiftSectionHtml } from './shift.js';
import type { SentimentExperimentSummary } from './summary.js';

const ORDER = ['reference', 'DPO', 'PPO', 'PPO-GT', 'Unlikelihood', 'Preferred-FT', 'Best-of-N'];
/** Tableau 10, one per method in ORDER. */
const COLOURS = ['#4c4c4c', '#4e79a7', '#e15759', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2'];
/** Markers for settings: Vega's named shapes, then a few drawn ones, so a sweep's settings rarely share one. */
const SHAPES = [
  'circle', 'square', 'diamond', 'triangle-up', 'cross', 'triangle-down', 'triangle-right', 'triangle-left', 'wedge',
  'M0,-1L0.29,-0.4L0.95,-0.31L0.48,0.15L0.59,0.81L0,0.5L-0.59,0.81L-0.48,0.15L-0.95,-0.31L-0.29,-0.4Z',
  'M-1,0L-0.5,-0.87L0.5,-0.87L1,0L0.5,0.87L-0.5,0.87Z', 'M-1,-0.2L1,-0.2L1,0.2L-1,0.2Z', 'arrow', 'stroke',
];

const label = (p: Pick<PooledPoint, 'method' | 'setting'>): string => (p.setting ? `${p.method} ${p.setting}` : p.method);
const round = (v: number, d: number): number => Number(v.toFixed(d));

/** A pooled point as the plots' rows: flat fields, rounded for the tooltips. */
function row(p: PooledPoint) {
  return {
    method: p.method,
    setting: p.setting || '(one setting)',
    run: label(p),
    step: p.step,
    reward: round(p.reward, 4),
    rewardLow: round(p.rewardCi[0], 4),
    rewardHigh: round(p.rewardCi[1], 4),
    kl: round(p.kl, 3),
    klLow: round(p.klCi[0], 3),
    klHigh: round(p.klCi[1], 3),
    seeds: p.seeds,
    samples: p.samples,
  };
}

/** Each trained run from the reference through its checkpoints (reference rows relabelled to the run). */
function runLines(pooled: readonly PooledPoint[]) {
  const ref = pooled.find((p) => p.method === 'reference');
  const out: (ReturnType<typeof row> & { order: number })[] = [];
  const runs = new Map<string, PooledPoint[]>();
  for (const p of pooled) if (p.method !== 'reference') runs.set(p.method === 'Best-of-N' ? p.method : label(p), [...(runs.get(p.method === 'Best-of-N' ? p.method : label(p)) ?? []), p]);
  for (const [run, ps] of runs) {
    const ordered = [...(ref ? [ref] : []), ...[...ps].sort((a, b) => a.step - b.step)];
    ordered.forEach((p, order) => out.push({ ...row(p), run, method: ps[0].method, setting: ps[0].setting || '(one setting)', order, ...(p === ref ? { step: 0 } : {}) }));
  }
  return out;
}

/** Browsers show an SVG element's <title> child on hover: give every point Vega's own description of it. */
export function withHoverTitles(svg: string): string {
  return svg.replace(/<(path|circle|rect)([^>]*?)aria-label="([^"]*)"([^>]*?)\/>/g, '<$1$2aria-label="$3"$4><title>$3</title></$1>');
}

const TOOLTIP = [
  { field: 'method', type: 'nominal' },
  { field: 'setting', type: 'nominal' },
  { field: 'step', type: 'quantitative', title: 'step / N' },
  { field: 'reward', type: 'quantitative', format: '.3f' },
  { field: 'rewardLow', type: 'quantitative', title: 'reward 95% low', format: '.3f' },
  { field: 'rewardHigh', type: 'quantitative', title: 'reward 95% high', format: '.3f' },
  { field: 'kl', type: 'quantitative', title: 'KL', format: '.2f' },
  { field: 'seeds', type: 'quantitative' },
  { field: 'samples', type: 'quantitative' },
] as const;

function encodings(settings: string[]) {
  return {
    color: { field: 'method', type: 'nominal' as const, title: 'method', scale: { domain: ORDER, range: COLOURS }, legend: { orient: 'right' as const, symbolOpacity: 1 } },
    shape: { field: 'setting', type: 'nominal' as const, title: 'setting', scale: { domain: settings, range: SHAPES.slice(0, Math.max(1, settings.length)) }, legend: { orient: 'right' as const } },
  };
}

/** The frontier: reward against KL with 95% error bars in both. */
export function frontierSpec(s: SentimentExperimentSummary): TopLevelSpec {
  const points = s.pooled.map(row);
  const settings = [...new Set(points.map((p) => p.setting))];
  const { color, shape } = encodings(settings);
  const x = { field: 'kl', type: 'quantitative' as const, title: 'KL(π‖π_ref), nats per sequence' };
  const y = { field: 'reward', type: 'quantitative' as const, title: `mean ${s.settings.scorer} reward (held-out prompts)`, scale: { zero: false } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'reward vs KL(π‖π_ref): the frontier', subtitle: `bars: 95% intervals over ${s.settings.seeds > 1 ? `${s.settings.seeds} seeds and samples` : 'samples (one seed)'}` },
    width: 600,
    height: 380,
    layer: [
      { data: { values: runLines(s.pooled) }, mark: { type: 'line', opacity: 0.35 }, encoding: { x, y, color, detail: { field: 'run', type: 'nominal' }, order: { field: 'order', type: 'quantitative' } } },
      { data: { values: points }, mark: { type: 'rule', opacity: 0.6 }, encoding: { x, y: { field: 'rewardLow', type: 'quantitative' }, y2: { field: 'rewardHigh' }, color } },
      { data: { values: points }, mark: { type: 'rule', opacity: 0.6 }, encoding: { x: { field: 'klLow', type: 'quantitative' }, x2: { field: 'klHigh' }, y, color } },
      { data: { values: points }, mark: { type: 'point', filled: true, size: 80, opacity: 0.95 }, encoding: { x, y, color, shape, tooltip: [...TOOLTIP] } },
    ],
  } as TopLevelSpec;
}

/** One measure against training step, a line per run (the reference at step 0 starts each). */
export function stepSpec(s: SentimentExperimentSummary, field: 'reward' | 'kl'): TopLevelSpec {
  const values = runLines(s.pooled).filter((p) => p.method !== 'Best-of-N');
  const settings = [...new Set(s.pooled.map(row).map((p) => p.setting))];
  const { color, shape } = encodings(settings);
  const x = { field: 'step', type: 'quantitative' as const, title: 'training step (PPO: update)' };
  const y = { field, type: 'quantitative' as const, title: field === 'reward' ? `held-out ${s.settings.scorer} reward` : 'held-out KL (nats)', scale: { zero: field === 'kl' } };
  const low = field === 'reward' ? 'rewardLow' : 'klLow';
  const high = field === 'reward' ? 'rewardHigh' : 'klHigh';
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: field === 'reward' ? 'reward vs training step, per run' : 'KL vs training step, per run',
    width: 420,
    height: 260,
    layer: [
      { data: { values }, mark: { type: 'line', opacity: 0.6 }, encoding: { x, y, color, detail: { field: 'run', type: 'nominal' }, order: { field: 'order', type: 'quantitative' } } },
      { data: { values }, mark: { type: 'rule', opacity: 0.5 }, encoding: { x, y: { field: low, type: 'quantitative' }, y2: { field: high }, color, detail: { field: 'run', type: 'nominal' } } },
      { data: { values }, mark: { type: 'point', filled: true, size: 50 }, encoding: { x, y, color, shape, tooltip: [{ field: 'run', type: 'nominal' }, ...TOOLTIP] } },
    ],
  } as TopLevelSpec;
}

/** PPO's rollout KL per update against its target (dashed), one line per run. */
export function ppoKlSpec(s: SentimentExperimentSummary): TopLevelSpec | undefined {
  const runs = s.runs.filter((r) => r.trace?.length);
  if (!runs.length) return undefined;
  const name = (r: (typeof runs)[number]): string => `${r.method} ${r.setting}${s.settings.seeds > 1 ? ` seed ${r.seed}` : ''}`;
  const values = runs.flatMap((r) => (r.trace ?? []).map((t) => ({ run: name(r), update: t.step, kl: round(t.kl, 3), klCoef: round(t.klCoef, 4), score: round(t.score, 4) })));
  const targets = runs.map((r) => ({ run: name(r), target: Number(r.setting.split('=')[1]) }));
  const color = { field: 'run', type: 'nominal' as const, title: 'run', legend: { labelLimit: 260 } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: "PPO's rollout KL per update", subtitle: 'dashed: each run’s target' },
    width: 420,
    height: 260,
    layer: [
      { data: { values }, mark: { type: 'line', point: true }, encoding: { x: { field: 'update', type: 'quantitative' }, y: { field: 'kl', type: 'quantitative', title: 'rollout KL (nats)' }, color, tooltip: [{ field: 'run' }, { field: 'update' }, { field: 'kl', title: 'KL' }, { field: 'klCoef', title: 'KL coefficient' }, { field: 'score' }] } },
      { data: { values: targets }, mark: { type: 'rule', strokeDash: [4, 3] }, encoding: { y: { field: 'target', type: 'quantitative' }, color } },
    ],
  } as TopLevelSpec;
}

/** Win rate against the reference's completions by sampling temperature (the paper's Figure 3 axis). */
export function winRateSpec(s: SentimentExperimentSummary): TopLevelSpec | undefined {
  if (!s.pooledWinRates.length) return undefined;
  const values = s.pooledWinRates.map((w) => ({
    method: w.method,
    setting: w.setting || '(one setting)',
    run: label(w),
    temperature: w.temperature,
    winRate: round(w.winRate, 4),
    low: round(w.winRateCi[0], 4),
    high: round(w.winRateCi[1], 4),
    seeds: w.seeds,
    ...(w.judgeWinRate !== undefined ? { judge: round(w.judgeWinRate, 4) } : {}),
  }));
  const settings = [...new Set(s.pooled.map(row).map((p) => p.setting))];
  const { color, shape } = encodings(settings);
  const x = { field: 'temperature', type: 'quantitative' as const, title: 'sampling temperature', scale: { domain: [0, 1.05] } };
  const y = { field: 'winRate', type: 'quantitative' as const, title: `win rate vs the reference (${s.settings.scorer})`, scale: { domain: [0, 1] } };
  const tooltip = [{ field: 'run' }, { field: 'temperature' }, { field: 'winRate', title: 'win rate', format: '.3f' }, { field: 'low', title: '95% low', format: '.3f' }, { field: 'high', title: '95% high', format: '.3f' }, { field: 'seeds' }, ...(values.some((v) => 'judge' in v) ? [{ field: 'judge', title: 'LLM judge win rate', format: '.3f' }] : [])];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'win rate against the reference’s completions', subtitle: 'final checkpoint of each run; ties count half; dashed: 0.5' },
    width: 420,
    height: 260,
    layer: [
      { data: { values: [{ y: 0.5 }] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#999' }, encoding: { y: { field: 'y', type: 'quantitative' } } },
      { data: { values }, mark: { type: 'line', opacity: 0.6 }, encoding: { x, y, color, detail: { field: 'run', type: 'nominal' } } },
      { data: { values }, mark: { type: 'rule', opacity: 0.5 }, encoding: { x, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' }, color } },
      { data: { values }, mark: { type: 'point', filled: true, size: 60 }, encoding: { x, y, color, shape, tooltip } },
    ],
  } as TopLevelSpec;
}

export async function writeExperimentReport(path: string, s: SentimentExperimentSummary): Promise<void> {
  const svg = async (spec: TopLevelSpec | undefined): Promise<string> => (spec ? withHoverTitles(await renderSvg(spec)) : '');
  const frontier = await svg(frontierSpec(s));
  const rewardSteps = await svg(stepSpec(s, 'reward'));
  const klSteps = await svg(stepSpec(s, 'kl'));
  const ppo = await svg(ppoKlSpec(s));
  const f = (v: number, d = 3): string => (Number.isFinite(v) ? v.toFixed(d) : '—');
  const wins = await svg(winRateSpec(s));
  const winRows = s.pooledWinRates
    .map((w) => `<tr><td>${escapeHtml(w.method)}</td><td>${escapeHtml(w.setting)}</td><td>${w.temperature}</td><td>${f(w.winRate)} [${f(w.winRateCi[0])}, ${f(w.winRateCi[1])}]</td><td>${w.judgeWinRate !== undefined ? f(w.judgeWinRate) : '—'}</td><td>${w.seeds}</td></tr>`)
    .join('\n');
  const pooledRows = s.pooled
    .map((p) => `<tr><td>${escapeHtml(p.method)}</td><td>${escapeHtml(p.setting)}</td><td>${p.step}</td><td>${f(p.reward)} [${f(p.rewardCi[0])}, ${f(p.rewardCi[1])}]</td><td>${f(p.kl, 2)}${p.klCi[1] > p.klCi[0] ? ` [${f(p.klCi[0], 2)}, ${f(p.klCi[1], 2)}]` : ' (exact)'}</td><td>${p.seeds}</td><td>${p.samples}</td></tr>`)
    .join('\n');
  const seedRows = s.points
    .map((p) => `<tr><td>${p.seed}</td><td>${escapeHtml(p.method)}</td><td>${escapeHtml(p.setting)}</td><td>${p.step}</td><td>${f(p.reward)} ± ${f(p.rewardStderr)}</td><td>${f(p.kl, 2)}${p.klStderr ? ` ± ${f(p.klStderr, 2)}` : ' (exact)'}</td><td>${p.samples}</td></tr>`)
    .join('\n');
  const runs = s.runs
    .map((r) => `<tr><td>${escapeHtml(r.method)}</td><td>${escapeHtml(r.setting)}</td><td>${r.seed}</td><td>${f(r.seconds, 0)}</td><td>${r.error ? `failed: ${escapeHtml(r.error)}` : 'ok'}</td></tr>`)
    .join('\n');
  const seeds = s.seeds.map((x) => `seed ${x.seed}: ${x.pairs} pairs, reward model held-out accuracy ${f(x.rewardModelAccuracy)} (${x.heldOutPairs} pairs)`).join('; ');
  const st = s.settings;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dpo-ts experiment: controlled sentiment</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.note{color:#555}
.row{display:flex;flex-wrap:wrap;gap:1em}.reading{background:#f6f8fa;border-left:4px solid #4e79a7;padding:.6em 1em}
</style></head><body>
<h1>Controlled sentiment: reward against KL</h1>
<p>The DPO paper's Figure 2 in miniature. Reference and starting policy <code>${escapeHtml(st.model)}</code>;
ground-truth reward <b>${escapeHtml(st.scorer)}</b>; ${st.seeds} seed${st.seeds > 1 ? 's' : ''} from ${st.seed} (pairs, reward model, training and samples all per seed): ${escapeHtml(seeds)}.
${st.trainPrompts} prompts × ${st.samplesPerPrompt} reference samples (${st.pairTopK ? `top-k ${st.pairTopK}` : 'pure sampling'}) make the pairs; reward model ${st.rewardModelSteps} steps, lr ${st.rewardLearningRate}.
${s.host.threads} ONNX Runtime threads on ${escapeHtml(s.host.cpu || 'an unnamed CPU')}; ${f(s.seconds, 0)} s in all${st.quick ? ' (--quick)' : ''}.</p>
${s.missing.length ? `<p><b>Missing (not finished yet):</b> ${s.missing.map(escapeHtml).join('; ')}.</p>` : ''}
<h2>What it shows</h2>
<div class="reading">${s.reading.map((r) => `<p>${escapeHtml(r)}</p>`).join('\n')}</div>
<p class="note">Computed from the pooled points below; a difference counts only where the 95% intervals do not overlap.</p>
${s.shift ? shiftSectionHtml(s.shift, escapeHtml, st.scorer, st.judge) : ''}
<div>${frontier}</div>
<p class="note">Each point: ${st.evalSamplesPerPrompt} fresh samples (temperature 1, no top-k/top-p, ≤ ${st.maxNewTokens} tokens) of each of ${st.heldOutPrompts} held-out prompts;
reward = mean ground-truth reward, KL = mean of log π(y|x) − log π_ref(y|x) over the samples. Trained runs: ${st.steps} steps of ${st.batchSize} pairs,
lr ${st.learningRate}, ${st.checkpoints} checkpoints each; DPO β ∈ {${st.betas.join(', ')}}; PPO target KL ∈ {${st.targetKls.join(', ')}} (PPO-GT at the middle one; steps/4 updates of 32-prompt rollouts, lr 2.5e-4, 'latched' KL controller from 0.2, whitened rewards);
Unlikelihood α = ${st.unlikelihoodAlpha}; Best-of-N (ranked by the learned reward) N ∈ {${st.bestOfN.join(', ')}}, KL = log N − (N−1)/N.
Hover a point for its numbers.</p>
<div class="row"><div>${rewardSteps}</div><div>${klSteps}</div></div>
<div class="row">${ppo ? `<div>${ppo}</div>` : ''}${wins ? `<div>${wins}</div>` : ''}</div>
<h2>Frontier points, pooled over seeds (95% intervals)</h2>
<table><tr><th>method</th><th>setting</th><th>step / N</th><th>reward [95%]</th><th>KL [95%]</th><th>seeds</th><th>samples</th></tr>
${pooledRows}
</table>
${winRows ? `<h2>Win rate against the reference (final checkpoints, 95% intervals)</h2>
<p class="note">Each held-out prompt's ${st.evalSamplesPerPrompt} samples from the policy and from the reference at the same temperature, paired in order; judged by ${escapeHtml(st.scorer)} (ties half)${st.judge ? ` and by ${escapeHtml(st.judge.model)} at ${escapeHtml(st.judge.url)} (asked in both orders)` : ''}.</p>
<table><tr><th>method</th><th>setting</th><th>temperature</th><th>win rate [95%]</th><th>LLM judge</th><th>seeds</th></tr>
${winRows}
</table>` : ''}
<h2>Per seed (± standard error over samples)</h2>
<table><tr><th>seed</th><th>method</th><th>setting</th><th>step / N</th><th>reward</th><th>KL</th><th>samples</th></tr>
${seedRows}
</table>
<h2>Runs</h2>
<table><tr><th>method</th><th>setting</th><th>seed</th><th>seconds</th><th>status</th></tr>
${runs}
</table>
</body></html>
`;
  await writeFile(path, html);
}
