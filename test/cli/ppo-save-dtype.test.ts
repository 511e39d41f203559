/** dpo ppo --save-dtype: the policy (and value head) stored as asked, config.json's torch_dtype to match. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensorsHeader } from '../../src/io/safetensors.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';
import { runCli } from './run-cli.js';

describe('dpo ppo --save-dtype', () => {
  it('saves bfloat16 when asked', async () => {
    const dir = tempDir('dpo-ts-ppo-dtype-');
    const model = await makeTinyGpt2(join(dir, 'model'));
    const prompts = join(dir, 'prompts.jsonl');
    writeFileSync(prompts, ['The movie', 'This book', 'Our trip'].map((p) => JSON.stringify({ prompt: p })).join('\n'));
    const out = join(dir, 'out');
    const r = await runCli(['ppo', '--model', model, '--prompts', prompts, '--output', out, '--scorer', 'length', '--batch-size', '3', '--max-steps', '1',
      '--ppo-epochs', '1', '--max-new-tokens', '4', '--threads', '1', '--save-dtype', 'bfloat16']);
    expect(r.code, r.stderr).toBe(0);
    const dtypes = new Set((await readSafetensorsHeader(join(out, 'model.safetensors'))).tensors.map((t) => t.dtype));
    expect([...dtypes]).toEqual(['BF16']);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
  }, 60_000);
});
