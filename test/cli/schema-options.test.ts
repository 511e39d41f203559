import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TRAIN_OPTIONS, LIST_KEYS } from '../../src/cli/dpo-options.js';
import { REWARD_TRAIN_OPTIONS } from '../../src/cli/reward.js';
import { optionsFromSchema } from '../../src/cli/schema-options.js';
import { SFT_OPTIONS } from '../../src/cli/sft.js';
import { resolveTrainerConfig } from '../../src/cli/trainer-command.js';
import { option } from '../../src/train/core/config.js';
import { DPO_CONFIG, parseDpoConfig } from '../../src/train/dpo/config.js';
import { parseSftConfig, SFTConfigSchema } from '../../src/train/sft/config.js';
import { RewardConfigSchema } from '../../src/train/reward/config.js';

const spec = (specs: typeof TRAIN_OPTIONS, key: string) => specs.find((s) => s.key === key);

describe('flags from the config schema', () => {
  it('takes kind, choices and default from the zod type and help from its metadata', () => {
    const schema = z.object({
      steps: option(z.number().int().positive().default(8), 'steps'),
      lr: option(z.number().positive().default(2e-5), 'rate', 'lr'),
      mode: option(z.enum(['a', 'b']).default('b'), 'mode'),
      names: option(z.array(z.enum(['x', 'y'])).nonempty().default(['x']), 'names'),
      weights: option(z.array(z.number()).optional(), 'weights'),
      on: option(z.boolean().default(false), 'on'),
      resume: option(z.union([z.boolean(), z.string()]).default(false), 'resume'),
      nested: z.object({ r: option(z.number().int().default(4), 'rank') }).optional(),
    });
    expect(optionsFromSchema(schema)).toEqual([
      { key: 'steps', kind: 'integer', description: 'steps', defaultText: '8', min: { value: 1, inclusive: true }, group: 'loss' },
      { key: 'lr', kind: 'number', description: 'rate', arg: 'lr', defaultText: '2e-5', min: { value: 0, inclusive: false }, group: 'loss' },
      { key: 'mode', kind: 'string', description: 'mode', choices: ['a', 'b'], defaultText: 'b', group: 'loss' },
      { key: 'names', kind: 'list', description: 'names: x, y', defaultText: 'x', group: 'loss' },
      { key: 'weights', kind: 'numberList', description: 'weights', group: 'loss' },
      { key: 'on', kind: 'boolean', description: 'on', negatable: true, group: 'loss' },
      { key: 'resume', kind: 'optionalString', description: 'resume', group: 'checkpoints' },
      { key: 'nested.r', kind: 'integer', description: 'rank', defaultText: '4', group: 'loss' },
    ]);
    expect(() => optionsFromSchema(z.object({ bare: z.number() }))).toThrow(/'bare' has no help text/);
  });

  it("each trainer's flags show its own defaults and cover every key of its schema", () => {
    expect(spec(TRAIN_OPTIONS, 'beta')?.defaultText).toBe('0.1');
    expect(spec(TRAIN_OPTIONS, 'learningRate')?.defaultText).toBe('1e-6');
    expect(spec(SFT_OPTIONS, 'learningRate')?.defaultText).toBe('2e-5');
    expect(spec(REWARD_TRAIN_OPTIONS, 'learningRate')?.defaultText).toBe('1e-4');
    expect(spec(SFT_OPTIONS, 'format')?.choices).toContain('messages');
    expect(LIST_KEYS.sort()).toEqual(['lora.targetModules', 'lossType']);
    for (const [schema, specs] of [[SFTConfigSchema, SFT_OPTIONS], [RewardConfigSchema, REWARD_TRAIN_OPTIONS]] as const) {
      const flagged = new Set(specs.map((s) => s.key.split('.')[0]));
      expect(Object.keys(schema.shape).filter((k) => !flagged.has(k))).toEqual(['cacheDir']);
    }
  });
});

describe('validating a trainer config once', () => {
  it('a parsed config is not validated again by its own trainer, but is by another', () => {
    const c = parseDpoConfig({ model: 'm', data: 'd', output: 'o' });
    expect(parseDpoConfig(c)).toBe(c);
    expect(() => parseSftConfig(c)).toThrow(/beta/);
    expect(parseDpoConfig({ ...c })).not.toBe(c);
  });

  it('flags, file and the cross-key checks in one pass, naming the command', async () => {
    const opts = { model: 'm', data: 'd', output: 'o', syncRefEvery: 2 };
    await expect(resolveTrainerConfig(opts, DPO_CONFIG, TRAIN_OPTIONS, 'train')).rejects.toThrow(/^train: syncRefEvery \(TR-DPO\).*reference: live$/);
    const ok = await resolveTrainerConfig({ ...opts, reference: 'live' }, DPO_CONFIG, TRAIN_OPTIONS, 'train');
    expect(parseDpoConfig(ok)).toBe(ok);
  });
});

describe('dpo train: the newer DPO options', () => {
  const base = { model: 'm', data: 'd', output: 'o' };
  const resolve = (opts: Record<string, unknown>) => resolveTrainerConfig({ ...base, ...opts }, DPO_CONFIG, TRAIN_OPTIONS, 'train');

  it('accepts aot_pair as an alias of aot_unpaired, from flags and a config file', async () => {
    expect((await resolve({ lossType: ['aot_pair', 'sft'] })).lossType).toEqual(['aot_unpaired', 'sft']);
    expect(spec(TRAIN_OPTIONS, 'lossType')?.description).toMatch(/\(aot_pair = aot_unpaired\): .*discopop/);
    expect(spec(TRAIN_OPTIONS, 'labelSmoothing')?.description).toMatch(/used by sigmoid, robust, exo_pair, aot, aot_unpaired .*the other loss types ignore it/);
    expect(spec(TRAIN_OPTIONS, 'fDivergence')?.choices).toEqual(['reverse_kl', 'forward_kl', 'js_divergence', 'alpha_divergence']);
  });

  it('an option of another loss type or divergence is one clear error', async () => {
    await expect(resolve({ discopopTau: 0.1 })).rejects.toThrow(/^train: discopopTau is the discopop loss type's; add discopop to lossType$/);
    await expect(resolve({ fAlphaDivergenceCoef: 0.5 })).rejects.toThrow(/^train: fAlphaDivergenceCoef is alpha_divergence's/);
    await expect(resolve({ ldAlpha: 1.5 })).rejects.toThrow(/^--ld-alpha: /);
    const ok = await resolve({ lossType: ['discopop'], discopopTau: 0.1, fDivergence: 'alpha_divergence', fAlphaDivergenceCoef: 0.5, ldAlpha: 0.5, useWeighting: true, rpoAlpha: 0.2 });
    expect(ok).toMatchObject({ discopopTau: 0.1, fAlphaDivergenceCoef: 0.5, ldAlpha: 0.5, useWeighting: true, rpoAlpha: 0.2 });
  });
});
