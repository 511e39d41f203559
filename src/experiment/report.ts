/**
 * The experiment's self-contained HTML report: the reward-KL frontier (one colour per method, a
 * point per checkpoint, each trained run's points joined in training order from the reference)
 * and a table of every point. Vega-Lite rendered to inline SVG in Node, as the quickstart's.
 */
import { writeFile } from 'node:fs/promises';
import { escapeHtml, renderSvg } from '../quickstart/report.js';
import type { FrontierPoint } from './frontier.js';
import type { SentimentExperimentSummary } from './summary.js';

const label = (p: Pick<FrontierPoint, 'method' | 'setting'>): string => (p.setting ? `${p.method} ${p.setting}` : p.method);

/** Line segments: each trained run from the reference through its checkpoints; Best-of-N by N. */
interface LinePoint {
  run: string;
  method: string;
  order: number;
  kl: number;
  reward: number;
}

function lines(points: readonly FrontierPoint[]): LinePoint[] {
  const ref = points.find((p) => p.method === 'reference');
  const out: LinePoint[] = [];
  const runs = new Map<string, FrontierPoint[]>();
  for (const p of points) {
    if (p.method === 'reference') continue;
    const key = p.method === 'Best-of-N' ? p.method : label(p);
    runs.set(key, [...(runs.get(key) ?? []), p]);
  }
  for (const [run, ps] of runs) {
    const ordered = [...(ref ? [ref] : []), ...[...ps].sort((a, b) => a.step - b.step)];
    ordered.forEach((p, i) => out.push({ run, method: ps[0].method, order: i, kl: p.kl, reward: p.reward }));
  }
  return out;
}

export async function writeExperimentReport(path: string, s: SentimentExperimentSummary): Promise<void> {
  const axes = {
    x: { field: 'kl', type: 'quantitative' as const, title: 'KL(π‖π_ref), nats per sequence' },
    y: { field: 'reward', type: 'quantitative' as const, title: `mean ${s.settings.scorer} reward (held-out prompts)`, scale: { zero: false } },
  };
  const color = { field: 'method', type: 'nominal' as const, title: 'method', sort: ['reference', 'DPO', 'PPO', 'PPO-GT', 'Unlikelihood', 'Preferred-FT', 'Best-of-N'] };
  const plot = await renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'reward vs KL(π‖π_ref): the frontier',
    width: 560,
    height: 340,
    layer: [
      { data: { values: lines(s.points) }, mark: { type: 'line', opacity: 0.35 }, encoding: { ...axes, color, detail: { field: 'run', type: 'nominal' }, order: { field: 'order', type: 'quantitative' } } },
      { data: { values: s.points }, mark: { type: 'point', filled: true, size: 60 }, encoding: { ...axes, color, shape: { field: 'method', type: 'nominal', legend: null } } },
    ],
  });
  const f = (v: number, d = 3): string => (Number.isFinite(v) ? v.toFixed(d) : '—');
  const rows = s.points
    .map((p) => `<tr><td>${escapeHtml(p.method)}</td><td>${escapeHtml(p.setting)}</td><td>${p.step}</td><td>${f(p.reward)} ± ${f(p.rewardStderr)}</td><td>${f(p.kl, 2)}${p.klStderr ? ` ± ${f(p.klStderr, 2)}` : ' (exact)'}</td><td>${p.samples}</td></tr>`)
    .join('\n');
  const runs = s.runs
    .map((r) => `<tr><td>${escapeHtml(r.method)}</td><td>${escapeHtml(r.setting)}</td><td>${f(r.seconds, 0)}</td><td>${r.error ? `failed: ${escapeHtml(r.error)}` : 'ok'}</td></tr>`)
    .join('\n');
  const st = s.settings;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dpo-ts experiment: controlled sentiment</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:1060px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.note{color:#555}
</style></head><body>
<h1>Controlled sentiment: reward against KL</h1>
<p>The DPO paper's Figure 2 in miniature. Reference and starting policy <code>${escapeHtml(st.model)}</code>;
ground-truth reward <b>${escapeHtml(st.scorer)}</b>; ${s.pairs} preference pairs from ${st.trainPrompts} prompts × ${st.samplesPerPrompt} reference samples (${st.pairTopK ? `top-k ${st.pairTopK}` : 'pure sampling'});
reward model (${st.rewardModelSteps} steps, lr ${st.rewardLearningRate}) held-out pair accuracy <b>${f(s.rewardModel.heldOutAccuracy)}</b> (${s.rewardModel.heldOutPairs} pairs; chance is 0.5); ${f(s.seconds, 0)} s in all${st.quick ? ' (--quick)' : ''}.</p>
<p class="note">Each point: ${st.evalSamplesPerPrompt} fresh samples (temperature 1, no top-k/top-p, ≤ ${st.maxNewTokens} tokens) of each of ${st.heldOutPrompts} held-out prompts;
reward = mean ground-truth reward, KL = mean of log π(y|x) − log π_ref(y|x) over the samples (± standard errors). Trained runs: ${st.steps} steps of ${st.batchSize} pairs,
lr ${st.learningRate}, ${st.checkpoints} checkpoints each; DPO β ∈ {${st.betas.join(', ')}}; PPO target KL ∈ {${st.targetKls.join(', ')}} (PPO-GT at the middle one; steps/4 updates of 32-prompt rollouts, lr 5e-4, KL coefficient from 0.2 adapted every rollout);
Unlikelihood α = ${st.unlikelihoodAlpha}; Best-of-N (ranked by the learned reward) N ∈ {${st.bestOfN.join(', ')}}, KL = log N − (N−1)/N.</p>
<div>${plot}</div>
<h2>Frontier points</h2>
<table><tr><th>method</th><th>setting</th><th>step / N</th><th>reward</th><th>KL</th><th>samples</th></tr>
${rows}
</table>
<h2>Runs</h2>
<table><tr><th>method</th><th>setting</th><th>seconds</th><th>status</th></tr>
${runs}
</table>
</body></html>
`;
  await writeFile(path, html);
}
