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

/** config.json as transformers 5 writes RoPE settings: everything under rope_parameters. */
function toRopeParameters(c: Record<string, unknown>): Record<string, unknown> {
  const { rope_theta, rope_scaling, partial_rotary_factor, rope_local_base_freq, ...rest } = c;
  const { type, ...scaling } = (rope_scaling as Record<string, unknown> | null) ?? {};
  const flat = { rope_type: type ?? 'default', ...scaling, rope_theta, ...(partial_rotary_factor != null ? { partial_rotary_factor } : {}) };
  if (c.model_type !== 'gemma3_text') return { ...rest, rope_parameters: flat };
  return { ...rest, rope_parameters: { full_attention: flat, sliding_attention: { rope_type: 'default', rope_theta: rope_local_base_freq } } };
}

describe("transformers 5's rope_parameters configs give the same logits", () => {
  for (const family of ['qwen3', 'gemma3_text', 'phi3']) {
    it(family, async () => {
      const errors = await maxLogitError(family, (c) => {
        const v5 = toRopeParameters(c);
        expect(v5.rope_theta).toBeUndefined();
        return createModel(v5);
      });
      for (const [name, err] of Object.entries(errors)) expect(err, name).toBeLessThan(1e-4);
    });
  }
});
