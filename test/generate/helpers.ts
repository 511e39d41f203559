/** Fixture models and a no-cache greedy reference for generation tests. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { loadPretrained } from '../../src/models/pretrained.js';
import type { CausalLM } from '../../src/models/types.js';

export const MODEL_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'models');

/** Fixture folders (family name -> model_type). */
export function fixtureFamilies(): { folder: string; modelType: string }[] {
  return readdirSync(MODEL_FIXTURES, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => {
      const config = JSON.parse(readFileSync(join(MODEL_FIXTURES, e.name, 'config.json'), 'utf8')) as { model_type: string };
      return { folder: e.name, modelType: config.model_type };
    })
    .sort((a, b) => (a.folder < b.folder ? -1 : 1));
}

export async function loadFixture(folder: string): Promise<{ model: CausalLM; weights: Map<string, Float32Array> }> {
  const { model, weights } = await loadPretrained(join(MODEL_FIXTURES, folder), { tokenizer: false });
  return { model, weights };
}

/**
 * Greedy decoding that recomputes the full forward over prompt + generated tokens for every
 * new token (no cache, one unpadded row, positions 0..n-1).
 */
export class RecomputeReference {
  private constructor(
    private readonly model: CausalLM,
    private readonly compiled: CompiledGraph,
  ) {}

  static async create(model: CausalLM): Promise<RecomputeReference> {
    const g = new Graph('full');
    const params: Record<string, Tensor> = {};
    for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float32', p.shape);
    const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
    const { hidden } = model.forward(params, { inputIds });
    const compiled = await CompiledGraph.compile({ logits: model.logits(params, hidden) }, { threads: 1 });
    return new RecomputeReference(model, compiled);
  }

  /** Logits [V] after `ids`. */
  async lastLogits(weights: ReadonlyMap<string, Float32Array>, ids: readonly number[]): Promise<Float32Array> {
    const feeds: Record<string, HostTensor> = {};
    for (const p of this.model.parameters()) feeds[p.name] = { data: weights.get(p.name) as Float32Array, dims: p.shape };
    feeds.input_ids = { data: BigInt64Array.from(ids.map(BigInt)), dims: [1, ids.length] };
    const out = (await this.compiled.run(feeds)).logits.data as Float32Array;
    const v = this.model.config.vocabSize;
    return out.slice((ids.length - 1) * v, ids.length * v);
  }

  async greedy(weights: ReadonlyMap<string, Float32Array>, prompt: readonly number[], maxNew: number, eos: readonly number[] = []): Promise<number[]> {
    const ids = [...prompt];
    const out: number[] = [];
    for (let i = 0; i < maxNew; i++) {
      const logits = await this.lastLogits(weights, ids);
      let best = 0;
      for (let k = 1; k < logits.length; k++) if (logits[k] > logits[best]) best = k;
      out.push(best);
      ids.push(best);
      if (eos.includes(best)) break;
    }
    return out;
  }

  async release(): Promise<void> {
    await this.compiled.release();
  }
}

/** Deterministic pseudo-random prompt of `n` ids in [1, vocab). */
export function makePrompt(n: number, vocab: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => 1 + ((i * 37 + salt * 101 + 13) % (vocab - 1)));
}
