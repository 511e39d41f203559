/**
 * BrowserDpo (the tab's trainer) run in Node, where the runtime is onnxruntime-node: the DPO
 * step moves the rewards apart, and the model files it hands out (config.json and a float32
 * model.safetensors written in memory) load as a model folder with the trained weights exactly.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BrowserDpo } from '../../src/browser/dpo.js';
import { readSafetensorsBytes } from '../../src/browser/safetensors.js';
import { loadPretrained } from '../../src/models/pretrained.js';

const MODEL = join(import.meta.dirname, '..', '..', 'assets', 'brown-gpt2');

describe('BrowserDpo', () => {
  it('trains on labelled pairs and writes a model folder that loads with the trained weights', async () => {
    const config = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')) as Record<string, unknown>;
    const bytes = readFileSync(join(MODEL, 'model.safetensors'));
    const tensors = readSafetensorsBytes(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const dpo = await BrowserDpo.create({ config, tensors, device: 'cpu', learningRate: 1e-4 });
    expect(dpo.device).toBe('cpu');
    const prompt = [464, 3807, 373]; // "The movie was"
    const [a, b] = await dpo.generate([prompt, prompt], { which: 'reference', maxNewTokens: 6, doSample: true, seed: 3 });
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
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) writeFileSync(join(dir, f), readFileSync(join(MODEL, f)));
      const loaded = await loadPretrained(dir);
      const trained = await dpo.weights();
      for (const [name, w] of trained) expect(loaded.weights.get(name)).toEqual(w);
      expect([...trained.keys()].some((k) => tensors.get(k)?.data.some((v, i) => v !== trained.get(k)?.[i]))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await dpo.release();
    }
  }, 120_000);
});
