/**
 * Prefix sharing (arXiv 2410.20305): a row's prompt goes through the model once, its completions
 * after it under branch ids and continued positions. Per-sequence log-probs and their gradients
 * must equal the unshared forward's, in float64, for every family's use of positions (learned,
 * RoPE: full, partial, interleaved, scaled, dynamic, LongRoPE; NoPE layers), sliding windows
 * (counted in positions), soft-capping; against right- and left-padded and padding-free batches.
 * Plus a finite-difference gradcheck through the shared forward, and the mask itself.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../src/engine/autodiff.js';
import { gradcheck } from '../../src/engine/gradcheck.js';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { collatePreferences, type PreferenceBatch } from '../../src/data/collate.js';
import { packSharedPrefix } from '../../src/data/pack.js';
import type { TokenizedPreference } from '../../src/data/tokenize.js';
import { attentionMask } from '../../src/models/attention.js';
import { createModel } from '../../src/models/registry.js';
import type { CausalLM } from '../../src/models/types.js';
import { declareScoredInputs, scoredFeeds, sequenceLogps, type ScoredInputs } from '../../src/scoring/sequence-logps.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Prompts of 0-7 tokens and completions of 1-8, so windows of 3 cut across prompt and completions. */
function rows(vocab: number, seed: number, shapes = [[5, 4, 2], [1, 1, 6], [7, 3, 8], [0, 3, 2], [3, 6, 1]]): TokenizedPreference[] {
  const rand = lcg(seed);
  const ids = (n: number): number[] => Array.from({ length: n }, () => Math.floor(rand() * vocab));
  return shapes.map(([p, c1, c2], i) => ({ promptIds: ids(p), completionIds: [ids(c1), ids(c2)], origin: { file: 'test', line: i + 1 } }));
}

const TINY = { vocab_size: 13, hidden_size: 8, intermediate_size: 12, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4, max_position_embeddings: 32 };

/** One tiny config per family and per positional/masking variant the models implement. */
const MODELS: Record<string, Record<string, unknown>> = {
  gpt2: { model_type: 'gpt2', vocab_size: 13, n_embd: 8, n_layer: 2, n_head: 2, n_positions: 32 },
  'llama (llama3 rope scaling, biases)': { ...TINY, model_type: 'llama', num_hidden_layers: 2, attention_bias: true, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 } },
  'llama (dynamic NTK rope)': { ...TINY, model_type: 'llama', num_hidden_layers: 1, max_position_embeddings: 6, rope_scaling: { rope_type: 'dynamic', factor: 2 } },
  'mistral (sliding window 3)': { ...TINY, model_type: 'mistral', num_hidden_layers: 2, sliding_window: 3 },
  'qwen2 (window on layer 1 only)': { ...TINY, model_type: 'qwen2', num_hidden_layers: 2, use_sliding_window: true, sliding_window: 3, max_window_layers: 1 },
  'qwen3 (q/k norms)': { ...TINY, model_type: 'qwen3', num_hidden_layers: 1, tie_word_embeddings: true },
  'smollm3 (NoPE layer, window)': { ...TINY, model_type: 'smollm3', num_hidden_layers: 2, no_rope_layers: [1, 0], use_sliding_window: true, sliding_window: 3, max_window_layers: 1 },
  'gemma2 (soft-capping, alternating window 3)': { ...TINY, model_type: 'gemma2', num_hidden_layers: 2, query_pre_attn_scalar: 3, sliding_window: 3, attn_logit_softcapping: 1.5, final_logit_softcapping: 2 },
  'gemma3 (local rope base, window 3, linear scaling)': { ...TINY, model_type: 'gemma3_text', num_hidden_layers: 2, query_pre_attn_scalar: 4, sliding_window: 3, sliding_window_pattern: 2, rope_local_base_freq: 10000, rope_scaling: { rope_type: 'linear', factor: 2 } },
  'phi3 (partial LongRoPE, window 3)': { ...TINY, model_type: 'phi3', num_hidden_layers: 1, head_dim: undefined, partial_rotary_factor: 0.5, sliding_window: 3, max_position_embeddings: 16, original_max_position_embeddings: 6, rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [3] } },
  'gpt_neox (partial rotary, parallel residual)': { model_type: 'gpt_neox', vocab_size: 13, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, rotary_pct: 0.5, use_parallel_residual: true },
  'gptj (interleaved partial rotary)': { model_type: 'gptj', vocab_size: 13, n_embd: 8, n_inner: 16, n_layer: 1, n_head: 2, rotary_dim: 2, n_positions: 32 },
};

