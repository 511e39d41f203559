/**
 * `--help` groups flags as TRL's config docs do, marks required options, keeps --lora next to
 * --lora-r; the names users type from TRL / transformers are accepted as aliases.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../train/helpers.js';
import { runCli } from './run-cli.js';

/** Help's option sections: heading -> the flags listed under it, in order. */
function sections(help: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of help.split('\n')) {
    if (/^[A-Z][^:]*:$/.test(line)) out.set(line.slice(0, -1), (current = []));
    else if (/^\S/.test(line)) current = undefined;
    const flag = /^ {2}(?:-\w, )?(--[\w-]+)/.exec(line);
    if (flag && current) current.push(flag[1]);
  }
  return out;
}

const TRAINERS = ['train', 'sft', 'cpo', 'orpo', 'kto', 'reward train', 'ppo', 'online'];
const ORDER = ['Options', 'Model', 'Data', 'Loss and method', 'Generation (sampling)', 'Reward and judge', 'Optimisation', 'LoRA adapters', 'Reference model', 'Output and checkpoints', 'Logging and evaluation', 'Runtime'];

describe('grouped help', () => {
  it('dpo train --help: the groups of TRL config docs, in order, each flag in its group', async () => {
    const r = await runCli(['train', '--help']);
    expect(r.code).toBe(0);
    const s = sections(r.stdout);
    expect([...s.keys()].filter((h) => ORDER.includes(h))).toEqual(['Options', 'Model', 'Data', 'Loss and method', 'Optimisation', 'LoRA adapters', 'Reference model', 'Output and checkpoints', 'Logging and evaluation', 'Runtime']);
    expect(s.get('Options')).toEqual(['--config', '--print-config', '--help']);
    expect(s.get('Model')).toEqual(['--model', '--keep-dropout']);
    expect(s.get('Data')).toEqual(expect.arrayContaining(['--data', '--eval-data', '--max-length', '--max-prompt-length', '--truncation-mode', '--padding-free']));
    expect(s.get('Loss and method')).toEqual(expect.arrayContaining(['--beta', '--loss-type', '--label-smoothing', '--rpo-alpha']));
    expect(s.get('Optimisation')).toEqual(expect.arrayContaining(['--learning-rate', '--batch-size', '--gradient-accumulation-steps', '--num-epochs', '--max-steps', '--seed']));
    expect(s.get('LoRA adapters')).toEqual(['--lora', '--lora-r', '--lora-alpha', '--lora-dropout', '--lora-target-modules']);
    expect(s.get('Reference model')).toEqual(expect.arrayContaining(['--ref-model', '--reference', '--reference-free', '--sync-ref-every']));
    expect(s.get('Output and checkpoints')).toEqual(expect.arrayContaining(['--output', '--save-steps', '--resume', '--save-dtype']));
    expect(s.get('Logging and evaluation')).toEqual(['--logging-steps', '--eval-steps']);
    expect(s.get('Runtime')).toEqual(expect.arrayContaining(['--threads', '--device', '--gradient-checkpointing']));
    // Every listed flag is in exactly one group.
    const all = [...s.values()].flat();
    expect(new Set(all).size).toBe(all.length);
  });

  it.each(TRAINERS)('dpo %s --help: grouped, --lora beside --lora-r, required options marked', async (cmd) => {
    const r = await runCli([...cmd.split(' '), '--help']);
    expect(r.code).toBe(0);
    const s = sections(r.stdout);
    const headings = [...s.keys()].filter((h) => ORDER.includes(h));
    expect(headings).toEqual([...headings].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b)));
    expect(headings).toEqual(expect.arrayContaining(['Model', 'Data', 'Optimisation', 'Output and checkpoints', 'Runtime']));
    const lora = s.get('LoRA adapters') ?? [];
    if (cmd !== 'ppo') expect(lora.slice(0, 2)).toEqual(['--lora', '--lora-r']);
    const required = r.stdout.split('\n').filter((l) => /^ {2}--.*\[required\]/.test(l)).map((l) => /--[\w-]+/.exec(l)?.[0]);
    // online's prompts default to the built-in openings
    expect(required.sort()).toEqual(['--model', '--output', ...(cmd === 'online' ? [] : [cmd === 'ppo' ? '--prompts' : '--data'])].sort());
    expect(required).not.toContain('--learning-rate');
    expect(r.stdout).not.toMatch(/--no-[\w-]+ {2}/); // --no- forms are described once, not listed
    expect(r.stdout).toContain('[required]: the command needs it, as a flag or as a key of the --config file.');
  });

  it('commands that sample group their sampling flags, with the defaults of generation_config.json', async () => {
    const g = sections((await runCli(['generate', '--help'])).stdout);
    expect(g.get('Generation (sampling)')).toEqual(expect.arrayContaining(['--temperature', '--top-k', '--top-p', '--max-new-tokens', '--num-samples', '--stop']));
    for (const cmd of [['generate'], ['label']]) {
      const help = (await runCli([...cmd, '--help'])).stdout;
      expect(help).toMatch(/--top-k <k> +keep the k most likely tokens; 0 disables \(default:\s+generation_config\.json, else 50\)/);
    }
    // evaluate samples purely by default, and says so in the same words
    expect((await runCli(['evaluate', '--help'])).stdout).toMatch(/--top-k <k> +keep the k most likely tokens; 0 disables \(default:\s+0\)/);
  });
});

