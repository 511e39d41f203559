/**
 * The names users type from TRL / transformers (`--lr`, `--per_device_train_batch_size`,
 * `--num_train_epochs`, `--output_dir`...), accepted as hidden aliases of our flags, by config
 * key. Every flag also takes its snake_case spelling (`--learning_rate`), as transformers'
 * HfArgumentParser takes both spellings; the names here are the ones that differ in more than
 * the separator. Only names with the same meaning are listed (TRL's disable_dropout is the
 * opposite of --keep-dropout, so it is not here).
 */
import type { OptionSpec } from './option-spec.js';

interface TrlName {
  names: readonly string[];
  /** Only where the key means what TRL's name means (output_dir names a folder, not --output FILE). */
  when?(spec: Pick<OptionSpec, 'arg' | 'group'>): boolean;
}

const TRL_NAMES: Readonly<Record<string, TrlName>> = {
  model: { names: ['model_name_or_path'] },
  output: { names: ['output_dir'], when: (s) => s.arg === 'dir' },
  overwriteOutput: { names: ['overwrite_output_dir'] },
  resume: { names: ['resume_from_checkpoint'] },
  learningRate: { names: ['lr'] },
  batchSize: { names: ['per_device_train_batch_size'], when: (s) => s.group === 'optimisation' },
  numEpochs: { names: ['num_train_epochs'] },
  lrScheduler: { names: ['lr_scheduler_type'] },
  optimizer: { names: ['optim'] },
  fDivergence: { names: ['f_divergence_type'] },
  syncRefEvery: { names: ['ref_model_sync_steps'] },
  syncRefAlpha: { names: ['ref_model_mixup_alpha'] },
  lora: { names: ['use_peft'] },
  initKlCoef: { names: ['kl_coef'] },
  ppoEpochs: { names: ['num_ppo_epochs'] },
  rewardModel: { names: ['reward_model_path'] },
  numSamples: { names: ['num_return_sequences'] },
};

const snake = (flag: string): string => flag.replace(/-/g, '_');
const kebab = (flag: string): string => flag.replace(/_/g, '-');

/** The TRL / transformers names of a flag's key, as written in TRL's docs (shown in help). */
export function trlNamesOf(spec: Pick<OptionSpec, 'key' | 'arg' | 'group'>): readonly string[] {
  const t = TRL_NAMES[spec.key];
  return t && (!t.when || t.when(spec)) ? t.names : [];
}

/**
 * Every other name a flag answers to (without dashes): its snake_case spelling and its key's
 * TRL names in both spellings; `taken` names (another option's) are left out.
 */
export function flagAliases(flag: string, spec: Pick<OptionSpec, 'key' | 'arg' | 'group'>, taken: ReadonlySet<string> = new Set()): string[] {
  const names = [snake(flag), ...trlNamesOf(spec).flatMap((n) => [n, kebab(n)])];
  return [...new Set(names)].filter((n) => n !== flag && !taken.has(n));
}
