/**
 * --steps-per-run K (several optimizer steps per ONNX Runtime run) trains exactly as K = 1:
 * same per-step metrics and final weights with a warm-up + linear schedule, gradient clipping and
 * a last partial run; a stop and resume at a run boundary; and the clash with accumulation.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadPretrained } from '../../../src/models/pretrained.js';
import type { DPOConfigInput } from '../../../src/train/dpo/config.js';
import { DPOTrainer } from '../../../src/train/dpo/trainer.js';
import { silentProgress, type ProgressReporter } from '../../../src/progress.js';
import { makeTinyGpt2, maxDiff, tempDir, writeSentimentPairs } from '../helpers.js';

let dir: string;
let model: string;
let data: string;

beforeAll(async () => {
  dir = tempDir();
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 5 });
  data = join(dir, 'train.jsonl');
  writeSentimentPairs(data, 8, 9);
});

// 7 steps: with K = 3, runs of 3, 3 and a last single step. Clipping at 0.05 clips every step.
const common: Partial<DPOConfigInput> = { maxSteps: 7, batchSize: 4, learningRate: 2e-2, warmupSteps: 2, lrScheduler: 'linear', maxGradNorm: 0.05, loggingSteps: 1, threads: 1 };
const config = (output: string, extra: Partial<DPOConfigInput> = {}): DPOConfigInput => ({ model, data, output: join(dir, output), cacheDir: join(dir, 'cache'), ...common, ...extra });
const metrics = (output: string): Record<string, number>[] => readFileSync(join(dir, output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const weights = async (output: string): Promise<Map<string, Float32Array>> => (await loadPretrained(join(dir, output), { tokenizer: false })).weights;

function expectSameRun(a: string, b: string): void {
  const ma = metrics(a);
  const mb = metrics(b);
  expect(mb.map((m) => m.step)).toEqual(ma.map((m) => m.step));
  ma.forEach((m, i) => {
    for (const k of ['loss', 'grad_norm', 'learning_rate', 'rewards/margins', 'logps/chosen']) expect(mb[i][k]).toBeCloseTo(m[k], 5);
  });
}

describe('--steps-per-run', () => {
  it('3 steps per run equal 1 step per run (schedule, clipping, a last partial run)', async () => {
    const one = await new DPOTrainer(config('k1'), { progress: silentProgress }).train();
    const three = await new DPOTrainer(config('k3', { stepsPerRun: 3 }), { progress: silentProgress }).train();
    expect(one.steps).toBe(7);
    expect(three.steps).toBe(7);
    expect(metrics('k1').map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(metrics('k1')[0].grad_norm).toBeGreaterThan(0.05);
    expectSameRun('k1', 'k3');
    const w0 = (await loadPretrained(model, { tokenizer: false })).weights;
    expect(maxDiff(await weights('k1'), w0)).toBeGreaterThan(1e-3);
    expect(maxDiff(await weights('k3'), await weights('k1'))).toBeLessThanOrEqual(1e-6);
  });

  it('a stop ends at a run boundary; resuming with K = 2 continues exactly', async () => {
    let label = '';
    const trainer: DPOTrainer = new DPOTrainer(config('stopped', { stepsPerRun: 2 }), {
      progress: { ...silentProgress, start: (l) => void (label = l), update: (done) => void (label === 'train' && done === 1 && trainer.requestStop()) },
    });
    const first = await trainer.train();
    // Asked to stop during the first run of 2 steps: the run finishes, then the checkpoint.
    expect(first).toMatchObject({ steps: 2, interrupted: true });
    const messages: string[] = [];
    const progress: ProgressReporter = { ...silentProgress, log: (m) => void messages.push(m) };
    // Steps 3-4 and 5-6 in runs of 2, step 7 alone.
    const second = await new DPOTrainer(config('stopped', { stepsPerRun: 2, resume: true }), { progress }).train();
    expect(messages.find((m) => m.startsWith('resumed from'))).toContain('checkpoint-2 at step 2');
    expect(second).toMatchObject({ steps: 7, interrupted: false });
    expectSameRun('k1', 'stopped');
    expect(maxDiff(await weights('stopped'), await weights('k1'))).toBeLessThanOrEqual(1e-6);
  });

  it('refuses gradient accumulation with several steps per run when the config is parsed, before any work', () => {
    expect(() => new DPOTrainer(config('both', { stepsPerRun: 2, gradientAccumulationSteps: 2 }), { progress: silentProgress })).toThrow(
      /stepsPerRun 2 does not combine with gradientAccumulationSteps 2/,
    );
  });
});
