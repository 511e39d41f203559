import { expect, it } from 'vitest';
import { GPTJ } from '../../src/models/gptj.js';
import { maxLogitError } from './fixture-harness.js';

it('gptj logits equal the PyTorch reference within 1e-4, with right and left padding', async () => {
  const errors = await maxLogitError('gptj', (c) => new GPTJ(c));
  expect(Object.keys(errors).length).toBe(5);
  console.log('gptj max errors', errors);
  for (const [name, err] of Object.entries(errors)) expect(err, name).toBeLessThan(1e-4);
});
