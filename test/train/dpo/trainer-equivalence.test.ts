/**
 * Trainer-level equivalences: gradient accumulation (4 x 2 == 8 x 1), resume (2 steps, stop,
 * resume 2 more == 4 steps), a damaged newest checkpoint falling back to the one before, and
 * gradient checkpointing (the same weights with dropout on, full and LoRA).
 */
import { readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadLoraAdapter } from '../../../src/models/lora-files.js';
import { loadPretrained } from '../../../src/models/pretrained.js';
import type { DPOConfigInput } from '../../../src/train/dpo/config.js';
import { DPOTrainer } from '../../../src/train/dpo/trainer.js';
import type { ProgressReporter } from '../../../src/progress.js';
import { silentProgress } from '../../../src/progress.js';
import { makeTinyGpt2, maxDiff, tempDir, writeSentimentPairs } from '../helpers.js';

let dir: string;
let model: string;
let data: string;

beforeAll(async () => {
  dir = tempDir();
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 11 });
  data = join(dir, 'train.jsonl');
  writeSentimentPairs(data, 8, 3);
});

function config(output: string, extra: Partial<DPOConfigInput> = {}): DPOConfigInput {
  return {
    model,
    data,
    output: join(dir, output),
    cacheDir: join(dir, 'cache'),
    learningRate: 1e-2,
    loggingSteps: 1,
    threads: 1,
    ...extra,
  };
}

async function weightsOf(output: string): Promise<Map<string, Float32Array>> {
  return (await loadPretrained(join(dir, output), { tokenizer: false })).weights;
}

/** A reporter that asks `trainer` to stop once training reaches `step`, and records messages. */
function stopAt(step: number, messages: string[], trainer: () => DPOTrainer): ProgressReporter {
  let label = '';
  return {
    start: (l) => void (label = l),
    update: (done) => {
      if (label === 'train' && done === step) trainer().requestStop();
    },
    stop: () => {},
    log: (m) => void messages.push(m),
  };
}

