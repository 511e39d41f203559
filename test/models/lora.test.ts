import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Graph, type Tensor } from '../../src/engine/graph.js';
import * as op from '../../src/engine/ops.js';
import { logSoftmax } from '../../src/engine/nn.js';
import { CompiledGraph, type HostTensor } from '../../src/engine/runtime.js';
import { TrainStep, type ParamSpec } from '../../src/engine/train-step.js';
import { DpoError } from '../../src/errors.js';
import { readSafetensorsHeader } from '../../src/io/safetensors.js';
import {
  applyLora,
  initLora,
  loraConfig,
  loraParameters,
  loraTargets,
  mergeLora,
  type LoraConfig,
} from '../../src/models/lora.js';
import { loadLoraAdapter, saveLoraAdapter } from '../../src/models/lora-files.js';
import { loadPretrained, type Pretrained } from '../../src/models/pretrained.js';
import type { CausalLM } from '../../src/models/types.js';
import { FIXTURES } from './fixture-harness.js';

let root: string;
let gpt2: Pretrained;
let llama: Pretrained;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dpo-lora-'));
  gpt2 = await loadPretrained(join(FIXTURES, 'gpt2'));
  llama = await loadPretrained(join(FIXTURES, 'llama'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const IDS = [
  [5, 17, 3, 42, 8, 0, 11, 29, 64, 2],
  [1, 2, 3, 4, 5, 6, 7, 9, 10, 12],
];
const idsFeed = (): HostTensor => ({ data: BigInt64Array.from(IDS.flat().map(BigInt)), dims: [IDS.length, IDS[0].length] });

/** Small deterministic values in [-scale, scale). */
function noise(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

/** Random A and nonzero random B, so the adapters change the logits. */
function randomAdapters(model: CausalLM, config: LoraConfig): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  loraParameters(model, config).forEach((p, i) => out.set(p.name, noise(p.shape[0] * p.shape[1], 7 + i, 0.3)));
  return out;
}

/** Logits of the plain model (lora undefined) or of base + adapters through applyLora. */
async function logitsOf(
  model: CausalLM,
  weights: ReadonlyMap<string, Float32Array>,
  lora?: { config: LoraConfig; adapters: ReadonlyMap<string, Float32Array>; enabled?: boolean },
): Promise<Float32Array> {
  const g = new Graph();
  const base: Record<string, Tensor> = {};
  const feeds: Record<string, HostTensor> = { input_ids: idsFeed() };
  for (const p of model.parameters()) {
    base[p.name] = g.input(p.name, 'float32', p.shape);
    feeds[p.name] = { data: weights.get(p.name)!, dims: p.shape };
  }
  let params = base;
  if (lora) {
    const adapters: Record<string, Tensor> = {};
    for (const p of loraParameters(model, lora.config)) {
      adapters[p.name] = g.input(p.name, 'float32', p.shape);
      feeds[p.name] = { data: lora.adapters.get(p.name)!, dims: p.shape };
    }
    params = applyLora(model, base, adapters, lora.config, { enabled: lora.enabled });
  }
  const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
  const { hidden } = model.forward(params, { inputIds });
  const compiled = await CompiledGraph.compile({ logits: model.logits(params, hidden) }, { threads: 2 });
  const out = await compiled.run(feeds);
  await compiled.release();
  return out.logits.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('LoRA targets, names and initialisation', () => {
  it("defaults to PEFT's per-family query/value targets with PEFT's key names and shapes", () => {
    const cfg = loraConfig('gpt2', { r: 4 });
    expect(cfg).toMatchObject({ r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn'] });
    const targets = loraTargets(gpt2.model, cfg);
    expect(targets.map((t) => t.module.path)).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
    expect(loraParameters(gpt2.model, cfg)[0]).toEqual({ name: 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight', shape: [4, 32] });
    expect(loraParameters(gpt2.model, cfg)[1]).toEqual({ name: 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight', shape: [96, 4] });

    const l = loraTargets(llama.model, loraConfig('llama'));
    expect(l.map((t) => t.module.path)).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ]);
    expect(l[1].bShape).toEqual([16, 8]); // GQA: v_proj has 2 kv heads x 8
    expect(loraConfig('gpt_neox').targetModules).toEqual(['query_key_value']);
    expect(loraConfig('qwen2').targetModules).toEqual(['q_proj', 'v_proj']);
    expect(loraConfig('gemma3_text').targetModules).toEqual(['q_proj', 'v_proj']);
    expect(loraConfig('phi3').targetModules).toEqual(['qkv_proj']);
  });

  it("matches module names by suffix as PEFT does; 'all-linear' takes every projection; unknown names error", () => {
    const paths = (targetModules: LoraConfig['targetModules']) => loraTargets(gpt2.model, loraConfig('gpt2', { targetModules })).map((t) => t.module.path);
    expect(paths(['c_proj'])).toEqual(['transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']);
    expect(paths(['attn.c_proj'])).toEqual(['transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_proj']);
    expect(paths('all-linear').length).toBe(8);
    expect(loraTargets(llama.model, loraConfig('llama', { targetModules: 'all-linear' })).length).toBe(14);
    expect(() => loraTargets(gpt2.model, loraConfig('gpt2', { targetModules: ['q_proj'] }))).toThrow(/"q_proj" not found in gpt2/);
  });

  it('initialises A like PEFT (uniform ±1/sqrt(in)), B zeros, seeded', () => {
    const cfg = loraConfig('llama', { r: 8 });
    const a1 = initLora(llama.model, cfg, 1);
    const a2 = initLora(llama.model, cfg, 1);
    const a3 = initLora(llama.model, cfg, 2);
    const A = a1.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!;
    expect(A.length).toBe(8 * 32);
    const bound = 1 / Math.sqrt(32);
    expect(Math.max(...A.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...A.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    expect(a1.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!.every((x) => x === 0)).toBe(true);
    expect(a2.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')).toEqual(A);
    expect(a3.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')).not.toEqual(A);
    expect(() => loraConfig('llama', { dropout: 1 })).toThrow(/dropout must be in \[0, 1\)/);
    expect(() => loraConfig('llama', { r: 0 })).toThrow(DpoError);
  });
});

describe('LoRA graph, merge, save and load', () => {
  for (const family of ['gpt2', 'llama', 'qwen2', 'gptj', 'gpt_neox', 'phi3', 'gemma3_text'] as const) {
    it(`${family}: logits of the merged model equal logits of base + adapters on the activation path; adapters off equals the base`, async () => {
      const m = family === 'gpt2' ? gpt2 : family === 'llama' ? llama : await loadPretrained(join(FIXTURES, family));
      const config = loraConfig(m.model.modelType, { r: 4, alpha: 16, targetModules: 'all-linear' });
      const adapters = randomAdapters(m.model, config);
      const baseLogits = await logitsOf(m.model, m.weights);
      const adapted = await logitsOf(m.model, m.weights, { config, adapters });
      const off = await logitsOf(m.model, m.weights, { config, adapters, enabled: false });
      const merged = mergeLora(m.model, m.weights, adapters, config);
      const mergedLogits = await logitsOf(m.model, merged);
      expect(off).toEqual(baseLogits);
      expect(maxAbsDiff(adapted, baseLogits)).toBeGreaterThan(0.1); // the adapters matter
      expect(maxAbsDiff(mergedLogits, adapted)).toBeLessThan(1e-4);
      // mergeLora copies only the adapted weights and leaves the input untouched.
      const w = loraTargets(m.model, config)[0].module.weight;
      expect(merged.get(w)).not.toBe(m.weights.get(w));
      const embedding = m.model.parameters()[0].name;
      expect(merged.get(embedding)).toBe(m.weights.get(embedding));
    });
  }

  it('mergeLora computes W + (alpha/r)·BA, transposed for Conv1D (fan_in_fan_out)', () => {
    const config = loraConfig('gpt2', { r: 2, alpha: 6 });
    const adapters = randomAdapters(gpt2.model, config);
    const merged = mergeLora(gpt2.model, gpt2.weights, adapters, config);
    const name = 'transformer.h.1.attn.c_attn.weight';
    const A = adapters.get('base_model.model.transformer.h.1.attn.c_attn.lora_A.weight')!; // [2, 32]
    const B = adapters.get('base_model.model.transformer.h.1.attn.c_attn.lora_B.weight')!; // [96, 2]
    const W = gpt2.weights.get(name)!; // [32, 96]
    for (const [i, o] of [[0, 0], [5, 70], [31, 95]]) {
      const delta = 3 * (B[o * 2] * A[i] + B[o * 2 + 1] * A[32 + i]);
      expect(merged.get(name)![i * 96 + o]).toBeCloseTo(W[i * 96 + o] + delta, 6);
    }
    const inPlace = new Map([...gpt2.weights].map(([k, v]) => [k, Float32Array.from(v)]));
    expect(mergeLora(gpt2.model, inPlace, adapters, config, { inPlace: true })).toBe(inPlace);
    expect(inPlace.get(name)).toEqual(merged.get(name));
  });

  it("saves adapters in PEFT's format and loads them back", async () => {
    const config = loraConfig('gpt2', { r: 4, alpha: 8 });
    const adapters = randomAdapters(gpt2.model, config);
    const dir = join(root, 'adapter-gpt2');
    await saveLoraAdapter(dir, { model: gpt2.model, adapters, config, baseModelNameOrPath: 'openai-community/gpt2' });
    const json = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    expect(json).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0,
      target_modules: ['c_attn'],
      fan_in_fan_out: true,
      bias: 'none',
      base_model_name_or_path: 'openai-community/gpt2',
      use_rslora: false,
      use_dora: false,
    });
    const header = await readSafetensorsHeader(join(dir, 'adapter_model.safetensors'));
    expect(header.tensors.map((t) => t.name).sort()).toEqual([
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight',
      'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight',
      'base_model.model.transformer.h.1.attn.c_attn.lora_A.weight',
      'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight',
    ]);
    expect(header.metadata.format).toBe('pt');

    const back = await loadLoraAdapter(dir, gpt2.model);
    expect(back.config).toEqual({ ...config, useRslora: false });
    expect(back.baseModelNameOrPath).toBe('openai-community/gpt2');
    for (const [k, v] of adapters) expect(back.adapters.get(k), k).toEqual(v);

    // Saving again into the existing folder replaces the files.
    await saveLoraAdapter(dir, { model: gpt2.model, adapters: initLora(gpt2.model, config, 3), config });
    expect((await loadLoraAdapter(dir, gpt2.model)).adapters.get('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight')!.every((x) => x === 0)).toBe(true);
  });

  it('llama adapters: fan_in_fan_out false; a PEFT config with dropout, all-linear expanded, regex targets', async () => {
    const config = loraConfig('llama', { r: 2, alpha: 4, targetModules: 'all-linear' });
    const adapters = randomAdapters(llama.model, config);
    const dir = join(root, 'adapter-llama');
    await saveLoraAdapter(dir, { model: llama.model, adapters, config });
    const json = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    expect(json.fan_in_fan_out).toBe(false);
    expect(json.target_modules).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    // An adapter trained elsewhere with dropout loads (dropout is inactive for merge/eval).
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ ...json, lora_dropout: 0.05, target_modules: 'model\\.layers\\.\\d+\\.(self_attn|mlp)\\.\\w+_proj' }));
    const back = await loadLoraAdapter(dir, llama.model);
    expect(back.config.dropout).toBe(0.05);
    expect(loraTargets(llama.model, back.config).length).toBe(14);
    const merged = mergeLora(llama.model, llama.weights, back.adapters, back.config);
    expect(maxAbsDiff(await logitsOf(llama.model, merged), await logitsOf(llama.model, mergeLora(llama.model, llama.weights, adapters, config)))).toBe(0);
  });

  it('rejects adapter folders it cannot honour, naming the problem', async () => {
    const config = loraConfig('gpt2', { r: 4 });
    const dir = join(root, 'adapter-bad');
    await saveLoraAdapter(dir, { model: gpt2.model, adapters: initLora(gpt2.model, config), config });
    const json = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ ...json, use_dora: true }));
    await expect(loadLoraAdapter(dir, gpt2.model)).rejects.toThrow(/DoRA/);
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ ...json, r: 8 }));
    await expect(loadLoraAdapter(dir, gpt2.model)).rejects.toThrow(/lora_A.weight" has shape \[4, 32\], expected \[8, 32\]/);
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ ...json, target_modules: ['c_attn', 'c_fc'] }));
    await expect(loadLoraAdapter(dir, gpt2.model)).rejects.toThrow(/missing tensor "base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight"/);
  });
});

