/**
 * The vocabulary projection runs in LM_HEAD_CHUNKS checkpointed chunks of the scored positions.
 * Values and gradients must equal the direct computation for every number of scored positions,
 * including batches where some chunks are empty, also when the head's weights are frozen (LoRA:
 * the gradient of each token log-prob w.r.t. its hidden row is then formed in the forward).
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../src/engine/autodiff.js';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import { logSoftmax } from '../../src/engine/nn.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { createModel } from '../../src/models/registry.js';
import { LM_HEAD_CHUNKS, declareScoredInputs, ldTokenWeights, sequenceLogps } from '../../src/scoring/sequence-logps.js';

const model = createModel({ model_type: 'gpt2', vocab_size: 11, n_embd: 8, n_layer: 1, n_head: 2, n_positions: 16, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5 });

function values(n: number, seed: number): Float64Array {
  let s = seed >>> 0;
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296 - 0.5) * 0.6;
  });
}

const HEAD = 'transformer.wte.weight';

async function logpsAndGrads(direct: boolean, feeds: Record<string, HostTensor>, frozenHead = false): Promise<Record<string, HostTensor>> {
  const g = new Graph();
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float64', p.shape);
  if (frozenHead) g.freeze(params[HEAD]);
  const inputs = declareScoredInputs(g, 'float64');
  let logps: Tensor;
  if (direct) {
    const { hidden } = model.forward(params, { inputIds: inputs.inputIds, attentionMask: inputs.attentionMask });
    const logits = model.logits(params, op.gather(op.reshape(hidden, [-1, model.config.hiddenSize]), inputs.positions));
    const tokens = op.squeeze(op.gatherElements(logSoftmax(logits, -1), op.unsqueeze(inputs.targets, 1), 1), 1);
    logps = op.scatterAdd(op.constantOfShape(g, [inputs.inputIds.shape[0]], 0, 'float64', inputs.inputIds), inputs.segments, tokens, 0);
  } else logps = sequenceLogps(model, params, inputs).logps;
  // A loss that weighs the sequences differently, so that every gradient path is exercised.
  const weights = g.input('weights', 'float64', ['sequences']);
  const names = model.parameters().map((p) => p.name).filter((n) => !frozenHead || n !== HEAD);
  // Checkpointed chunks read the head's weight; the frozen-head construction has none.
  const checkpointedHead = g.nodes.some((n) => n.op === 'Checkpoint' && n.inputs.includes(params[HEAD]));
  expect(checkpointedHead).toBe(!direct && !frozenHead);
  const grads = grad(op.sum(op.mul(logps, weights)), names.map((n) => params[n]));
  const outputs: Record<string, Tensor> = { logps };
  names.forEach((n, i) => (outputs[`grad:${n}`] = grads[i]));
  return (await CompiledGraph.compile(outputs, { threads: 1 })).run(feeds);
}

describe('sequenceLogps (chunked, checkpointed vocabulary projection)', () => {
  // 2 sequences of 6 tokens; `scored` positions spread over both.
  for (const scored of [1, 3, LM_HEAD_CHUNKS + 1, 10]) {
    it(`equals the direct computation with ${scored} scored positions`, async () => {
      const feeds: Record<string, HostTensor> = {
        input_ids: { data: BigInt64Array.from({ length: 12 }, (_, i) => BigInt((i * 7) % 11)), dims: [2, 6] },
        attention_mask: { data: new Float64Array(12).fill(1), dims: [2, 6] },
        score_positions: { data: BigInt64Array.from({ length: scored }, (_, i) => BigInt(i)), dims: [scored] },
        score_targets: { data: BigInt64Array.from({ length: scored }, (_, i) => BigInt((i * 5 + 3) % 11)), dims: [scored] },
        score_segments: { data: BigInt64Array.from({ length: scored }, (_, i) => BigInt(Math.floor(i / 6))), dims: [scored] },
        weights: { data: Float64Array.of(1, -2), dims: [2] },
      };
      model.parameters().forEach((p, i) => (feeds[p.name] = { data: values(p.shape.reduce((a, b) => a * b, 1), i + 1), dims: p.shape }));
      const [direct, chunked, frozen] = await Promise.all([logpsAndGrads(true, feeds), logpsAndGrads(false, feeds), logpsAndGrads(false, feeds, true)]);
      for (const [k, v] of Object.entries(direct)) {
        for (const [how, out] of [['checkpointed', chunked], ['frozen head', frozen]] as const) {
          if (k === `grad:${HEAD}` && how === 'frozen head') continue;
          const got = out[k].data as Float64Array;
          (v.data as Float64Array).forEach((x, j) => expect(Math.abs(got[j] - x), `${how} ${k}[${j}]`).toBeLessThan(1e-12));
        }
      }
    });
  }
});

describe('LD-DPO and WPO per-sequence quantities', () => {
  it('ldLogps weigh tokens past the pair\'s shorter completion by alpha; WPO sums log p - log sum p^2', async () => {
    // One pair (K = 2, B = 1): completions of 4 and 2 scored tokens.
    const scored = [0, 1, 2, 3, 6, 7];
    const targets = [3, 5, 1, 9, 2, 4];
    const segments = [0, 0, 0, 0, 1, 1];
    const lossMask = new Float32Array(12);
    scored.forEach((p) => (lossMask[p] = 1));
    const batch = { batchSize: 1, numCompletions: 2, seqLen: 6, lossMask, completionLengths: Int32Array.of(4, 2) } as unknown as Parameters<typeof ldTokenWeights>[0];
    expect(Array.from(ldTokenWeights(batch, 0.25))).toEqual([1, 1, 0.25, 0.25, 1, 1]);

    const g = new Graph();
    const params: Record<string, Tensor> = {};
    for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float64', p.shape);
    const inputs = declareScoredInputs(g, 'float64');
    const s = sequenceLogps(model, params, inputs, undefined, { ldAlpha: 0.25, wpo: true });
    const { hidden } = model.forward(params, { inputIds: inputs.inputIds, attentionMask: inputs.attentionMask });
    const logits = model.logits(params, op.gather(op.reshape(hidden, [-1, model.config.hiddenSize]), inputs.positions));
    const c = await CompiledGraph.compile({ ld: s.ldLogps as Tensor, wpo: s.wpoLogWeightSums as Tensor, logits }, { threads: 1 });
    const feeds: Record<string, HostTensor> = {
      input_ids: { data: BigInt64Array.from({ length: 12 }, (_, i) => BigInt((i * 7) % 11)), dims: [2, 6] },
      attention_mask: { data: new Float64Array(12).fill(1), dims: [2, 6] },
      score_positions: { data: BigInt64Array.from(scored.map(BigInt)), dims: [6] },
      score_targets: { data: BigInt64Array.from(targets.map(BigInt)), dims: [6] },
      score_segments: { data: BigInt64Array.from(segments.map(BigInt)), dims: [6] },
      token_weights: { data: Float64Array.from(ldTokenWeights(batch, 0.25)), dims: [6] },
    };
    model.parameters().forEach((p, i) => (feeds[p.name] = { data: values(p.shape.reduce((a, b) => a * b, 1), i + 1), dims: p.shape }));
    const out = await c.run(feeds);
    const z = out.logits.data as Float64Array;
    const V = 11;
    const ld = [0, 0];
    const wpo = [0, 0];
    scored.forEach((_, j) => {
      const row = Array.from(z.subarray(j * V, (j + 1) * V));
      const lse = Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
      const logp = row[targets[j]] - lse;
      const sumP2 = row.reduce((a, v) => a + Math.exp(2 * (v - lse)), 0);
      ld[segments[j]] += (j === 2 || j === 3 ? 0.25 : 1) * logp;
      wpo[segments[j]] += logp - Math.log(sumP2);
    });
    const got = (t: HostTensor): number[] => Array.from(t.data as Float64Array);
    got(out.ld).forEach((v, i) => expect(v).toBeCloseTo(ld[i], 10));
    got(out.wpo).forEach((v, i) => expect(v).toBeCloseTo(wpo[i], 10));
    await c.release();
  });
});
