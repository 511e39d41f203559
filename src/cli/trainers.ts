/**
 * Every training command in one table: its name, one-line description, config definition,
 * flags, help examples and trainer class (loaded on use, so that --help and option errors answer
 * without loading ONNX Runtime). `registerTrainerCommand` gives each the same flags-from-schema,
 * --config, --print-config, signals and JSON summary; commands.ts places them in `dpo --help`.
 */
import type { Command } from 'commander';
import type { z } from 'zod';
import type { ConfigDefinition } from '../train/core/config.js';
import { DPO_CONFIG } from '../train/dpo/config.js';
import { SFT_CONFIG } from '../train/sft/config.js';
import { CPO_CONFIG, ORPO_CONFIG } from '../train/reference-free/config.js';
import { KTO_CONFIG } from '../train/kto/config.js';
import { REWARD_CONFIG } from '../train/reward/config.js';
import { PPO_CONFIG } from '../train/ppo/config.js';
import { ONLINE_DPO_CONFIG } from '../train/online/config.js';
import type { ProgressReporter } from '../progress.js';
import type { TrainerResult } from '../train/core/runner.js';
import type { CliContext, RegisterCommand } from './context.js';
import { TRAIN_OPTIONS } from './dpo-options.js';
import { TRAIN_EXAMPLES } from './train.js';
import { SFT_EXAMPLES, SFT_OPTIONS } from './sft.js';
import { CPO_EXAMPLES, CPO_OPTIONS, ORPO_EXAMPLES, ORPO_OPTIONS } from './cpo.js';
import { KTO_EXAMPLES, KTO_OPTIONS } from './kto.js';
import { REWARD_TRAIN_EXAMPLES, REWARD_TRAIN_OPTIONS } from './reward-train.js';
import { PPO_EXAMPLES, PPO_OPTIONS } from './ppo.js';
import { ONLINE_EXAMPLES, ONLINE_OPTIONS } from './online.js';
import { registerTrainerCommand, type TrainerCommand } from './trainer-command.js';

/** A trainer class as the table needs it: built from a validated config, trained to a result. */
type TrainerClass<C> = new (config: C, options: { progress: ProgressReporter; signal: AbortSignal }) => { train(): Promise<TrainerResult> };

/** One row of the table; `configFile` names the example config file of --config's help ('run' -> run.yaml or run.json). */
interface TrainerRow<S extends z.ZodObject> extends Omit<TrainerCommand<S>, 'label' | 'configFiles' | 'run' | 'name'> {
  /** 'train', or 'reward train' (a subcommand of `dpo reward`). */
  command: string;
  configFile: string;
  trainer(): Promise<TrainerClass<z.output<S>>>;
  /** Fields added to the JSON summary. */
  extra?(result: TrainerResult): Record<string, unknown>;
}

/** A table row as registerTrainerCommand takes it (the row's config type erased so that rows of every trainer share one list). */
function row<S extends z.ZodObject>(r: TrainerRow<S>): TrainerCommand<z.ZodObject> {
  return {
    name: r.command.split(' ').pop() as string,
    label: r.command,
    description: r.description,
    config: r.config as unknown as ConfigDefinition<z.ZodObject>,
    options: r.options,
    configFiles: `${r.configFile}.yaml or ${r.configFile}.json`,
    examples: r.examples,
    run: async (config, progress, signal) => {
      const Trainer = await r.trainer();
      const result = await new Trainer(config as z.output<S>, { progress, signal }).train();
      return { ...result, ...(r.extra ? { extra: r.extra(result) } : {}) };
    },
  };
}

export const TRAINER_COMMANDS: readonly TrainerCommand<z.ZodObject>[] = [
  row({
    command: 'train',
    description: 'fine-tune a causal LM on preference data with DPO (or a loss of its family)',
    config: DPO_CONFIG,
    options: TRAIN_OPTIONS,
    configFile: 'run',
    examples: TRAIN_EXAMPLES,
    trainer: async () => (await import('../train/dpo/trainer.js')).DPOTrainer,
  }),
  row({
    command: 'sft',
    description: 'supervised fine-tuning (maximum likelihood on completions), or Preferred-FT on a preference file',
    config: SFT_CONFIG,
    options: SFT_OPTIONS,
    configFile: 'sft',
    examples: SFT_EXAMPLES,
    trainer: async () => (await import('../train/sft/trainer.js')).SFTTrainer,
  }),
  row({
    command: 'cpo',
    description: 'reference-free preference training: CPO, SimPO (--loss-type simpo --cpo-alpha 0), AlphaPO',
    config: CPO_CONFIG,
    options: CPO_OPTIONS,
    configFile: 'cpo',
    examples: CPO_EXAMPLES,
    trainer: async () => (await import('../train/reference-free/cpo.js')).CPOTrainer,
  }),
  row({
    command: 'orpo',
    description: 'ORPO: SFT and preference alignment in one reference-free loss (NLL + odds-ratio term)',
    config: ORPO_CONFIG,
    options: ORPO_OPTIONS,
    configFile: 'orpo',
    examples: ORPO_EXAMPLES,
    trainer: async () => (await import('../train/reference-free/orpo.js')).ORPOTrainer,
  }),
  row({
    command: 'kto',
    description: 'KTO: align on unpaired desirable / undesirable completions (or split preference pairs)',
    config: KTO_CONFIG,
    options: KTO_OPTIONS,
    configFile: 'kto',
    examples: KTO_EXAMPLES,
    trainer: async () => (await import('../train/kto/trainer.js')).KTOTrainer,
  }),
  row({
    command: 'reward train',
    description: 'train a reward model (scalar head on the last token, Bradley-Terry loss) on preference data',
    config: REWARD_CONFIG,
    options: REWARD_TRAIN_OPTIONS,
    configFile: 'rm',
    examples: REWARD_TRAIN_EXAMPLES,
    trainer: async () => (await import('../train/reward/trainer.js')).RewardTrainer,
    extra: (r) => ('rewardOffset' in r && r.rewardOffset !== undefined ? { reward_offset: r.rewardOffset } : {}),
  }),
  row({
    command: 'ppo',
    description: 'RLHF with PPO: sample from the policy, reward, KL penalty, GAE, clipped updates (the DPO paper baseline)',
    config: PPO_CONFIG,
    options: PPO_OPTIONS,
    configFile: 'ppo',
    examples: PPO_EXAMPLES,
    trainer: async () => (await import('../train/ppo/trainer.js')).PPOTrainer,
  }),
  row({
    command: 'online',
    description: 'online DPO: sample two completions per prompt, rank them (reward model, scorer or LLM judge), DPO step',
    config: ONLINE_DPO_CONFIG,
    options: ONLINE_OPTIONS,
    configFile: 'online',
    examples: ONLINE_EXAMPLES,
    trainer: async () => (await import('../train/online/trainer.js')).OnlineDPOTrainer,
  }),
];

/** The table's command `label` ('train', 'reward train'), added under `parent`. */
export function registerTrainer(parent: Command, ctx: CliContext, label: string): Command {
  const t = TRAINER_COMMANDS.find((c) => c.label === label);
  if (!t) throw new Error(`no trainer command '${label}'`);
  return registerTrainerCommand(parent, ctx, t);
}

/** `dpo <label>` as an entry of commands.ts. */
export const trainerCommand =
  (label: string): RegisterCommand =>
  (program, ctx) =>
    void registerTrainer(program, ctx, label);
