/**
 * BrowserDpo (the tab's trainer) run in Node, where the runtime is onnxruntime-node: the DPO
 * step moves the rewards apart, and the files it hands out (written in memory) load in Node: with
 * full fine-tuning a model folder with the trained weights exactly; with LoRA (the default) a PEFT
 * adapter folder that the Node loader reads back (exact adapters) and that `dpo generate --model`
 * (loadModelOrAdapter) loads onto the base, giving the tab's log-probs.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BrowserDpo } from '../../src/browser/dpo.js';
import { readSafetensorsBytes, safetensorsBytes, type MemoryTensor } from '../../src/browser/safetensors.js';
import { collatePreferences } from '../../src/data/collate.js';
import { Rng } from '../../src/data/rng.js';
import { loadModelOrAdapter } from '../../src/models/load-model.js';
import { loadLoraAdapter } from '../../src/models/lora-files.js';
import { LORA_DEFAULTS } from '../../src/models/lora.js';
import { createModel } from '../../src/models/registry.js';
import { loadPretrained } from '../../src/models/pretrained.js';
import { Scorer } from '../../src/scoring/scorer.js';

/** A tiny Llama with random weights (what the tab gets from a model folder: config.json and tensors). */
const CONFIG = {
  model_type: 'llama', vocab_size: 64, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  max_position_embeddings: 64, rms_norm_eps: 1e-5, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
};
function tinyTensors(): Map<string, MemoryTensor> {
  const rng = new Rng(7);
  const out = new Map<string, MemoryTensor>();
  for (const p of createModel(CONFIG).parameters()) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    out.set(p.name, { data: Float32Array.from({ length: n }, () => (p.name.includes('norm') ? 1 : (rng.nextFloat() - 0.5) * 0.4)), shape: p.shape });
  }
  return out;
}

