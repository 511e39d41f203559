import { describe, expect, it } from 'vitest';
import { createModel } from '../../src/models/registry.js';
import { maxLogitError } from './fixture-harness.js';

describe('llama family logits equal the PyTorch reference within 1e-4, with right and left padding', () => {
  for (const family of ['llama', 'llama3_scaled', 'llama_linear_rope', 'qwen2', 'mistral']) {
    it(family, async () => {
      const errors = await maxLogitError(family, (c) => createModel(c));
      expect(Object.keys(errors).length).toBe(5);
      console.log(`${family} max errors`, errors);
      for (const [name, err] of Object.entries(errors)) expect(err, name).toBeLessThan(1e-4);
    });
  }
});
