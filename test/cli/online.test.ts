/** `dpo online`: flags, help, config errors, and a short run end to end. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ONLINE_OPTIONS } from '../../src/cli/online.js';
import { OnlineDPOConfigSchema } from '../../src/train/online/config.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';
import { runCli } from './run-cli.js';

describe('dpo online', () => {
  it('has a flag for every OnlineDPOConfig key, and help with examples', async () => {
    const flagged = new Set(ONLINE_OPTIONS.map((s) => s.key.split('.')[0]));
    expect(Object.keys(OnlineDPOConfigSchema.shape).filter((k) => !flagged.has(k))).toEqual([]);
    const r = await runCli(['online', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--prompts', '--reward-model', '--scorer', '--judge-url', '--judge-model', '--loss-type', '--beta', '--missing-eos-penalty', '--temperature', '--top-k', '--top-p', '--max-new-tokens', '--lora-r', '--resume', '--eval-prompts']) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toContain('$ dpo online ');
    expect(r.stdout).toMatch(/--beta <betas>\s+beta, or one beta per epoch/);
  });

  it('refuses a run without a ranker, and a bad value, in one line', async () => {
    const a = await runCli(['online', '--model', 'm', '--prompts', 'p.jsonl', '--output', 'o']);
    expect(a.code).toBe(1);
    expect(a.stderr.trim()).toMatch(/^dpo: online: give exactly one of rewardModel, scorer and judgeUrl/);
    const b = await runCli(['online', '--model', 'm', '--prompts', 'p.jsonl', '--output', 'o', '--scorer', 'sentiment', '--loss-type', 'hinge']);
    expect(b.code).toBe(1);
    expect(b.stderr.trim().split('\n')).toHaveLength(1);
    expect(b.stderr).toMatch(/--loss-type/);
  });

  it('trains a tiny model from a prompts file and prints a JSON summary', async () => {
    const dir = tempDir('dpo-ts-online-cli-');
    const model = await makeTinyGpt2(join(dir, 'model'));
    const prompts = join(dir, 'prompts.jsonl');
    writeFileSync(prompts, ['The movie', 'This book', 'Our trip', 'The song'].map((p) => JSON.stringify({ prompt: p })).join('\n'));
    const out = join(dir, 'out');
    const r = await runCli(['online', '--model', model, '--prompts', prompts, '--output', out, '--scorer', 'length', '--batch-size', '4', '--max-steps', '2',
      '--max-new-tokens', '4', '--beta', '0.1,0.3', '--loss-type', 'ipo', '--logging-steps', '1', '--eval-prompts', prompts, '--eval-on-start', '--threads', '1']);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ output: out, steps: 2, interrupted: false });
    expect(Object.keys(summary.eval_metrics)).toEqual(['eval_objective/scores', 'eval_objective/kl']);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.step, 'eval_objective/kl' in l])).toEqual([[0, true], [1, false], [2, false], [2, true]]);
    expect(lines[0]['eval_objective/kl']).toBe(0); // before any step the policy is the reference
    // IPO at the first step (policy = reference): (0 - 1/(2 beta))^2.
    expect(lines[1].loss).toBeCloseTo((1 / 0.2) ** 2, 4);
    expect(lines[2].beta).toBe(0.3); // one batch per epoch: step 2 is the second epoch's
  }, 60_000);
});
