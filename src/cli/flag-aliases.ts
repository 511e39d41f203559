/**
 * The names users type from TRL / transformers (`--lr`, `--per_device_train_batch_size`,
 * `--num_train_epochs`, `--output_dir`...), accepted as hidden aliases of our flags, by config
 * key. Every flag also takes its snake_case spelling (`--learning_rate`), as transformers'
 * HfArgumentParser takes both spellings; the names here are the ones that differ in more than
 * the separator. Only names with the same meaning are listed (TRL's disable_dropout is the
 * opposite of --keep-dropout, so it is not here).
 */
const TRL_NAMES: Readonly<Record<string, readonly string[]>> = {
  model: ['model_name_or_path'],
  output: ['output_dir'],
  overwriteOutput: ['overwrite_output_dir'],
  resume: ['resume_from_checkpoint'],
  learningRate: ['lr'],
  batchSize: ['per_device_train_batch_size'],
  numEpochs: ['num_train_epochs'],
  lrScheduler: ['lr_scheduler_type'],
  optimizer: ['optim'],
  fDivergence: ['f_divergence_type'],
  syncRefEvery: ['ref_model_sync_steps'],
  syncRefAlpha: ['ref_model_mixup_alpha'],
  lora: ['use_peft'],
  initKlCoef: ['kl_coef'],
  ppoEpochs: ['num_ppo_epochs'],
  rewardModel: ['reward_model_path'],
  numSamples: ['num_return_sequences'],
};

const snake = (flag: string): string => flag.replace(/-/g, '_');
const kebab = (flag: string): string => flag.replace(/_/g, '-');

/** The TRL / transformers names of a config key, as written in TRL's docs (shown in help). */
export function trlNamesOf(key: string): readonly string[] {
  return TRL_NAMES[key] ?? [];
}

/**
 * Every other name a flag answers to (without dashes): its snake_case spelling and the key's
 * TRL names in both spellings; `taken` flags (another option's) are left out.
 */
export function flagAliases(flag: string, key: string, taken: ReadonlySet<string> = new Set()): string[] {
  const names = [snake(flag), ...trlNamesOf(key).flatMap((n) => [n, kebab(n)])];
  return [...new Set(names)].filter((n) => n !== flag && !taken.has(n));
}
