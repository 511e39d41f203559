/**
 * What the library takes: rows already in memory wherever a config takes a data path (`data`,
 * `evalData`; the same formats and checks as a file, bad rows named `<rows>:<index>`); a loaded
 * `{ policy }`, trained in place as documented; LoRA adapters that name their base folder by an
 * absolute path, and say where a base path that fails came from.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { loadModelOrAdapter } from '../../../src/models/load-model.js';
import { describe, expect, it } from 'vitest';
import { loadPretrained } from '../../../src/models/pretrained.js';
import { DPOTrainer } from '../../../src/train/dpo/trainer.js';
import { SFTTrainer } from '../../../src/train/sft/trainer.js';
import { silentProgress } from '../../../src/progress.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../helpers.js';

function rowsOf(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('library inputs: rows in memory, a loaded policy, LoRA base paths', () => {
  it('DPOTrainer trains on an array of rows as it does on the file holding them', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 16, 1);
    const common = { model, batchSize: 4, maxSteps: 3, learningRate: 1e-3, cacheDir: join(dir, 'cache'), threads: 1 };
    const fromFile = await new DPOTrainer({ ...common, data: join(dir, 'train.jsonl'), output: join(dir, 'file') }, { progress: silentProgress }).train();
    const rows = rowsOf(join(dir, 'train.jsonl'));
    const fromRows = await new DPOTrainer({ ...common, data: rows, evalData: rows.slice(0, 4), output: join(dir, 'rows') }, { progress: silentProgress }).train();
    expect(fromRows.steps).toBe(3);
    expect(fromRows.metrics.loss).toBeCloseTo(fromFile.metrics.loss, 6);
    expect(fromRows.evalMetrics?.eval_loss).toBeGreaterThan(0);
  }, 240_000);

  it('bad rows in memory are named <rows>:<index>; SFT takes rows too', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    const bad = [{ prompt: 'a', chosen: ' b', rejected: ' c' }, { prompt: 'a', chosen: ' b' }];
    await expect(new DPOTrainer({ model, data: bad, output: join(dir, 'bad'), maxSteps: 1 }, { progress: silentProgress }).train()).rejects.toThrow(/<rows>:1/);
    const sft = [{ prompt: 'The movie was', completion: ' great.' }, { prompt: 'The food was', completion: ' fine.' }];
    const r = await new SFTTrainer({ model, data: sft, output: join(dir, 'sft'), maxSteps: 2, batchSize: 2, threads: 1 }, { progress: silentProgress }).train();
    expect(r.steps).toBe(2);
  }, 240_000);

  it('{ policy } is trained in place (as documented); under LoRA its base weights are untouched', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 8, 1);
    const common = { model, data: join(dir, 'train.jsonl'), batchSize: 4, maxSteps: 2, learningRate: 1e-2, cacheDir: join(dir, 'cache'), threads: 1 };
    const policy = await loadPretrained(model);
    const before = new Map([...policy.weights].map(([k, v]) => [k, Float32Array.from(v)]));
    await new DPOTrainer({ ...common, output: join(dir, 'full') }, { policy, progress: silentProgress }).train();
    const saved = await loadPretrained(join(dir, 'full'));
    const changed = [...policy.weights].filter(([k, v]) => v.some((x, i) => x !== before.get(k)![i]));
    expect(changed.length).toBeGreaterThan(0);
    for (const [k, v] of policy.weights) expect(Array.from(v), k).toEqual(Array.from(saved.weights.get(k)!));

    const base = await loadPretrained(model);
    const original = new Map([...base.weights].map(([k, v]) => [k, Float32Array.from(v)]));
    await new DPOTrainer({ ...common, output: join(dir, 'lora'), lora: { r: 2 } }, { policy: base, progress: silentProgress }).train();
    for (const [k, v] of base.weights) expect(Array.from(v), k).toEqual(Array.from(original.get(k)!));
  }, 240_000);

  it('a LoRA adapter records its base folder as an absolute path, and names where a bad one came from', async () => {
    const dir = tempDir();
    const model = await makeTinyGpt2(join(dir, 'model'));
    writeSentimentPairs(join(dir, 'train.jsonl'), 8, 1);
    // The base model given relative to the current directory, as a user types it.
    const rel = relative(process.cwd(), model);
    await new DPOTrainer(
      { model: rel, data: join(dir, 'train.jsonl'), output: join(dir, 'lora'), lora: { r: 2 }, batchSize: 4, maxSteps: 1, cacheDir: join(dir, 'cache'), threads: 1 },
      { progress: silentProgress },
    ).train();
    const configFile = join(dir, 'lora', 'adapter_config.json');
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    expect(config.base_model_name_or_path).toBe(resolve(model));
    expect((await loadModelOrAdapter(join(dir, 'lora'))).model.modelType).toBe('gpt2');

    writeFileSync(configFile, JSON.stringify({ ...config, base_model_name_or_path: './no-such-base' }));
    const err = await loadModelOrAdapter(join(dir, 'lora')).catch((e: Error) => e);
    expect(String(err)).toContain(`cannot load the adapters' base model './no-such-base' (base_model_name_or_path in ${configFile}`);
    expect(String(err)).toContain(`a relative path is read from the current directory (${process.cwd()})`);
  }, 240_000);
});
