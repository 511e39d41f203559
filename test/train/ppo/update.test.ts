/**
 * PPO's gradient accumulation: a minibatch cut into micro-batches whose gradients are summed
 * before the step must make the same step as the whole minibatch in one pass. The PPO loss is a
 * mean over response tokens, so the micro-batches are weighted by their share of the tokens;
 * the episodes here have very different lengths (7, 1, 1, 1 tokens), so that an unweighted mean of
 * the micro-batches' means makes a visibly different step (checked too).
 */
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Rng } from '../../../src/data/rng.js';
import type { HostTensor } from '../../../src/engine/runtime.js';
import { TrainStep, type ParamSpec } from '../../../src/engine/train-step.js';
import { loadPretrained } from '../../../src/models/pretrained.js';
import { buildPpoLoss, TOKEN_SHARE } from '../../../src/train/ppo/graphs.js';
import { rolloutRows } from '../../../src/train/ppo/rollout.js';
import { microBatchFeeds } from '../../../src/train/ppo/update.js';
import { valueHeadShapes } from '../../../src/train/ppo/value-head.js';
import { makeTinyGpt2, tempDir } from '../helpers.js';

describe('PPO gradient accumulation', () => {
  it('k micro-batches weighted by their tokens make the step of one whole minibatch (float32 rounding); unweighted they do not', async () => {
    const pretrained = await loadPretrained(await makeTinyGpt2(join(tempDir(), 'model')));
    const { model } = pretrained;
    const rng = new Rng(3);
    const responses = [[11, 12, 13, 14, 15, 16, 17], [21], [31], [41]];
    const { rows, offsets } = rolloutRows([[5, 6], [7], [8, 9, 10], [4]], responses);
    const m = offsets[offsets.length - 1];
    const noise = (scale: number, shift = 0): Float64Array => Float64Array.from({ length: m }, () => shift + scale * (rng.nextFloat() - 0.5));
    const tokenInputs = { old_logps: noise(1, -4), old_values: noise(0.5), advantages: noise(2), returns: noise(2) };
    const source = { rows, offsets, tokenInputs, padTokenId: 0 };
    const indices = [2, 0, 3, 1];

    // Every run starts from the same weights and the same (random, so that values vary) value head.
    const headRng = new Rng(7);
    const head = [...valueHeadShapes(model.config.hiddenSize)].map(([name, shape]) => ({ name, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => headRng.nextFloat() - 0.5) }));
    const specs: ParamSpec[] = model.parameters().map((p) => ({ name: p.name, shape: p.shape, data: Float32Array.from(pretrained.weights.get(p.name) as Float32Array) }));
    for (const h of head) specs.push({ ...h, data: Float32Array.from(h.data) });
    const initial = new Map(specs.map((p) => [p.name, Float32Array.from(p.data)]));
    // One compiled step (plain SGD: no optimizer state), set back to the initial weights before each run.
    const s = await TrainStep.create(specs, (g, params) => buildPpoLoss(g, model, params, { cliprange: 0.2, cliprangeValue: 0.2, vfCoef: 0.1 }), { name: 'sgd', maxGradNorm: 0 }, { threads: 1 });
    onTestFinished(() => s.release());
    const run = async (feeds: Record<string, HostTensor>[]): Promise<Map<string, Float32Array>> => {
      s.restore(initial, s.optimizerState().state, 0);
      await s.step(feeds.length === 1 ? feeds[0] : feeds, 0.5);
      await s.sync();
      return new Map([...s.parameters()].map(([k, v]) => [k, Float32Array.from(v)]));
    };
    const whole = await run(microBatchFeeds({ ...source, accumulation: 1 }, indices));
    const two = microBatchFeeds({ ...source, accumulation: 2 }, indices);
    expect(two.map((f) => Number(f[TOKEN_SHARE].data[0]))).toEqual([Math.fround(1.6), Math.fround(0.4)]); // 2 x 8/10 and 2 x 2/10 of the tokens
    const four = microBatchFeeds({ ...source, accumulation: 4 }, indices);
    const unweighted = four.map((f) => ({ ...f, [TOKEN_SHARE]: { data: Float32Array.of(1), dims: [] } }));

    const maxDiff = (a: ReadonlyMap<string, Float32Array>, b: ReadonlyMap<string, Float32Array>): number => {
      let d = 0;
      for (const [name, y] of b) {
        const x = a.get(name) as Float32Array;
        for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
      }
      return d;
    };
    expect(maxDiff(whole, pretrained.weights)).toBeGreaterThan(1e-3); // the step moved the model
    expect(maxDiff(whole, await run(two))).toBeLessThan(1e-6);
    expect(maxDiff(whole, await run(four))).toBeLessThan(1e-6);
    expect(maxDiff(whole, await run(unweighted))).toBeGreaterThan(1e-4);
  });
});
