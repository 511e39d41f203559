/**
 * The distribution-shift study (`dpo experiment sentiment --shift`) on tiny settings: the table has
 * an in-distribution and a shifted column for every trained method (and the reference), its
 * numbers are the ones computed here from the per-sample results each unit kept, the report shows
 * them, and bad prompt files get one clear line before anything runs.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../cli/run-cli.js';
import type { FrontierPoint } from '../../src/experiment/frontier.js';
import type { ShiftCell, ShiftResult, ShiftRow, ShiftTable } from '../../src/experiment/shift.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';
import { choose, startFakeJudge } from '../eval/fake-judge.js';
import { resolveSettings } from '../../src/experiment/sentiment.js';
import { SHIFT_IN_DISTRIBUTION_PROMPTS, SHIFT_SHIFTED_PROMPTS, SHIFT_TRAIN_PROMPTS } from '../../src/data/shift-prompts.js';

const TRAIN = ['The movie was', 'Our trip to the city', 'The food at the hotel', 'My first day at work', 'The new house', 'The music last night'];
const SHIFTED = ['She turned to the door', 'The ship sailed', 'He laughed at'];

/** Mean and 95% normal interval (mean ± 1.96 sd/sqrt(n), sd with n − 1), written out here rather than taken from the library. */
function interval(xs: readonly number[]): { mean: number; low: number; high: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  const half = (1.96 * sd) / Math.sqrt(n);
  return { mean, low: mean - half, high: mean + half };
}

/** 95% Wilson interval of k successes in n, written out. */
function wilson(k: number, n: number): [number, number] {
  const z = 1.959963984540054;
  const p = k / n;
  const c = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
  const h = (z / (1 + (z * z) / n)) * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return [Math.max(0, c - h), Math.min(1, c + h)];
}

const words = (s: string): number => (s.trim() ? s.trim().split(/\s+/).length : 0);

function expectCell(cell: ShiftCell, kept: ShiftResult['inDistribution'], temps: readonly number[]): void {
  const r = interval(kept.perSample.rewards);
  expect(cell.reward).toBeCloseTo(r.mean, 12);
  expect(cell.rewardCi[0]).toBeCloseTo(r.low, 12);
  expect(cell.rewardCi[1]).toBeCloseTo(r.high, 12);
  const k = interval(kept.perSample.logRatios);
  expect(cell.kl).toBeCloseTo(k.mean, 12);
  expect(cell.klCi[0]).toBeCloseTo(k.low, 12);
  expect(cell.samples).toBe(kept.perSample.rewards.length);
  expect(cell.winRates.map((w) => w.temperature)).toEqual(temps);
  temps.forEach((t, j) => {
    const w = interval(kept.perSample.wins[j]);
    expect(cell.winRates[j].winRate).toBeCloseTo(w.mean, 12);
    expect(cell.winRates[j].winRateCi[1]).toBeCloseTo(w.high, 12);
    expect(kept.perSample.wins[j].every((x) => x === 0 || x === 0.5 || x === 1)).toBe(true);
    // The fake judge prefers the completion with more words, as the ground truth ('length') does,
    // and picks position A on equal counts (inconsistent over both orders: a tie): the same win rate.
    const n = kept.perSample.wins[j].length;
    expect(cell.winRates[j].judgePairs).toBe(n);
    expect(cell.winRates[j].judgeWinRate).toBeCloseTo(w.mean, 12);
    const [lo, hi] = wilson(w.mean * n, n);
    expect(cell.winRates[j].judgeWinRateCi?.[0]).toBeCloseTo(lo, 12);
    expect(cell.winRates[j].judgeWinRateCi?.[1]).toBeCloseTo(hi, 12);
  });
}

