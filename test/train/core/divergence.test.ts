/**
 * A run that blows up stops with a clear message and saves nothing new: non-finite loss, gradient
 * norm or parameters, checked every step (the parameters in the graph).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Graph } from '../../../src/engine/graph.js';
import * as op from '../../../src/engine/ops.js';
import { TrainStep } from '../../../src/engine/train-step.js';
import { runCli } from '../../cli/run-cli.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

let dir: string;
let model: string;
let pairs: string;
beforeAll(async () => {
  dir = tempDir('dpo-ts-blowup-');
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 3 });
  pairs = join(dir, 'pairs.jsonl');
  writeSentimentPairs(pairs, 8, 2);
});

describe('divergence guard', () => {
  it('the step reports parameters that became infinite (fused and accumulating paths)', async () => {
    const w = new Float32Array([1, 2, 3]);
    const build = (g: Graph, p: Record<string, ReturnType<Graph['input']>>) => {
      const x = g.input('x', 'float32', [3]);
      return { loss: op.sum(op.mul(p.w, x)) };
    };
    const step = await TrainStep.create([{ name: 'w', shape: [3], data: w }], build, { name: 'sgd', weightDecay: 0 }, { threads: 1 });
    try {
      const x = { x: { data: new Float32Array([1, 1, 1]), dims: [3] } };
      const ok = await step.step(x, 0.1);
      expect(ok.paramsFinite).toBe(true);
      expect(Array.from(w)).toEqual([expect.closeTo(0.9, 6), expect.closeTo(1.9, 6), expect.closeTo(2.9, 6)]);
      const big = { x: { data: new Float32Array([1e18, 1, 1]), dims: [3] } };
      const r = await step.step(big, 1e30);
      expect(Number.isFinite(r.loss)).toBe(true);
      expect(Number.isFinite(r.gradNorm)).toBe(true);
      expect(r.paramsFinite).toBe(false);
      expect((await step.step([x, x], 0.1)).paramsFinite).toBe(false);
    } finally {
      await step.release();
    }
  });

  it('dpo train at learning rate 1e20 stops with a clear message, exit 1, and writes no model', async () => {
    const out = join(dir, 'out');
    const r = await runCli(['train', '--model', model, '--data', pairs, '--output', out, '--cache-dir', join(dir, 'cache'), '--threads', '1', '--learning-rate', '1e20', '--max-steps', '4', '--batch-size', '4', '--save-steps', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/dpo: step \d: training diverged \((loss|gradient norm|parameters)[^)]*\); stopped without saving this step.*lower --learning-rate \(now 1e\+20\)/);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    const step = Number(/step (\d):/.exec(r.stderr)?.[1]);
    expect(readdirSync(out).filter((n) => n.startsWith('checkpoint-')).every((n) => Number(n.split('-')[1]) < step)).toBe(true);
  });
});
