/**
 * CPOTrainer: Contrastive Preference Optimization (Xu et al. 2024) and, by loss type, SimPO
 * (Meng et al. 2024) and AlphaPO (Gupta et al. 2025), with TRL CPOTrainer's options, defaults and
 * metric names. Reference-free: loss = mean over pairs of the loss type's term on the policy's
 * log-probs (token-mean for ipo, simpo, alphapo; shaped by `alpha` for every type, as TRL) +
 * cpoAlpha x the chosen completions' NLL (none for alphapo, as TRL's CPOConfig).
 * SimPO proper is `lossType: 'simpo', cpoAlpha: 0`.
 */
import { z } from 'zod';
import * as op from '../engine/ops.js';
import { option, parseConfig, type ConfigDefinition } from './config.js';
import { CPO_LOSS_TYPES, cpoLoss, LENGTH_NORMALISED_CPO_TYPES } from './reference-free-losses.js';
import { ReferenceFreeOptionsSchema, ReferenceFreeTrainer, type ReferenceFreeObjective, type ReferenceFreeTrainerOptions } from './reference-free-trainer.js';
import type { CPOConfigDocs } from './config-docs.js';

export const CPOConfigSchema = ReferenceFreeOptionsSchema.extend({
  beta: option(z.number().positive().default(0.1), 'temperature beta of the preference term'),
  lossType: option(z.enum(CPO_LOSS_TYPES).default('sigmoid'), 'preference term (ipo, simpo and alphapo compare token-mean log-probs)', 'type'),
  labelSmoothing: option(z.number().min(0).lt(0.5).default(0), 'label smoothing eps of sigmoid, simpo and alphapo', 'eps'),
  cpoAlpha: option(z.number().min(0).default(1), "weight of the chosen completions' NLL term (0 with simpo: SimPO proper; alphapo sets it to 0, as TRL)", 'alpha'),
  simpoGamma: option(z.number().default(0.5), 'target reward margin gamma of simpo and alphapo', 'gamma'),
  alpha: option(z.number().default(0), "AlphaPO's reward shape alpha, applied to every loss type as TRL: each side's reward is (1 - p^-alpha) / alpha of its probability p (token-mean for ipo, simpo, alphapo; 0 = log p)"),
}).strict();

/** CPO config as given (defaults not yet filled); each key's doc comment is its help (config-docs.ts). */
export type CPOConfigInput = z.input<typeof CPOConfigSchema> & CPOConfigDocs;
export type CPOConfig = z.output<typeof CPOConfigSchema>;

export const CPO_CONFIG: ConfigDefinition<typeof CPOConfigSchema> = { schema: CPOConfigSchema };

export function parseCpoConfig(input: unknown, source = 'config'): CPOConfig {
  return parseConfig(CPO_CONFIG, input, source);
}

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
