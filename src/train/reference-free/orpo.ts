/**
 * ORPOTrainer: Odds Ratio Preference Optimization (Hong et al. 2024), with TRL ORPOTrainer's
 * options, defaults and metric names. Reference-free and without an SFT stage: loss = the chosen
 * completions' NLL - beta x mean over pairs of log sigmoid(log odds(y_w) - log odds(y_l)), odds
 * of the token-mean probability. Extra metrics: log_odds_ratio (mean log sigmoid) and
 * log_odds_chosen (mean log odds ratio).
 */
import * as op from '../../engine/ops.js';
import { logSigmoid } from '../../engine/nn.js';
import { ORPO_CONFIG, type ORPOConfig, type ORPOConfigInput, type ORPOConfigSchema } from './config.js';
import { orpoLogOdds } from './losses.js';
import { ReferenceFreeTrainer, type ReferenceFreeObjective, type ReferenceFreeTrainerOptions } from './trainer.js';

export const ORPO_OBJECTIVE: ReferenceFreeObjective<ORPOConfig> = {
  kind: 'orpo',
  lengthNormalised: () => true,
  loss: (c, chosen, rejected, nll) => {
    const logOdds = orpoLogOdds(chosen, rejected);
    const ratio = logSigmoid(logOdds);
    return { loss: op.sub(nll, op.mul(op.mean(ratio), c.beta)), metrics: { log_odds_ratio: ratio, log_odds_chosen: logOdds } };
  },
  resumeKeys: [],
};

export type ORPOTrainerOptions = ReferenceFreeTrainerOptions;

export class ORPOTrainer extends ReferenceFreeTrainer<typeof ORPOConfigSchema, ORPOConfig> {
  constructor(config: ORPOConfigInput | ORPOConfig, options: ORPOTrainerOptions = {}) {
    super(ORPO_OBJECTIVE, ORPO_CONFIG, config, options);
  }
}
