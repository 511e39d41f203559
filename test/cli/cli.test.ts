/**
 * The `dpo` command line, in process (main(argv, io) with captured streams) except one spawned run
 * that proves an error is one line without a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliRun } from './run-cli.js';
import { TRAIN_OPTIONS } from '../../src/cli/dpo-options.js';
import { flagOf } from '../../src/cli/options.js';
import { DPOConfigSchema } from '../../src/train/dpo/config.js';
import { makeTinyGpt2, tempDir, writeSentimentPairs } from '../train/helpers.js';

const dpo = (...argv: string[]): Promise<CliRun> => runCli(argv);

let dir: string;
let model: string;
let pairs: string;

beforeAll(async () => {
  dir = tempDir('dpo-ts-cli-');
  model = await makeTinyGpt2(join(dir, 'model'), { seed: 5 });
  pairs = join(dir, 'pairs.jsonl');
  writeSentimentPairs(pairs, 8, 4);
});

const base = (output: string): string[] => ['--model', model, '--output', join(dir, output), '--cache-dir', join(dir, 'cache'), '--threads', '1'];

describe('dpo --help / --version', () => {
  it('top-level help lists the commands and examples', async () => {
    const r = await dpo('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/train/);
    expect(r.stdout).toMatch(/eval/);
    expect(r.stdout).toContain('Examples:');
    expect((await dpo('--version')).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it.each(['train', 'eval'])('dpo %s --help has flags and examples', async (cmd) => {
    const r = await dpo(cmd, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain(`$ dpo ${cmd} `);
    expect(r.stdout).toContain('--loss-type');
    expect(r.stderr).toBe('');
  });

  it('dpo train has a flag for every DPOConfig key', () => {
    const keys = Object.keys(DPOConfigSchema.shape);
    const flagged = new Set(TRAIN_OPTIONS.map((s) => s.key.split('.')[0]));
    expect(keys.filter((k) => !flagged.has(k))).toEqual([]);
    const loraFlags = TRAIN_OPTIONS.filter((s) => s.key.startsWith('lora.')).map(flagOf);
    expect(loraFlags).toEqual(['lora-r', 'lora-alpha', 'lora-dropout', 'lora-target-modules']);
  });
});

describe('dpo train: options', () => {
  it('a bad number names the flag in one line', async () => {
    const r = await dpo('train', ...base('x'), '--data', pairs, '--learning-rate', '1e-5x');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("dpo: --learning-rate: expected a number, got '1e-5x'\n");
    const i = await dpo('train', ...base('x'), '--data', pairs, '--batch-size', '2.5');
    expect(i.stderr).toBe("dpo: --batch-size: expected an integer, got '2.5'\n");
    const z = await dpo('train', ...base('x'), '--data', pairs, '--beta', '0');
    expect(z.code).toBe(1);
    expect(z.stderr).toMatch(/^dpo: --beta: .*\n$/);
    const u = await dpo('train', '--data', pairs);
    expect(u.stderr).toBe('dpo: missing required options --model, --output\n');
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });

  it('a config file (kebab/snake/camel keys) with flags overriding it', async () => {
    const yaml = join(dir, 'run.yaml');
    writeFileSync(
      yaml,
      [`model: ${model}`, `data: ${pairs}`, 'output: out-yaml', 'learning-rate: 0.01', 'batch_size: 2', 'lossType: sigmoid,ipo', 'loss_weights: [1, 0.5]', 'lora_r: 4', 'groupByLength: true', ''].join('\n'),
    );
    const r = await dpo('train', '--config', yaml, '--batch-size', '4', '--no-group-by-length', '--lora-alpha', '8', '--print-config');
    expect(r.code).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c).toMatchObject({
      model,
      output: 'out-yaml',
      learningRate: 0.01,
      batchSize: 4,
      lossType: ['sigmoid', 'ipo'],
      lossWeights: [1, 0.5],
      lora: { r: 4, alpha: 8, dropout: 0 },
      groupByLength: false,
      beta: 0.1, // TRL default
    });
    const json = join(dir, 'run.json');
    writeFileSync(json, JSON.stringify({ model, data: pairs, output: 'o', max_steps: 3, 'sync-ref-every': 2, reference: 'live' }));
    const j = JSON.parse((await dpo('train', '--config', json, '--print-config', '--max-steps', '5')).stdout);
    expect(j).toMatchObject({ maxSteps: 5, syncRefEvery: 2, reference: 'live' });

    writeFileSync(json, JSON.stringify({ model, data: pairs, output: 'o', learningRate: 'fast', bogus: 1 }));
    const bad = await dpo('train', '--config', json);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(new RegExp(`^dpo: ${json}: 2 problems: unknown option 'bogus'; 'learningRate': .*number.*\\n$`));
    writeFileSync(json, JSON.stringify({ model, data: pairs, output: 'o', learningRate: 'fast' }));
    expect((await dpo('train', '--config', json)).stderr).toMatch(new RegExp(`^dpo: ${json}: 'learningRate': .*number.*\\n$`));
  });
});

describe('dpo train: bad data', () => {
  const good = JSON.stringify({ prompt: 'The movie', chosen: ' was great.', rejected: ' was awful.' });
  const cases: [string, string, RegExp][] = [
    ['invalid JSON line', '{"prompt": "a", "chosen": ', /invalid JSON/],
    ['missing field', JSON.stringify({ prompt: 'a', chosen: ' b' }), /missing field 'rejected'/],
    ['non-string field', JSON.stringify({ prompt: 'a', chosen: 7, rejected: ' c' }), /field 'chosen' must be a string, got number/],
    ['empty completion', JSON.stringify({ prompt: 'a', chosen: '', rejected: ' c' }), /empty completion 'chosen'/],
    ['chosen identical to rejected', JSON.stringify({ prompt: 'a', chosen: ' same', rejected: ' same' }), /chosen and rejected are identical/],
  ];

  it.each(cases)('%s: exit 1, file:line and reason, nothing written', async (name, line, reason) => {
    const file = join(dir, `bad-${name.replace(/\W+/g, '-')}.jsonl`);
    writeFileSync(file, `${good}\n${line}\n${good}\n`);
    const out = `out-${name.replace(/\W+/g, '-')}`;
    const r = await dpo('train', ...base(out), '--data', file, '--max-steps', '1');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const errLines = r.stderr.split('\n').filter((l) => l.startsWith('dpo: ') || l.startsWith('  '));
    expect(errLines[0]).toMatch(/^dpo: 1 malformed data row/);
    expect(r.stderr).toContain(`${file}:2: `);
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(join(dir, out))).toBe(false);
  });

  it('a ranking with fewer than 2 completions', async () => {
    const file = join(dir, 'bad-ranking.jsonl');
    writeFileSync(file, `${JSON.stringify({ prompt: 'p', completions: [' a', ' b', ' c'] })}\n${JSON.stringify({ prompt: 'p', completions: [' a'] })}\n`);
    const r = await dpo('train', ...base('out-ranking'), '--data', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}:2: a ranking needs at least 2 completions, got 1`);
    expect(existsSync(join(dir, 'out-ranking'))).toBe(false);
  });

  it('--on-bad-row skip trains on the rest and reports how many were skipped', async () => {
    const file = join(dir, 'mixed.jsonl');
    const goodRows = readFileSync(pairs, 'utf8').trim().split('\n').slice(0, 4);
    writeFileSync(file, `${[goodRows[0], ...cases.map((c) => c[1]), ...goodRows.slice(1)].join('\n')}\n`);
    const r = await dpo('train', ...base('out-skip'), '--data', file, '--on-bad-row', 'skip', '--max-steps', '1', '--batch-size', '4');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/train data: 4 rows, \d+ tokens; 5 malformed rows skipped/);
    expect(r.stderr).toContain(`  skipped ${file}:3: missing field 'rejected'`); // each skipped row is listed
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ steps: 1, interrupted: false });
    expect(existsSync(join(dir, 'out-skip', 'model.safetensors'))).toBe(true);
  });

  it('--debug adds the stack trace', async () => {
    const d = await dpo('--debug', 'train', ...base('never'), '--data', join(dir, 'missing.jsonl'));
    expect(d.code).toBe(1);
    expect(d.stderr.split('\n')[0]).toMatch(/^dpo: .*missing\.jsonl/);
    expect(d.stderr).toMatch(/\n\s+at /);
    const plain = await dpo('train', ...base('never'), '--data', join(dir, 'missing.jsonl'));
    expect(plain.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('the real process prints one line and no stack trace (spawned)', () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'dpo-bin.ts'), ...args], { encoding: 'utf8', cwd: join(import.meta.dirname, '..', '..') });
    const r = run('train', '--model', model, '--data', join(dir, 'missing.jsonl'), '--output', join(dir, 'never'), '--max-steps', 'two');
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe("dpo: --max-steps: expected an integer, got 'two'\n");
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });
});
