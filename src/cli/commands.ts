/**
 * Every `dpo` subcommand. To add one, write `src/cli/<name>.ts` exporting
 * `register(program, ctx)` (see context.ts) and list it here; order = order in `dpo --help`.
 */
import type { RegisterCommand } from './context.js';
import { register as train } from './train.js';
import { register as evaluate } from './eval.js';
import { register as sft } from './sft.js';
import { register as referenceFree } from './cpo.js';
import { register as kto } from './kto.js';
import { register as reward } from './reward.js';
import { register as ppo } from './ppo.js';
import { register as online } from './online.js';
import { register as generate } from './generate.js';
import { register as evaluatePolicy } from './evaluate.js';
import { register as quickstart } from './quickstart.js';
import { register as experiment } from './experiment.js';
import { register as exportModel } from './export.js';
import { register as models } from './models.js';
import { register as label } from './label.js';
import { register as judge } from './judge.js';

export const COMMANDS: readonly RegisterCommand[] = [
  train,
  evaluate,
  sft,
  referenceFree,
  kto,
  reward,
  ppo,
  online,
  generate,
  evaluatePolicy,
  quickstart,
  exportModel,
  models,
  label,
  judge,
  experiment,
];
