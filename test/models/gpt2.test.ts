import { expect, it } from 'vitest';
import { GPT2 } from '../../src/models/gpt2.js';
import { maxLogitError } from './fixture-harness.js';

it('gpt2 logits equal the PyTorch reference within 1e-4, with right and left padding', async () => {
  const errors = await maxLogitError('gpt2', (c) => new GPT2(c));
  expect(Object.keys(errors).length).toBe(5);
  for (const [name, err] of Object.entries(errors)) expect(err, name).toBeLessThan(1e-4);
});