describe('BrowserDpo', () => {
  it('trains on labelled pairs and writes a model folder that loads with the trained weights', async () => {
    // Through the safetensors bytes, as the page reads model.safetensors.
    const tensors = readSafetensorsBytes(safetensorsBytes(tinyTensors()).slice().buffer);
    const dpo = await BrowserDpo.create({ config: CONFIG, tensors, device: 'cpu', learningRate: 1e-2, full: true });
    expect(dpo.lora).toBeUndefined();
    expect(dpo.device).toBe('cpu');
    const prompt = [1, 5, 9];
    const [a, b] = await dpo.generate([prompt, prompt], { which: 'reference', maxNewTokens: 6, doSample: true, seed: 3, eosTokenIds: [] });
    expect(a).not.toEqual(b);
    const pairs = [{ promptIds: prompt, chosenIds: a, rejectedIds: b }];
    await dpo.setPairs(pairs);
    const steps = [];
    for (let i = 0; i < 3; i++) steps.push(await dpo.trainStep());
    expect(steps[0].loss).toBeCloseTo(Math.log(2), 5);
    expect(steps[2].loss).toBeLessThan(steps[0].loss);
    expect(steps[2].rewardsChosen).toBeGreaterThan(steps[2].rewardsRejected);

    const dir = mkdtempSync(join(tmpdir(), 'dpo-browser-'));
    try {
      for (const f of await dpo.modelFiles()) writeFileSync(join(dir, f.name), f.bytes);
      const loaded = await loadPretrained(dir);
      const trained = await dpo.weights();
      for (const [name, w] of trained) expect(loaded.weights.get(name)).toEqual(w);
      expect([...trained.keys()].some((k) => tensors.get(k)?.data.some((v, i) => v !== trained.get(k)?.[i]))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await dpo.release();
    }
  }, 60_000);

  it('LoRA by default: trains only the adapters, the reference is the base, and the adapter folder it writes loads in Node', async () => {
    const tensors = readSafetensorsBytes(safetensorsBytes(tinyTensors()).slice().buffer);
    const dir = mkdtempSync(join(tmpdir(), 'dpo-browser-lora-'));
    const baseDir = join(dir, 'base');
    const adapterDir = join(dir, 'adapter');
    mkdirSync(baseDir);
    mkdirSync(adapterDir);
    writeFileSync(join(baseDir, 'config.json'), JSON.stringify(CONFIG));
    writeFileSync(join(baseDir, 'model.safetensors'), safetensorsBytes(tensors));
    const dpo = await BrowserDpo.create({ config: CONFIG, tensors, device: 'cpu', learningRate: 1e-2, baseModelNameOrPath: baseDir });
    try {
      expect(dpo.lora).toMatchObject({ ...LORA_DEFAULTS, targetModules: ['q_proj', 'v_proj'] });
      const prompt = [1, 5, 9];
      const [a, b] = await dpo.generate([prompt, prompt], { which: 'reference', maxNewTokens: 6, doSample: true, seed: 3, eosTokenIds: [] });
      const [c, d] = await dpo.generate([[1, 7], [1, 7]], { which: 'reference', maxNewTokens: 5, doSample: true, seed: 4, eosTokenIds: [] });
      const pairs = [{ promptIds: prompt, chosenIds: a, rejectedIds: b }, { promptIds: [1, 7], chosenIds: c, rejectedIds: d }];
      await dpo.setPairs(pairs);
      const steps = [];
      for (let i = 0; i < 4; i++) steps.push(await dpo.trainStep());
      expect(steps[0].loss).toBeCloseTo(Math.log(2), 5);
      expect(steps[3].loss).toBeLessThan(steps[0].loss - 0.01);
      expect(steps[3].rewardsChosen).toBeGreaterThan(steps[3].rewardsRejected);
      // Only the adapters trained: the base weights are the loaded arrays, untouched.
      const weights = await dpo.weights();
      for (const [name, t] of tensors) expect(weights.get(name)).toEqual(t.data);

      const files = await dpo.adapterFiles();
      expect(files.map((f) => f.name)).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
      expect((await dpo.outputFiles()).map((f) => f.name)).toEqual(files.map((f) => f.name));
      for (const f of files) writeFileSync(join(adapterDir, f.name), f.bytes);
      const trained = await dpo.adapters();
      const model = createModel(CONFIG);
      const loaded = await loadLoraAdapter(adapterDir, model);
      expect(loaded.config).toMatchObject(dpo.lora!);
      expect(loaded.baseModelNameOrPath).toBe(baseDir);
      expect([...loaded.adapters.keys()].sort()).toEqual([...trained.keys()].sort());
      for (const [name, w] of trained) expect(loaded.adapters.get(name)).toEqual(w);

      // What `dpo generate --model adapterDir` loads: the base named in adapter_config.json, adapters merged.
      const merged = await loadModelOrAdapter(adapterDir);
      const batch = collatePreferences(pairs.map((p, i) => ({ promptIds: p.promptIds, completionIds: [p.chosenIds, p.rejectedIds], origin: { file: 't', line: i + 1 } })), { padTokenId: 2 });
      const scorer = await Scorer.create(merged.model, merged.model.parameters(), { executionProvider: 'cpu' });
      const shapes = new Map(merged.model.parameters().map((p) => [p.name, p.shape]));
      const nodePolicy = (await scorer.score(batch, merged.weights, shapes)).logps;
      const baseWeights = new Map([...tensors].map(([k, t]) => [k, t.data]));
      const nodeBase = (await scorer.score(batch, baseWeights, shapes)).logps;
      await scorer.release();
      const tabPolicy = await dpo.logps(pairs, 'policy');
      const tabReference = await dpo.logps(pairs, 'reference');
      for (let i = 0; i < tabPolicy.length; i++) {
        expect(Math.abs(nodePolicy[i] - tabPolicy[i])).toBeLessThan(1e-4);
        // Adapters off (B = 0): exactly the base model's log-probs, up to float32 rounding.
        expect(Math.abs(nodeBase[i] - tabReference[i])).toBeLessThan(1e-5);
      }
      // The training moved the policy away from the reference.
      expect(tabPolicy.some((x, i) => Math.abs(x - tabReference[i]) > 1e-3)).toBe(true);
      // The merged model download gives the same log-probs.
      const mergedDir = join(dir, 'merged');
      mkdirSync(mergedDir);
      for (const f of await dpo.modelFiles()) writeFileSync(join(mergedDir, f.name), f.bytes);
      const again = await loadPretrained(mergedDir);
      for (const [name, w] of merged.weights) expect(again.weights.get(name)).toEqual(w);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await dpo.release();
    }
  }, 60_000);
});