describe('TRL / transformers names', () => {
  const base = ['--data', 'd.jsonl', '--print-config'];
  const config = async (argv: string[]): Promise<Record<string, unknown>> => {
    const r = await runCli(['train', ...argv, ...base]);
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };

  it('accepts --lr, snake_case flags and the names of TrainingArguments / DPOConfig', async () => {
    const c = await config([
      '--model_name_or_path', 'm', '--output_dir', 'o', '--lr', '5e-6', '--per_device_train_batch_size', '4', '--num_train_epochs', '2',
      '--max_length', '256', '--gradient_accumulation_steps', '2', '--lr_scheduler_type', 'cosine', '--use_peft', '--lora_r', '4',
      '--gradient_checkpointing', '--loss_type', 'ipo', '--f_divergence_type', 'js_divergence',
    ]);
    expect(c).toMatchObject({
      model: 'm', output: 'o', learningRate: 5e-6, batchSize: 4, numEpochs: 2, maxLength: 256, gradientAccumulationSteps: 2,
      lrScheduler: 'cosine', lora: { r: 4 }, gradientCheckpointing: true, lossType: ['ipo'], fDivergence: 'js_divergence',
    });
    expect(await config(['--model', 'm', '--output', 'o', '--learning_rate', '1e-5', '--use-peft'])).toMatchObject({ learningRate: 1e-5, lora: { r: 8 } });
  });

  it('shows the TRL name beside the flag, refuses one option given twice, and still suggests for a typo', async () => {
    const help = (await runCli(['train', '--help'])).stdout;
    expect(help).toMatch(/--learning-rate <lr> +peak learning rate \(TRL: --lr\)/);
    expect(help).toMatch(/--batch-size <n>[\s\S]*?\(TRL:\s+--per_device_train_batch_size\)/);
    expect(help).not.toContain('--learning_rate'); // aliases are hidden
    const twice = await runCli(['train', '--model', 'm', '--data', 'd', '--output', 'o', '--lr', '1e-5', '--learning-rate', '2e-5', '--print-config']);
    expect(twice).toMatchObject({ code: 1, stderr: 'dpo: --learning-rate and --lr are the same option; give it once\n' });
    const typo = await runCli(['train', '--lerning-rate', '1']);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/unknown option '--lerning-rate'\n\(Did you mean --learning-rate\?\)/);
    const bound = await runCli(['train', '--model', 'm', '--data', 'd', '--output', 'o', '--lr', '0']);
    expect(bound.stderr).toBe("dpo: --lr: expected a number > 0, got '0'\n");
  });

  it('reads a config file written with TRL names', async () => {
    const yaml = join(tempDir('dpo-ts-trl-names-'), 'trl.yaml');
    writeFileSync(yaml, ['model_name_or_path: m', 'output_dir: o', 'per_device_train_batch_size: 2', 'num_train_epochs: 1', 'learning_rate: 5.0e-7', 'lr_scheduler_type: cosine', 'use_peft: true', 'lora_r: 4', ''].join('\n'));
    const r = await runCli(['train', '--config', yaml, '--data', 'd.jsonl', '--print-config']);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ model: 'm', output: 'o', batchSize: 2, numEpochs: 1, learningRate: 5e-7, lrScheduler: 'cosine', lora: { r: 4, alpha: 8 } });
    writeFileSync(yaml, ['model: m', 'output: o', 'lr: 1.0e-6', 'learning_rate: 2.0e-6', ''].join('\n'));
    expect((await runCli(['train', '--config', yaml, '--data', 'd.jsonl', '--print-config'])).stderr).toBe("dpo: config key 'learning_rate' is given twice (as 'learningRate' in another spelling)\n");
  });
});
