/**
 * Greedy decoding with the KV cache equals greedy decoding that recomputes the full forward for
 * every token, for every model family; a left-padded batch of prompts of different lengths gives
 * the same tokens as each prompt alone.
 */
import { describe, expect, it } from 'vitest';
import { Generator } from '../../src/generate/generator.js';
import { supportedModelTypes } from '../../src/models/registry.js';
import { fixtureFamilies, loadFixture, makePrompt, RecomputeReference } from './helpers.js';

const MAX_NEW = 10;
const LENGTHS = [7, 2, 12, 1];

describe('KV-cache greedy decoding', () => {
  it('covers every model family in the registry', () => {
    const covered = new Set(fixtureFamilies().map((f) => f.modelType));
    for (const type of supportedModelTypes()) expect(covered, `no fixture for ${type}`).toContain(type);
  });

  for (const { folder } of fixtureFamilies()) {
    it(`${folder}: cached == recomputed, batched (left padding) == alone`, async () => {
      const { model, weights } = await loadFixture(folder);
      const vocab = model.config.vocabSize;
      const prompts = LENGTHS.map((n, i) => makePrompt(n, vocab, i));
      const reference = await RecomputeReference.create(model);
      const expected: number[][] = [];
      for (const p of prompts) expected.push(await reference.greedy(weights, p, MAX_NEW));
      await reference.release();

      const gen = await Generator.create(model, { runtime: { threads: 1 } });
      const batched = await gen.generateIds(weights, prompts, { maxNewTokens: MAX_NEW, batchSize: 4 });
      const alone = await gen.generateIds(weights, prompts, { maxNewTokens: MAX_NEW, batchSize: 1 });
      // Two samples per prompt: each prompt is prefilled once and its cache copied to both rows.
      const twice = await gen.generateIds(weights, prompts, { maxNewTokens: MAX_NEW, batchSize: 3, numSamples: 2 });
      await gen.release();

      const ids = (r: typeof batched): number[][] => r.sequences.map((s) => s[0].tokenIds);
      expect(ids(alone)).toEqual(expected);
      expect(ids(batched)).toEqual(expected);
      expect(twice.sequences.map((s) => s.map((x) => x.tokenIds))).toEqual(expected.map((e) => [e, e]));
      expect(batched.sequences.every((s) => s[0].finishReason === 'length')).toBe(true);
      expect(batched.stats.tokens).toBe(MAX_NEW * prompts.length);
      expect(batched.stats.steps).toBe(MAX_NEW - 1);
      // Tokens must not all be the same (a degenerate model would make the test vacuous).
      expect(new Set(expected.flat()).size).toBeGreaterThan(3);
    });
  }
});