describe('DPOTrainer equivalences', () => {
  it('gradient accumulation: batch 4 x 2 micro-batches equals batch 8 x 1', async () => {
    // 8 rows: both runs see the same permutation of the same rows in every step.
    const common = { optimizer: 'sgd' as const, learningRate: 0.5, maxSteps: 2, lrScheduler: 'constant' as const };
    const a = await new DPOTrainer(config('accum', { ...common, batchSize: 4, gradientAccumulationSteps: 2 }), { progress: silentProgress }).train();
    const b = await new DPOTrainer(config('big', { ...common, batchSize: 8, gradientAccumulationSteps: 1 }), { progress: silentProgress }).train();
    expect(a.steps).toBe(2);
    expect(b.steps).toBe(2);
    const wa = await weightsOf('accum');
    const wb = await weightsOf('big');
    const w0 = (await loadPretrained(model, { tokenizer: false })).weights;
    expect(maxDiff(wa, w0)).toBeGreaterThan(1e-3); // the steps did move the weights
    expect(maxDiff(wa, wb)).toBeLessThan(1e-6);
    expect(a.metrics.loss).toBeCloseTo(b.metrics.loss, 5);
    expect(a.metrics['rewards/margins']).toBeCloseTo(b.metrics['rewards/margins'], 5);
  });

  it('resume: 2 steps, stop with a checkpoint, resume 2 more == 4 steps straight', async () => {
    const common = { maxSteps: 4, batchSize: 4 }; // AdamW, linear schedule: optimizer state and step count matter
    await new DPOTrainer(config('straight', common), { progress: silentProgress }).train();

    const messages: string[] = [];
    const trainer: DPOTrainer = new DPOTrainer(config('resumed', common), { progress: stopAt(2, messages, () => trainer) });
    const first = await trainer.train();
    expect(first).toMatchObject({ steps: 2, interrupted: true });
    expect(messages.some((m) => m.includes('checkpoint-2'))).toBe(true);

    const second = await new DPOTrainer(config('resumed', { ...common, resume: true }), { progress: silentProgress }).train();
    expect(second).toMatchObject({ steps: 4, interrupted: false });
    expect(maxDiff(await weightsOf('resumed'), await weightsOf('straight'))).toBeLessThanOrEqual(1e-6);
    // metrics.jsonl continues: steps 1..4 once each.
    const steps = readFileSync(join(dir, 'resumed', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    expect(steps).toEqual([1, 2, 3, 4]);
  });

  it('a truncated newest checkpoint is reported on resume and the one before is used', async () => {
    const common = { maxSteps: 3, batchSize: 4, saveSteps: 1, lrScheduler: 'constant' as const };
    await new DPOTrainer(config('damaged', common), { progress: silentProgress }).train();
    const straight = await weightsOf('damaged');
    const file = join(dir, 'damaged', 'checkpoint-3', 'weights.safetensors');
    truncateSync(file, Math.floor(readFileSync(file).byteLength / 2));

    const messages: string[] = [];
    const progress: ProgressReporter = { ...silentProgress, log: (m) => void messages.push(m) };
    const r = await new DPOTrainer(config('damaged', { ...common, resume: true }), { progress }).train();
    expect(r.steps).toBe(3);
    expect(messages.find((m) => m.includes('checkpoint-3') && m.includes('damaged'))).toMatch(/truncated/);
    expect(messages.find((m) => m.startsWith('resumed from'))).toContain('checkpoint-2 at step 2');
    expect(maxDiff(await weightsOf('damaged'), straight)).toBeLessThanOrEqual(1e-6);
  });

  it('LoRA: the precomputed frozen-base reference gives the live reference losses, and the log says so', async () => {
    const lora = { r: 4, alpha: 8, dropout: 0, targetModules: 'all-linear' as const };
    const common = { maxSteps: 3, batchSize: 4, seed: 3, lora, learningRate: 0.05 };
    const logs: Record<string, string[]> = { pre: [], live: [] };
    const reporter = (into: string[]): ProgressReporter => ({ ...silentProgress, log: (m) => void into.push(m) });
    await new DPOTrainer(config('lora-pre', common), { progress: reporter(logs.pre) }).train();
    await new DPOTrainer(config('lora-live', { ...common, reference: 'live' }), { progress: reporter(logs.live) }).train();
    const losses = (out: string): number[] => readFileSync(join(dir, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number);
    const [pre, live] = [losses('lora-pre'), losses('lora-live')];
    expect(pre).toHaveLength(3);
    // Step 1 at B = 0 is ln 2 in both; later steps differ only by float32 rounding of the reference pass.
    expect(Math.abs(pre[2] - Math.log(2))).toBeGreaterThan(1e-3);
    pre.forEach((l, i) => expect(Math.abs(l - live[i])).toBeLessThan(1e-6));
    expect(logs.pre.some((m) => m.includes('no step runs a reference forward'))).toBe(true);
    expect(logs.live.some((m) => m.includes('every step also runs a forward of the frozen base'))).toBe(true);
  });

  it('LoRA with frozenDtype float16: the reference is the same float16 base (first loss ln 2), eval runs, losses near float32', async () => {
    const lora = { r: 4, alpha: 8, dropout: 0, targetModules: 'all-linear' as const };
    const common = { maxSteps: 3, batchSize: 4, seed: 3, lora, learningRate: 0.05, evalData: data, evalSteps: 2 };
    const logs: string[] = [];
    const half = await new DPOTrainer(config('lora-f16', { ...common, frozenDtype: 'float16' }), { progress: { ...silentProgress, log: (m) => void logs.push(m) } }).train();
    const full = await new DPOTrainer(config('lora-f32', common), { progress: silentProgress }).train();
    const losses = (out: string): number[] => readFileSync(join(dir, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).loss as number).filter((l) => l !== undefined);
    const [h, f] = [losses('lora-f16'), losses('lora-f32')];
    expect(h[0]).toBeCloseTo(Math.log(2), 6);
    h.forEach((l, i) => expect(Math.abs(l - f[i])).toBeLessThan(1e-3));
    expect(half.evalMetrics?.eval_loss).toBeCloseTo(full.evalMetrics?.eval_loss as number, 3);
    expect(logs.some((m) => m.includes('held as float16'))).toBe(true);
  });

    it('gradient checkpointing trains to the same weights, with dropout in the layers and on the LoRA inputs', async () => {
    // Two layers with dropout everywhere (--keep-dropout) and LoRA dropout: the recomputed layers must
    // reuse the forward's masks. (Full fine-tuning's gradients: test/models/gradient-checkpointing.test.ts.)
    const dropModel = await makeTinyGpt2(join(dir, 'model-dropout'), { seed: 5, layers: 2, dropout: 0.1 });
    const lora = { r: 4, alpha: 8, dropout: 0.2, targetModules: 'all-linear' as const };
    const common = { model: dropModel, maxSteps: 2, batchSize: 4, keepDropout: true, seed: 3, lora, learningRate: 0.05 };
    await new DPOTrainer(config('gc-off', common), { progress: silentProgress }).train();
    await new DPOTrainer(config('gc-on', { ...common, gradientCheckpointing: true }), { progress: silentProgress }).train();
    const base = (await loadPretrained(dropModel, { tokenizer: false })).model;
    const off = (await loadLoraAdapter(join(dir, 'gc-off'), base)).adapters;
    const on = (await loadLoraAdapter(join(dir, 'gc-on'), base)).adapters;
    const start = new Map([...off].map(([k, v]) => [k, k.includes('lora_B') ? new Float32Array(v.length) : v]));
    const moved = maxDiff(off, start);
    expect(moved).toBeGreaterThan(1e-3); // training moved B away from zero
    // Float rounding only (the recomputation sums in another order; Adam scales small gradients up):
    // a different dropout mask moves weights by about as much as a step does.
    expect(maxDiff(on, off) / moved).toBeLessThan(1e-3);
  });
});
