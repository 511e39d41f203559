import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DPOTrainer } from '../../../src/train/dpo/trainer.js';
import { silentProgress } from '../../../src/progress.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

describe('keepDropout', () => {
  let dir: string;
  let model: string;
  beforeAll(async () => {
    dir = tempDir();
    model = await makeTinyGpt2(join(dir, 'model'), { dropout: 0.1 });
    writeSentimentPairs(join(dir, 'train.jsonl'), 16, 3);
  });

  const run = async (name: string, keepDropout: boolean): Promise<number[]> => {
    const output = join(dir, name);
    await new DPOTrainer(
      { model, data: join(dir, 'train.jsonl'), output, maxSteps: 3, batchSize: 8, loggingSteps: 1, learningRate: 1e-3, keepDropout, cacheDir: join(dir, 'cache'), threads: 1 },
      { progress: silentProgress },
    ).train();
    return readFileSync(join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
  };

  it('is off by default: the first step starts exactly at ln 2 (policy = reference)', async () => {
    const losses = await run('off', false);
    expect(losses[0]).toBeCloseTo(Math.log(2), 6);
  });

  it("keeps the model's dropout when asked, reproducibly for the same seed", async () => {
    const a = await run('on-a', true);
    const b = await run('on-b', true);
    // The reference is scored without dropout, so dropped-out policy log-probs move the first loss off ln 2.
    expect(Math.abs(a[0] - Math.log(2))).toBeGreaterThan(1e-4);
    expect(b).toEqual(a);
  });
});