/** Per-sequence log-probs and the gradients of sum(logps * weights) w.r.t. every parameter, for one layout. */
async function compileLogpsAndGrads(model: CausalLM, layout: 'padded' | 'shared'): Promise<CompiledGraph> {
  const g = new Graph();
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float64', p.shape);
  let inputs: ScoredInputs;
  if (layout === 'shared') inputs = declareScoredInputs(g, 'float64', { prefixSharing: 'on' });
  else inputs = { ...declareScoredInputs(g, 'float64'), positionIds: g.input('position_ids', 'int64', ['sequences', 'seq']) };
  const { logps } = sequenceLogps(model, params, inputs);
  const weights = g.input('weights', 'float64', ['sequences']);
  const names = model.parameters().map((p) => p.name);
  const grads = grad(op.sum(op.mul(logps, weights)), names.map((n) => params[n]));
  const outputs: Record<string, Tensor> = { logps };
  names.forEach((n, i) => (outputs[`grad:${n}`] = grads[i]));
  // float64: ORT's fusions (QuickGelu for SiLU) have float kernels only.
  return CompiledGraph.compile(outputs, { threads: 1, optimizationLevel: 'basic' });
}

/** Padded feeds with explicit positions; `left` moves each sequence to the row's end (positions still 0..L-1 over real tokens). */
function paddedFeeds(batch: PreferenceBatch, left: boolean): Record<string, HostTensor> {
  const feeds = scoredFeeds(batch);
  const { numSequences: n, seqLen: t } = batch;
  const ids = new BigInt64Array(n * t);
  const mask = new Float64Array(n * t);
  const positions = new BigInt64Array(n * t);
  const shift = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    let len = 0;
    while (len < t && batch.attentionMask[s * t + len]) len++;
    shift[s] = left ? t - len : 0;
    for (let j = 0; j < len; j++) {
      ids[s * t + shift[s] + j] = batch.inputIds[s * t + j];
      mask[s * t + shift[s] + j] = 1;
      positions[s * t + shift[s] + j] = BigInt(j);
    }
  }
  const at = feeds.score_positions.data as BigInt64Array;
  const moved = at.map((i) => i + BigInt(shift[Number(i) / t | 0]));
  return {
    ...feeds,
    input_ids: { data: ids, dims: [n, t] },
    attention_mask: { data: mask, dims: [n, t] },
    position_ids: { data: positions, dims: [n, t] },
    score_positions: { data: moved, dims: feeds.score_positions.dims },
  };
}

function expectClose(a: Record<string, HostTensor>, b: Record<string, HostTensor>, what: string): void {
  for (const k of Object.keys(a)) {
    const x = a[k].data as Float64Array;
    const y = b[k].data as Float64Array;
    expect(y.length, `${what} ${k}`).toBe(x.length);
    for (let i = 0; i < x.length; i++) expect(Math.abs(x[i] - y[i]), `${what} ${k}[${i}]`).toBeLessThan(1e-10 * Math.max(1, Math.abs(x[i])));
  }
}

function randomWeights(model: CausalLM, seed: number, n: number): Record<string, HostTensor> {
  const rand = lcg(seed);
  const feeds: Record<string, HostTensor> = { weights: { data: Float64Array.from({ length: n }, (_, i) => 1 + i), dims: [n] } };
  for (const p of model.parameters()) {
    const size = p.shape.reduce((a, b) => a * b, 1);
    feeds[p.name] = { data: Float64Array.from({ length: size }, () => (p.shape.length === 1 && p.name.includes('norm') ? 1 : 0) + 0.6 * (rand() - 0.5)), dims: p.shape };
  }
  return feeds;
}

