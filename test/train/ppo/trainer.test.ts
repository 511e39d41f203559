import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { loadPretrained } from '../../../src/models/pretrained.js';
import { silentProgress, type ProgressReporter } from '../../../src/progress.js';
import { parsePpoConfig } from '../../../src/train/ppo/config.js';
import { PPOTrainer } from '../../../src/train/ppo/trainer.js';
import { VALUE_HEAD_BIAS, VALUE_HEAD_FILE, VALUE_HEAD_WEIGHT } from '../../../src/train/ppo/value-head.js';
import { loadModelOrAdapter } from '../../../src/models/load-model.js';
import { makeTinyGpt2, tempDir } from '../helpers.js';

function readMetrics(file: string): Record<string, number>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

/** Calls `onUpdate(done)` whenever the trainer reports progress of its 'ppo' bar. */
function watching(onUpdate: (done: number) => void): ProgressReporter {
  let label = '';
  return { ...silentProgress, start: (l) => void (label = l), update: (d) => void (label === 'ppo' && onUpdate(d)) };
}

const PROMPTS = ['The movie', 'This book', 'Our trip', 'The song', 'That game', 'My day'];

describe('PPOTrainer', () => {
  it('has TRL PPOConfig defaults and needs exactly one reward', () => {
    const c = parsePpoConfig({ model: 'm', output: 'o', prompts: 'p.jsonl', scorer: 'sentiment' });
    expect(c).toMatchObject({ learningRate: 1.41e-5, initKlCoef: 0.2, gamma: 1, lam: 0.95, cliprange: 0.2, cliprangeValue: 0.2, vfCoef: 0.1, ppoEpochs: 4, whitenRewards: false });
    expect(c.targetKl).toBeUndefined();
    expect(() => parsePpoConfig({ model: 'm', output: 'o', prompts: 'p.jsonl' })).toThrow(/exactly one of rewardModel .* and scorer/);
    expect(() => parsePpoConfig({ model: 'm', output: 'o', prompts: 'p', scorer: 'sentiment', rewardModel: 'r' })).toThrow(/exactly one/);
    expect(() => parsePpoConfig({ model: 'm', output: 'o', prompts: 'p', scorer: 'sentiment', beta: 0.1 })).toThrow(/beta/);
  });

  it('writes TRL metric names, saves the value head with the model, and resumes to the same weights', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    const base = { model, prompts: PROMPTS, scorer: 'length', batchSize: 4, miniBatchSize: 2, ppoEpochs: 2, maxNewTokens: 6, maxSteps: 4, learningRate: 1e-3, targetKl: 1, klHorizon: 40, threads: 1 };
    const full = await new PPOTrainer({ ...base, output: join(dir, 'full') }, { progress: silentProgress }).train();
    expect(full.steps).toBe(4);
    const metrics = readMetrics(join(dir, 'full', 'metrics.jsonl'));
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    for (const key of ['objective/kl', 'objective/scores', 'objective/rlhf_reward', 'objective/non_score_reward', 'objective/entropy', 'objective/kl_coef',
      'policy/approxkl_avg', 'policy/clipfrac_avg', 'policy/entropy_avg', 'loss/policy_avg', 'loss/value_avg', 'val/clipfrac_avg', 'val/ratio', 'val/ratio_var', 'val/num_eos_tokens', 'learning_rate', 'episode']) {
      expect(Number.isFinite(metrics[3][key]), key).toBe(true);
    }
    expect(metrics[0]['objective/kl']).toBe(0); // the first rollout's policy is the reference
    expect(metrics[0]['objective/kl_coef']).toBe(0.2);
    expect(metrics[3]['objective/kl_coef']).not.toBe(0.2); // the adaptive controller moved beta
    expect(metrics[3].episode).toBe(16);

    // The value head lives in model.safetensors under TRL's names; loading the folder as a causal LM ignores it.
    const tensors = await readSafetensors(join(dir, 'full', 'model.safetensors'));
    expect(tensors.get(VALUE_HEAD_WEIGHT)?.shape).toEqual([1, 16]);
    expect(tensors.get(VALUE_HEAD_BIAS)?.shape).toEqual([1]);
    const reloaded = await loadPretrained(join(dir, 'full'));
    expect(reloaded.unexpectedKeys.sort()).toEqual([VALUE_HEAD_BIAS, VALUE_HEAD_WEIGHT]);

    // Stopped after 2 updates (checkpoint), resumed to 4: the same weights and value head as 4 in a row.
    const out = join(dir, 'resumed');
    const trainer: PPOTrainer = new PPOTrainer({ ...base, output: out }, { progress: watching((d) => d === 2 && trainer.requestStop()) });
    const first = await trainer.train();
    expect(first).toMatchObject({ steps: 2, interrupted: true });
    expect(existsSync(join(out, 'checkpoint-2'))).toBe(true);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    const second = await new PPOTrainer({ ...base, output: out, resume: true, saveSteps: 3 }, { progress: silentProgress }).train();
    expect(second).toMatchObject({ steps: 4, interrupted: false });
    expect(existsSync(join(out, 'checkpoint-4'))).toBe(true); // the last update is saved: the run can be extended
    const a = await readSafetensors(join(dir, 'full', 'model.safetensors'));
    const b = await readSafetensors(join(out, 'model.safetensors'));
    for (const [name, t] of a) expect(Array.from(b.get(name)?.data ?? []), name).toEqual(Array.from(t.data));
    expect(readMetrics(join(out, 'metrics.jsonl')).map((m) => m['objective/kl_coef'])).toEqual(metrics.map((m) => m['objective/kl_coef']));

    // Extended by one update from its last checkpoint.
    const third = await new PPOTrainer({ ...base, output: out, resume: true, maxSteps: 5 }, { progress: silentProgress }).train();
    expect(third).toMatchObject({ steps: 5, interrupted: false });
    expect(readMetrics(join(out, 'metrics.jsonl')).map((m) => m.step)).toEqual([1, 2, 3, 4, 5]);

    // A changed PPO option is refused on resume.
    await expect(new PPOTrainer({ ...base, output: out, resume: join(out, 'checkpoint-2'), cliprange: 0.3 }, { progress: silentProgress }).train()).rejects.toThrow(/was made with different training options/);
    // So is another thread count (it changes the rounding of the logits, so the samples): never silently divergent.
    if (availableParallelism() > 1) {
      await expect(new PPOTrainer({ ...base, output: out, resume: join(out, 'checkpoint-2'), threads: 2 }, { progress: silentProgress }).train()).rejects.toThrow(/threads/);
    }
  }, 120_000);

  it('trains LoRA adapters (saved as a PEFT adapter, the value head beside it) with gradient accumulation', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    const out = join(dir, 'lora');
    const config = { model, prompts: PROMPTS, scorer: 'length', batchSize: 4, ppoEpochs: 1, maxNewTokens: 4, maxSteps: 2, learningRate: 5e-2, threads: 1, output: out, lora: { r: 2, alpha: 4 }, gradientAccumulationSteps: 2 };
    expect(() => parsePpoConfig({ ...config, miniBatchSize: 2, gradientAccumulationSteps: 3 })).toThrow(/gradientAccumulationSteps \(3\) is larger than the 2 episodes of a minibatch/);
    const r = await new PPOTrainer(config, { progress: silentProgress }).train();
    expect(r.steps).toBe(2);
    expect(readMetrics(join(out, 'metrics.jsonl'))[0]['objective/kl']).toBe(0); // LoRA's B starts at 0: the policy is the reference
    expect(existsSync(join(out, 'adapter_config.json'))).toBe(true);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    const adapters = await readSafetensors(join(out, 'adapter_model.safetensors'));
    const bs = [...adapters].filter(([k]) => k.includes('lora_B'));
    expect(bs.length).toBeGreaterThan(0);
    expect(bs.some(([, t]) => t.data.some((v) => v !== 0))).toBe(true); // the adapters were trained
    const head = await readSafetensors(join(out, VALUE_HEAD_FILE));
    expect(head.get(VALUE_HEAD_WEIGHT)?.shape).toEqual([1, 16]);
    expect(head.get(VALUE_HEAD_WEIGHT)?.data.some((v) => v !== 0)).toBe(true);
    // The adapter folder loads as the base model with the adapters merged: no longer the base.
    const merged = await loadModelOrAdapter(out);
    const base = await loadPretrained(model);
    const name = [...base.weights.keys()].find((k) => k.endsWith('attn.c_attn.weight')) as string;
    expect(Array.from(merged.weights.get(name) as Float32Array)).not.toEqual(Array.from(base.weights.get(name) as Float32Array));
  }, 120_000);

  it('reads prompts from a file and rejects an unknown scorer before loading anything', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'p.jsonl'), '{"prompt": "a"}\n{"nope": 1}\n');
    expect(() => new PPOTrainer({ model: 'x', output: join(dir, 'o'), prompts: join(dir, 'p.jsonl'), scorer: 'no-such' })).toThrow(/unknown scorer 'no-such'/);
    const model = await makeTinyGpt2(join(dir, 'model'));
    await expect(new PPOTrainer({ model, output: join(dir, 'o'), prompts: join(dir, 'p.jsonl'), scorer: 'length' }, { progress: silentProgress }).train()).rejects.toThrow(/p\.jsonl:2/);
  });
});
