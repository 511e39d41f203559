/**
 * CPOTrainer: Contrastive Preference Optimization (Xu et al. 2024) and, by loss type, SimPO
 * (Meng et al. 2024) and AlphaPO (Gupta et al. 2025), with TRL CPOTrainer's options, defaults and
 * metric names. Reference-free: loss = mean over pairs of the loss type's term on the policy's
 * log-probs (token-mean for ipo, simpo, alphapo; shaped by `alpha` for every type, as TRL) +
 * cpoAlpha x the chosen completions' NLL (none for alphapo, as TRL's CPOConfig).
 * SimPO proper is `lossType: 'simpo', cpoAlpha: 0`.
 */
import * as op from '../../engine/ops.js';
import { CPO_CONFIG, type CPOConfig, type CPOConfigInput, type CPOConfigSchema } from './config.js';
import { cpoLoss, LENGTH_NORMALISED_CPO_TYPES } from './losses.js';
import { ReferenceFreeTrainer, type ReferenceFreeObjective, type ReferenceFreeTrainerOptions } from './trainer.js';

export const CPO_OBJECTIVE: ReferenceFreeObjective<CPOConfig> = {
  kind: 'cpo',
  lengthNormalised: (c) => LENGTH_NORMALISED_CPO_TYPES.includes(c.lossType),
  loss: (c, chosen, rejected, nll) => {
    const preference = op.mean(cpoLoss(chosen, rejected, c));
    const nllWeight = cpoNllWeight(c);
    return { loss: nllWeight ? op.add(preference, op.mul(nll, nllWeight)) : preference };
  },
  resumeKeys: ['lossType', 'cpoAlpha', 'simpoGamma', 'alpha'],
  // TRL logs beta x the AlphaPO-shaped rewards when alpha != 0.
  reward: (c) => (c.alpha === 0 ? undefined : (l) => (1 - Math.exp(-c.alpha * l)) / c.alpha),
};

/** The NLL term's weight: cpoAlpha, but 0 for alphapo (TRL's CPOConfig: alphapo = simpo with cpo_alpha 0). */
export function cpoNllWeight(c: Pick<CPOConfig, 'lossType' | 'cpoAlpha'>): number {
  return c.lossType === 'alphapo' ? 0 : c.cpoAlpha;
}

export type CPOTrainerOptions = ReferenceFreeTrainerOptions;

export class CPOTrainer extends ReferenceFreeTrainer<typeof CPOConfigSchema, CPOConfig> {
  constructor(config: CPOConfigInput | CPOConfig, options: CPOTrainerOptions = {}) {
    super(CPO_OBJECTIVE, CPO_CONFIG, config, options);
  }
}
