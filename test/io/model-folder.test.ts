/**
 * Saving into a model folder and telling what it holds: per-file atomic saves inside the folder
 * (it is never replaced, so a mount point works), one rule for full model vs LoRA adapter that
 * every command uses, and saves that remove the files of the other kind.
 */
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeBytesAtomic } from '../../src/io/atomic.js';
import { saveCheckpoint } from '../../src/io/hf-folder.js';
import { modelFolderKind } from '../../src/io/model-folder-kind.js';
import { loadModelOrAdapter } from '../../src/models/load-model.js';
import { initLora, loraConfig } from '../../src/models/lora.js';
import { saveLoraAdapter } from '../../src/models/lora-files.js';
import { loadPretrained, savePretrained, type Pretrained } from '../../src/models/pretrained.js';
import { main } from '../../src/cli/main.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';

let base: string;
let tiny: Pretrained;
beforeAll(async () => {
  base = await makeTinyGpt2(join(tempDir('dpo-ts-folder-'), 'base'));
  tiny = await loadPretrained(base);
});

const config = { model_type: 'gpt2', n_embd: 4, n_layer: 1 };
const tensors = { w: { data: new Float32Array([1, 2, 3, 4]), shape: [4] } };

describe('saving inside the output folder', () => {
  it('writes file by file into the existing folder: the folder is never replaced (a mount point stays usable)', async () => {
    const root = tempDir('dpo-ts-mount-');
    const dir = join(root, 'volume');
    await mkdir(dir);
    await writeFile(join(dir, 'notes.txt'), 'mine');
    const before = await stat(dir);
    // One save only: a second one could reuse the inode the first one freed.
    await saveCheckpoint(dir, { config, tensors });
    const after = await stat(dir);
    expect(after.ino).toBe(before.ino);
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors', 'notes.txt']);
    expect(await readdir(root)).toEqual(['volume']);
  });

  it('names the file in errors Node reports without a path (EISDIR)', async () => {
    const dir = tempDir('dpo-ts-errno-');
    await mkdir(join(dir, 'config.json'));
    await expect(writeBytesAtomic(join(dir, 'config.json'), '{}')).rejects.toThrow(/config\.json: cannot write \(EISDIR: a folder is in the way\)/);
    await expect(saveCheckpoint(dir, { config, tensors })).rejects.toThrow(/config\.json: cannot write \(EISDIR/);
    expect((await readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('what a model folder holds', () => {
  it('a LoRA save removes a full model left in the folder, a full save removes an adapter, and both kinds are refused', async () => {
    const dir = join(tempDir('dpo-ts-kind-'), 'out');
    await savePretrained(dir, { model: tiny.model, weights: tiny.weights, tokenizerDir: base });
    expect(await modelFolderKind(dir)).toBe('full');
    const lora = loraConfig('gpt2', { r: 2, alpha: 4 });
    await saveLoraAdapter(dir, { model: tiny.model, adapters: initLora(tiny.model, lora, 1), config: lora, baseModelNameOrPath: base });
    expect(await readdir(dir)).not.toContain('model.safetensors');
    expect(await modelFolderKind(dir)).toBe('adapter');
    await savePretrained(dir, { model: tiny.model, weights: tiny.weights, tokenizerDir: base });
    expect(await readdir(dir)).not.toContain('adapter_config.json');
    expect(await readdir(dir)).not.toContain('adapter_model.safetensors');
    expect(await modelFolderKind(dir)).toBe('full');

    // A folder written by something else with both: every command refuses it the same way.
    await writeFile(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 2, base_model_name_or_path: base }));
    await expect(modelFolderKind(dir)).rejects.toThrow(/holds both a full model \(model\.safetensors\) and a LoRA adapter/);
    await expect(loadModelOrAdapter(dir)).rejects.toThrow(/holds both/);
    const err: string[] = [];
    const io = { stdout: { write: () => true }, stderr: { write: (s: string) => err.push(s) } };
    const prompts = join(dir, '..', 'prompts.jsonl');
    await writeFile(prompts, '{"prompt":"hi"}\n');
    expect(await main(['generate', '--model', dir, '--prompts', prompts, '--max-new-tokens', '2', '--output', join(dir, '..', 'gen.jsonl')], io)).toBe(1);
    expect(err.join('')).toMatch(/holds both a full model/);
  });

  it('--model naming a file says it is a file, not that the folder does not exist', async () => {
    await expect(loadPretrained(join(base, 'model.safetensors'))).rejects.toThrow(/model\.safetensors: is a file, not a model folder/);
    await expect(loadModelOrAdapter(join(base, 'config.json'))).rejects.toThrow(/is a file, not a model folder/);
  });
});
