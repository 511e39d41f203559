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
  const g = new Graph();
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float32', p.shape);
  const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
  const attentionMask = g.input('attention_mask', 'float32', ['batch', 'seq']);
  const positionIds = g.input('position_ids', 'int64', ['batch', 'seq']);
  const { hidden } = model.forward(params, { inputIds, attentionMask, positionIds });
  const compiled = await CompiledGraph.compile({ logits: model.logits(params, hidden) }, { threads: 2 });
  const feeds: Record<string, HostTensor> = {};
  for (const p of model.parameters()) {
    const w = weights.get(p.name);
    if (!w) throw new Error(`fixture ${family} lacks ${p.name}`);
    feeds[p.name] = w;
  }
  const errors: Record<string, number> = {};
  for (const c of readCases(family)) {
    const b = c.input_ids.length;
    const t = c.input_ids[0].length;
    feeds.input_ids = { data: BigInt64Array.from(c.input_ids.flat().map(BigInt)), dims: [b, t] };
    feeds.attention_mask = { data: Float32Array.from(c.attention_mask.flat()), dims: [b, t] };
    feeds.position_ids = { data: BigInt64Array.from(c.position_ids.flat().map(BigInt)), dims: [b, t] };
    const out = (await compiled.run(feeds)).logits;
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
