/**
 * The DPO paper's Unlikelihood baseline: -log pi(y_w|x) - alpha * sum_t log(1 - pi(y_l,t | ...)),
 * mean over rows. Checked against the formula written out on per-token probabilities, and its
 * gradient w.r.t. every parameter of a tiny float64 GPT-2 against central differences (through
 * the chunked, checkpointed vocabulary projection that training uses).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../cli/run-cli.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';
import { gradcheck } from '../../../src/engine/gradcheck.js';
import { Graph, type Tensor } from '../../../src/engine/graph.js';
import { logSoftmax } from '../../../src/engine/nn.js';
import * as op from '../../../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../../../src/engine/runtime.js';
import { createModel } from '../../../src/models/registry.js';
import { preferenceLoss, preferenceLossPerRow } from '../../../src/train/dpo/losses.js';
import { declareScoredInputs, sequenceLogps } from '../../../src/scoring/sequence-logps.js';

const model = createModel({ model_type: 'gpt2', vocab_size: 11, n_embd: 4, n_layer: 1, n_head: 1, n_positions: 8, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5 });
const ALPHA = 0.4;

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

// K = 2 completions of B = 2 rows: sequences n = k*B + i, T = 5 tokens each. Sequence n scores
// the positions listed (a prompt of 1-2 tokens, then the completion; the last row is padded).
const T = 5;
const ids = [3, 7, 1, 4, 9, 0, 5, 9, 2, 2, 3, 7, 6, 8, 2, 0, 5, 10, 1, 0];
const mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0];
const scored: [number, number][] = [
  [0, 1], [0, 2], [0, 3],
  [1, 1], [1, 2], [1, 3],
  [2, 0], [2, 1], [2, 2], [2, 3],
  [3, 1], [3, 2],
];
const positions = scored.map(([n, t]) => n * T + t);
const targets = positions.map((p) => ids[p + 1]);
const feeds = (): Record<string, HostTensor> => ({
  input_ids: { data: BigInt64Array.from(ids.map(BigInt)), dims: [4, T] },
  attention_mask: { data: Float64Array.from(mask), dims: [4, T] },
  score_positions: { data: BigInt64Array.from(positions.map(BigInt)), dims: [positions.length] },
  score_targets: { data: BigInt64Array.from(targets.map(BigInt)), dims: [targets.length] },
  score_segments: { data: BigInt64Array.from(scored.map(([n]) => BigInt(n))), dims: [scored.length] },
});
const rand = lcg(11);
const params = model.parameters().map((p) => ({
  name: p.name,
  shape: p.shape,
  values: Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => (p.name.includes('ln') ? 1 + 0.3 * rand() : 0.9 * rand())),
}));

function unlikelihoodOf(x: Record<string, Tensor>, perRow: boolean): Tensor {
  const p: Record<string, Tensor> = {};
  for (const q of params) p[q.name] = x[q.name];
  const inputs = { inputIds: x.input_ids, attentionMask: x.attention_mask, positions: x.score_positions, targets: x.score_targets, segments: x.score_segments };
  const s = sequenceLogps(model, p, inputs);
  const byRow = (t: Tensor): Tensor => op.reshape(t, [2, -1]);
  const lp = { policy: byRow(s.logps), lengths: byRow(s.logps), logUnlikelihood: byRow(s.logUnlikelihood) };
  const options = { beta: 0.1, unlikelihoodAlpha: ALPHA, lossTypes: ['unlikelihood'] as const };
  return perRow ? preferenceLossPerRow(lp, options) : op.reshape(preferenceLoss(lp, options), [1]);
}

describe("loss type 'unlikelihood'", () => {
  it('equals -log p(chosen) - alpha * sum_t log(1 - p(rejected token t)), per row and as the batch mean', async () => {
    const g = new Graph();
    const x: Record<string, Tensor> = {};
    for (const p of params) x[p.name] = g.input(p.name, 'float64', p.shape);
    const inputs = declareScoredInputs(g, 'float64');
    Object.assign(x, { input_ids: inputs.inputIds, attention_mask: inputs.attentionMask, score_positions: inputs.positions, score_targets: inputs.targets, score_segments: inputs.segments });
    // The token log-probs straight from the full logits, for the formula below.
    const pmap: Record<string, Tensor> = {};
    for (const p of params) pmap[p.name] = x[p.name];
    const { hidden } = model.forward(pmap, { inputIds: inputs.inputIds, attentionMask: inputs.attentionMask });
    const logits = model.logits(pmap, op.gather(op.reshape(hidden, [-1, 4]), inputs.positions));
    const tokenLogps = op.squeeze(op.gatherElements(logSoftmax(logits, -1), op.unsqueeze(inputs.targets, 1), 1), 1);
    const c = await CompiledGraph.compile({ rows: unlikelihoodOf(x, true), mean: unlikelihoodOf(x, false), tokens: tokenLogps }, { threads: 1 });
    const f = feeds();
    for (const p of params) f[p.name] = { data: Float64Array.from(p.values), dims: p.shape };
    const r = await c.run(f);
    const tok = r.tokens.data as Float64Array;
    const want = [0, 1].map((i) => {
      let chosen = 0;
      let unlikely = 0;
      scored.forEach(([n], j) => {
        if (n === i) chosen += tok[j]; // k = 0: chosen of row i
        if (n === 2 + i) unlikely += Math.log(1 - Math.exp(tok[j])); // k = 1: rejected of row i
      });
      return -chosen - ALPHA * unlikely;
    });
    const rows = r.rows.data as Float64Array;
    want.forEach((w, i) => expect(rows[i]).toBeCloseTo(w, 10));
    expect((r.mean.data as Float64Array)[0]).toBeCloseTo((want[0] + want[1]) / 2, 10);
    await c.release();
  });

  it('float64 gradients w.r.t. every model parameter match central differences', async () => {
    const result = await gradcheck(params, (x) => unlikelihoodOf(x, false), {
      extraInputs: (g) => {
        const s = declareScoredInputs(g, 'float64');
        return { input_ids: s.inputIds, attention_mask: s.attentionMask, score_positions: s.positions, score_targets: s.targets, score_segments: s.segments };
      },
      extraFeeds: feeds(),
    });
    expect(result.checked).toBe(params.reduce((a, p) => a + p.values.length, 0));
    expect(result.maxRelError, JSON.stringify(result.worst)).toBeLessThan(1e-6);
  });
});

describe('dpo train --loss-type unlikelihood', () => {
  it('trains (loss down) and reports eval_loss; a negative alpha is one error line', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 32, 1);
    writeSentimentPairs(join(dir, 'eval.jsonl'), 8, 2);
    const out = join(dir, 'out');
    const r = await runCli([
      'train', '--model', model, '--data', join(dir, 'train.jsonl'), '--eval-data', join(dir, 'eval.jsonl'), '--output', out,
      '--loss-type', 'unlikelihood', '--unlikelihood-alpha', '0.5', '--learning-rate', '3e-3', '--lr-scheduler', 'constant',
      '--batch-size', '8', '--max-steps', '8', '--logging-steps', '1', '--cache-dir', join(dir, 'cache'), '--threads', '2',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    const train = lines.filter((l) => 'loss' in l);
    expect(train.at(-1)!.loss).toBeLessThan(train[0].loss - 3);
    // Mostly likelihood of chosen: the unlikelihood term, -alpha * sum log(1 - p), is >= 0 and
    // small while the rejected tokens are improbable (the baseline's known weakness).
    const last = lines.at(-1)!;
    expect(last.eval_loss).toBeGreaterThanOrEqual(-last['eval_logps/chosen'] - 1e-3);
    expect(last.eval_loss).toBeLessThan(-last['eval_logps/chosen'] + 1);
    const bad = await runCli(['train', '--model', model, '--data', join(dir, 'train.jsonl'), '--output', join(dir, 'o2'), '--loss-type', 'unlikelihood', '--unlikelihood-alpha', '-1']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^dpo: --unlikelihood-alpha: /);
  });
});
