/**
 * Forward with a KV cache equals the full forward: run the first k tokens (keeping `present`),
 * then the rest in a multi-token step and single-token steps with `past` = the presents and
 * the attention mask covering past + new. What generation relies on.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { loadCheckpoint } from '../../src/io/hf-folder.js';
import { createModel } from '../../src/models/registry.js';
import type { CausalLM, KeyValue } from '../../src/models/types.js';
import { FIXTURES, NEW_FIXTURES, readCases, type FixtureCase } from './fixture-harness.js';

interface Compiled {
  run(ids: number[][], mask: number[][], positions: number[][] | undefined, past: HostTensor[][] | undefined): Promise<{ logits: HostTensor; present: HostTensor[][] }>;
  release(): Promise<void>;
}

/** A graph with (optional) past and (optional) explicit position ids, returning logits and presents. */
async function build(model: CausalLM, weights: Record<string, HostTensor>, withPast: boolean, withPositions: boolean): Promise<Compiled> {
  const g = new Graph();
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float32', p.shape);
  const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
  const { numLayers, numKeyValueHeads, headDim } = model.config;
  let past: KeyValue[] | undefined;
  if (withPast) {
    past = [];
    for (let i = 0; i < numLayers; i++) {
      past.push({
        key: g.input(`past.${i}.key`, 'float32', ['batch', numKeyValueHeads, 'past', headDim]),
        value: g.input(`past.${i}.value`, 'float32', ['batch', numKeyValueHeads, 'past', headDim]),
      });
    }
  }
  // The mask covers past + new: the name is the one concat gives the key axis.
  const attentionMask = g.input('attention_mask', 'float32', ['batch', withPast ? 'past+seq' : 'seq']);
  const positionIds = withPositions ? g.input('position_ids', 'int64', ['batch', 'seq']) : undefined;
  const { hidden, present } = model.forward(params, { inputIds, attentionMask, positionIds, past });
  const outputs: Record<string, Tensor> = { logits: model.logits(params, hidden) };
  present.forEach((kv, i) => {
    outputs[`present.${i}.key`] = kv.key;
    outputs[`present.${i}.value`] = kv.value;
  });
  const compiled = await CompiledGraph.compile(outputs, { threads: 2 });
  const i64 = (rows: number[][]): HostTensor => ({ data: BigInt64Array.from(rows.flat().map(BigInt)), dims: [rows.length, rows[0].length] });
  return {
    async run(ids, mask, positions, pastValues) {
      const feeds: Record<string, HostTensor> = { ...weights, input_ids: i64(ids), attention_mask: { data: Float32Array.from(mask.flat()), dims: [mask.length, mask[0].length] } };
      if (positions) feeds.position_ids = i64(positions);
      pastValues?.forEach(([k, v], i) => {
        feeds[`past.${i}.key`] = k;
        feeds[`past.${i}.value`] = v;
      });
      const out = await compiled.run(feeds);
      const present = Array.from({ length: numLayers }, (_, i) => [out[`present.${i}.key`], out[`present.${i}.value`]]);
      return { logits: out.logits, present };
    },
    release: () => compiled.release(),
  };
}

const cols = (rows: number[][], from: number, to: number): number[][] => rows.map((r) => r.slice(from, to));

/** Max |cached - full| over real positions, and max |cached - reference| too. */
async function cacheError(family: string, c: FixtureCase, explicitPositions: boolean): Promise<{ vsFull: number; vsReference: number; steps: number }> {
  const ckpt = await loadCheckpoint(join(FIXTURES, family));
  const model = createModel(ckpt.config);
  const weights: Record<string, HostTensor> = {};
  for (const [key, t] of ckpt.tensors) {
    const name = model.canonicalKey(key);
    if (name) weights[name] = { data: t.data, dims: t.shape };
  }
  const full = await build(model, weights, false, explicitPositions);
  const prefix = full;
  const step = await build(model, weights, true, explicitPositions);
  const t = c.input_ids[0].length;
  const pos = explicitPositions ? c.position_ids : undefined;
  const fullOut = (await full.run(c.input_ids, c.attention_mask, pos, undefined)).logits;

  // Chunks: k tokens, then 4, then one at a time.
  const k = Math.min(10, t - 1);
  const bounds = [0, k, Math.min(k + 4, t)];
  for (let j = bounds[2] + 1; j <= t; j++) bounds.push(j);
  const v = fullOut.dims[2];
  let vsFull = 0;
  let vsReference = 0;
  let past: HostTensor[][] | undefined;
  let steps = 0;
  for (let s = 0; s + 1 < bounds.length; s++) {
    const [a, b] = [bounds[s], bounds[s + 1]];
    if (b <= a) continue;
    const graph = past ? step : prefix;
    const out = await graph.run(cols(c.input_ids, a, b), cols(c.attention_mask, 0, b), pos && cols(pos, a, b), past);
    past = out.present;
    steps++;
    for (let row = 0; row < c.input_ids.length; row++) {
      for (let j = a; j < b; j++) {
        if (!c.attention_mask[row][j]) continue;
        const expected = c.logits[row][j] as number[];
        for (let x = 0; x < v; x++) {
          const got = out.logits.data[(row * (b - a) + (j - a)) * v + x] as number;
          vsFull = Math.max(vsFull, Math.abs(got - (fullOut.data[(row * t + j) * v + x] as number)));
          vsReference = Math.max(vsReference, Math.abs(got - expected[x]));
        }
      }
    }
  }
  await full.release();
  await step.release();
  return { vsFull, vsReference, steps };
}

describe('KV cache: prefix + cached steps give the full forward logits', () => {
  for (const family of ['gpt2', 'llama', 'gptj', 'gpt_neox', 'qwen2']) {
    it(`${family}: right padding, default positions offset by the past length`, async () => {
      const c = readCases(family).find((x) => x.name === 'len17_right_pad') as FixtureCase;
      const { vsFull, vsReference, steps } = await cacheError(family, c, false);
      expect(steps).toBeGreaterThan(3);
      expect(vsFull).toBeLessThan(1e-5);
      expect(vsReference).toBeLessThan(1e-4);
    });
    it(`${family}: left padding, explicit position ids, mask over past + new`, async () => {
      const c = readCases(family).find((x) => x.name === 'len17_left_pad') as FixtureCase;
      const { vsFull, vsReference } = await cacheError(family, c, true);
      expect(vsFull).toBeLessThan(1e-5);
      expect(vsReference).toBeLessThan(1e-4);
    });
  }
  // The 2026 families and the windowed / scaled-RoPE variants: the left-padded case (explicit
  // positions, mask over past + new) with windows shorter than the 17 positions.
  for (const family of NEW_FIXTURES) {
    it(`${family}: left padding, explicit position ids, mask over past + new`, async () => {
      const c = readCases(family).find((x) => x.name === 'len17_left_pad') as FixtureCase;
      const { vsFull, vsReference, steps } = await cacheError(family, c, true);
      expect(steps).toBeGreaterThan(3);
      expect(vsFull).toBeLessThan(1e-5);
      expect(vsReference).toBeLessThan(1e-4);
    });
  }
});
