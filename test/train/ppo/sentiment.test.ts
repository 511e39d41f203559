/**
 * PPO-GT in miniature: PPO with the ground-truth sentiment scorer on the shipped model raises the
 * sentiment of fresh samples on prompts it never trained on. The prompts end in "was very", so the
 * first sampled token is usually an adjective and the reward depends on it; responses are 3
 * tokens, which keeps each update cheap.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHIPPED_MODEL } from '../../../src/quickstart/run.js';
import { silentProgress } from '../../../src/progress.js';
import { PPOTrainer } from '../../../src/train/ppo/trainer.js';
import { tempDir } from '../helpers.js';

const TRAIN = ['The movie', 'The food', 'The weather', 'Her smile', 'The room', 'The game', 'The book', 'The house', 'The trip', 'The party', 'The car', 'The garden', 'The speech', 'The song', 'The dinner', 'The town'];
const HELD_OUT = ['The play', 'The music', 'The hotel', 'The school', 'The church', 'The meeting', 'The city', 'The picture'];
const prompts = (subjects: readonly string[]): string[] => subjects.map((s) => `${s} was very`);

describe('PPO-GT on the shipped model', () => {
  it('raises the sentiment reward on held-out prompts', async () => {
    const output = join(tempDir(), 'ppo-gt');
    const r = await new PPOTrainer(
      {
        model: SHIPPED_MODEL,
        output,
        prompts: prompts(TRAIN),
        // 8 samples per held-out prompt, the same seeds before and after training.
        evalPrompts: Array.from({ length: 8 }, () => prompts(HELD_OUT)).flat(),
        evalOnStart: true,
        scorer: 'sentiment',
        batchSize: 64,
        ppoEpochs: 4,
        maxSteps: 8,
        maxNewTokens: 3,
        learningRate: 5e-4,
        lrScheduler: 'constant',
        initKlCoef: 0.02,
        threads: 2,
      },
      { progress: silentProgress },
    ).train();
    const evals = readFileSync(join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => 'eval_objective/scores' in m);
    const before = evals[0];
    const after = evals.at(-1);
    expect(before.step).toBe(0);
    expect(after.step).toBe(8);
    expect(after['eval_objective/scores'] - before['eval_objective/scores']).toBeGreaterThan(0.1);
    expect(after['eval_objective/kl']).toBeGreaterThan(0);
    expect(r.metrics['objective/scores']).toBeGreaterThan(before['eval_objective/scores']);
  }, 600_000);
});
