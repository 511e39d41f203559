/**
 * `dpo eval` (one JSON object, per-example rows in input order) and a Plackett-Luce ranking
 * dataset (K = 3) trained end to end through `dpo train`.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliRun } from './run-cli.js';
import { Rng } from '../../src/data/rng.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';

const dpo = (...argv: string[]): Promise<CliRun> => runCli(argv);

const readJsonl = (file: string): Record<string, unknown>[] => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const PER_EXAMPLE_KEYS = ['policy_chosen_logps', 'policy_rejected_logps', 'reference_chosen_logps', 'reference_rejected_logps', 'chosen_reward', 'rejected_reward', 'loss'];

let dir: string;
let model: string;
let other: string;

beforeAll(async () => {
  dir = tempDir('dpo-ts-eval-');
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 21 });
  other = await makeTinyGpt2(join(dir, 'other'), { seed: 22 });
});

describe('dpo eval', () => {
  // Chosen completions grow row by row, so their log-probs fall strictly: the order is visible.
  const rows = Array.from({ length: 7 }, (_, i) => ({ prompt: `Row ${i}:`, chosen: ' yes'.repeat(i + 1), rejected: ' no' }));
  let data: string;
  beforeAll(() => {
    data = join(dir, 'eval.jsonl');
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n'));
  });

  it('the model as its own reference: one JSON object, rewards 0, loss ln 2, rows in input order', async () => {
    const per = join(dir, 'per-example.jsonl');
    const r = await dpo('eval', '--model', model, '--data', data, '--batch-size', '3', '--per-example', per, '--threads', '1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const m = JSON.parse(r.stdout);
    expect(m.eval_rows).toBe(7);
    expect(m.eval_loss).toBeCloseTo(Math.LN2, 6);
    expect(m['eval_rewards/chosen']).toBe(0);
    expect(m['eval_rewards/margins']).toBe(0);
    for (const k of ['eval_rewards/rejected', 'eval_rewards/accuracies', 'eval_logps/chosen', 'eval_logps/rejected', 'eval_logits/chosen', 'eval_logits/rejected']) expect(m).toHaveProperty(k);

    const lines = readJsonl(per);
    expect(lines).toHaveLength(7);
    for (const l of lines) {
      expect(Object.keys(l).sort()).toEqual([...PER_EXAMPLE_KEYS].sort());
      expect(l.chosen_reward).toBe(0);
      expect(l.rejected_reward).toBe(0);
      expect(l.reference_chosen_logps).toBe(l.policy_chosen_logps);
      expect(l.loss as number).toBeCloseTo(Math.LN2, 6);
    }
    const chosen = lines.map((l) => l.policy_chosen_logps as number);
    for (let i = 1; i < chosen.length; i++) expect(chosen[i]).toBeLessThan(chosen[i - 1]);
  });

  it('with another reference: rewards are beta x log-ratios and the loss is -log sigmoid(margin)', async () => {
    const per = join(dir, 'per-example-ref.jsonl');
    const r = await dpo('eval', '--model', model, '--ref-model', other, '--data', data, '--beta', '0.5', '--per-example', per, '--threads', '1');
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout);
    const lines = readJsonl(per) as Record<string, number>[];
    let margins = 0;
    for (const l of lines) {
      expect(l.chosen_reward).toBeCloseTo(0.5 * (l.policy_chosen_logps - l.reference_chosen_logps), 4);
      expect(l.rejected_reward).toBeCloseTo(0.5 * (l.policy_rejected_logps - l.reference_rejected_logps), 4);
      const margin = l.chosen_reward - l.rejected_reward;
      expect(l.loss).toBeCloseTo(Math.log1p(Math.exp(-margin)), 4);
      margins += margin;
    }
    expect(m['eval_rewards/margins']).toBeCloseTo(margins / lines.length, 4);
    expect(m.eval_loss).toBeCloseTo(lines.reduce((s, l) => s + l.loss, 0) / lines.length, 4);
  });
  it('a LoRA run (dpo train --lora-r) evaluates from its adapter folder', async () => {
    const out = join(dir, 'lora');
    const t = await dpo(
      'train', '--model', model, '--data', data, '--output', out, '--cache-dir', join(dir, 'cache'), '--threads', '1',
      '--lora-r', '4', '--lora-alpha', '8', '--lora-dropout', '0.1', '--max-steps', '2', '--batch-size', '4', '--learning-rate', '5e-2',
    );
    expect(t.code, t.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).lora_dropout).toBe(0.1);
    const e = await dpo('eval', '--model', out, '--ref-model', model, '--data', data, '--threads', '1');
    expect(e.code, e.stderr).toBe(0);
    const m = JSON.parse(e.stdout);
    expect(Math.abs(m['eval_rewards/chosen'])).toBeGreaterThan(1e-4); // the merged adapters changed the policy
    expect(m.eval_loss).not.toBeCloseTo(Math.LN2, 4);
  });
});

describe('Plackett-Luce rankings (K = 3)', () => {
  it('train end to end with dpo train, then dpo eval reports arrays for the lower ranks', async () => {
    const SUBJECTS = ['The movie', 'This book', 'The meal', 'Our trip', 'The song', 'That game', 'The show', 'My day'];
    const BEST = [' was wonderful and fun.', ' was great, I loved it.'];
    const MID = [' was fine, I guess.', ' was okay overall.'];
    const WORST = [' was awful and dull.', ' was terrible, I hated it.'];
    const rng = new Rng(9);
    const pick = (a: string[]): string => a[Math.floor(rng.nextFloat() * a.length)];
    const data = join(dir, 'rankings.jsonl');
    const lines = Array.from({ length: 16 }, (_, i) => JSON.stringify({ prompt: `${pick(SUBJECTS)} ${i % 5}`, completions: [pick(BEST), pick(MID), pick(WORST)] }));
    writeFileSync(data, `${lines.join('\n')}\n`);
    const out = join(dir, 'ranked');

    // Pairwise-only loss types are refused for rankings before anything is written.
    const ipo = await dpo('train', '--model', model, '--data', data, '--output', out, '--loss-type', 'ipo');
    expect(ipo.code).toBe(1);
    expect(ipo.stderr).toMatch(/\ndpo: loss type 'ipo' needs pairs; rankings of 3 completions/);
    expect(existsSync(out)).toBe(false);

    const r = await dpo(
      'train', '--model', model, '--data', data, '--output', out, '--cache-dir', join(dir, 'cache'), '--threads', '1',
      '--max-steps', '6', '--batch-size', '8', '--learning-rate', '1e-2', '--lr-scheduler', 'constant', '--logging-steps', '1',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ steps: 6, interrupted: false });
    const metrics = readJsonl(join(out, 'metrics.jsonl')) as Record<string, number>[];
    expect(metrics[0].loss).toBeCloseTo(Math.log(6), 3); // log 3! at the start: all rankings equally likely
    expect(metrics.at(-1)!.loss).toBeLessThan(metrics[0].loss - 0.3);

    const per = join(dir, 'ranked-per-example.jsonl');
    const e = await dpo('eval', '--model', out, '--ref-model', model, '--data', data, '--per-example', per, '--threads', '1');
    expect(e.code, e.stderr).toBe(0);
    const m = JSON.parse(e.stdout);
    expect(m.eval_rows).toBe(16);
    expect(m['eval_rewards/accuracies']).toBeGreaterThan(0.5);
    expect(m.eval_loss).toBeLessThan(Math.log(6));
    const rows = readJsonl(per);
    expect(rows).toHaveLength(16);
    expect(rows[0].policy_rejected_logps).toHaveLength(2);
    expect(rows[0].rejected_reward).toHaveLength(2);
    expect(typeof rows[0].chosen_reward).toBe('number');
  });
});