describe('LoRA training', () => {
  it('TrainStep with frozen base weights and trainable adapters reduces the loss and leaves the base untouched', async () => {
    const m = llama;
    const config = loraConfig('llama', { r: 4, alpha: 8 });
    const adapters = initLora(m.model, config, 0);
    const baseCopy = new Map([...m.weights].map(([k, v]) => [k, Float32Array.from(v)]));
    const specs: ParamSpec[] = [
      ...m.model.parameters().map((p) => ({ name: p.name, shape: p.shape, data: m.weights.get(p.name)!, trainable: false })),
      ...loraParameters(m.model, config).map((p) => ({ name: p.name, shape: p.shape, data: adapters.get(p.name)! })),
    ];
    const step = await TrainStep.create(
      specs,
      (g, params) => {
        const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
        const labels = g.input('labels', 'int64', ['batch', 'seq']);
        const p = applyLora(m.model, params, params, config);
        const { hidden } = m.model.forward(p, { inputIds: ids });
        const logp = logSoftmax(m.model.logits(p, hidden));
        const nll = op.neg(op.squeeze(op.gatherElements(logp, op.unsqueeze(labels, -1), -1), -1));
        return { loss: op.mean(nll) };
      },
      { name: 'adamw', weightDecay: 0 },
      { threads: 2 },
    );
    const ids = IDS.map((row) => row.slice(0, -1));
    const labels = IDS.map((row) => row.slice(1));
    const feeds = {
      input_ids: { data: BigInt64Array.from(ids.flat().map(BigInt)), dims: [2, ids[0].length] },
      labels: { data: BigInt64Array.from(labels.flat().map(BigInt)), dims: [2, labels[0].length] },
    };
    const losses: number[] = [];
    for (let i = 0; i < 15; i++) losses.push((await step.step(feeds, 1e-2)).loss);
    await step.release();
    expect(losses[losses.length - 1]).toBeLessThan(losses[0] - 0.5);
    for (const [k, v] of baseCopy) expect(m.weights.get(k), k).toEqual(v);
    const B = adapters.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!;
    expect(B.some((x) => x !== 0)).toBe(true); // trained in place
  });
});
