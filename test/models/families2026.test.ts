/**
 * The 2026 families (Qwen3, SmolLM3, Gemma 2, Gemma 3 text, Phi-3) and the new attention / RoPE
 * variants (sliding windows, dynamic, yarn, longrope) against the PyTorch reference fixtures:
 * right and left padding, through the registry.
 */
import { describe, expect, it } from 'vitest';
import { createModel } from '../../src/models/registry.js';
import { maxLogitError, NEW_FIXTURES } from './fixture-harness.js';

describe('2026 families: logits equal the PyTorch reference within 1e-4', () => {
  for (const family of NEW_FIXTURES) {
    it(family, async () => {
      const errors = await maxLogitError(family, (c) => createModel(c));
      expect(Object.keys(errors).length).toBe(5);
      for (const [name, err] of Object.entries(errors)) expect(err, name).toBeLessThan(1e-4);
    });
  }
});
