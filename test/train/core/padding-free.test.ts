/**
 * Padding-free batches: the sequences of a batch packed into fewer rows (positions restarting,
 * block-diagonal causal attention) give the same per-sequence log-probs and gradients as the
 * padded batch, in float64, for every family's way of using positions (learned, RoPE) and a
 * sliding window.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../../src/engine/autodiff.js';
import { Graph, type Tensor } from '../../../src/engine/graph.js';
import * as op from '../../../src/engine/ops.js';
import { CompiledGraph, type HostTensor } from '../../../src/engine/runtime.js';
import { collatePreferences } from '../../../src/data/collate.js';
import { packBatch } from '../../../src/data/pack.js';
import type { TokenizedPreference } from '../../../src/data/tokenize.js';
import { createModel } from '../../../src/models/registry.js';
import type { CausalLM } from '../../../src/models/types.js';
import { declareScoredInputs, scoredFeeds, sequenceLogps } from '../../../src/scoring/sequence-logps.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Rows whose prompt and completion lengths vary a lot, so packing has room to work. */
function rows(vocab: number, seed: number): TokenizedPreference[] {
  const rand = lcg(seed);
  const ids = (n: number): number[] => Array.from({ length: n }, () => Math.floor(rand() * vocab));
  const shapes = [[3, 9, 2], [1, 1, 4], [6, 2, 12], [2, 5, 1]];
  return shapes.map(([p, c1, c2], i) => ({ promptIds: ids(p), completionIds: [ids(c1), ids(c2)], origin: { file: 'test', line: i + 1 } }));
}

const MODELS: Record<string, Record<string, unknown>> = {
  gpt2: { model_type: 'gpt2', vocab_size: 13, n_embd: 8, n_layer: 2, n_head: 2, n_positions: 32 },
  llama: { model_type: 'llama', vocab_size: 13, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4 },
  mistral: { model_type: 'mistral', vocab_size: 13, hidden_size: 8, intermediate_size: 12, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4, sliding_window: 5 },
  gpt_neox: { model_type: 'gpt_neox', vocab_size: 13, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, rotary_pct: 0.5, use_parallel_residual: true },
};

async function logpsAndGrads(model: CausalLM, packed: boolean, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const g = new Graph();
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float64', p.shape);
  const { logps } = sequenceLogps(model, params, declareScoredInputs(g, 'float64', { packed }));
  const weights = g.input('weights', 'float64', ['sequences']);
  const names = model.parameters().map((p) => p.name);
  const grads = grad(op.sum(op.mul(logps, weights)), names.map((n) => params[n]));
  const outputs: Record<string, Tensor> = { logps };
  names.forEach((n, i) => (outputs[`grad:${n}`] = grads[i]));
  // float64: ORT's fusions (QuickGelu for SiLU) have float kernels only.
  const compiled = await CompiledGraph.compile(outputs, { threads: 1, optimizationLevel: 'basic' });
  const out = await compiled.run(feeds);
  await compiled.release();
  return out;
}

describe('padding-free (packed) batches', () => {
  it('packBatch: fewer rows, positions restart, segments number the sequences of a row, nothing overlaps', () => {
    const batch = collatePreferences(rows(13, 1), { padTokenId: 0 });
    const packed = packBatch(batch);
    const T = batch.seqLen;
    expect(T).toBe(18);
    expect(Array.from(packed.lengths)).toEqual([12, 2, 8, 7, 5, 5, 18, 3]);
    expect(packed.rows).toBe(4); // 60 tokens in rows of 18 (padded: 8 rows)
    const owner = new Int32Array(packed.rows * T).fill(-1);
    for (let n = 0; n < batch.numSequences; n++) {
      const off = packed.offsets[n];
      expect(Math.floor(off / T)).toBe(Math.floor((off + packed.lengths[n] - 1) / T)); // within one row
      for (let j = 0; j < packed.lengths[n]; j++) {
        expect(owner[off + j]).toBe(-1);
        owner[off + j] = n;
        expect(packed.positionIds[off + j]).toBe(BigInt(j));
        expect(packed.inputIds[off + j]).toBe(batch.inputIds[n * T + j]);
        expect(packed.segmentIds[off + j]).toBe(packed.segmentIds[off]);
      }
      expect(packed.segmentIds[off]).toBeGreaterThan(0n);
    }
    for (let i = 0; i < owner.length; i++) if (owner[i] < 0) expect(packed.segmentIds[i]).toBe(0n);
  });

  for (const [family, config] of Object.entries(MODELS)) {
    it(`${family}: per-sequence log-probs and their gradients equal the padded batch's (float64)`, async () => {
      const model = createModel(config);
      const batch = collatePreferences(rows(13, 2), { padTokenId: 0 });
      const rand = lcg(3);
      const shared: Record<string, HostTensor> = { weights: { data: Float64Array.from({ length: batch.numSequences }, (_, i) => 1 + i), dims: [batch.numSequences] } };
      for (const p of model.parameters()) {
        const n = p.shape.reduce((a, b) => a * b, 1);
        shared[p.name] = { data: Float64Array.from({ length: n }, () => (p.shape.length === 1 && p.name.includes('norm') ? 1 : 0) + 0.6 * (rand() - 0.5)), dims: p.shape };
      }
      const padded = scoredFeeds(batch);
      padded.attention_mask = { data: Float64Array.from(batch.attentionMask), dims: padded.attention_mask.dims };
      const packedFeeds = scoredFeeds(batch, { packed: true });
      expect(packedFeeds.input_ids.dims[0]).toBeLessThan(batch.numSequences);
      const a = await logpsAndGrads(model, false, { ...shared, ...padded });
      const b = await logpsAndGrads(model, true, { ...shared, ...packedFeeds });
      for (const k of Object.keys(a)) {
        const x = a[k].data as Float64Array;
        const y = b[k].data as Float64Array;
        expect(y.length, k).toBe(x.length);
        for (let i = 0; i < x.length; i++) expect(Math.abs(x[i] - y[i]), `${k}[${i}]`).toBeLessThan(1e-12 * Math.max(1, Math.abs(x[i])));
      }
    });
  }
});
