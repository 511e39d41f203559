import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runQuickstart, SHIPPED_MODEL } from '../../src/quickstart/run.js';
import { HELD_OUT_PROMPTS, TRAIN_PROMPTS } from '../../src/data/builtin-prompts.js';
import { silentProgress } from '../../src/progress.js';
import { loadPretrained } from '../../src/models/pretrained.js';
import { tempDir } from '../train/helpers.js';

describe('quickstart', () => {
  it('ships a small pretrained GPT-2 with its tokenizer, under 30 MB', async () => {
    const p = await loadPretrained(SHIPPED_MODEL);
    expect(p.model.modelType).toBe('gpt2');
    expect(p.tokenizer?.encode(' the')).toEqual([262]);
    const params = p.model.parameters().reduce((n, q) => n + q.shape.reduce((a, b) => a * b, 1), 0);
    expect(params).toBeLessThan(15_000_000);
  });

  it('runs sample -> rank -> DPO -> compare -> report end to end on the shipped model (shortened)', async () => {
    const dir = tempDir();
    const output = join(dir, 'qs');
    const s = await runQuickstart({
      output,
      trainPrompts: TRAIN_PROMPTS.slice(0, 16),
      heldOutPrompts: HELD_OUT_PROMPTS.slice(0, 4),
      samplesPerPrompt: 4,
      evalSamplesPerPrompt: 2,
      maxNewTokens: 16,
      steps: 4,
      batchSize: 4,
      frontierPoints: 2,
      threads: 2,
      progress: silentProgress,
    });
    // Preference pairs: chosen has the higher ground-truth reward.
    const pairs = readFileSync(s.pairsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(pairs.length).toBe(s.pairs);
    for (const p of pairs) expect(p.chosen_reward).toBeGreaterThan(p.rejected_reward);
    // Before: pi = pi_ref, so the KL estimate is exactly 0.
    expect(s.before.kl).toBe(0);
    expect(Number.isFinite(s.after.kl)).toBe(true);
    // With few samples the held-out prompts may give no pair of different rewards: accuracy is then NaN.
    if (!Number.isNaN(s.after.accuracy)) expect(s.after.accuracy).toBeGreaterThanOrEqual(0);
    expect(s.frontier[0].step).toBe(0);
    expect(s.frontier.at(-1)?.step).toBe(4);
    // The report is self-contained HTML with inline SVG plots.
    const html = readFileSync(s.report, 'utf8');
    expect(html).toContain('<svg');
    expect(html.match(/<svg/g)?.length).toBe(4);
    expect(html).not.toMatch(/<script[^>]+src=|https?:\/\/(?!vega\.github\.io|www\.w3\.org)/);
    expect(existsSync(join(output, 'model', 'model.safetensors'))).toBe(true);
    expect(JSON.parse(readFileSync(join(output, 'summary.json'), 'utf8')).pairs).toBe(s.pairs);
  });
});
