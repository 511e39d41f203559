import { describe, expect, it } from 'vitest';
import { GPTNeoX } from '../../src/models/gpt-neox.js';
import { maxLogitError } from './fixture-harness.js';

describe('gpt_neox logits equal the PyTorch reference within 1e-4, with right and left padding', () => {
  for (const family of ['gpt_neox', 'gpt_neox_sequential']) {
    it(family, async () => {
      const errors = await maxLogitError(family, (c) => new GPTNeoX(c));
      expect(Object.keys(errors).length).toBe(5);
      console.log(`${family} max errors`, errors);
      for (const [name, err] of Object.entries(errors)) expect(err, name).toBeLessThan(1e-4);
    });
  }
});
