import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DPOTrainer } from '../../../src/train/dpo/trainer.js';
import { silentProgress } from '../../../src/progress.js';
import { loadPretrained } from '../../../src/models/pretrained.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

describe('DPOTrainer', () => {
  it('raises held-out implicit-reward accuracy well above chance on a synthetic preference set', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 64, 1);
    writeSentimentPairs(join(dir, 'eval.jsonl'), 24, 2);
    const trainer = new DPOTrainer(
      {
        model,
        data: join(dir, 'train.jsonl'),
        evalData: join(dir, 'eval.jsonl'),
        output: join(dir, 'out'),
        learningRate: 5e-3,
        batchSize: 8,
        maxSteps: 24,
        loggingSteps: 4,
        lrScheduler: 'constant',
        cacheDir: join(dir, 'cache'),
        threads: 2,
      },
      { progress: silentProgress },
    );
    const r = await trainer.train();
    expect(r.steps).toBe(24);
    expect(r.evalMetrics?.['eval_rewards/accuracies']).toBeGreaterThan(0.9);
    expect(r.evalMetrics?.['eval_rewards/margins']).toBeGreaterThan(0);
    const lines = readFileSync(join(dir, 'out', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const first = lines[0];
    for (const key of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'logits/chosen', 'logits/rejected', 'grad_norm', 'learning_rate', 'epoch', 'tokens_per_second']) {
      expect(first, key).toHaveProperty(key);
    }
    expect(lines[0].loss).toBeCloseTo(Math.log(2), 1);
    expect(lines.at(-1)).toHaveProperty('eval_loss');
    // The saved model loads back.
    expect(existsSync(join(dir, 'out', 'model.safetensors'))).toBe(true);
    const back = await loadPretrained(join(dir, 'out'));
    expect(back.model.modelType).toBe('gpt2');
  });
});
