/**
 * SIGTERM in a long phase other than the training steps stops within a batch, keeps what is
 * finished and says so: the reference pass keeps its rows in a partial cache that the next run
 * continues, ending with the same cache bytes as an uninterrupted pass.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../train/helpers.js';
import { runCli, runSignalled } from './run-cli.js';

let dir: string;
let model: string;
let pairs: string;
beforeAll(async () => {
  dir = tempDir('dpo-ts-stop-');
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 7 });
  pairs = join(dir, 'pairs.jsonl');
  writeSentimentPairs(pairs, 48, 5);
});

const args = (output: string, cache: string) => ['train', '--model', model, '--data', pairs, '--output', output, '--cache-dir', cache, '--threads', '1', '--batch-size', '4', '--max-steps', '1'];

const cacheFiles = (cache: string): string[] => readdirSync(join(cache, 'reference')).sort();

describe('SIGTERM during the reference pass', () => {
  it('stops within a batch, keeps the rows done, and the next run continues to the same cache', async () => {
    const cache = join(dir, 'cache');
    const out = join(dir, 'out');
    const r = await runSignalled(args(out, cache), /reference log-probs 4\/48/, 'SIGTERM');
    expect(r.sent).toBe(true);
    expect(r.code).toBe(143);
    // Within a batch or two of the signal (how far the pass got meanwhile depends on the load).
    const kept = /stopped the reference pass after (\d+) of 48 rows; kept them in .*\.partial\.f64; the next run continues from there/.exec(r.stderr);
    expect(kept, r.stderr).not.toBeNull();
    const rows = Number(kept![1]);
    expect(rows).toBeGreaterThanOrEqual(4);
    expect(rows).toBeLessThan(48);
    expect(JSON.parse(r.stdout)).toMatchObject({ interrupted: true, steps: 0 });
    expect(r.stderr).not.toMatch(/^train \d/m);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    expect(cacheFiles(cache)).toEqual([expect.stringMatching(/\.partial\.f64$/)]);

    const again = await runCli(args(out, cache));
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`reference log-probs: continued from row ${rows} of 48`);
    const [file] = cacheFiles(cache);
    expect(file).toMatch(/^[0-9a-f]{64}\.f64$/);

    const fresh = join(dir, 'fresh-cache');
    expect((await runCli(args(join(dir, 'out2'), fresh))).code).toBe(0);
    expect(cacheFiles(fresh)).toEqual([file]);
    expect(readFileSync(join(cache, 'reference', file)).equals(readFileSync(join(fresh, 'reference', file)))).toBe(true);
  });
});

describe('SIGTERM during a step with --eval-steps', () => {
  it('skips that step\'s evaluation pass and saves the checkpoint at once', async () => {
    const out = join(dir, 'eval-steps');
    const r = await runSignalled(
      ['train', '--model', model, '--data', pairs, '--eval-data', pairs, '--eval-steps', '1', '--output', out, '--cache-dir', join(dir, 'cache'), '--threads', '1', '--batch-size', '4', '--max-steps', '6', '--logging-steps', '1'],
      /train 0\/6/,
      'SIGTERM',
    );
    expect(r.code).toBe(143);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => 'eval_loss' in l)).toEqual([]);
    expect(readdirSync(out).filter((n) => n.startsWith('checkpoint-')).length).toBe(1);
  });
});

describe('SIGTERM during dpo generate', () => {
  it('stops within a decoding step, writes the prompts already finished (in input order) and exits 143', async () => {
    const prompts = join(dir, 'prompts.jsonl');
    const texts = Array.from({ length: 12 }, (_, i) => `The film number ${i} was`);
    writeFileSync(prompts, texts.map((t) => JSON.stringify({ prompt: t })).join('\n') + '\n');
    const gen = (output: string): string[] => ['generate', '--model', model, '--prompts', prompts, '--output', output, '--max-new-tokens', '16', '--batch-size', '1', '--threads', '1', '--seed', '3'];
    const whole = await runCli(gen(join(dir, 'all.jsonl')));
    expect(whole.code, whole.stderr).toBe(0);
    const all = readFileSync(join(dir, 'all.jsonl'), 'utf8').trim().split('\n');

    const out = join(dir, 'some.jsonl');
    const r = await runSignalled(gen(out), /^generate 1\/12/m, 'SIGTERM');
    expect(r.sent).toBe(true);
    expect(r.code, r.stderr).toBe(143);
    const kept = /stopped: wrote the (\d+) of 12 prompts whose completions were all finished to .*some\.jsonl/.exec(r.stderr);
    expect(kept, r.stderr).not.toBeNull();
    const n = Number(kept![1]);
    expect(n).toBeGreaterThanOrEqual(1);
    expect(n).toBeLessThan(12);
    const some = readFileSync(out, 'utf8').trim().split('\n');
    expect(some.length).toBe(n);
    // The same rows an uninterrupted run writes (each sequence has its own seeded stream), in input order.
    for (const line of some) expect(all).toContain(line);
    const order = some.map((l) => all.indexOf(l));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(JSON.parse(r.stdout)).toMatchObject({ interrupted: true, prompts: n, requested: 12 });
  });
});

describe('SIGTERM during a PPO rollout', () => {
  it('stops within a decoding step, keeps the checkpoint of the last completed update, exits 143; --resume ends as an uninterrupted run', async () => {
    const prompts = join(dir, 'ppo-prompts.jsonl');
    writeFileSync(prompts, ['The movie', 'This book', 'Our trip'].map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
    const ppo = (output: string, ...more: string[]): string[] => [
      'ppo', '--model', model, '--prompts', prompts, '--output', output, '--scorer', 'length', '--batch-size', '3', '--max-steps', '3',
      '--ppo-epochs', '1', '--max-new-tokens', '24', '--save-steps', '1', '--threads', '1', ...more,
    ];
    const out = join(dir, 'ppo');
    const r = await runSignalled(ppo(out), /saved .*checkpoint-1\n/, 'SIGTERM');
    expect(r.sent).toBe(true);
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr).toContain('stopped during the rollout of update 2: kept checkpoint-1, the last completed update (--resume continues from it)');
    expect(JSON.parse(r.stdout)).toMatchObject({ steps: 1, interrupted: true });
    expect(readdirSync(out).filter((n) => n.startsWith('checkpoint-'))).toEqual(['checkpoint-1']);

    const resumed = await runCli(ppo(out, '--resume'));
    expect(resumed.code, resumed.stderr).toBe(0);
    const plain = join(dir, 'ppo-plain');
    expect((await runCli(ppo(plain))).code).toBe(0);
    expect(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(plain, 'model.safetensors')))).toBe(true);
  }, 60_000);
});

describe('SIGTERM during online DPO sampling', () => {
  it("stops within a decoding step, drops that step, keeps the last completed one's checkpoint; --resume ends as an uninterrupted run", async () => {
    const prompts = join(dir, 'online-prompts.jsonl');
    writeFileSync(prompts, ['The movie', 'This book', 'Our trip', 'The food'].map((p) => JSON.stringify({ prompt: p })).join('\n') + '\n');
    const online = (output: string, ...more: string[]): string[] => [
      'online', '--model', model, '--prompts', prompts, '--output', output, '--scorer', 'length', '--batch-size', '2', '--max-steps', '3',
      '--max-new-tokens', '24', '--save-steps', '1', '--threads', '1', ...more,
    ];
    const out = join(dir, 'online');
    const r = await runSignalled(online(out), /saved .*checkpoint-1\n/, 'SIGTERM');
    expect(r.sent).toBe(true);
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr).toContain('stopped while sampling for step 2; keeping step 1, the last completed one');
    expect(JSON.parse(r.stdout)).toMatchObject({ steps: 1, interrupted: true });
    expect(readdirSync(out).filter((n) => n.startsWith('checkpoint-'))).toEqual(['checkpoint-1']);

    expect((await runCli(online(out, '--resume'))).code).toBe(0);
    const plain = join(dir, 'online-plain');
    expect((await runCli(online(plain))).code).toBe(0);
    expect(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(plain, 'model.safetensors')))).toBe(true);
  }, 60_000);
});

describe('SIGTERM during dpo evaluate', () => {
  it('stops within a decoding step, writes no report, says so and exits 143', async () => {
    const prompts = join(dir, 'eval-prompts.jsonl');
    writeFileSync(prompts, Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `The show number ${i} was` })).join('\n') + '\n');
    const report = join(dir, 'report.json');
    const r = await runSignalled(
      ['evaluate', '--model', model, '--ref-model', model, '--prompts', prompts, '--scorer', 'length', '--max-new-tokens', '16', '--batch-size', '1', '--threads', '1', '--output', report],
      /^sample policy 1\/12/m,
      'SIGTERM',
    );
    expect(r.sent).toBe(true);
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr).toMatch(/stopped while sampling from the policy model \(\d+ of 12 prompts done\); no report written, nothing to keep/);
    expect(r.stdout).toBe('');
    expect(existsSync(report)).toBe(false);
  });
});
