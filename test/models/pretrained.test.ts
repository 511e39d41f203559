import { cp, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { DpoError } from '../../src/errors.js';
import { readSafetensors, readSafetensorsHeader } from '../../src/io/safetensors.js';
import { writeSafetensors } from '../../src/io/safetensors-write.js';
import { loadPretrained, savePretrained } from '../../src/models/pretrained.js';
import { createModel } from '../../src/models/registry.js';
import type { CausalLM } from '../../src/models/types.js';
import { FIXTURES, NEW_FIXTURES } from './fixture-harness.js';

const TOKENIZERS = join(import.meta.dirname, '..', 'fixtures', 'tokenizers');
const GPT2 = join(FIXTURES, 'gpt2');

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dpo-pretrained-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const IDS = [
  [5, 17, 3, 42, 8, 0, 11, 29],
  [1, 2, 3, 4, 5, 6, 7, 9],
];

/** Logits for IDS with the given weights. */
async function logitsOf(model: CausalLM, weights: ReadonlyMap<string, Float32Array>): Promise<Float32Array> {
  const g = new Graph();
  const params: Record<string, Tensor> = {};
  for (const p of model.parameters()) params[p.name] = g.input(p.name, 'float32', p.shape);
  const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
  const { hidden } = model.forward(params, { inputIds });
  const compiled = await CompiledGraph.compile({ logits: model.logits(params, hidden) }, { threads: 2 });
  const feeds: Record<string, HostTensor> = {
    input_ids: { data: BigInt64Array.from(IDS.flat().map(BigInt)), dims: [IDS.length, IDS[0].length] },
  };
  for (const p of model.parameters()) feeds[p.name] = { data: weights.get(p.name)!, dims: p.shape };
  const out = await compiled.run(feeds);
  await compiled.release();
  return out.logits.data as Float32Array;
}

/** Copy a fixture folder to a fresh temp folder, rewriting its tensors with `edit`. */
async function editedCopy(
  name: string,
  edit: (t: Map<string, { data: Float32Array; shape: number[] }>) => void,
  dtype: 'F32' | 'F16' | 'BF16' = 'F32',
): Promise<string> {
  const dir = await mkdtemp(join(root, `${name}-`));
  await cp(GPT2, dir, { recursive: true });
  const tensors = await readSafetensors(join(GPT2, 'model.safetensors'));
  edit(tensors);
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { dtype });
  return dir;
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('loadPretrained / savePretrained', () => {
  it('loads gpt2 with canonical names, skipping buffers, and round-trips weights, logits, config and tokenizer', async () => {
    const src = join(root, 'gpt2-with-tokenizer');
    await cp(GPT2, src, { recursive: true });
    await cp(join(TOKENIZERS, 'gpt2'), src, { recursive: true });

    const a = await loadPretrained(src);
    expect(a.model.modelType).toBe('gpt2');
    expect(a.dir).toBe(src);
    expect([...a.weights.keys()].sort()).toEqual(a.model.parameters().map((p) => p.name).sort());
    expect(a.unexpectedKeys).toEqual([]); // attn.bias / attn.masked_bias are buffers, not unexpected
    expect(a.tokenizer?.eosTokenId).toBe(50256);
    expect(a.config.n_embd).toBe(32);

    const out = join(root, 'saved', 'gpt2');
    await savePretrained(out, { model: a.model, weights: a.weights, tokenizerDir: a.dir });
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(config.torch_dtype).toBe('float32');
    expect(config.architectures).toEqual(['GPT2LMHeadModel']);
    // transformers' GPT2LMHeadModel.save_pretrained: "transformer." keys, no tied lm_head, no buffers.
    const keys = (await readSafetensorsHeader(join(out, 'model.safetensors'))).tensors.map((t) => t.name).sort();
    expect(keys).toContain('transformer.wte.weight');
    expect(keys).toContain('transformer.h.1.attn.c_attn.weight');
    expect(keys.filter((k) => k.startsWith('lm_head') || /\.attn\.(bias|masked_bias)$/.test(k))).toEqual([]);
    expect(keys.every((k) => k.startsWith('transformer.'))).toBe(true);
    expect(keys.length).toBe(a.model.parameters().length);

    const b = await loadPretrained(out);
    expect(b.tokenizer).toBeDefined();
    for (const [name, data] of a.weights) expect(b.weights.get(name), name).toEqual(data);
    const [la, lb] = await Promise.all([logitsOf(a.model, a.weights), logitsOf(b.model, b.weights)]);
    expect(lb).toEqual(la);
  });

  it('accepts checkpoints saved without the "transformer." prefix (GPT2Model)', async () => {
    const dir = await editedCopy('noprefix', (t) => {
      for (const [k, v] of [...t]) {
        t.delete(k);
        t.set(k.replace(/^transformer\./, ''), v);
      }
    });
    const m = await loadPretrained(dir);
    const ref = await loadPretrained(GPT2);
    for (const [name, data] of ref.weights) expect(m.weights.get(name), name).toEqual(data);
  });

  const families = ['gptj', 'gpt_neox', 'gpt_neox_sequential', 'llama', 'llama3_scaled', 'llama_linear_rope', 'qwen2', 'mistral', ...NEW_FIXTURES];
  for (const family of families) {
    it(`round-trips ${family} with transformers' key names`, async () => {
      const original = (await readSafetensorsHeader(join(FIXTURES, family, 'model.safetensors'))).tensors.map((t) => t.name);
      const a = await loadPretrained(join(FIXTURES, family));
      expect(a.unexpectedKeys).toEqual([]);
      const out = join(root, 'saved', family);
      await savePretrained(out, { model: a.model, weights: a.weights });
      const saved = (await readSafetensorsHeader(join(out, 'model.safetensors'))).tensors.map((t) => t.name).sort();
      // The fixtures carry transformers' state_dict names; saving drops only the non-parameter buffers.
      expect(saved).toEqual(original.filter((k) => a.model.canonicalKey(k) !== undefined).sort());
      const b = await loadPretrained(out);
      for (const [name, data] of a.weights) expect(b.weights.get(name), name).toEqual(data);
      expect(await logitsOf(b.model, b.weights)).toEqual(await logitsOf(a.model, a.weights));
    });
  }

  it('a missing tensor errors with its name and the folder', async () => {
    const dir = await editedCopy('missing', (t) => t.delete('transformer.h.1.mlp.c_fc.bias'));
    const e = await errorOf(loadPretrained(dir));
    expect(e).toBeInstanceOf(DpoError);
    expect(e.message).toContain('"transformer.h.1.mlp.c_fc.bias"');
    expect(e.message).toContain(dir);
  });

  it('a mis-shaped tensor errors with the expected and found shapes', async () => {
    const dir = await editedCopy('misshaped', (t) => t.set('transformer.h.0.attn.c_attn.weight', { data: new Float32Array(96 * 31), shape: [31, 96] }));
    const e = await errorOf(loadPretrained(dir));
    expect(e).toBeInstanceOf(DpoError);
    expect(e.message).toContain('"transformer.h.0.attn.c_attn.weight"');
    expect(e.message).toContain('[31, 96]');
    expect(e.message).toContain('[32, 96]');
  });

  it('reports unexpected keys without failing', async () => {
    const dir = await editedCopy('unexpected', (t) => t.set('transformer.h.0.attn.extra.weight', { data: new Float32Array(4), shape: [4] }));
    const m = await loadPretrained(dir);
    expect(m.unexpectedKeys).toEqual(['transformer.h.0.attn.extra.weight']);
    expect(m.weights.has('transformer.h.0.attn.extra.weight')).toBe(false);
  });

  for (const [dtype, relTol] of [['F16', 2 ** -11], ['BF16', 2 ** -8]] as const) {
    it(`loads a ${dtype} checkpoint as float32 within ${dtype} rounding`, async () => {
      const dir = await editedCopy(dtype, () => undefined, dtype);
      expect((await readSafetensorsHeader(join(dir, 'model.safetensors'))).tensors[0].dtype).toBe(dtype);
      const half = await loadPretrained(dir);
      const full = await loadPretrained(GPT2);
      let worst = 0;
      for (const [name, ref] of full.weights) {
        const got = half.weights.get(name)!;
        expect(got).toBeInstanceOf(Float32Array);
        for (let i = 0; i < ref.length; i++) {
          // Relative rounding for normals, plus the smallest subnormal step for tiny values.
          const excess = Math.abs(got[i] - ref[i]) - (Math.abs(ref[i]) * relTol + 2 ** -24);
          worst = Math.max(worst, excess);
        }
      }
      expect(worst).toBeLessThanOrEqual(0);
      // Saving a half checkpoint back records its dtype.
      const out = join(root, 'saved', `half-${dtype}`);
      await savePretrained(out, { model: half.model, weights: half.weights, dtype });
      expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).torch_dtype).toBe(dtype === 'F16' ? 'float16' : 'bfloat16');
      const again = await loadPretrained(out);
      for (const [name, data] of half.weights) expect(again.weights.get(name), name).toEqual(data);
    });
  }

  it('savePretrained rejects weights that are not parameters, and missing ones', async () => {
    const m = await loadPretrained(GPT2);
    const extra = new Map(m.weights).set('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight', new Float32Array(4));
    const e1 = await errorOf(savePretrained(join(root, 'bad1'), { model: m.model, weights: extra }));
    expect(e1.message).toContain('lora_A');
    const less = new Map(m.weights);
    less.delete('transformer.ln_f.bias');
    const e2 = await errorOf(savePretrained(join(root, 'bad2'), { model: m.model, weights: less }));
    expect(e2.message).toContain('"transformer.ln_f.bias"');
  });

  it('an unknown model_type lists the supported ones; a missing folder says so', async () => {
    expect(() => createModel({ model_type: 'bert' })).toThrow(/supported: .*gpt2/);
    const e = await errorOf(loadPretrained(join(root, 'nope', 'model')));
    expect(e.message).toContain('does not exist');
  });

  it('a hub id that is not cached, offline, says which files are missing', async () => {
    const env = { HF_HOME: join(root, 'hf'), HF_HUB_OFFLINE: '1' };
    const e = await errorOf(loadPretrained('someorg/tiny-model', { hub: { env } }));
    expect(e).toBeInstanceOf(DpoError);
    expect(e.message).toContain('config.json');
  });
});
