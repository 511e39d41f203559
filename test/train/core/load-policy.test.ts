/** loadPolicy caps maxLength at the model's context without writing into the caller's config; LoRA has one set of defaults and one check. */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LORA_DEFAULTS, loraConfig } from '../../../src/models/lora.js';
import { silentProgress } from '../../../src/progress.js';
import { LoraOptionsSchema, TrainingOptionsSchema } from '../../../src/train/core/config.js';
import { loadPolicy } from '../../../src/train/core/runner.js';
import { parseDpoConfig } from '../../../src/train/dpo/config.js';
import { makeTinyGpt2, tempDir } from '../helpers.js';

const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadPolicy', () => {
  it("returns the effective max length (capped at the model's 128 positions) and leaves the config as given", async () => {
    const model = await makeTinyGpt2(join(dir, 'm'));
    const c = parseDpoConfig({ model, data: 'd', output: 'o', maxLength: 4096 });
    const loaded = await loadPolicy(c, silentProgress);
    expect(loaded.maxLength).toBe(128);
    expect(c.maxLength).toBe(4096);
    const short = await loadPolicy({ ...c, maxLength: 64 }, silentProgress, loaded.pretrained);
    expect(short.maxLength).toBe(64);
  });
});

describe('LoRA defaults and validation', () => {
  it("the trainer configs' defaults are the library's (PEFT's r 8, alpha 8, dropout 0)", () => {
    const fromSchema = LoraOptionsSchema.parse({});
    const fromLibrary = loraConfig('gpt2');
    expect(LORA_DEFAULTS).toEqual({ r: 8, alpha: 8, dropout: 0 });
    expect(fromSchema).toEqual(LORA_DEFAULTS);
    expect({ r: fromLibrary.r, alpha: fromLibrary.alpha, dropout: fromLibrary.dropout }).toEqual(LORA_DEFAULTS);
    expect(TrainingOptionsSchema.parse({ model: 'm', data: 'd', output: 'o', lora: {} }).lora).toEqual(LORA_DEFAULTS);
  });

  it('a config and loraConfig refuse the same values with the same message', () => {
    for (const [bad, key] of [[{ dropout: 1 }, 'dropout'], [{ r: 0 }, 'r'], [{ alpha: 0 }, 'alpha'], [{ dropout: -0.1 }, 'dropout']] as const) {
      let library = '';
      try {
        loraConfig('gpt2', bad);
      } catch (e) {
        library = (e as Error).message;
      }
      expect(library).toMatch(/^LoRA: /);
      expect(() => parseDpoConfig({ model: 'm', data: 'd', output: 'o', lora: bad })).toThrow(`config: 'lora.${key}': ${library}`);
    }
    expect(LoraOptionsSchema.parse({ dropout: 0.99 }).dropout).toBe(0.99);
  });
});
