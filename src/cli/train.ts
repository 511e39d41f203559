/** `dpo train`: flags and/or a config file -> DPOConfig -> DPOTrainer. */
import type { Command } from 'commander';
import { DPOConfigSchema, parseDpoConfig, type DPOConfig } from '../train/config.js';
import { printJson, type CliContext } from './context.js';
import { LIST_KEYS, TRAIN_OPTIONS } from './dpo-options.js';
import { addOptions, loadConfigFile, mergeConfig, validateConfig, valuesFromFlags } from './options.js';

const EXAMPLES = `
Examples:
  # Full fine-tuning of a local model on prompt/chosen/rejected JSONL
  $ dpo train --model ./gpt2 --data prefs.jsonl --output runs/gpt2-dpo \\
      --learning-rate 5e-6 --beta 0.1 --batch-size 8 --gradient-accumulation-steps 4 \\
      --num-epochs 1 --eval-data heldout.jsonl --eval-steps 100 --save-steps 200

  # LoRA adapters on a hub model, IPO + a little SFT, cosine schedule with warm-up
  $ dpo train --model Qwen/Qwen2.5-0.5B --data ./hh/ --output runs/qwen-lora \\
      --lora-r 16 --lora-alpha 32 --loss-type ipo,sft --loss-weights 1,0.1 \\
      --lr-scheduler cosine --warmup-steps 50

  # Everything from a config file (same keys, camelCase/kebab-case/snake_case); flags override it
  $ dpo train --config run.yaml --max-steps 100

  # Print the resolved configuration without training
  $ dpo train --config run.yaml --print-config

  # Continue an interrupted run from its newest checkpoint
  $ dpo train --config run.yaml --resume

The final model is written to --output in Hugging Face layout (LoRA: a PEFT adapter folder),
metrics to <output>/metrics.jsonl; a JSON summary of the run is printed on stdout.`;

/** Flags + optional config file -> a validated DPOConfig (flags win over the file). */
export async function resolveTrainConfig(opts: Record<string, unknown>): Promise<DPOConfig> {
  const file = typeof opts.config === 'string' ? opts.config : undefined;
  const fromFile = file ? await loadConfigFile(file, LIST_KEYS) : {};
  const fromFlags = valuesFromFlags(opts, TRAIN_OPTIONS);
  if (opts.lora === true && fromFlags.lora === undefined) fromFlags.lora = {};
  const merged = mergeConfig(fromFile, fromFlags);
  const lora = merged.lora as Record<string, unknown> | undefined;
  if (lora && Array.isArray(lora.targetModules) && lora.targetModules.length === 1 && lora.targetModules[0] === 'all-linear') {
    lora.targetModules = 'all-linear';
  }
  const valid = validateConfig(DPOConfigSchema, merged, fromFlags, TRAIN_OPTIONS, file);
  return parseDpoConfig(valid, file ?? 'train');
}

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('train')
    .description('fine-tune a causal LM on preference data with DPO (or a loss of its family)')
    .option('--config <file>', 'run.yaml or run.json with the same keys as the flags (flags override it)');
  addOptions(cmd, TRAIN_OPTIONS);
  cmd
    .option('--lora', 'train LoRA adapters with the default rank/alpha (also enabled by any --lora-* flag)')
    .option('--print-config', 'print the resolved configuration as JSON and exit')
    .addHelpText('after', EXAMPLES)
    .action(async (opts: Record<string, unknown>) => {
      const config = await resolveTrainConfig(opts);
      if (opts.printConfig) {
        printJson(ctx, config);
        return;
      }
      // Loaded on use, so that --help and option errors answer without loading ONNX Runtime.
      const { DPOTrainer } = await import('../train/dpo-trainer.js');
      const trainer = new DPOTrainer(config, { progress: ctx.progress() });
      const r = await trainer.train();
      printJson(ctx, { output: r.output, steps: r.steps, interrupted: r.interrupted, metrics: r.metrics, ...(r.evalMetrics ? { eval_metrics: r.evalMetrics } : {}) });
      // 130: stopped by Ctrl-C (a checkpoint was saved; --resume continues).
      ctx.exitCode = r.interrupted ? 130 : 0;
    });
}
