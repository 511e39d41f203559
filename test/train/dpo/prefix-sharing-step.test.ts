/**
 * Prefix sharing in a DPO training step: one step (forward, sigmoid loss, backward, update) with
 * each pair's prompt shared by its completions gives the loss, log-probs and updated weights of
 * the unshared step (float32 rounding only), on the gpt2, llama and gemma2 fixtures; padded and
 * padding-free. The update is SGD at learning rate 1, so each weight moves by minus its gradient
 * and the weights compare the gradients (AdamW's first step is lr x sign(gradient), which flips
 * for the gradients that are zero up to rounding, e.g. key biases under softmax's shift invariance). The exactness in float64 across every family is test/scoring/prefix-sharing.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { HostTensor } from '../../../src/engine/runtime.js';
import { TrainStep, type ParamSpec } from '../../../src/engine/train-step.js';
import { collatePreferences, type PreferenceBatch } from '../../../src/data/collate.js';
import type { TokenizedPreference } from '../../../src/data/tokenize.js';
import { scoredFeeds, type ScoredLayout } from '../../../src/scoring/sequence-logps.js';
import { buildDpoLoss } from '../../../src/train/dpo/trainer.js';
import { loadFixture } from '../../generate/helpers.js';

/** Long prompts, short completions: the case prefix sharing is for. */
function rows(vocab: number): TokenizedPreference[] {
  const ids = (n: number, seed: number): number[] => Array.from({ length: n }, (_, j) => (seed * 31 + j * 17 + 5) % vocab);
  const shapes = [[12, 3, 5], [9, 4, 2], [14, 2, 2]];
  return shapes.map(([p, c, r], i) => ({ promptIds: ids(p, i), completionIds: [ids(c, i + 10), ids(r, i + 20)], origin: { file: 'test', line: i + 1 } }));
}

function feeds(batch: PreferenceBatch, layout: ScoredLayout): Record<string, HostTensor> {
  const n = batch.numSequences;
  return {
    ...scoredFeeds(batch, layout),
    completion_lengths: { data: Float32Array.from(batch.completionLengths), dims: [n] },
    ref_logps: { data: Float32Array.from({ length: n }, (_, i) => -3 * batch.completionLengths[i] - 0.25 * i), dims: [n] },
  };
}

async function oneStep(family: string, batch: PreferenceBatch, layout: ScoredLayout) {
  const { model, weights } = await loadFixture(family);
  const specs: ParamSpec[] = model.parameters().map((p) => ({ name: p.name, shape: p.shape, data: Float32Array.from(weights.get(p.name) as Float32Array) }));
  const step = await TrainStep.create(
    specs,
    (g, params) => buildDpoLoss(g, model, params, { beta: 0.1, lossTypes: ['sigmoid'] }, 2, false, undefined, layout),
    { name: 'sgd', maxGradNorm: 0 },
    { threads: 1 },
  );
  try {
    const r = await step.step(feeds(batch, layout), 1);
    await step.sync();
    return { loss: r.loss, gradNorm: r.gradNorm, logps: Float32Array.from(r.outputs.policy_logps.data as Float32Array), weights: new Map([...step.parameters()].map(([k, w]) => [k, Float32Array.from(w)])), before: weights };
  } finally {
    await step.release();
  }
}

describe('a DPO step with prefix sharing equals the unshared step', () => {
  for (const family of ['gpt2', 'llama', 'gemma2']) {
    it(family, async () => {
      const { model } = await loadFixture(family);
      const batch = collatePreferences(rows(model.config.vocabSize), { padTokenId: 0 });
      // The shared rows are shorter: 3 rows of 20 token slots against 6 rows of 19.
      const shared = scoredFeeds(batch, { prefixSharing: 'on' });
      expect(shared.input_ids.dims[0] * shared.input_ids.dims[1]).toBeLessThan(batch.numSequences * batch.seqLen);
      const off = await oneStep(family, batch, {});
      let moved = 0;
      for (const [k, w] of off.weights) w.forEach((v, i) => (moved = Math.max(moved, Math.abs(v - (off.before.get(k) as Float32Array)[i]))));
      expect(moved).toBeGreaterThan(1e-3); // the step moved the weights
      for (const layout of [{ prefixSharing: 'on' }, { packed: true, prefixSharing: 'auto' }] as const) {
        const on = await oneStep(family, batch, layout);
        expect(Math.abs(on.loss - off.loss), JSON.stringify(layout)).toBeLessThan(1e-5);
        expect(Math.abs(on.gradNorm - off.gradNorm)).toBeLessThan(1e-5 * Math.max(1, off.gradNorm));
        off.logps.forEach((v, i) => expect(Math.abs(on.logps[i] - v)).toBeLessThan(1e-4 * Math.max(1, Math.abs(v))));
        let worst = 0;
        for (const [k, w] of off.weights) w.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - (on.weights.get(k) as Float32Array)[i]))));
        expect(worst, JSON.stringify(layout)).toBeLessThan(1e-5 * Math.max(1, moved));
      }
    });
  }
});
