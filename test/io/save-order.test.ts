/** A model save writes config and tokenizer before the weights: a save that fails on the weights (a full disk) leaves the tokenizer. */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPretrained, savePretrained } from '../../src/models/pretrained.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';

describe('save order', () => {
  it('a failed weights write leaves config.json and the tokenizer files written', async () => {
    const dir = tempDir('dpo-ts-save-order-');
    const src = await makeTinyGpt2(join(dir, 'src'), { seed: 2 });
    const m = await loadPretrained(src);
    const out = join(dir, 'out');
    mkdirSync(join(out, 'model.safetensors'), { recursive: true }); // in the way: the weights write fails
    await expect(savePretrained(out, { model: m.model, weights: m.weights, tokenizerDir: src })).rejects.toThrow(/model\.safetensors/);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) expect(existsSync(join(out, f)), f).toBe(true);
  });
});
