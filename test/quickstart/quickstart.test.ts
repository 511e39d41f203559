import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runQuickstart } from '../../src/quickstart/run.js';
import { silentProgress } from '../../src/train/progress.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';

describe('quickstart', () => {
  it('runs sample -> rank -> DPO -> compare -> report end to end (shortened)', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    const output = join(dir, 'qs');
    const s = await runQuickstart({
      model,
      output,
      trainPrompts: ['The movie was', 'The food', 'My day', 'The book', 'The trip', 'Our team'],
      heldOutPrompts: ['The concert', 'The party'],
      samplesPerPrompt: 4,
      evalSamplesPerPrompt: 2,
      maxNewTokens: 8,
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
    // A random model's held-out samples may all score 0 (no pairs): accuracy is then NaN.
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
