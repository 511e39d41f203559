import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, openCheckpoint, saveCheckpoint } from '../../src/io/hf-folder.js';
import { readSafetensorsHeader } from '../../src/io/safetensors.js';
import { writeSafetensors } from '../../src/io/safetensors-write.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'dpo-hf-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const config = { model_type: 'gpt2', n_embd: 4, n_layer: 1 };
const tensors = {
  'transformer.wte.weight': { data: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]), shape: [2, 4] },
  'transformer.ln_f.bias': { data: new Float32Array([0.5, -0.5, 0, 1]), shape: [4] },
};

describe('saveCheckpoint / loadCheckpoint', () => {
  it('round-trips config, tensors, generation config and tokenizer files', async () => {
    const tok = join(root, 'tok');
    await mkdir(tok);
    await writeFile(join(tok, 'tokenizer.json'), '{"model":{}}');
    await writeFile(join(tok, 'tokenizer_config.json'), '{"eos_token":"</s>"}');
    await writeFile(join(tok, 'generation_config.json'), '{"max_length":20}');
    const dir = join(root, 'out', 'ckpt');
    await saveCheckpoint(dir, {
      config,
      tensors,
      tokenizerDir: tok,
      extraFiles: { 'README.md': '# hi\n', 'logs/metrics.jsonl': new Uint8Array([123, 125, 10]) },
    });
    expect((await readdir(dir)).sort()).toEqual(
      ['README.md', 'config.json', 'generation_config.json', 'logs', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].sort(),
    );
    expect(await readdir(join(root, 'out'))).toEqual(['ckpt']);
    const ck = await loadCheckpoint(dir);
    expect(ck.config).toEqual(config);
    expect(ck.generationConfig).toEqual({ max_length: 20 });
    expect([...ck.tensors.keys()]).toEqual(['transformer.ln_f.bias', 'transformer.wte.weight']);
    expect(Array.from(ck.tensors.get('transformer.wte.weight')!.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(ck.tensors.get('transformer.wte.weight')!.shape).toEqual([2, 4]);
    expect((await readSafetensorsHeader(join(dir, 'model.safetensors'))).metadata).toEqual({ format: 'pt' });
    expect(await readFile(join(dir, 'config.json'), 'utf-8')).toMatch(/^\{\n {2}"model_type": "gpt2"/);
  });

  it('stores BF16 when asked and overwrites an existing checkpoint, keeping unrelated files', async () => {
    const dir = join(root, 'over');
    await mkdir(join(dir, 'runs'), { recursive: true });
    await writeFile(join(dir, 'runs', 'log.txt'), 'keep me');
    await writeFile(join(dir, 'model.safetensors.index.json'), '{"weight_map":{}}');
    await writeFile(join(dir, 'model-00001-of-00002.safetensors'), 'stale');
    await saveCheckpoint(dir, { config, tensors, dtype: 'BF16', generationConfig: { eos_token_id: 2 } });
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'runs']);
    expect(await readFile(join(dir, 'runs', 'log.txt'), 'utf-8')).toBe('keep me');
    const header = await readSafetensorsHeader(join(dir, 'model.safetensors'));
    expect(header.tensors.every((t) => t.dtype === 'BF16')).toBe(true);
    const ck = await loadCheckpoint(dir);
    expect(Array.from(ck.tensors.get('transformer.ln_f.bias')!.data)).toEqual([0.5, -0.5, 0, 1]);
    expect(ck.generationConfig).toEqual({ eos_token_id: 2 });
    expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('leaves nothing behind when a save fails', async () => {
    const dir = join(root, 'failed');
    await expect(
      saveCheckpoint(dir, { config, tensors: { w: { data: new Float32Array(3), shape: [2] } } }),
    ).rejects.toThrow(/tensor "w" has 3 elements/);
    expect((await readdir(root)).filter((n) => n.includes('failed'))).toEqual([]);
    await expect(saveCheckpoint(dir, { config, tensors, extraFiles: { '../escape.txt': 'x' } })).rejects.toThrow(
      /extra file name "..\/escape.txt" must be a relative path/,
    );
    expect((await readdir(root)).filter((n) => n.includes('failed') || n === 'escape.txt')).toEqual([]);
  });
});

describe('sharded checkpoints and the lazy reader', () => {
  it('reads a model.safetensors.index.json with shards, tensor by tensor', async () => {
    const dir = join(root, 'sharded');
    await mkdir(dir);
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), { a: tensors['transformer.wte.weight'] }, { dtype: 'F16' });
    await writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), { b: tensors['transformer.ln_f.bias'] });
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: 24 }, weight_map: { b: 'model-00002-of-00002.safetensors', a: 'model-00001-of-00002.safetensors' } }),
    );
    const lazy = await openCheckpoint(dir);
    try {
      expect(lazy.names()).toEqual(['a', 'b']);
      expect(lazy.generationConfig).toBeUndefined();
      expect(lazy.weightFiles.length).toBe(2);
      expect(lazy.info('a')).toMatchObject({ dtype: 'F16', shape: [2, 4] });
      expect(lazy.info('a').file).toMatch(/model-00001-of-00002\.safetensors$/);
      expect(Array.from((await lazy.read('a')).data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(lazy.has('c')).toBe(false);
      expect(() => lazy.info('c')).toThrow(/has no tensor named "c"/);
    } finally {
      await lazy.close();
    }
  });

  it('explains what is wrong with a folder', async () => {
    await expect(openCheckpoint(join(root, 'nope'))).rejects.toThrow(/nope: model folder does not exist/);
    const empty = join(root, 'empty');
    await mkdir(empty);
    await expect(openCheckpoint(empty)).rejects.toThrow(/empty: no config.json/);
    await writeFile(join(empty, 'config.json'), '{"a":');
    await expect(openCheckpoint(empty)).rejects.toThrow(/config.json: invalid JSON/);
    await writeFile(join(empty, 'config.json'), '{}');
    await expect(openCheckpoint(empty)).rejects.toThrow(/no model.safetensors or model.safetensors.index.json/);
    await writeFile(join(empty, 'pytorch_model.bin'), '');
    await expect(openCheckpoint(empty)).rejects.toThrow(/only PyTorch .bin weights/);
    await writeFile(join(empty, 'model.safetensors.index.json'), '{"weight_map":{"x":"../../etc/passwd"}}');
    await expect(openCheckpoint(empty)).rejects.toThrow(/weight_map entry for "x" points outside the folder/);
    await writeFile(join(empty, 'model.safetensors.index.json'), '{"weight_map":{"x":"model-1.safetensors"}}');
    await expect(openCheckpoint(empty)).rejects.toThrow(/shard .*model-1.safetensors is missing/);
    await writeSafetensors(join(empty, 'model-1.safetensors'), { y: tensors['transformer.ln_f.bias'] });
    await expect(openCheckpoint(empty)).rejects.toThrow(/tensor "x" is mapped to .*model-1.safetensors, which does not contain it/);
  });
});
