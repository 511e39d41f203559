/** Samplers (transformers' warpers), seeding, and per-row stopping at EOS and stop strings. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/data/rng.js';
import { Generator } from '../../src/generate/generator.js';
import { argmax, Sampler } from '../../src/generate/sampling.js';
import type { CausalLM } from '../../src/models/types.js';
import { loadFixture, makePrompt } from './helpers.js';

/** transformers' TopK/TopP warpers + softmax, written out naively (sort with indices). */
function reference(logits: number[], temperature: number, topK: number, topP: number): number[] {
  let s = logits.map((x) => x / temperature);
  if (topK > 0 && topK < s.length) {
    const kth = [...s].sort((a, b) => b - a)[topK - 1];
    s = s.map((x) => (x < kth ? -Infinity : x));
  }
  const softmax = (xs: number[]): number[] => {
    const m = Math.max(...xs);
    const e = xs.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / z);
  };
  if (topP < 1) {
    const p = softmax(s);
    const order = p.map((_, i) => i).sort((a, b) => p[a] - p[b]);
    let cum = 0;
    const remove = new Set<number>();
    order.forEach((i, j) => {
      cum += p[i];
      if (cum <= 1 - topP && j < order.length - 1) remove.add(i);
    });
    s = s.map((x, i) => (remove.has(i) ? -Infinity : x));
  }
  return softmax(s);
}

describe('Sampler', () => {
  const rng = new Rng(7);
  const logits = Array.from({ length: 40 }, () => (rng.nextFloat() - 0.5) * 6);

  it('matches transformers temperature -> top-k -> top-p', () => {
    for (const [t, k, p] of [
      [1, 0, 1],
      [0.7, 0, 1],
      [1, 5, 1],
      [1, 0, 0.9],
      [1.3, 10, 0.5],
      [0.5, 3, 0.95],
      [1, 1, 1],
    ]) {
      const got = new Sampler(40, { doSample: true, temperature: t, topK: k, topP: p }).warpedProbs(Float32Array.from(logits));
      const want = reference(Array.from(Float32Array.from(logits)), t, k, p);
      got.forEach((g, i) => expect(g, `T=${t} k=${k} p=${p} token ${i}`).toBeCloseTo(want[i], 9));
    }
  });

  it('keeps at least one token for a tiny top-p, and it is the argmax', () => {
    const probs = new Sampler(40, { doSample: true, temperature: 1, topK: 0, topP: 1e-9 }).warpedProbs(Float32Array.from(logits));
    expect(Array.from(probs.filter((p) => p > 0))).toEqual([1]);
    expect(probs[argmax(logits)]).toBe(1);
  });

  it('samples with the warped frequencies', () => {
    const s = new Sampler(5, { doSample: true, temperature: 1, topK: 4, topP: 1 });
    const l = Float32Array.from([0, 1, 2, -1, 0.5]);
    const want = s.warpedProbs(l);
    const counts = new Array(5).fill(0);
    const r = new Rng(1);
    const n = 20000;
    for (let i = 0; i < n; i++) counts[s.next(l, 0, r)]++;
    expect(counts[3]).toBe(0); // outside the top 4
    counts.forEach((c, i) => expect(Math.abs(c / n - want[i])).toBeLessThan(0.015));
  });

  it('greedy is the first argmax; bad settings are rejected', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    expect(new Sampler(4, { doSample: false, temperature: 1, topK: 0, topP: 1 }).next([1, 3, 3, 2], 0, new Rng(0))).toBe(1);
    expect(() => new Sampler(4, { doSample: true, temperature: 0, topK: 0, topP: 1 })).toThrow(/temperature/);
    expect(() => new Sampler(4, { doSample: true, temperature: 1, topK: 0, topP: 0 })).toThrow(/top-p/);
    expect(() => new Sampler(4, { doSample: true, temperature: 1, topK: -1, topP: 1 })).toThrow(/top-k/);
  });
});

