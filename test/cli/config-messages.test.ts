/** Config file problems: every one is told, unknown keys in the user's spelling with a suggestion, 'constructor' is just unknown. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDpoConfig } from '../../src/train/dpo/config.js';
import { tempDir } from '../train/helpers.js';
import { runCli } from './run-cli.js';

const dir = tempDir('dpo-ts-config-msg-');
const file = (name: string, body: Record<string, unknown>): string => {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(body));
  return path;
};

describe('config messages', () => {
  it('an unknown snake_case key is named as written, with the nearest known key', async () => {
    const cfg = file('typo.json', { model: 'm', data: 'd.jsonl', output: 'o', learning_rat: 1e-4 });
    const r = await runCli(['train', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`dpo: ${cfg}: unknown option 'learning_rat' (did you mean 'learningRate'?)\n`);
  });

  it("a 'constructor' key is an unknown option, not 'given twice'", async () => {
    const cfg = file('ctor.json', { model: 'm', data: 'd.jsonl', output: 'o', constructor: 1 });
    const r = await runCli(['train', '--config', cfg]);
    expect(r.stderr).toBe(`dpo: ${cfg}: unknown option 'constructor'\n`);
  });

  it('every problem is printed, not "(and N more problems)"', async () => {
    const cfg = file('many.json', { model: 'm', data: 'd.jsonl', output: 'o', beta: 'high', maxSteps: -1, batchSize: 'x' });
    const r = await runCli(['train', '--config', cfg]);
    expect(r.stderr).not.toMatch(/more problems/);
    expect(r.stderr.startsWith(`dpo: ${cfg}: 3 problems: `)).toBe(true);
    for (const key of ['beta', 'maxSteps', 'batchSize']) expect(r.stderr).toContain(`'${key}': `);
    expect(() => parseDpoConfig({ model: 'm', data: 'd', output: 'o', beta: 'high', maxSteps: -1 })).toThrow(/^config: 2 problems: '(beta|maxSteps)': .*; '(beta|maxSteps)': /);
  });
});

describe('checks found before any work', () => {
  it('--steps-per-run with --gradient-accumulation-steps > 1 is refused before the data is read', async () => {
    const r = await runCli(['train', '--model', 'nowhere', '--data', 'nothing.jsonl', '--output', join(dir, 'spr'), '--steps-per-run', '2', '--gradient-accumulation-steps', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('dpo: train: stepsPerRun 2 does not combine with gradientAccumulationSteps 2: use one of them (or a larger batchSize)\n');
  });

  it('dpo eval --per-example <folder> is refused up front in one line, not a raw EISDIR after the evaluation', async () => {
    const r = await runCli(['eval', '--model', 'nowhere', '--data', 'nothing.jsonl', '--per-example', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`dpo: --per-example ${dir}: is a folder; give the path of a file to write\n`);
  });
});

describe('lora in a config file', () => {
  it('lora: true turns LoRA on with its defaults (PEFT: r 8, alpha 8); lora: false leaves it off', async () => {
    for (const [lora, expected] of [[true, { r: 8, alpha: 8, dropout: 0 }], [false, undefined]] as const) {
      const cfg = file(`lora-${lora}.json`, { model: 'm', data: 'd.jsonl', output: 'o', lora });
      const r = await runCli(['train', '--config', cfg, '--print-config']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).lora).toEqual(expected);
    }
  });
});
