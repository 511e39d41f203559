/** --save-dtype and --max-shard-size on every command that trains and saves a model. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsHeader } from '../../src/io/safetensors.js';
import { loadPretrained, savePretrained } from '../../src/models/pretrained.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../train/helpers.js';
import { runCli } from './run-cli.js';

let dir: string;
let bf16: string;
let pairs: string;

beforeAll(async () => {
  dir = tempDir('dpo-ts-save-dtype-');
  const f32 = await makeTinyGpt2(join(dir, 'f32'), { seed: 3 });
  const m = await loadPretrained(f32);
  bf16 = join(dir, 'bf16');
  await savePretrained(bf16, { model: m.model, weights: m.weights, dtype: 'BF16', tokenizerDir: f32 });
  pairs = join(dir, 'pairs.jsonl');
  writeSentimentPairs(pairs, 4, 2);
});

const run = (cmd: string[], output: string, ...extra: string[]) =>
  runCli([...cmd, '--model', bf16, '--data', pairs, '--output', join(dir, output), '--max-steps', '1', '--batch-size', '2', '--threads', '1', ...extra]);

async function storedDtypes(folder: string): Promise<Set<string>> {
  const files = readdirSync(folder).filter((f) => f.endsWith('.safetensors'));
  const dtypes = new Set<string>();
  for (const f of files) for (const t of (await readSafetensorsHeader(join(folder, f))).tensors) dtypes.add(t.dtype);
  return dtypes;
}

const torchDtype = (folder: string): unknown => JSON.parse(readFileSync(join(folder, 'config.json'), 'utf-8')).torch_dtype;

describe('save dtype on the command line', () => {
  it('dpo train saves a bf16 model as bf16 by default', async () => {
    const r = await run(['train'], 'dpo', '--cache-dir', join(dir, 'cache'));
    expect(r.stderr).not.toMatch(/^dpo: /m);
    expect(r.code, r.stderr).toBe(0);
    expect(await storedDtypes(join(dir, 'dpo'))).toEqual(new Set(['BF16']));
    expect(torchDtype(join(dir, 'dpo'))).toBe('bfloat16');
  }, 60_000);

  it('dpo sft --save-dtype float32 --max-shard-size 1MB writes float32 shards and an index', async () => {
    const r = await run(['sft'], 'sft', '--save-dtype', 'float32', '--max-shard-size', '1MB');
    expect(r.code, r.stderr).toBe(0);
    const files = readdirSync(join(dir, 'sft'));
    expect(files).toContain('model.safetensors.index.json');
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(1);
    expect(await storedDtypes(join(dir, 'sft'))).toEqual(new Set(['F32']));
    expect(torchDtype(join(dir, 'sft'))).toBe('float32');
    expect((await loadPretrained(join(dir, 'sft'), { tokenizer: false })).dtype).toBe('F32');
  }, 60_000);

  it('dpo reward train --save-dtype float16', async () => {
    const r = await run(['reward', 'train'], 'rm', '--save-dtype', 'float16');
    expect(r.code, r.stderr).toBe(0);
    expect(await storedDtypes(join(dir, 'rm'))).toEqual(new Set(['F16']));
    expect(torchDtype(join(dir, 'rm'))).toBe('float16');
  }, 60_000);

  it('bad values are one line naming the option, and nothing is written', async () => {
    const dtype = await run(['train'], 'bad1', '--save-dtype', 'int8');
    expect(dtype.code).toBe(1);
    expect(dtype.stderr).toMatch(/^dpo: option '--save-dtype <dtype>' argument 'int8' is invalid. Allowed choices are auto, float32, bfloat16, float16.\n$/);
    const size = await run(['sft'], 'bad2', '--max-shard-size', '2parsecs');
    expect(size.code).toBe(1);
    expect(size.stderr.trim().split('\n')).toHaveLength(1);
    expect(size.stderr).toBe('dpo: --max-shard-size: max shard size "2parsecs" is not a size: use bytes or a number with a unit, e.g. 2GB, 500MB, 1GiB\n');
    expect(existsSync(join(dir, 'bad1')) || existsSync(join(dir, 'bad2'))).toBe(false);
  });
});
