/** `dpo ppo`: flags, help, config errors, and a short run end to end. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PPO_OPTIONS } from '../../src/cli/ppo.js';
import { PPOConfigSchema } from '../../src/train/ppo/config.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';
import { runCli } from './run-cli.js';

describe('dpo ppo', () => {
  it('has a flag for every PPOConfig key, and help with examples', async () => {
    const flagged = new Set(PPO_OPTIONS.map((s) => s.key));
    // evalPrompts/prompts take a file on the command line (string lists are for the library).
    expect(Object.keys(PPOConfigSchema.shape).filter((k) => !flagged.has(k))).toEqual([]);
    const r = await runCli(['ppo', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--init-kl-coef', '--target-kl', '--gamma', '--lam', '--cliprange', '--cliprange-value', '--vf-coef', '--ppo-epochs', '--whiten-rewards', '--reward-model', '--scorer']) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toContain('$ dpo ppo ');
  });

  it('refuses a run without a reward, and a bad number, in one line', async () => {
    const a = await runCli(['ppo', '--model', 'm', '--prompts', 'p.jsonl', '--output', 'o']);
    expect(a.code).toBe(1);
    expect(a.stderr.trim()).toMatch(/^dpo: ppo: give exactly one of rewardModel .* and scorer/);
    const b = await runCli(['ppo', '--model', 'm', '--prompts', 'p.jsonl', '--output', 'o', '--scorer', 'sentiment', '--target-kl', 'six']);
    expect(b.code).toBe(1);
    expect(b.stderr.trim()).toBe("dpo: --target-kl: expected a number, got 'six'");
  });

  it('trains a tiny model from a prompts file and prints a JSON summary', async () => {
    const dir = tempDir('dpo-ts-ppo-cli-');
    const model = await makeTinyGpt2(join(dir, 'model'));
    const prompts = join(dir, 'prompts.jsonl');
    writeFileSync(prompts, ['The movie', 'This book', 'Our trip'].map((p) => JSON.stringify({ prompt: p })).join('\n'));
    const out = join(dir, 'out');
    const r = await runCli(['ppo', '--model', model, '--prompts', prompts, '--output', out, '--scorer', 'length', '--batch-size', '3', '--max-steps', '2',
      '--ppo-epochs', '1', '--max-new-tokens', '4', '--eval-prompts', prompts, '--eval-on-start', '--threads', '1']);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ output: out, steps: 2, interrupted: false });
    expect(summary.metrics['objective/scores']).toBeGreaterThan(0);
    expect(Object.keys(summary.eval_metrics)).toEqual(['eval_objective/scores', 'eval_objective/kl']);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.step, 'eval_objective/scores' in l])).toEqual([[0, true], [1, false], [2, false], [2, true]]);
    expect(lines[0]['eval_objective/kl']).toBe(0); // before any update the policy is the reference
  }, 60_000);
});
