/** The newer DPO options end to end: a tiny model learns the synthetic preference with all of them on. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DPOTrainer } from '../../../src/train/dpo/trainer.js';
import { silentProgress } from '../../../src/progress.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

describe('DPOTrainer with aot_pair + discopop, alpha-divergence, LD-DPO, WPO and RPO', () => {
  it('raises held-out reward accuracy and margin; metrics are the LD log-probs', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 48, 1);
    writeSentimentPairs(join(dir, 'eval.jsonl'), 16, 2);
    const r = await new DPOTrainer(
      {
        model,
        data: join(dir, 'train.jsonl'),
        evalData: join(dir, 'eval.jsonl'),
        output: join(dir, 'out'),
        lossType: ['aot_pair', 'discopop'],
        labelSmoothing: 0.05,
        discopopTau: 0.5,
        fDivergence: 'alpha_divergence',
        fAlphaDivergenceCoef: 0.5,
        ldAlpha: 0.5,
        useWeighting: true,
        rpoAlpha: 0.05,
        learningRate: 5e-3,
        batchSize: 8,
        maxSteps: 18,
        loggingSteps: 6,
        lrScheduler: 'constant',
        cacheDir: join(dir, 'cache'),
        threads: 2,
      },
      { progress: silentProgress },
    ).train();
    expect(r.steps).toBe(18);
    const lines = readFileSync(join(dir, 'out', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(lines[0]['rewards/margins']).toBeLessThan(lines[2]['rewards/margins']);
    expect(r.evalMetrics?.['eval_rewards/accuracies']).toBeGreaterThan(0.8);
    expect(r.evalMetrics?.['eval_rewards/margins']).toBeGreaterThan(0);
    expect(Number.isFinite(r.evalMetrics?.eval_loss)).toBe(true);
  });
});
