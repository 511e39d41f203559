/**
 * The quickstart's self-contained HTML report: training curves, reward against KL, samples.
 * Plots are Vega-Lite specs rendered to inline SVG in Node (no browser, no network at view time).
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { TopLevelSpec } from 'vega-lite';

export interface FrontierPoint {
  step: number;
  reward: number;
  kl: number;
}

export interface SampleRow {
  prompt: string;
  before: string;
  beforeReward: number;
  after: string;
  afterReward: number;
}

export interface ReportInput {
  modelRef: string;
  scorerName: string;
  metricsFile: string;
  summary: {
    pairs: number;
    seconds: number;
    before: { reward: number; kl: number; accuracy: number };
    after: { reward: number; kl: number; accuracy: number };
    frontier: FrontierPoint[];
    samples: SampleRow[];
  };
  settings: Record<string, number>;
}

/** A Vega-Lite spec rendered to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // Loaded on first use: vega pulls in vega-canvas, whose top-level await would make the whole
  // package unloadable by require() (Node >= 20.19 requires ES modules only without one).
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

async function readMetrics(file: string): Promise<Record<string, number>[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, number>);
}

function curve(values: { step: number; value: number; series: string }[], title: string): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 320,
    height: 180,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
}

export async function writeReport(path: string, input: ReportInput): Promise<void> {
  const metrics = await readMetrics(input.metricsFile);
  const train = metrics.filter((m) => typeof m.loss === 'number');
  const evals = metrics.filter((m) => typeof m.eval_loss === 'number');
  const series = (rows: Record<string, number>[], key: string, name: string): { step: number; value: number; series: string }[] =>
    rows.filter((r) => Number.isFinite(r[key])).map((r) => ({ step: r.step, value: r[key], series: name }));

  const plots = await Promise.all([
    renderSvg(curve([...series(train, 'loss', 'train'), ...series(evals, 'eval_loss', 'held-out')], 'DPO loss')),
    renderSvg(curve([...series(train, 'rewards/accuracies', 'train'), ...series(evals, 'eval_rewards/accuracies', 'held-out')], 'implicit-reward accuracy')),
    renderSvg(curve([...series(train, 'rewards/margins', 'train'), ...series(evals, 'eval_rewards/margins', 'held-out')], 'implicit-reward margin')),
    renderSvg({
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: `${input.scorerName} reward vs KL(π‖π_ref)`,
      width: 320,
      height: 180,
      data: { values: input.summary.frontier },
      layer: [
        { mark: { type: 'line', point: true }, encoding: { x: { field: 'kl', type: 'quantitative', title: 'KL(π‖π_ref), nats' }, y: { field: 'reward', type: 'quantitative', title: 'mean reward', scale: { zero: false } }, order: { field: 'step' } } },
        { mark: { type: 'text', dy: -9 }, encoding: { x: { field: 'kl', type: 'quantitative' }, y: { field: 'reward', type: 'quantitative' }, text: { field: 'step', type: 'quantitative', format: 'd' } } },
      ],
    }),
  ]);

  const s = input.summary;
  const fmt = (v: number, d = 3): string => (Number.isFinite(v) ? v.toFixed(d) : '—');
  const rows = s.samples
    .map(
      (r) =>
        `<tr><td>${escapeHtml(r.prompt)}</td><td>${escapeHtml(r.before)}<div class="r">${fmt(r.beforeReward)}</div></td><td>${escapeHtml(r.after)}<div class="r">${fmt(r.afterReward)}</div></td></tr>`,
    )
    .join('\n');
  const settings = Object.entries(input.settings)
    .map(([k, v]) => `${escapeHtml(k)} ${v}`)
    .join(' · ');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dpo-ts quickstart report</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:1060px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.35em .6em;vertical-align:top;text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:1em}.r{color:#666;font-size:.85em}.note{color:#555}
</style></head><body>
<h1>DPO quickstart</h1>
<p>Model <code>${escapeHtml(input.modelRef)}</code>; ground-truth reward: <b>${escapeHtml(input.scorerName)}</b>; ${s.pairs} preference pairs; ${fmt(s.seconds, 0)} s in all.<br><span class="note">${settings}</span></p>
<table><tr><th></th><th>before (reference)</th><th>after DPO</th></tr>
<tr><td>mean reward of fresh samples on held-out prompts</td><td>${fmt(s.before.reward)}</td><td>${fmt(s.after.reward)}</td></tr>
<tr><td>KL(π‖π_ref) per sequence, nats</td><td>${fmt(s.before.kl)}</td><td>${fmt(s.after.kl)}</td></tr>
<tr><td>implicit-reward accuracy on held-out pairs</td><td>— (π = π_ref: every implicit reward is 0)</td><td>${fmt(s.after.accuracy)}</td></tr></table>
<div class="plots">${plots.map((p) => `<div>${p}</div>`).join('\n')}</div>
<h2>Samples on held-out prompts</h2>
<table><tr><th>prompt</th><th>before</th><th>after</th></tr>
${rows}
</table>
<p class="note">KL is estimated as the mean of log π(y|x) − log π_ref(y|x) over samples y ~ π. Rewards are the scorer's value of the continuation alone.</p>
</body></html>
`;
  await writeFile(path, html);
}