describe('dpo experiment sentiment --shift (tiny settings)', () => {
  let dir: string;
  let model: string;
  let train: string;
  let shifted: string;

  beforeAll(async () => {
    dir = tempDir('dpo-ts-shift-');
    model = await makeTinyGpt2(join(dir, 'model'), { seed: 2 });
    train = join(dir, 'train.jsonl');
    shifted = join(dir, 'shifted.jsonl');
    writeFileSync(train, TRAIN.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
    writeFileSync(shifted, SHIFTED.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
  });

  const args = (output: string, shiftFile = shifted): string[] => [
    'experiment', 'sentiment', '--model', model, '--output', output, '--train-prompts', train, '--shift-prompts', shiftFile,
    '--scorer', 'length', '--samples', '4', '--eval-samples', '2', '--max-new-tokens', '5', '--steps', '2', '--checkpoints', '1',
    '--reward-steps', '1', '--batch-size', '8', '--learning-rate', '1e-3', '--betas', '0.1', '--threads', '2',
    '--methods', 'DPO,Preferred-FT,Best-of-N', '--best-of', '2', '--win-temperatures', '0.5,1',
  ];

  it('reports every trained method in and out of distribution, the numbers those of the per-sample results', async () => {
    const output = join(dir, 'out');
    const judge = await startFakeJudge((q) => choose(words(q.b) > words(q.a) ? 'B' : 'A'));
    const r = await runCli([...args(output), '--judge-url', judge.url, '--judge-model', 'fake']).finally(() => judge.close());
    expect(r.code, r.stderr).toBe(0);
    expect(judge.requests.length).toBeGreaterThan(0);
    const summary = JSON.parse(readFileSync(join(output, 'summary.json'), 'utf8')) as { shift: ShiftTable; points: FrontierPoint[]; settings: { heldOutPrompts: number } };
    const table = summary.shift;
    // Every third training prompt is held out as the in-distribution set.
    expect(table.prompts).toEqual({ train: 4, inDistribution: 2, shifted: 3 });
    expect(table.genres).toBeUndefined();
    // The trained runs and the reference; Best-of-N, not trained, is on the frontier only.
    expect(table.rows.map((x: ShiftRow) => `${x.method} ${x.setting}`.trim())).toEqual(['reference', 'DPO beta=0.1', 'Preferred-FT']);
    for (const row of table.rows) {
      const kept = (JSON.parse(readFileSync(join(output, 'points', 'seed-0', `${row.method === 'reference' ? 'reference' : row.method === 'DPO' ? 'dpo-beta-0.1' : 'preferred-ft'}.json`), 'utf8')) as { shift: ShiftResult }).shift;
      const temps = row.method === 'reference' ? [] : [0.5, 1];
      expectCell(row.inDistribution, kept.inDistribution, temps);
      expectCell(row.shifted, kept.shifted, temps);
      expect(row.inDistribution.samples).toBe(2 * 2);
      expect(row.shifted.samples).toBe(3 * 2);
      // In distribution is the frontier's last point of the run.
      const last = summary.points.filter((p) => p.method === row.method).at(-1) as FrontierPoint;
      expect(row.inDistribution.reward).toBeCloseTo(last.reward, 12);
      expect(row.inDistribution.kl).toBeCloseTo(last.kl, 12);
      if (row.method === 'reference') expect([row.inDistribution.kl, row.shifted.kl]).toEqual([0, 0]);
    }
    const html = readFileSync(join(output, 'report.html'), 'utf8');
    const section = html.slice(html.indexOf('id="shift"'));
    // reward, KL, then the ground truth's and the judge's win rate at each of 2 temperatures.
    expect(section).toContain('<th colspan="6">in distribution</th><th colspan="6">shifted</th>');
    const f = (v: number): string => v.toFixed(3);
    for (const row of table.rows) {
      for (const c of [row.inDistribution, row.shifted]) expect(section).toContain(`<td>${f(c.reward)} [${f(c.rewardCi[0])}, ${f(c.rewardCi[1])}]</td>`);
    }
    expect(r.stderr).toMatch(/Distribution shift \(the paper's Table 1\)/);
  }, 240_000); // about 12 CPU-seconds (two tiny runs, both held-out sets); minutes of wall time on a loaded machine

  it('refuses bad prompt files with one line, before anything runs', async () => {
    const empty = join(dir, 'empty.jsonl');
    writeFileSync(empty, '');
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "fine"}\n{"text": "no prompt"}\n');
    const overlap = join(dir, 'overlap.jsonl');
    writeFileSync(overlap, `${JSON.stringify({ prompt: 'The new house' })}\n`);
    const two = join(dir, 'two.jsonl');
    writeFileSync(two, '{"prompt": "a"}\n{"prompt": "b"}\n');
    const out = join(dir, 'refused');
    const cases: [string[], RegExp][] = [
      [args(out, empty), /^dpo: --shift-prompts .*empty\.jsonl: no prompts$/],
      // A malformed row: the data files' usual report (a line naming the count, then file:line: reason).
      [args(out, bad), /^dpo: 1 malformed data row .*\n\s+.*bad\.jsonl:2: expected a 'prompt'/],
      [args(out, overlap), /^dpo: experiment: 1 shifted prompt is also a training prompt \('The new house'\)/],
      [[...args(out), '--prompts', train], /^dpo: --prompts and --train-prompts name the same thing; give one$/],
    ];
    for (const [argv, message] of cases) {
      const r = await runCli(argv);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(argv.includes(bad) ? 2 : 1);
      expect(r.stderr.trim()).toMatch(message);
    }
    expect(existsSync(out)).toBe(false);
    const r = await runCli(['experiment', 'sentiment', '--model', model, '--output', join(dir, 'few'), '--train-prompts', two, '--shift']);
    expect(r.stderr.trim()).toMatch(/^dpo: experiment: 2 training prompts; the shift study holds out every third of them as the in-distribution set, so it needs at least 3/);
  });

  it('--shift takes the built-in Brown sets, and --quick --shift its smaller settings; plain --quick is unchanged', () => {
    const s = resolveSettings({ shift: true, quick: true });
    expect([s.trainPrompts, s.heldOutPrompts, s.shift]).toEqual([SHIFT_TRAIN_PROMPTS.length, SHIFT_IN_DISTRIBUTION_PROMPTS.length, { shiftedPrompts: SHIFT_SHIFTED_PROMPTS.length, builtInPrompts: true }]);
    expect([s.betas, s.checkpoints, s.evalSamplesPerPrompt, s.steps, s.winTemperatures]).toEqual([[0.1], 1, 4, 40, [0.5, 1]]);
    const q = resolveSettings({ quick: true });
    expect([q.betas, q.checkpoints, q.evalSamplesPerPrompt, q.shift, q.trainPrompts, q.heldOutPrompts]).toEqual([[0.1, 1], 2, 8, undefined, 40, 16]);
    expect(resolveSettings({ shift: true, quick: true, evalSamplesPerPrompt: 8, betas: [1] })).toMatchObject({ evalSamplesPerPrompt: 8, betas: [1] });
    expect(resolveSettings({ shiftPrompts: ['Once upon a time'] }).shift).toEqual({ shiftedPrompts: 1, builtInPrompts: false });
  });
});