describe('prefix sharing: exact log-probs and gradients (float64)', () => {
  for (const [family, config] of Object.entries(MODELS)) {
    it(`${family}: shared (one row per pair, and packed) == right-padded == left-padded == padding-free`, async () => {
      const model = createModel(config);
      const batch = collatePreferences(rows(13, 2), { padTokenId: 0 });
      const weights = randomWeights(model, 3, batch.numSequences);
      const padded = await compileLogpsAndGrads(model, 'padded');
      const shared = await compileLogpsAndGrads(model, 'shared');
      try {
        const reference = await padded.run({ ...weights, ...paddedFeeds(batch, false) });
        expectClose(reference, await padded.run({ ...weights, ...paddedFeeds(batch, true) }), 'left-padded');
        // The shared graph also takes plain batches (branch ids all 0), as prefix sharing 'auto' feeds them.
        expectClose(reference, await shared.run({ ...weights, ...scoredFeeds(batch, { packed: true, prefixSharing: 'auto' }) }), 'padding-free');
        const onePerRow = scoredFeeds(batch, { prefixSharing: 'on' });
        const packed = scoredFeeds(batch, { packed: true, prefixSharing: 'on' });
        expect(onePerRow.input_ids.dims[0]).toBe(batch.batchSize);
        expect(packed.input_ids.dims[0]).toBeLessThan(batch.batchSize);
        expectClose(reference, await shared.run({ ...weights, ...onePerRow }), 'shared, a row per pair');
        expectClose(reference, await shared.run({ ...weights, ...packed }), 'shared and packed');
      } finally {
        await padded.release();
        await shared.release();
      }
    });
  }

  it('gradcheck: finite differences through the shared forward (gemma2: soft-capping, window in positions)', async () => {
    const model = createModel({ ...MODELS['gemma2 (soft-capping, alternating window 3)'], vocab_size: 7, num_hidden_layers: 1, sliding_window: 2 });
    const batch = collatePreferences(rows(7, 5, [[2, 2, 2], [1, 1, 2]]), { padTokenId: 0 });
    const feeds = scoredFeeds(batch, { packed: true, prefixSharing: 'on' });
    const rand = lcg(11);
    const inputs = model.parameters().map((p) => ({
      name: p.name,
      shape: p.shape,
      values: Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => (p.name.includes('norm') ? 0.2 : 0.8) * (rand() - 0.5)),
    }));
    const fixed = (g: Graph): Record<string, Tensor> => {
      const s = declareScoredInputs(g, 'float64', { prefixSharing: 'on' });
      return {
        input_ids: s.inputIds,
        attention_mask: s.attentionMask,
        position_ids: s.positionIds as Tensor,
        branch_ids: s.branchIds as Tensor,
        sequence_lengths: s.sequenceLengths as Tensor,
        score_positions: s.positions,
        score_targets: s.targets,
        score_segments: s.segments,
      };
    };
    const result = await gradcheck(
      inputs,
      (x) =>
        sequenceLogps(model, x, {
          inputIds: x.input_ids,
          attentionMask: x.attention_mask,
          positionIds: x.position_ids,
          branchIds: x.branch_ids,
          sequenceLengths: x.sequence_lengths,
          positions: x.score_positions,
          targets: x.score_targets,
          segments: x.score_segments,
        }).logps,
      { extraInputs: fixed, extraFeeds: feeds },
    );
    expect(result.checked).toBe(inputs.reduce((a, i) => a + i.values.length, 0));
    expect(result.maxRelError, JSON.stringify(result.worst)).toBeLessThan(1e-6);
  });
});

describe('prefix sharing: the attention mask', () => {
  it('a completion sees its prompt and its own earlier tokens, never the other completion; the window counts positions', async () => {
    const batch = collatePreferences(rows(13, 1, [[4, 3, 3], [1, 2, 1]]), { padTokenId: 0 });
    const packed = packSharedPrefix(batch);
    const [r, t] = [packed.rows, packed.seqLen];
    expect([r, t]).toEqual([2, 10]); // segments of 10 and 4 tokens, in rows as long as the longest
    const g = new Graph();
    const q = g.input('q', 'float32', [r, 1, t, 2]);
    const ids = (name: string): Tensor => g.input(name, 'int64', [r, t]);
    const inputs = { attentionMask: ids('segments'), positionIds: ids('positions'), branchIds: ids('branches') };
    const compiled = await CompiledGraph.compile({ full: attentionMask(g, q, q, inputs), window: attentionMask(g, q, q, inputs, 2) }, { threads: 1 });
    const out = await compiled.run({
      q: { data: new Float32Array(r * t * 2), dims: [r, 1, t, 2] },
      segments: { data: packed.segmentIds, dims: [r, t] },
      positions: { data: packed.positionIds, dims: [r, t] },
      branches: { data: packed.branchIds as BigInt64Array, dims: [r, t] },
    });
    await compiled.release();
    /** The keys (indices in the row) query `query` of row `row` sees. */
    const seen = (name: string, row: number, query: number): number[] => {
      const m = out[name].data as Float32Array;
      return Array.from({ length: t }, (_, k) => k).filter((k) => m[(row * t + query) * t + k] === 0);
    };
    // Row 0, the first pair: prompt 0-3, chosen 4-6 (positions 4-6), rejected 7-9 (positions 4-6 again).
    expect(Array.from(packed.positionIds.subarray(0, 10), Number)).toEqual([0, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
    expect(Array.from((packed.branchIds as BigInt64Array).subarray(0, 10), Number)).toEqual([0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    expect(seen('full', 0, 5)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(seen('full', 0, 8)).toEqual([0, 1, 2, 3, 7, 8]);
    expect(seen('full', 0, 2)).toEqual([0, 1, 2]);
    // Window 2: a query at position p sees positions p-1 and p, whatever lies between them in the row.
    expect(seen('window', 0, 7)).toEqual([3, 7]); // the rejected's first token (position 4) sees the prompt's last (position 3)
    expect(seen('window', 0, 9)).toEqual([8, 9]);
    expect(seen('window', 0, 4)).toEqual([3, 4]);
    // Row 1, the second pair: prompt 0, chosen 1-2, rejected 3, then the unused tail (padding sees itself only).
    expect(Array.from(packed.segmentIds.subarray(t, 2 * t), Number)).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    expect(seen('full', 1, 3)).toEqual([0, 3]);
    expect(seen('full', 1, 2)).toEqual([0, 1, 2]);
    expect(seen('full', 1, 6)).toEqual([6]);
  });
});