describe('Generator sampling and stopping', () => {
  let model: CausalLM;
  let weights: Map<string, Float32Array>;
  let gen: Generator;
  let prompts: number[][];
  let greedy: number[][];
  const MAX_NEW = 12;

  beforeAll(async () => {
    ({ model, weights } = await loadFixture('gpt2'));
    gen = await Generator.create(model, { runtime: { threads: 1 } });
    prompts = [5, 1, 9].map((n, i) => makePrompt(n, model.config.vocabSize, i + 3));
    greedy = (await gen.generateIds(weights, prompts, { maxNewTokens: MAX_NEW })).sequences.map((s) => s[0].tokenIds);
  });
  afterAll(async () => {
    await gen.release();
  });

  const ids = (seqs: { tokenIds: number[] }[][]): number[][][] => seqs.map((s) => s.map((x) => x.tokenIds));

  it('is reproducible for a seed, differs across seeds, and does not depend on batching', async () => {
    const o = { maxNewTokens: MAX_NEW, doSample: true, temperature: 1.5, topK: 0, topP: 1, numSamples: 3 };
    const a = await gen.generateIds(weights, prompts, { ...o, seed: 1, batchSize: 4 });
    const b = await gen.generateIds(weights, prompts, { ...o, seed: 1, batchSize: 4 });
    const c = await gen.generateIds(weights, prompts, { ...o, seed: 2, batchSize: 4 });
    const d = await gen.generateIds(weights, prompts, { ...o, seed: 1, batchSize: 1 });
    const e = await gen.generateIds(weights, prompts, { ...o, seed: 1, batchSize: 9 });
    expect(ids(b.sequences)).toEqual(ids(a.sequences));
    expect(ids(c.sequences)).not.toEqual(ids(a.sequences));
    expect(ids(d.sequences)).toEqual(ids(a.sequences));
    expect(ids(e.sequences)).toEqual(ids(a.sequences));
    // Samples of one prompt differ from each other and from greedy.
    expect(new Set(a.sequences[0].map((s) => s.tokenIds.join(','))).size).toBeGreaterThan(1);
    expect(a.sequences.map((s) => s[0].tokenIds)).not.toEqual(greedy);
  });

  it('top-k 1 and a tiny top-p equal greedy', async () => {
    const k1 = await gen.generateIds(weights, prompts, { maxNewTokens: MAX_NEW, doSample: true, topK: 1, seed: 3, numSamples: 2 });
    const p0 = await gen.generateIds(weights, prompts, { maxNewTokens: MAX_NEW, doSample: true, topP: 1e-6, temperature: 2, seed: 4, numSamples: 2 });
    for (const r of [k1, p0]) for (const [i, samples] of r.sequences.entries()) for (const s of samples) expect(s.tokenIds).toEqual(greedy[i]);
  });

  it('stops a row at EOS while the others continue, and stops early when all are done', async () => {
    const eosId = greedy[0][2]; // row 0 emits it by its third token
    const r = await gen.generateIds(weights, prompts, { maxNewTokens: MAX_NEW, eosTokenIds: [eosId], batchSize: 3 });
    r.sequences.forEach(([s], i) => {
      const at = greedy[i].indexOf(eosId);
      if (at >= 0) {
        expect(s.finishReason).toBe('eos');
        expect(s.tokenIds).toEqual(greedy[i].slice(0, at + 1));
      } else {
        expect(s.finishReason).toBe('length');
        expect(s.tokenIds).toEqual(greedy[i]);
      }
    });
    expect(r.sequences[0][0].finishReason).toBe('eos');
    expect(r.sequences[0][0].tokenIds.length).toBeLessThanOrEqual(3);
    // Every row ending at EOS early: the loop ends with the last one.
    const firsts = greedy.map((g) => g[0]);
    const early = await gen.generateIds(weights, prompts, { maxNewTokens: MAX_NEW, eosTokenIds: firsts });
    expect(early.sequences.map(([s]) => s.tokenIds)).toEqual(firsts.map((f) => [f]));
    expect(early.stats.steps).toBe(0);
    expect(early.stats.tokens).toBe(3);
  });

  it('stops a row at a stop string, which the text excludes', async () => {
    const letter = (id: number): string => String.fromCharCode(97 + (id % 26));
    const decode = (seq: readonly number[]): string => seq.map(letter).join('');
    const full = greedy.map(decode);
    const stop = full[2].slice(4, 6);
    const r = await gen.generateIds(weights, prompts, { maxNewTokens: MAX_NEW, stop: { strings: ['zzzzzzzz', stop], decode } });
    r.sequences.forEach(([s], i) => {
      const at = full[i].indexOf(stop);
      if (at >= 0) {
        expect(s.finishReason).toBe('stop');
        expect(s.stopText).toBe(full[i].slice(0, at));
        expect(s.tokenIds).toEqual(greedy[i].slice(0, at + stop.length));
      } else {
        expect(s.finishReason).toBe('length');
      }
    });
    expect(r.sequences[2][0].finishReason).toBe('stop');
  });

  it('rejects prompts it cannot run', async () => {
    await expect(gen.generateIds(weights, [[]], { maxNewTokens: 2 })).rejects.toThrow(/no tokens/);
    await expect(gen.generateIds(weights, [[1, 100000]], { maxNewTokens: 2 })).rejects.toThrow(/outside the vocabulary/);
    await expect(gen.generateIds(weights, [[1, 2]], { maxNewTokens: 64 })).rejects.toThrow(/n_positions/);
  });
});

describe('top-k threshold', () => {
  it('finds the k-th largest with the heap (small k) and quickselect (large k), ties included', () => {
    const r = new Rng(11);
    const v = 3000;
    const logits = Float32Array.from({ length: v }, () => Math.round((r.nextFloat() - 0.5) * 40) / 4); // many ties
    const sorted = Array.from(logits).sort((a, b) => b - a);
    for (const k of [1, 2, 7, 50, 1024, 1025, 2999]) {
      const probs = new Sampler(v, { doSample: true, temperature: 1, topK: k, topP: 1 }).warpedProbs(logits);
      const kept = Array.from(logits).filter((x) => x >= sorted[k - 1]).length;
      expect(probs.filter((p) => p > 0).length, `k=${k}`).toBe(kept);
    }
  });
});
