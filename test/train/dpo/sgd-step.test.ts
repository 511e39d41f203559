/**
 * One SGD step of DPOTrainer (float32, reference precomputed, no clipping) moves each weight by
 * exactly -lr x the gradient of the DPO loss, where the gradient is measured independently: the
 * same loss built in float64 and differentiated by central differences on ~20 chosen weights
 * spread over every kind of parameter and both layers.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { collatePreferences } from '../../../src/data/collate.js';
import { preparePreferenceData } from '../../../src/data/prepare.js';
import { grad } from '../../../src/engine/autodiff.js';
import { Graph, type Tensor } from '../../../src/engine/graph.js';
import * as op from '../../../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../../../src/engine/runtime.js';
import { loadPretrained, type Pretrained } from '../../../src/models/pretrained.js';
import { DPOTrainer } from '../../../src/train/dpo/trainer.js';
import { preferenceLoss } from '../../../src/train/dpo/losses.js';
import { logSigmoid } from '../../../src/engine/nn.js';
import { silentProgress } from '../../../src/progress.js';
import { declareScoredInputs, scoredFeeds, sequenceLogps } from '../../../src/scoring/sequence-logps.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

const LR = 1;
const BETA = 0.1;

describe('one SGD step', () => {
  let dir: string;
  let before: Pretrained;
  let after: Pretrained;

  beforeAll(async () => {
    dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'), { layers: 2, seed: 3 });
    writeSentimentPairs(join(dir, 'train.jsonl'), 4, 5);
    before = await loadPretrained(model);
    const trainer = new DPOTrainer(
      {
        model,
        data: join(dir, 'train.jsonl'),
        output: join(dir, 'out'),
        optimizer: 'sgd',
        learningRate: LR,
        lrScheduler: 'constant',
        maxGradNorm: 0,
        batchSize: 4,
        maxSteps: 1,
        beta: BETA,
        reference: 'precompute',
        cacheDir: join(dir, 'cache'),
        threads: 1,
      },
      { progress: silentProgress },
    );
    await trainer.train();
    after = await loadPretrained(join(dir, 'out'), { tokenizer: false });
  });

  it('changes each weight by -lr x its float64 central-difference gradient', async () => {
    const model = before.model;
    const tokenizer = before.tokenizer!;
    const data = await preparePreferenceData(join(dir, 'train.jsonl'), tokenizer);
    const batch = collatePreferences(data.rows, { padTokenId: tokenizer.padTokenId });
    const K = 2;

    // The DPO loss in float64, parameters as inputs; the reference log-probs are the starting
    // policy's (what the trainer precomputes).
    const g = new Graph('dpo_f64');
    const params: Record<string, Tensor> = {};
    for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float64', p.shape);
    const scores = sequenceLogps(model, params, declareScoredInputs(g, 'float64'));
    const ref = g.input('ref_logps', 'float64', ['sequences']);
    const lengths = g.input('completion_lengths', 'float64', ['sequences']);
    const byRow = (t: Tensor): Tensor => op.reshape(t, [K, -1]);
    const loss = preferenceLoss({ policy: byRow(scores.logps), reference: byRow(ref), lengths: byRow(lengths) }, { beta: BETA, lossTypes: ['sigmoid'] });
    const names = model.parameters().map((p) => p.name);
    const grads = grad(loss, names.map((n) => params[n]));
    const outputs: Record<string, Tensor> = { loss, logps: scores.logps };
    names.forEach((n, i) => (outputs[`grad_${i}`] = grads[i]));
    const compiled = await CompiledGraph.compile(outputs, { threads: 1, optimizationLevel: 'disabled' });
    const lossOnly = await CompiledGraph.compile({ loss }, { threads: 1, optimizationLevel: 'disabled' });

    const feeds: Record<string, HostTensor> = scoredFeeds(batch);
    feeds.attention_mask = { data: Float64Array.from(batch.attentionMask), dims: feeds.attention_mask.dims };
    feeds.completion_lengths = { data: Float64Array.from(batch.completionLengths), dims: [batch.numSequences] };
    const shapes = new Map(model.parameters().map((p) => [p.name, p.shape] as const));
    for (const n of names) feeds[n] = { data: Float64Array.from(before.weights.get(n)!), dims: shapes.get(n)! };
    // Reference = policy at the start: run once with a placeholder to get the log-probs.
    feeds.ref_logps = { data: new Float64Array(batch.numSequences), dims: [batch.numSequences] };
    const first = await compiled.run(feeds);
    feeds.ref_logps = { data: Float64Array.from(first.logps.data as Float64Array), dims: [batch.numSequences] };
    const analytic = await compiled.run(feeds);
    expect(analytic.loss.data[0] as number).toBeCloseTo(Math.log(2), 10);

    // 22 elements: the largest-gradient element of every parameter except layer 1's biases
    // (embeddings, layer 0 whole, layer 1's weights, final norm).
    const picked: { name: string; index: number }[] = [];
    names.forEach((n, i) => {
      if (/\.h\.1\..*bias$/.test(n)) return;
      const gdata = analytic[`grad_${i}`].data as Float64Array;
      let best = 0;
      for (let j = 1; j < gdata.length; j++) if (Math.abs(gdata[j]) > Math.abs(gdata[best])) best = j;
      picked.push({ name: n, index: best });
    });
    expect(picked.length).toBe(22);

    const eps = 1e-6;
    for (const { name, index } of picked) {
      const x = feeds[name].data as Float64Array;
      const x0 = x[index];
      x[index] = x0 + eps;
      const fp = (await lossOnly.run(feeds)).loss.data[0] as number;
      x[index] = x0 - eps;
      const fm = (await lossOnly.run(feeds)).loss.data[0] as number;
      x[index] = x0;
      const numeric = (fp - fm) / (2 * eps);
      const w0 = before.weights.get(name)![index];
      const w1 = after.weights.get(name)![index];
      const step = (w1 - w0) / -LR;
      const rel = Math.abs(step - numeric) / Math.max(Math.abs(numeric), 1e-4);
      expect(Math.abs(numeric), `${name}[${index}] gradient is too small to test`).toBeGreaterThan(1e-5);
      expect(rel, `${name}[${index}]: weight change ${step} vs -lr x gradient ${numeric}`).toBeLessThan(1e-3);
    }
    await compiled.release();
    await lossOnly.release();
  });

  it('log-sigmoid has the true gradient 1/2 at exactly 0, where every DPO run starts', async () => {
    const g = new Graph('ls');
    const x = g.input('x', 'float64', [3]);
    const y = op.sum(logSigmoid(x));
    const [gx] = grad(y, [x]);
    const c = await CompiledGraph.compile({ y, gx }, { threads: 1 });
    const r = await c.run({ x: { data: Float64Array.of(0, 2, -3), dims: [3] } });
    const sig = (v: number): number => 1 / (1 + Math.exp(-v));
    expect(r.y.data[0] as number).toBeCloseTo(Math.log(0.5) + Math.log(sig(2)) + Math.log(sig(-3)), 12);
    const want = [0.5, 1 - sig(2), 1 - sig(-3)];
    Array.from(r.gx.data as Float64Array).forEach((v, i) => expect(v).toBeCloseTo(want[i], 12));
    await c.release();
  });
});
