/**
 * `prefixSharing` through DPOTrainer: the same metrics and trained weights with prefix sharing on
 * (or auto) as off — with LoRA, gradient checkpointing, steps-per-run and the precomputed
 * reference (scored with shared prefixes too), and with a live reference and full fine-tuning;
 * and `dpo eval` (evaluatePreferences) with a reference model.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadLoraAdapter } from '../../../src/models/lora-files.js';
import { loadPretrained } from '../../../src/models/pretrained.js';
import { silentProgress } from '../../../src/progress.js';
import type { DPOConfigInput } from '../../../src/train/dpo/config.js';
import { DPOTrainer } from '../../../src/train/dpo/trainer.js';
import { evaluatePreferences } from '../../../src/train/dpo/evaluate.js';
import { makeTinyGpt2, maxDiff, tempDir, writeSentimentPairs } from '../helpers.js';

let dir: string;
let model: string;
let data: string;

beforeAll(async () => {
  dir = tempDir('dpo-prefix-sharing-');
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 4 });
  data = join(dir, 'train.jsonl');
  writeSentimentPairs(data, 8, 5);
});

async function train(name: string, extra: Partial<DPOConfigInput>): Promise<Record<string, number>> {
  const config: DPOConfigInput = {
    model,
    data,
    output: join(dir, name),
    cacheDir: join(dir, `cache-${name}`),
    optimizer: 'sgd',
    learningRate: 0.5,
    lrScheduler: 'constant',
    batchSize: 4,
    loggingSteps: 1,
    threads: 1,
    ...extra,
  };
  return (await new DPOTrainer(config, { progress: silentProgress }).train()).metrics;
}

function expectSameMetrics(a: Record<string, number>, b: Record<string, number>): void {
  for (const k of ['loss', 'logps/chosen', 'logps/rejected', 'rewards/margins', 'grad_norm']) {
    expect(Math.abs(a[k] - b[k]), `${k}: ${a[k]} vs ${b[k]}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(a[k])));
  }
}

describe('DPOTrainer with prefix sharing', () => {
  it('LoRA, gradient checkpointing, 2 steps per run, precomputed reference: on == off', async () => {
    const common: Partial<DPOConfigInput> = { maxSteps: 2, stepsPerRun: 2, gradientCheckpointing: true, lora: { r: 4, alpha: 8, targetModules: 'all-linear' } };
    const off = await train('lora-off', { ...common, prefixSharing: 'off' });
    const on = await train('lora-on', { ...common, prefixSharing: 'on' });
    expectSameMetrics(off, on);
    const base = (await loadPretrained(model, { tokenizer: false })).model;
    const a = (await loadLoraAdapter(join(dir, 'lora-off'), base)).adapters;
    const b = (await loadLoraAdapter(join(dir, 'lora-on'), base)).adapters;
    const start = new Map([...a].map(([k, v]) => [k, k.includes('lora_B') ? new Float32Array(v.length) : v]));
    expect(maxDiff(a, start)).toBeGreaterThan(1e-3); // training moved B away from zero
    expect(maxDiff(a, b)).toBeLessThan(1e-5);
  });

  it('full fine-tuning with a live reference: auto (the default) == off', async () => {
    const common: Partial<DPOConfigInput> = { maxSteps: 2, reference: 'live' };
    const off = await train('live-off', { ...common, prefixSharing: 'off' });
    const auto = await train('live-auto', common);
    expectSameMetrics(off, auto);
    const w = async (name: string) => (await loadPretrained(join(dir, name), { tokenizer: false })).weights;
    const [a, b] = [await w('live-off'), await w('live-auto')];
    expect(maxDiff(a, (await loadPretrained(model, { tokenizer: false })).weights)).toBeGreaterThan(1e-3);
    expect(maxDiff(a, b)).toBeLessThan(1e-5);
  });

  it('dpo eval: the same metrics with prefix sharing on as off', async () => {
    const refModel = await makeTinyGpt2(join(dir, 'ref'), { seed: 9 });
    const run = async (prefixSharing: 'on' | 'off') => (await evaluatePreferences({ model, refModel, data, batchSize: 4, threads: 1, prefixSharing }, { progress: silentProgress })).metrics;
    const [off, on] = [await run('off'), await run('on')];
    expect(Math.abs(off['eval_rewards/margins'])).toBeGreaterThan(1e-3);
    for (const k of ['eval_loss', 'eval_logps/chosen', 'eval_logps/rejected', 'eval_rewards/margins', 'eval_rewards/accuracies']) {
      expect(Math.abs(on[k] - off[k]), `${k}: ${on[k]} vs ${off[k]}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(off[k])));
    }
  });
});
