/** A save never writes values its dtype cannot hold: overflow on the cast to float16/bfloat16 is refused, naming the tensor. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeModelWeights } from '../../src/io/weights-write.js';
import { loadPretrained, savePretrained } from '../../src/models/pretrained.js';
import { runCli } from '../cli/run-cli.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../train/helpers.js';

const tensor = (values: number[]) => ({ data: Float32Array.from(values), shape: [values.length] });

describe('checkStorable through writeModelWeights', () => {
  it('refuses float16 overflow (>= 65520 rounds to inf), names the tensor, and writes nothing', async () => {
    const dir = tempDir('dpo-ts-overflow-');
    const weights = new Map([['a.weight', tensor([1, 2])], ['b.weight', tensor([65504, 65519.9, 70000, -1e6])]]);
    await expect(writeModelWeights(dir, weights, { dtype: 'F16' })).rejects.toThrow(
      /refusing to save "b\.weight": 2 of its 4 values overflow float16 \(largest 1\.000e\+6; float16 holds up to 65504\) and would be stored as inf; .*--save-dtype float32/,
    );
    expect(readdirSync(dir)).toEqual([]);
    // The same values fit bfloat16 and float32.
    await writeModelWeights(dir, weights, { dtype: 'BF16' });
    await writeModelWeights(dir, weights, { dtype: 'F32' });
  });

  it('refuses bfloat16 overflow and NaN/inf in any dtype', async () => {
    const dir = tempDir('dpo-ts-overflow-');
    await expect(writeModelWeights(dir, new Map([['w', tensor([3.4e38])]]), { dtype: 'BF16' })).rejects.toThrow(/"w": 1 of its 1 values overflow bfloat16/);
    await expect(writeModelWeights(dir, new Map([['w', tensor([1, Number.NaN])]]), { dtype: 'F32' })).rejects.toThrow(/"w": 1 of its 2 values are NaN or infinite; training diverged/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('dpo train --save-dtype auto on a float16 model', () => {
  let dir: string;
  let f16: string;
  let pairs: string;
  beforeAll(async () => {
    dir = tempDir('dpo-ts-overflow-cli-');
    const f32 = await makeTinyGpt2(join(dir, 'f32'), { seed: 3 });
    const m = await loadPretrained(f32);
    f16 = join(dir, 'f16');
    await savePretrained(f16, { model: m.model, weights: m.weights, dtype: 'F16', tokenizerDir: f32 });
    pairs = join(dir, 'pairs.jsonl');
    writeSentimentPairs(pairs, 4, 2);
  });

  it('a step that pushes weights past 65504 fails the save with the tensor named, exit 1', async () => {
    const out = join(dir, 'out');
    const r = await runCli(['train', '--model', f16, '--data', pairs, '--output', out, '--cache-dir', join(dir, 'cache'), '--max-steps', '1', '--batch-size', '2', '--threads', '1', '--learning-rate', '1e5']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dpo: refusing to save "[\w.]+": \d+ of its \d+ values overflow float16 .*would be stored as inf/m);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
  });
});
