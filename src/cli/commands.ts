/**
 * Every `dpo` subcommand. To add one, write `src/cli/<name>.ts` exporting
 * `register(program, ctx)` (see context.ts) and list it here; order = order in `dpo --help`.
 * Training commands are rows of the table in trainers.ts, listed here by name.
 */
import type { RegisterCommand } from './context.js';
import { trainerCommand } from './trainers.js';
import { register as evaluate } from './eval.js';
import { register as reward } from './reward.js';
import { register as generate } from './generate.js';
import { register as evaluatePolicy } from './evaluate.js';
import { register as quickstart } from './quickstart.js';
import { register as experiment } from './experiment.js';
import { register as exportModel } from './export.js';
import { register as models } from './models.js';
import { register as label } from './label.js';
import { register as studio } from './studio.js';
import { register as judge } from './judge.js';

export const COMMANDS: readonly RegisterCommand[] = [
  trainerCommand('train'),
  evaluate,
  trainerCommand('sft'),
  trainerCommand('cpo'),
  trainerCommand('orpo'),
  trainerCommand('kto'),
  reward,
  trainerCommand('ppo'),
  trainerCommand('online'),
  generate,
  evaluatePolicy,
  quickstart,
  exportModel,
  models,
  label,
  studio,
  judge,
  experiment,
];
