/**
 * Online DPO on the shipped model moves its reward the right way on prompts it never trained on.
 * The reward is the `length` scorer (words in the completion): every pair with different word
 * counts says the same thing, so a few steps show it. (With `sentiment` on 2-3 token completions
 * about half the pairs tie at 0 and go to the first sample, TRL's rule: the preference signal is
 * too sparse for a test-sized budget; README "Online DPO" has the measurement.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHIPPED_MODEL } from '../../../src/quickstart/run.js';
import { OnlineDPOTrainer } from '../../../src/train/online/trainer.js';
import { silentProgress } from '../../../src/progress.js';
import { tempDir } from '../helpers.js';

const TRAIN = ['The movie', 'The food', 'The weather', 'Her smile', 'The room', 'The game', 'The book', 'The house', 'The trip', 'The party', 'The car', 'The garden', 'The speech', 'The song', 'The dinner', 'The town'];
const HELD_OUT = ['The play', 'The music', 'The hotel', 'The school', 'The church', 'The meeting', 'The city', 'The picture'];
const prompts = (subjects: readonly string[]): string[] => subjects.map((s) => `${s} was very`);

describe('online DPO on the shipped model', () => {
  it('raises the reward of held-out samples (length scorer)', async () => {
    const output = join(tempDir(), 'online');
    const r = await new OnlineDPOTrainer(
      {
        model: SHIPPED_MODEL,
        output,
        prompts: prompts(TRAIN),
        // 8 samples per held-out prompt, the same seeds before and after training.
        evalPrompts: Array.from({ length: 8 }, () => prompts(HELD_OUT)).flat(),
        evalOnStart: true,
        scorer: 'length',
        batchSize: 16,
        maxSteps: 8,
        maxNewTokens: 6,
        temperature: 1,
        learningRate: 5e-4,
        lrScheduler: 'constant',
        loggingSteps: 1,
        threads: 2,
      },
      { progress: silentProgress },
    ).train();
    const lines = readFileSync(join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const evals = lines.filter((m) => 'eval_objective/scores' in m);
    const [before, after] = [evals[0], evals.at(-1)];
    expect([before.step, after.step]).toEqual([0, 8]);
    expect(after['eval_objective/scores'] - before['eval_objective/scores']).toBeGreaterThan(0.3);
    expect(after['eval_objective/kl']).toBeGreaterThan(0);
    expect(r.metrics['objective/scores']).toBeGreaterThan(lines[1]['objective/scores']);
  }, 600_000);
});
