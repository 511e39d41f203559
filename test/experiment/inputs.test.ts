/**
 * Never delete an input: a command that clears an earlier run's results first checks every input
 * (model, prompts, data) against what it is about to clear, and refuses in the first second.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../train/helpers.js';
import { runCli } from '../cli/run-cli.js';

let dir: string;
let model: string;
beforeAll(async () => {
  dir = tempDir('dpo-ts-inputs-');
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 3 });
});

/** A folder as an earlier `dpo experiment sentiment` left it, with a trained model under runs/. */
function earlierExperiment(name: string): string {
  const out = join(dir, name);
  mkdirSync(join(out, 'runs'), { recursive: true });
  writeFileSync(join(out, 'dpo-ts-run.json'), JSON.stringify({ command: 'dpo experiment sentiment' }));
  writeFileSync(join(out, 'summary.json'), '{}');
  cpSync(model, join(out, 'runs', 'dpo-beta-0.1'), { recursive: true });
  return out;
}

describe('dpo experiment sentiment into an earlier experiment folder', () => {
  it('refuses a --model inside the results it would replace, and deletes nothing', async () => {
    const out = earlierExperiment('exp');
    const inner = join(out, 'runs', 'dpo-beta-0.1');
    const before = readdirSync(inner).sort();
    const r = await runCli(['experiment', 'sentiment', '--quick', '--model', inner, '--output', out, '--threads', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dpo: --model .*runs\/dpo-beta-0\.1 lies in .*runs, which replacing the results of the earlier experiment run in .* would delete; copy it elsewhere first/m);
    expect(readdirSync(inner).sort()).toEqual(before);
    expect(existsSync(join(out, 'summary.json'))).toBe(true);
  });

  it('refuses --prompts inside the results too', async () => {
    const out = earlierExperiment('exp-prompts');
    const prompts = join(out, 'runs', 'prompts.jsonl');
    writeFileSync(prompts, `${JSON.stringify({ prompt: 'The movie was' })}\n`);
    const r = await runCli(['experiment', 'sentiment', '--quick', '--model', model, '--prompts', prompts, '--output', out, '--threads', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dpo: --prompts .*prompts\.jsonl lies in .*runs, which replacing/m);
    expect(existsSync(prompts)).toBe(true);
  });
});

describe('dpo train into an earlier run folder', () => {
  it('refuses --data inside a checkpoint it would move aside', async () => {
    const out = join(dir, 'train');
    const pairs = join(dir, 'pairs.jsonl');
    writeSentimentPairs(pairs, 8, 5);
    const args = ['train', '--model', model, '--output', out, '--cache-dir', join(dir, 'cache'), '--threads', '1', '--batch-size', '4', '--max-steps', '1', '--save-steps', '1'];
    expect((await runCli([...args, '--data', pairs])).code).toBe(0);
    const inside = join(out, 'checkpoint-1', 'pairs.jsonl');
    cpSync(pairs, inside);
    const r = await runCli([...args, '--data', inside]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dpo: --data .*checkpoint-1\/pairs\.jsonl lies in .*checkpoint-1, which moving aside the earlier run's checkpoints/m);
    expect(existsSync(inside)).toBe(true);
  });
});
