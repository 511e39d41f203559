/** The public entry point exports what the README promises. */
import { expect, it } from 'vitest';
import * as api from '../../src/index.js';
import { DPOConfig, DPOTrainer, engine, evaluateDpo, loadPretrained, parseDpoConfig, savePretrained } from '../../src/index.js';

it('exports the trainer, config (type and schema), eval, models, LoRA, data, tokenizer and the engine namespace', () => {
  const c: DPOConfig = parseDpoConfig({ model: 'm', data: 'd', output: 'o' });
  expect(c).toMatchObject({ beta: 0.1, lossType: ['sigmoid'], learningRate: 1e-6, optimizer: 'adamw', maxGradNorm: 1 });
  expect(DPOConfig.parse({ model: 'm', data: 'd', output: 'o' }).beta).toBe(0.1);
  for (const f of [DPOTrainer, evaluateDpo, loadPretrained, savePretrained]) expect(typeof f).toBe('function');
  for (const name of ['preferenceLoss', 'plackettLuceLoss', 'preparePreferenceData', 'PreferenceBatcher', 'loraConfig', 'applyLora', 'saveLoraAdapter', 'loadLoraAdapter', 'loadTokenizer', 'main', 'DpoError', 'MetricsAccumulator']) {
    expect(api, name).toHaveProperty(name);
  }
  expect(api.LOSS_TYPES).toContain('ipo');
  expect(typeof engine.Graph).toBe('function');
  expect(typeof engine.TrainStep).toBe('function');
  expect(typeof engine.op.matmul).toBe('function');
});
