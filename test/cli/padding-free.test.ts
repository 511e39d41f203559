/**
 * `--padding-free` end to end: DPO (reference log-probs included) and SFT runs on rows of very
 * different lengths log the same metrics as the padded runs (the packed forward gives the same
 * log-probs; float32 sums differ only in rounding).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/data/rng.js';
import { makeTinyGpt2, tempDir } from '../train/helpers.js';
import { runCli } from './run-cli.js';

const WORDS = ['the', 'movie', 'was', 'great', 'awful', 'and', 'I', 'liked', 'hated', 'it', 'very', 'much', 'today'];

let dir: string;
let model: string;
let data: string;
beforeAll(async () => {
  dir = tempDir('dpo-padding-free-');
  model = await makeTinyGpt2(join(dir, 'model'));
  const rng = new Rng(4);
  const text = (n: number): string => Array.from({ length: n }, () => WORDS[Math.floor(rng.nextFloat() * WORDS.length)]).join(' ');
  // Lengths from 1 to 30 words, so a padded batch is mostly padding.
  const lines = Array.from({ length: 16 }, (_, i) => JSON.stringify({ prompt: text(1 + (i % 5)), chosen: ` ${text(1 + ((i * 7) % 30))}`, rejected: ` ${text(1 + ((i * 11) % 13))}` }));
  data = join(dir, 'pairs.jsonl');
  writeFileSync(data, `${lines.join('\n')}\n`);
});

const metrics = (out: string): Record<string, number>[] =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);

describe('--padding-free', () => {
  for (const command of ['train', 'sft'] as const) {
    it(`dpo ${command}: the same metrics as the padded run`, async () => {
      const run = async (name: string, extra: string[]): Promise<Record<string, number>[]> => {
        const out = join(dir, `${command}-${name}`);
        const common = ['--model', model, '--data', data, '--output', out, '--threads', '1', '--max-steps', '2', '--batch-size', '8', '--logging-steps', '1', '--learning-rate', '1e-2'];
        const r = await runCli([command, ...common, ...(command === 'train' ? ['--cache-dir', join(dir, `cache-${name}`)] : []), ...extra]);
        expect(r.code, r.stderr).toBe(0);
        return metrics(out);
      };
      const padded = await run('padded', []);
      const packed = await run('packed', ['--padding-free']);
      expect(packed.length).toBe(padded.length);
      const keys = command === 'train' ? ['loss', 'logps/chosen', 'logps/rejected', 'rewards/margins', 'grad_norm'] : ['loss', 'mean_token_accuracy', 'grad_norm'];
      padded.forEach((p, i) => {
        for (const k of keys) {
          if (p[k] === undefined) continue;
          expect(Math.abs(packed[i][k] - p[k]), `step ${i + 1} ${k}: ${packed[i][k]} vs ${p[k]}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(p[k])));
        }
      });
    });
  }
});
