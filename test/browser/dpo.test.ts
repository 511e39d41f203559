/**
 * BrowserDpo (the tab's trainer) run in Node, where the runtime is onnxruntime-node: the DPO
 * step moves the rewards apart, and the model files it hands out (config.json and a float32
 * model.safetensors written in memory) load as a model folder with the trained weights exactly.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BrowserDpo } from '../../src/browser/dpo.js';
import { readSafetensorsBytes, safetensorsBytes, type MemoryTensor } from '../../src/browser/safetensors.js';
import { Rng } from '../../src/data/rng.js';
import { createModel } from '../../src/models/registry.js';
import { loadPretrained } from '../../src/models/pretrained.js';

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
    const dpo = await BrowserDpo.create({ config: CONFIG, tensors, device: 'cpu', learningRate: 1e-2 });
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
});
