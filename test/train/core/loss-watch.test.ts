/** A loss that rises by orders of magnitude (finite, so the divergence check passes) is warned about, once. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LossWatch } from '../../../src/train/core/loop.js';
import { runCli } from '../../cli/run-cli.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

describe('loss watch', () => {
  it('warns once when a loss is over 100x the first step', () => {
    const w = new LossWatch();
    expect(w.check(1, 0.693)).toBeUndefined();
    expect(w.check(2, 50)).toBeUndefined();
    expect(w.check(3, 294272)).toBe("warning: step 3: loss 294000 is 425000x the first step's 0.693");
    expect(w.check(4, 1e9)).toBeUndefined();
  });

  it('dpo train --learning-rate 1e3 says the run is probably diverging, and still exits 0 with its model', async () => {
    const dir = tempDir('dpo-ts-loss-watch-');
    const model = await makeTinyGpt2(join(dir, 'model'), { seed: 7 });
    const pairs = join(dir, 'pairs.jsonl');
    writeSentimentPairs(pairs, 8, 5);
    const r = await runCli(['train', '--model', model, '--data', pairs, '--output', join(dir, 'out'), '--cache-dir', join(dir, 'cache'), '--threads', '1', '--batch-size', '4', '--max-steps', '3', '--learning-rate', '1e3']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^warning: step \d: loss [\d.e+]+ is [\d.e+]+x the first step's 0\.693: training is probably diverging; lower --learning-rate \(now 1000\)$/m);
  });
});
