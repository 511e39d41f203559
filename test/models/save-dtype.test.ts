/** A bf16 checkpoint loads, trains in float32 and saves back as bf16 (or as asked), sharded past a size. */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveSaveDtype } from '../../src/io/save-dtype.js';
import { SafetensorsFile, readSafetensors, readSafetensorsHeader } from '../../src/io/safetensors.js';
import { writeSafetensors } from '../../src/io/safetensors-write.js';
import { loadPretrained, savePretrained } from '../../src/models/pretrained.js';
import { buildPolicy, savePolicy } from '../../src/train/core/policy.js';
import { FIXTURES } from './fixture-harness.js';

const GPT2 = join(FIXTURES, 'gpt2');

let root: string;
let bf16Dir: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dpo-save-dtype-'));
  bf16Dir = join(root, 'bf16');
  await mkdir(bf16Dir);
  const config = JSON.parse(await readFile(join(GPT2, 'config.json'), 'utf-8'));
  await writeFile(join(bf16Dir, 'config.json'), JSON.stringify({ ...config, torch_dtype: 'bfloat16' }));
  await writeSafetensors(join(bf16Dir, 'model.safetensors'), await readSafetensors(join(GPT2, 'model.safetensors')), { dtype: 'BF16' });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Every tensor of a .safetensors file as its stored dtype and raw bits. */
async function rawTensors(path: string): Promise<Map<string, { dtype: string; bits: number[] }>> {
  const file = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, { dtype: string; bits: number[] }>();
    for (const name of file.names()) {
      const raw = await file.readRaw(name);
      out.set(name, { dtype: raw.dtype, bits: Array.from(raw.data as Uint16Array | Float32Array) });
    }
    return out;
  } finally {
    await file.close();
  }
}

describe('save dtype', () => {
  it('a bf16 checkpoint saves back as bf16 by default, bit for bit, and as float32 or float16 when asked', async () => {
    const m = await loadPretrained(bf16Dir, { tokenizer: false });
    expect(m.dtype).toBe('BF16');
    expect((await loadPretrained(GPT2, { tokenizer: false })).dtype).toBe('F32');

    const auto = join(root, 'auto');
    await savePretrained(auto, { model: m.model, weights: m.weights, dtype: resolveSaveDtype('auto', m.dtype) });
    expect(JSON.parse(await readFile(join(auto, 'config.json'), 'utf-8')).torch_dtype).toBe('bfloat16');
    const source = await rawTensors(join(bf16Dir, 'model.safetensors'));
    const saved = await rawTensors(join(auto, 'model.safetensors'));
    // The saved keys are the model's parameters (the source also holds GPT-2's attention buffers).
    expect([...saved.keys()].sort()).toEqual(m.model.parameters().map((p) => p.name).sort());
    for (const [name, t] of saved) expect(t, name).toEqual(source.get(name));

    for (const [choice, dtype, torch] of [
      ['float32', 'F32', 'float32'],
      ['float16', 'F16', 'float16'],
    ] as const) {
      const out = join(root, choice);
      await savePretrained(out, { model: m.model, weights: m.weights, dtype: resolveSaveDtype(choice, m.dtype) });
      expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf-8')).torch_dtype).toBe(torch);
      const back = await loadPretrained(out, { tokenizer: false });
      expect(back.dtype).toBe(dtype);
      // bf16 values have 8 significant bits: float32 holds them exactly; float16 too in this range.
      for (const [name, data] of m.weights) expect(back.weights.get(name), name).toEqual(data);
    }
  });

  it('shards past max shard size, loads back, and a later unsharded save replaces the shards', async () => {
    const m = await loadPretrained(bf16Dir, { tokenizer: false });
    const out = join(root, 'sharded');
    await savePretrained(out, { model: m.model, weights: m.weights, dtype: 'BF16', maxShardSize: 20_000 });
    const files = (await readdir(out)).sort();
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(2);
    expect(files).toContain('model.safetensors.index.json');
    expect(files).not.toContain('model.safetensors');
    const index = JSON.parse(await readFile(join(out, 'model.safetensors.index.json'), 'utf-8'));
    expect(Object.keys(index.weight_map).length).toBe(m.model.parameters().length);
    const back = await loadPretrained(out, { tokenizer: false });
    expect(back.dtype).toBe('BF16');
    for (const [name, data] of m.weights) expect(back.weights.get(name), name).toEqual(data);

    await savePretrained(out, { model: m.model, weights: m.weights, dtype: 'BF16' });
    expect((await readdir(out)).filter((f) => f.includes('safetensors'))).toEqual(['model.safetensors']);
  });

  it('trainers save through savePolicy: full models in the loaded dtype or --save-dtype, LoRA adapters in float32 unless asked', async () => {
    const m = await loadPretrained(bf16Dir, { tokenizer: false });
    const header = async (path: string) => (await readSafetensorsHeader(path)).tensors.map((t) => t.dtype);
    const full = buildPolicy(m.model, m.weights, undefined, 1);
    const fullParams = new Map(full.specs.map((s) => [s.name, s.data]));
    await savePolicy(join(root, 'policy-auto'), bf16Dir, m, full, fullParams);
    expect(new Set(await header(join(root, 'policy-auto', 'model.safetensors')))).toEqual(new Set(['BF16']));
    await savePolicy(join(root, 'policy-f32'), bf16Dir, m, full, fullParams, { saveDtype: 'float32', maxShardSize: 50_000 });
    const shards = (await readdir(join(root, 'policy-f32'))).filter((f) => f.startsWith('model-'));
    expect(shards.length).toBeGreaterThan(1);
    for (const f of shards) expect(new Set(await header(join(root, 'policy-f32', f)))).toEqual(new Set(['F32']));

    const lora = buildPolicy(m.model, m.weights, { r: 2, alpha: 4, dropout: 0 }, 1);
    const loraParams = new Map(lora.specs.map((s) => [s.name, s.data]));
    await savePolicy(join(root, 'lora-auto'), bf16Dir, m, lora, loraParams);
    expect(new Set(await header(join(root, 'lora-auto', 'adapter_model.safetensors')))).toEqual(new Set(['F32']));
    await savePolicy(join(root, 'lora-bf16'), bf16Dir, m, lora, loraParams, { saveDtype: 'bfloat16' });
    expect(new Set(await header(join(root, 'lora-bf16', 'adapter_model.safetensors')))).toEqual(new Set(['BF16']));
  });
});
