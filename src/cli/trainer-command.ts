/**
 * A training subcommand (`dpo train`, `dpo sft`, `dpo reward train`...) from its config
 * definition: flags and help from the schema, `--config` file + flags merged and validated once
 * (schema, then the definition's cross-key checks), `--print-config`, `--lora`, and the run's
 * JSON summary on stdout with exit code 130 / 143 when SIGINT / SIGTERM stopped it (signals.ts).
 */
import type { Command } from 'commander';
import type { z } from 'zod';
import { checkedConfig, type ConfigDefinition } from '../train/core/config.js';
import type { ProgressReporter } from '../progress.js';
import type { TrainerResult } from '../train/core/runner.js';
import { printJson, type CliContext } from './context.js';
import { stopOnSignals } from './signals.js';
import { addOptions, configKeyAliases, loadConfigFile, mergeConfig, validateConfig, valuesFromFlags, type OptionSpec } from './options.js';
import { listKeysOf } from './schema-options.js';

/** Flags + optional config file -> a validated config of `def` (flags win over the file). */
export async function resolveTrainerConfig<S extends z.ZodObject>(
  opts: Record<string, unknown>,
  def: ConfigDefinition<S>,
  specs: readonly OptionSpec[],
  command: string,
): Promise<z.output<S>> {
  const file = typeof opts.config === 'string' ? opts.config : undefined;
  const fromFile = file ? await loadConfigFile(file, listKeysOf(specs), configKeyAliases(specs)) : {};
  // `lora: true` / TRL's `use_peft: true` in a file: LoRA with its defaults, as the --lora flag.
  for (const s of specs) if (s.kind === 'enable' && typeof fromFile[s.key] === 'boolean') fromFile[s.key] = fromFile[s.key] ? {} : undefined;
  const fromFlags = valuesFromFlags(opts, specs);
  const merged = mergeConfig(fromFile, fromFlags);
  const lora = merged.lora as Record<string, unknown> | undefined;
  if (lora && Array.isArray(lora.targetModules) && lora.targetModules.length === 1 && lora.targetModules[0] === 'all-linear') {
    lora.targetModules = 'all-linear';
  }
  return checkedConfig(def, validateConfig(def.schema, merged, fromFlags, specs, file), file ?? command);
}

export interface TrainerCommand<S extends z.ZodObject> {
  /** The subcommand's name under `parent` ('train', 'sft', 'train' under 'reward'). */
  name: string;
  /** How errors name the command when no config file is involved ('train', 'reward train'). */
  label: string;
  description: string;
  config: ConfigDefinition<S>;
  options: readonly OptionSpec[];
  /** Example file names for --config's help ('run.yaml or run.json'). */
  configFiles: string;
  /** Help text after the flags: examples and what the run writes. */
  examples: string;
  /** Trains, stopping when `signal` is aborted (SIGINT/SIGTERM); its result (plus `extra`) is printed as the JSON summary. */
  run(config: z.output<S>, progress: ProgressReporter, signal: AbortSignal): Promise<TrainerResult & { extra?: Record<string, unknown> }>;
}

export function registerTrainerCommand<S extends z.ZodObject>(parent: Command, ctx: CliContext, t: TrainerCommand<S>): Command {
  const cmd = parent
    .command(t.name)
    .description(t.description)
    .option('--config <file>', `${t.configFiles} with the same keys as the flags (flags override it)`);
  cmd.option('--print-config', 'print the resolved configuration as JSON and exit');
  addOptions(cmd, t.options, t.config.schema);
  cmd
    .addHelpText('after', t.examples)
    .action(async (opts: Record<string, unknown>) => {
      const config = await resolveTrainerConfig(opts, t.config, t.options, t.label);
      if (opts.printConfig) {
        printJson(ctx, config);
        return;
      }
      const progress = ctx.progress();
      const signals = stopOnSignals((m) => progress.log(m));
      let r: Awaited<ReturnType<typeof t.run>>;
      try {
        r = await t.run(config, progress, signals.signal);
      } finally {
        signals.dispose();
      }
      printJson(ctx, {
        output: r.output,
        steps: r.steps,
        interrupted: r.interrupted,
        metrics: r.metrics,
        ...(r.evalMetrics ? { eval_metrics: r.evalMetrics } : {}),
        ...r.extra,
      });
      // 130 / 143: stopped by SIGINT / SIGTERM (a checkpoint was saved; --resume continues).
      ctx.exitCode = r.interrupted ? signals.exitCode() : 0;
    });
  return cmd;
}
