/**
 * `dpo experiment sentiment` end to end on tiny settings (a tiny random GPT-2, the word-count
 * scorer so that its samples make pairs, a few prompts and steps): every method lands on the
 * frontier, the reference at KL 0, Best-of-N at its closed-form KL, and the report is
 * self-contained. A non-empty output folder is refused before anything is written.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, runSignalled } from '../cli/run-cli.js';
import type { FrontierPoint } from '../../src/experiment/frontier.js';
import { bestOfNKl } from '../../src/eval/best-of-n.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';

const TRAIN = ['The movie was', 'Our trip to the city', 'The food at the hotel', 'My first day at work', 'The new house', 'The music last night'];
const HELD_OUT = ['The concert was', 'The wedding'];

describe('dpo experiment sentiment (tiny settings)', () => {
  let dir: string;
  let model: string;
  let prompts: string;
  let heldOut: string;

  beforeAll(async () => {
    dir = tempDir('dpo-ts-experiment-');
    model = await makeTinyGpt2(join(dir, 'model'), { seed: 2 });
    prompts = join(dir, 'prompts.jsonl');
    heldOut = join(dir, 'heldout.jsonl');
    writeFileSync(prompts, TRAIN.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
    writeFileSync(heldOut, HELD_OUT.map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
  });

  const args = (output: string): string[] => [
    'experiment', 'sentiment', '--model', model, '--output', output, '--prompts', prompts, '--held-out-prompts', heldOut,
    '--scorer', 'length', '--samples', '4', '--eval-samples', '2', '--max-new-tokens', '6', '--steps', '2', '--checkpoints', '1',
    '--reward-steps', '2', '--batch-size', '8', '--learning-rate', '1e-3', '--betas', '0.1', '--target-kls', '6', '--best-of', '2', '--threads', '2',
  ];

  it('puts every method on the frontier and writes frontier.jsonl, summary.json and a self-contained report', async () => {
    const output = join(dir, 'out');
    const r = await runCli(args(output));
    expect(r.code, r.stderr).toBe(0);
    const points = readFileSync(join(output, 'frontier.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as FrontierPoint);
    const methods = new Set(points.map((p) => p.method));
    for (const m of ['reference', 'DPO', 'PPO', 'PPO-GT', 'Unlikelihood', 'Preferred-FT', 'Best-of-N']) expect(methods, m).toContain(m);
    const ref = points.find((p) => p.method === 'reference') as FrontierPoint;
    expect(ref.kl).toBe(0);
    expect(ref.samples).toBe(HELD_OUT.length * 2);
    expect(points.find((p) => p.method === 'Best-of-N')?.kl).toBeCloseTo(bestOfNKl(2), 12);
    for (const p of points.filter((x) => ['DPO', 'Unlikelihood', 'Preferred-FT'].includes(x.method))) {
      expect(p.step).toBe(2);
      expect(Number.isFinite(p.kl) && Number.isFinite(p.reward)).toBe(true);
    }
    // PPO: steps / 4 updates (at least one), its learned reward or the scorer.
    for (const p of points.filter((x) => x.method === 'PPO' || x.method === 'PPO-GT')) {
      expect(p.step).toBe(1);
      expect(p.setting).toBe('target_kl=6');
      expect(Number.isFinite(p.kl) && Number.isFinite(p.reward)).toBe(true);
    }
    const summary = JSON.parse(readFileSync(join(output, 'summary.json'), 'utf8'));
    expect(summary.points).toEqual(points);
    expect(summary.runs.every((x: { error?: string }) => !x.error)).toBe(true);
    expect(summary.settings.betas).toEqual([0.1]);
    expect(summary.settings.pairTopK).toBe(50);
    expect(summary.rewardModel.heldOutAccuracy).toBeGreaterThanOrEqual(0);
    expect(JSON.parse(r.stdout).points).toBe(points.length);
    const html = readFileSync(join(output, 'report.html'), 'utf8');
    expect(html.match(/<svg/g)?.length).toBe(5); // frontier, reward and KL by step, PPO's KL per update, win rates
    expect(html).not.toMatch(/<script[^>]+src=|https?:\/\/(?!vega\.github\.io|www\.w3\.org)/);
    for (const m of methods) expect(html).toContain(`<td>${m}</td>`);
  }, 300_000); // seven tiny training runs: about a minute alone, more under load

  it('refuses a non-empty output folder with one line and writes nothing', async () => {
    const r0 = await runCli(['experiment', 'sentiment', '--output', join(dir, 'x'), '--methods', 'DPO,Nope']);
    expect(r0.stderr).toMatch(/^dpo: experiment: unknown method 'Nope'/);
    const r1 = await runCli(['experiment', 'sentiment', '--output', join(dir, 'x'), '--pair-top-k', '-1']);
    expect(r1.stderr).toMatch(/^dpo: experiment: pair top-k must be an integer >= 0, got -1/);
    const taken = join(dir, 'taken');
    mkdirSync(taken);
    writeFileSync(join(taken, 'keep.txt'), 'mine');
    const r = await runCli(args(taken));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^dpo: --output .*taken is not empty \(keep\.txt\) and is not a dpo-ts dpo experiment sentiment run/);
    expect(readdirSync(taken)).toEqual(['keep.txt']);
    expect(readFileSync(join(taken, 'keep.txt'), 'utf8')).toBe('mine');
    const asModel = await runCli([...args(model)]);
    expect(asModel.code).toBe(1);
    expect(asModel.stderr).toMatch(/^dpo: --output .* is the model folder/);
  });

  it('SIGTERM keeps the finished runs; the same command reuses them and ends byte-identical; other settings set them aside', async () => {
    // Three units (the reference, DPO, Best-of-N): the cheapest sweep with a trained run.
    const cheap = (o: string, ...more: string[]): string[] => [...args(o), '--methods', 'DPO,Best-of-N', ...more];
    const whole = join(dir, 'whole');
    expect((await runCli(cheap(whole))).code).toBe(0);

    const output = join(dir, 'again');
    const stopped = await runSignalled(cheap(output), /^== Best-of-N/m, 'SIGTERM');
    expect(stopped.sent).toBe(true);
    expect(stopped.code, stopped.stderr).toBe(143);
    expect(stopped.stderr).toMatch(/stopped: kept the results of 2 finished runs of 3 in .*points \(the run in progress was dropped\); the same command continues from there/);
    expect(readdirSync(join(output, 'points', 'seed-0')).sort()).toEqual(['dpo-beta-0.1.json', 'reference.json', 'seed.json']);

    const r = await runCli(cheap(output));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('reused 2 finished runs (reference, DPO beta=0.1)');
    expect(r.stderr).not.toMatch(/^== DPO/m);
    // The same bytes as the uninterrupted run (only the wall times differ).
    expect(readFileSync(join(output, 'frontier.jsonl'), 'utf8')).toBe(readFileSync(join(whole, 'frontier.jsonl'), 'utf8'));
    const timeless = (folder: string): string =>
      readFileSync(join(folder, 'summary.json'), 'utf8').replaceAll(folder, '<out>').replace(/"seconds": [\d.e+-]+/g, '"seconds": 0');
    expect(timeless(output)).toBe(timeless(whole));

    // Other settings (another method list): the earlier results are moved aside, none reused.
    const other = await runCli([...args(output), '--methods', 'Best-of-N']);
    expect(other.code, other.stderr).toBe(0);
    expect(other.stderr).toMatch(/moved the results of an earlier experiment run with other settings \(methods differ\) to .*earlier-runs/);
    expect(other.stderr).not.toContain('reused');
    const methods = readFileSync(join(output, 'frontier.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as FrontierPoint).method);
    expect(methods).toEqual(['reference', 'Best-of-N']);
    expect(readdirSync(output)).not.toContain('runs');
    const [aside] = readdirSync(join(output, 'earlier-runs'));
    expect(readdirSync(join(output, 'earlier-runs', aside))).toEqual(expect.arrayContaining(['runs', 'points', 'frontier.jsonl', 'summary.json']));
  }, 300_000);
});
