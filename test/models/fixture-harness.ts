/** Runs a model family against the PyTorch-made fixtures in test/fixtures/models/<family>. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Graph } from '../../src/engine/graph.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { loadCheckpoint } from '../../src/io/hf-folder.js';
import type { CausalLM } from '../../src/models/types.js';
import type { Tensor } from '../../src/engine/graph.js';

export interface FixtureCase {
  name: string;
  input_ids: number[][];
  attention_mask: number[][];
  position_ids: number[][];
  logits: (number[] | null)[][];
}

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'models');

/** Fixtures of the 2026 families and of the sliding-window / RoPE-scaling variants. */
export const NEW_FIXTURES = ['qwen3', 'smollm3', 'gemma2', 'gemma3_text', 'phi3', 'mistral_sliding', 'qwen2_sliding', 'llama_dynamic_rope'];

export function readCases(family: string): FixtureCase[] {
  return (JSON.parse(readFileSync(join(FIXTURES, family, 'cases.json'), 'utf8')) as { cases: FixtureCase[] }).cases;
}

/** Max |ours - reference| over real (non-padding) positions, for every case. */
export async function maxLogitError(family: string, makeModel: (config: Record<string, unknown>) => CausalLM): Promise<Record<string, number>> {
  const ckpt = await loadCheckpoint(join(FIXTURES, family));
  const model = makeModel(ckpt.config);
  const weights = new Map<string, HostTensor>();
  for (const [key, t] of ckpt.tensors) {
    const name = model.canonicalKey(key);
    if (name) weights.set(name, { data: t.data, dims: t.shape });
  }
  const compiled = await compileFullForward(model);
  const feeds: Record<string, HostTensor> = {};
  for (const p of model.parameters()) {
    const w = weights.get(p.name);
    if (!w) throw new Error(`fixture ${family} lacks ${p.name}`);
    feeds[p.name] = w;
  }
  const errors: Record<string, number> = {};
  for (const c of readCases(family)) {
    const t = c.input_ids[0].length;
    const out = (await compiled.run({ ...feeds, ...caseFeeds(c) })).logits;
    const v = out.dims[2];
    let err = 0;
    c.logits.forEach((row, i) =>
      row.forEach((expected, j) => {
        if (!expected) return;
        for (let k = 0; k < v; k++) err = Math.max(err, Math.abs((out.data[(i * t + j) * v + k] as number) - expected[k]));
      }),
    );
    errors[c.name] = err;
  }
  await compiled.release();
  return errors;
}

/** A compiled full forward of `model`: weights, input_ids, float attention_mask, position_ids -> logits [B, T, V]. */
export async function compileFullForward(model: CausalLM, threads = 2): Promise<CompiledGraph> {
  const g = new Graph();
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float32', p.shape);
  const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
  const attentionMask = g.input('attention_mask', 'float32', ['batch', 'seq']);
  const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
  const { hidden } = model.forward(params, { inputIds, attentionMask, positionIds });
  return CompiledGraph.compile({ logits: model.logits(params, hidden) }, { threads });
}

/** The input feeds of one fixture case (mask as float, as the models take it). */
export function caseFeeds(c: FixtureCase): Record<string, HostTensor> {
  const dims = [c.input_ids.length, c.input_ids[0].length];
  return {
    input_ids: { data: BigInt64Array.from(c.input_ids.flat().map(BigInt)), dims },
    attention_mask: { data: Float32Array.from(c.attention_mask.flat()), dims },
    position_ids: { data: BigInt64Array.from(c.position_ids.flat().map(BigInt)), dims },
  };
}
