/** A parameter transform (LoRA adapters as extra weight inputs) decodes like the merged weights. */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/data/rng.js';
import { Generator } from '../../src/generate/generator.js';
import { applyLora, initLora, loraConfig, loraParameters, mergeLora } from '../../src/models/lora.js';
import { loadFixture, makePrompt } from './helpers.js';

describe('Generator with a parameter transform', () => {
  for (const folder of ['gpt2', 'llama']) {
    it(`${folder}: LoRA adapters through the transform == merged weights`, async () => {
      const { model, weights } = await loadFixture(folder);
      const config = loraConfig(model.modelType, { r: 4, alpha: 8, targetModules: 'all-linear' });
      const adapters = initLora(model, config, 1);
      const rng = new Rng(2);
      for (const [name, w] of adapters) if (name.includes('lora_B')) for (let i = 0; i < w.length; i++) w[i] = (rng.nextFloat() - 0.5) * 0.5;
      const merged = mergeLora(model, new Map(weights), adapters, config);
      const prompts = [6, 3].map((n, i) => makePrompt(n, model.config.vocabSize, i));
      const o = { maxNewTokens: 8, doSample: true, temperature: 1, topK: 0, topP: 1, seed: 5, numSamples: 2 };

      const plain = await Generator.create(model, { runtime: { threads: 1 } });
      const want = await plain.generateIds(merged, prompts, o);
      const base = await plain.generateIds(weights, prompts, o);
      await plain.release();

      const adapted = await Generator.create(model, {
        runtime: { threads: 1 },
        inputs: [...model.parameters(), ...loraParameters(model, config)],
        transform: (_g, p) => applyLora(model, p, p, config),
      });
      const got = await adapted.generateIds(new Map([...weights, ...adapters]), prompts, o);
      await adapted.release();
      const ids = (r: typeof got): number[][][] => r.sequences.map((s) => s.map((x) => x.tokenIds));
      expect(ids(got)).toEqual(ids(want));
      expect(ids(got)).not.toEqual(ids(base));
    });
  }
});
