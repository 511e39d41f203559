/**
 * `prefixSharing` in the reference-free pair trainers (CPO/SimPO, ORPO): two steps with each pair's
 * prompt shared by its completions log the metrics and train the weights of the unshared run.
 */
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { loadPretrained } from '../../../src/models/pretrained.js';
import { silentProgress } from '../../../src/progress.js';
import { CPOTrainer } from '../../../src/train/reference-free/cpo.js';
import { ORPOTrainer } from '../../../src/train/reference-free/orpo.js';
import { makeTinyGpt2, maxDiff, tempDir, writeSentimentPairs } from '../helpers.js';

let dir: string;
let model: string;
let data: string;
beforeAll(async () => {
  dir = tempDir('dpo-ref-free-prefix-');
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 8 });
  data = join(dir, 'train.jsonl');
  writeSentimentPairs(data, 8, 2);
});

it('cpo (simpo) and orpo: prefix sharing on == off (metrics and trained weights)', async () => {
  const common = { model, data, optimizer: 'sgd' as const, learningRate: 0.5, lrScheduler: 'constant' as const, batchSize: 4, maxSteps: 2, loggingSteps: 1, threads: 1 };
  const runs = {
    cpo: (name: string, prefixSharing: 'on' | 'off') => new CPOTrainer({ ...common, lossType: 'simpo', output: join(dir, name), prefixSharing }, { progress: silentProgress }).train(),
    orpo: (name: string, prefixSharing: 'on' | 'off') => new ORPOTrainer({ ...common, output: join(dir, name), prefixSharing }, { progress: silentProgress }).train(),
  };
  const start = (await loadPretrained(model, { tokenizer: false })).weights;
  for (const [method, run] of Object.entries(runs)) {
    const off = (await run(`${method}-off`, 'off')).metrics;
    const on = (await run(`${method}-on`, 'on')).metrics;
    for (const k of ['loss', 'logps/chosen', 'logps/rejected', 'nll_loss', 'grad_norm']) {
      expect(Math.abs(on[k] - off[k]), `${method} ${k}: ${on[k]} vs ${off[k]}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(off[k])));
    }
    const w = async (name: string) => (await loadPretrained(join(dir, name), { tokenizer: false })).weights;
    const a = await w(`${method}-off`);
    expect(maxDiff(a, start)).toBeGreaterThan(1e-3);
    expect(maxDiff(a, await w(`${method}-on`))).toBeLessThan(1e-5);
  }
});
