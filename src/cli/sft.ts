/**
 * `dpo sft`: supervised fine-tuning, or Preferred-FT on a preference file (the chosen
 * completions). Flags are those of `dpo train` where they apply (no loss or reference options);
 * `--config run.yaml|json` holds the same keys, flags override it.
 */
import type { Command } from 'commander';
import type { z } from 'zod';
import { SFT_DATA_FORMATS, SFTConfigSchema, SFTTrainer, parseSftConfig } from '../train/sft-trainer.js';
import { printJson, type CliContext } from './context.js';
import { DATA_OPTIONS, LIST_KEYS, MODEL_DATA_OPTIONS, RUNTIME_OPTIONS, TRAIN_ONLY_OPTIONS } from './dpo-options.js';
import { addOptions, loadConfigFile, mergeConfig, validateConfig, valuesFromFlags, type OptionSpec } from './options.js';

/** DPO-only keys that other trainers do not take. */
const DPO_ONLY = new Set(['reference', 'syncRefEvery', 'syncRefAlpha', 'cacheDir']);

/**
 * The `dpo train` flag groups for a trainer without DPO's loss/reference options, with this
 * trainer's data formats, learning-rate default text and data description.
 */
export function trainerOptions(o: { formats: readonly string[]; learningRate: string; data: string; extra?: readonly OptionSpec[] }): OptionSpec[] {
  const patch = (s: OptionSpec): OptionSpec => {
    if (s.key === 'format') return { ...s, choices: ['auto', ...o.formats] };
    if (s.key === 'learningRate') return { ...s, defaultText: o.learningRate };
    if (s.key === 'data') return { ...s, description: o.data };
    if (s.key === 'evalData') return { ...s, description: `held-out data for eval_* metrics (same kinds as --data)` };
    if (s.key === 'batchSize') return { ...s, description: 'rows per micro-batch' };
    return s;
  };
  const train = TRAIN_ONLY_OPTIONS.filter((s) => !DPO_ONLY.has(s.key));
  return [...MODEL_DATA_OPTIONS, ...train.slice(0, 2), ...DATA_OPTIONS, ...(o.extra ?? []), ...train.slice(2), ...RUNTIME_OPTIONS].map(patch);
}

/** Flags + optional config file -> validated config of `schema` (flags win over the file). */
export async function resolveTrainerConfig<S extends z.ZodType>(opts: Record<string, unknown>, schema: S, specs: readonly OptionSpec[]): Promise<z.output<S>> {
  const file = typeof opts.config === 'string' ? opts.config : undefined;
  const fromFile = file ? await loadConfigFile(file, LIST_KEYS) : {};
  const fromFlags = valuesFromFlags(opts, specs);
  if (opts.lora === true && fromFlags.lora === undefined) fromFlags.lora = {};
  const merged = mergeConfig(fromFile, fromFlags);
  const lora = merged.lora as Record<string, unknown> | undefined;
  if (lora && Array.isArray(lora.targetModules) && lora.targetModules.length === 1 && lora.targetModules[0] === 'all-linear') {
    lora.targetModules = 'all-linear';
  }
  return validateConfig(schema, merged, fromFlags, specs, file);
}

export const SFT_OPTIONS = trainerOptions({
  formats: SFT_DATA_FORMATS,
  learningRate: '2e-5',
  data: 'SFT data (text, prompt/completion or messages rows) or preference data (trains on the chosen completions): a .jsonl/.json/.parquet file or a folder',
});

const EXAMPLES = `
Examples:
  # Prompt/completion rows: loss on the completions only
  $ dpo sft --model ./gpt2 --data sft.jsonl --output runs/gpt2-sft --num-epochs 1

  # Preferred-FT: a preference file trains on its chosen completions (a DPO reference model)
  $ dpo sft --model ./gpt2 --data prefs.jsonl --output runs/gpt2-pref-ft

  # LoRA, from a config file, continuing an interrupted run
  $ dpo sft --config sft.yaml --lora-r 16 --resume

The data kind is detected from the file's fields: text / prompt+completion / messages rows are
SFT data (text and messages rows train on every token), chosen/rejected or completions rows are
preference data. Loss is the mean token NLL over all completion tokens of a step. Metrics go to
<output>/metrics.jsonl (loss, mean_token_accuracy, grad_norm, learning_rate, epoch,
tokens_per_second, eval_*); a JSON summary is printed on stdout.`;

export function register(program: Command, ctx: CliContext): void {
  const cmd = program
    .command('sft')
    .description('supervised fine-tuning (maximum likelihood on completions), or Preferred-FT on a preference file')
    .option('--config <file>', 'sft.yaml or sft.json with the same keys as the flags (flags override it)');
  addOptions(cmd, SFT_OPTIONS);
  cmd
    .option('--lora', 'train LoRA adapters with the default rank/alpha (also enabled by any --lora-* flag)')
    .option('--print-config', 'print the resolved configuration as JSON and exit')
    .addHelpText('after', EXAMPLES)
    .action(async (opts: Record<string, unknown>) => {
      const config = parseSftConfig(await resolveTrainerConfig(opts, SFTConfigSchema, SFT_OPTIONS), 'sft');
      if (opts.printConfig) {
        printJson(ctx, config);
        return;
      }
      const r = await new SFTTrainer(config, { progress: ctx.progress() }).train();
      printJson(ctx, { output: r.output, steps: r.steps, interrupted: r.interrupted, metrics: r.metrics, ...(r.evalMetrics ? { eval_metrics: r.evalMetrics } : {}) });
      ctx.exitCode = r.interrupted ? 130 : 0;
    });
}
