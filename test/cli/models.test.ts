import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { modelTypes } from '../../src/models/registry.js';
import { runCli } from './run-cli.js';

describe('dpo models', () => {
  it('lists every registered model type with its LoRA targets, sliding window and KV cache', async () => {
    const { code, stdout } = await runCli(['models']);
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^model_type\s+transformers class\s+LoRA targets \(\* default\)\s+sliding window\s+KV cache\s+positions$/);
    expect(lines.length).toBe(1 + modelTypes().length);
    const phi3 = lines.find((l) => l.startsWith('phi3 '));
    expect(phi3).toMatch(/Phi3ForCausalLM\s+qkv_proj\* o_proj gate_up_proj down_proj\s+every layer \(sliding_window\)\s+yes/);
    expect(lines.find((l) => l.startsWith('gpt2 '))).toMatch(/c_attn\* attn\.c_proj c_fc mlp\.c_proj\s+-\s+yes/);
  });

  it('--json gives the same rows as data', async () => {
    const { code, stdout } = await runCli(['models', '--json']);
    expect(code).toBe(0);
    const rows = JSON.parse(stdout) as { modelType: string; loraTargets: string[]; loraDefaultTargets: string[]; slidingWindow: string | null; kvCache: boolean }[];
    expect(rows.map((r) => r.modelType)).toEqual(modelTypes().map((m) => m.modelType));
    const qwen3 = rows.find((r) => r.modelType === 'qwen3');
    expect(qwen3).toMatchObject({ loraDefaultTargets: ['q_proj', 'v_proj'], kvCache: true });
    expect(qwen3?.loraTargets).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(rows.find((r) => r.modelType === 'llama')?.slidingWindow).toBeNull();
  });

  it("the README's model table lists every registered model type", () => {
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Models'), readme.indexOf('## How it works'));
    const listed = [...section.matchAll(/^\| `([a-z0-9_]+)` \|/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual(modelTypes().map((m) => m.modelType).sort());
  });
});
