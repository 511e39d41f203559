/**
 * DPOConfig: every option of `dpo train`, with TRL's defaults (the shared TrainingOptionsSchema
 * plus DPO's loss, reference and packing keys), and EvalConfig, the options of `dpo eval`
 * ({@link evaluatePreferences}): its data and loss keys, plus `model`.
 */
import { z } from 'zod';
import { DpoError } from '../../errors.js';
import type { ScoredLayout, ScoringOptions } from '../../scoring/sequence-logps.js';
import { defineConfig, option, PairBatchShape, ScoredBatchShape, TrainingOptionsSchema } from '../core/config.js';
import { F_DIVERGENCE_TYPES, F_DIVERGENCES, LABEL_SMOOTHING_TYPES, LOSS_TYPE_ALIASES, LOSS_TYPES, type CombinedLossOptions, type LossType, type LossTypeAlias } from './losses.js';
import type { DPOConfigDocs, EvalConfigDocs } from '../core/config-docs.js';

/** Every name `lossType` accepts, typed, so that a misspelt loss type does not compile. */
const LOSS_TYPE_NAMES = [...LOSS_TYPES, ...(Object.keys(LOSS_TYPE_ALIASES) as LossTypeAlias[])] as [LossType | LossTypeAlias, ...(LossType | LossTypeAlias)[]];
const resolveLossType = (t: LossType | LossTypeAlias): LossType => (t in LOSS_TYPE_ALIASES ? LOSS_TYPE_ALIASES[t as LossTypeAlias] : (t as LossType));

/** The loss options `dpo train` and `dpo eval` share. */
const DpoLossShape = {
  beta: option(z.number().positive().default(0.1), 'DPO temperature beta (strength of the KL constraint)'),
  lossType: option(
    z
      .array(z.enum(LOSS_TYPE_NAMES).transform(resolveLossType))
      .nonempty()
      .default(['sigmoid']),
    `loss type(s), comma-separated (${Object.entries(LOSS_TYPE_ALIASES).map(([a, t]) => `${a} = ${t}`).join(', ')})`,
    'types',
  ),
  lossWeights: option(z.array(z.number()).nonempty().optional(), 'one weight per --loss-type, comma-separated (default 1 each)', 'weights'),
  /** alpha of loss type 'unlikelihood' (the DPO paper's coefficient on the unlikelihood term). */
  unlikelihoodAlpha: option(z.number().min(0).default(1), "weight of the rejected completion's unlikelihood term (loss type unlikelihood)", 'alpha'),
  labelSmoothing: option(
    z.number().min(0).lt(0.5).default(0),
    `label smoothing eps, used by ${LABEL_SMOOTHING_TYPES.join(', ')} (sigmoid: conservative DPO); the other loss types ignore it`,
    'eps',
  ),
  referenceFree: option(z.boolean().default(false), 'no reference model (log pi_ref = 0)'),
  refModel: option(z.string().min(1).optional(), 'reference model (default: the starting policy)', 'path'),
  discopopTau: option(z.number().positive().optional(), "discopop's temperature tau (default 0.05)", 'tau'),
  fDivergence: option(
    z.enum(F_DIVERGENCES).default('reverse_kl'),
    `f-DPO: the divergence of the pair logit f'(u_w) - f'(u_l), u = pi/pi_ref (used by ${F_DIVERGENCE_TYPES.join(', ')}; reverse_kl is DPO)`,
    'name',
  ),
  fAlphaDivergenceCoef: option(
    z.number().optional(),
    "alpha of --f-divergence alpha_divergence, TRL >= 0.29's: f'(u) = (u^(alpha-1) - 1)/(alpha - 1); default 0.5, 1 = reverse_kl, 0 = forward_kl (TRL <= 0.28's alpha is 1 minus this)",
    'alpha',
  ),
  ldAlpha: option(z.number().min(0).max(1).optional(), "LD-DPO: the policy's tokens past the pair's shorter completion count alpha times (1 = DPO); the reference's do not, as TRL <= 0.28 (TRL >= 0.29 weights them too)", 'alpha'),
  useWeighting: option(z.boolean().default(false), "WPO: weight each pair's loss by its completions' probability under the policy (no gradient), capped at 1 as TRL <= 0.28 (TRL >= 0.29 does not cap)"),
  rpoAlpha: option(z.number().min(0).optional(), "RPO: add alpha x the chosen completions' token-mean NLL to the loss (TRL's rpo_alpha)", 'alpha'),
};

export const DPOConfigSchema = TrainingOptionsSchema.extend({
  ...DpoLossShape,
  ...ScoredBatchShape,
  ...PairBatchShape,
  reference: option(
    z.enum(['precompute', 'live']).default('precompute'),
    'reference log-probs computed once and cached, or by a frozen copy every step',
    'mode',
  ),
  syncRefEvery: option(z.number().int().min(0).default(0), 'TR-DPO: update the reference every n steps (needs --reference live)'),
  syncRefAlpha: option(z.number().min(0).max(1).default(0.6), 'TR-DPO: pi_ref <- alpha pi + (1 - alpha) pi_ref', 'alpha'),
}).strict();

/** DPO config as given (defaults not yet filled); each key's doc comment is its help (core/config-docs.ts). */
export type DPOConfigInput = z.input<typeof DPOConfigSchema> & DPOConfigDocs;
export type DPOConfig = z.output<typeof DPOConfigSchema>;

/** The loss keys of DPOConfig and EvalConfig. */
export type DpoLossKeys = z.output<z.ZodObject<typeof DpoLossShape>>;

/** The loss functions' options from a config's loss keys. */
export function lossOptionsOf(c: DpoLossKeys): CombinedLossOptions {
  return {
    beta: c.beta,
    labelSmoothing: c.labelSmoothing,
    unlikelihoodAlpha: c.unlikelihoodAlpha,
    lossTypes: c.lossType,
    lossWeights: c.lossWeights,
    discopopTau: c.discopopTau,
    fDivergence: c.fDivergence,
    fAlphaDivergenceCoef: c.fAlphaDivergenceCoef,
    rpoAlpha: c.rpoAlpha,
  };
}

/** What the policy's scoring graph must compute besides log-probs (LD-DPO, WPO). */
export function scoringOptionsOf(c: DpoLossKeys): ScoringOptions {
  return { ...(c.ldAlpha !== undefined ? { ldAlpha: c.ldAlpha } : {}), ...(c.useWeighting ? { wpo: true } : {}) };
}

/** How a config's batches of rows with K completions go through the model: prefix sharing needs K >= 2. */
export function scoredLayoutOf(c: { prefixSharing: DPOConfig['prefixSharing']; paddingFree?: boolean }, K: number): ScoredLayout {
  return { packed: c.paddingFree === true, prefixSharing: K >= 2 ? c.prefixSharing : 'off' };
}

function checkLossKeys(c: DpoLossKeys, source: string): void {
  if (c.lossWeights && c.lossWeights.length !== c.lossType.length) {
    throw new DpoError(`${source}: lossWeights has ${c.lossWeights.length} values for ${c.lossType.length} loss types`);
  }
  if (c.referenceFree && c.refModel) throw new DpoError(`${source}: referenceFree and refModel exclude each other`);
  if (c.discopopTau !== undefined && !c.lossType.includes('discopop')) throw new DpoError(`${source}: discopopTau is the discopop loss type's; add discopop to lossType`);
  if (c.fAlphaDivergenceCoef !== undefined && c.fDivergence !== 'alpha_divergence') {
    throw new DpoError(`${source}: fAlphaDivergenceCoef is alpha_divergence's; set fDivergence: alpha_divergence`);
  }
}

export const DPO_CONFIG = defineConfig(DPOConfigSchema, {
  check(c, source) {
    checkLossKeys(c, source);
    if (c.syncRefEvery > 0 && c.reference !== 'live' && !c.lora) {
      throw new DpoError(`${source}: syncRefEvery (TR-DPO) updates the reference during training; set reference: live`);
    }
    if (c.syncRefEvery > 0 && c.lora) throw new DpoError(`${source}: syncRefEvery (TR-DPO) does not combine with LoRA (the reference is the frozen base)`);
  },
});

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export const parseDpoConfig: (input: unknown, source?: string) => DPOConfig = DPO_CONFIG.parse;

/** The options of {@link evaluatePreferences}: the data and loss keys of DPOConfig, plus `model`. */
export const EvalConfigSchema = z
  .object({
    model: option(z.string().min(1), 'the policy: a Hugging Face model folder or hub id (org/name[@revision])', 'path'),
    data: TrainingOptionsSchema.shape.data,
    ...TrainingOptionsSchema.pick({ format: true, maxLength: true, maxPromptLength: true, maxCompletionLength: true, truncationMode: true, onBadRow: true, batchSize: true }).shape,
    ...DpoLossShape,
    ...PairBatchShape,
    ...TrainingOptionsSchema.pick({ threads: true, device: true }).shape,
    /** Return per-example results (in input order). */
    perExample: z.boolean().default(false),
  })
  .strict();

/** Eval config as given (defaults not yet filled); each key's doc comment is its help (core/config-docs.ts). */
export type EvalConfigInput = z.input<typeof EvalConfigSchema> & EvalConfigDocs;
export type EvalConfig = z.output<typeof EvalConfigSchema>;

export const EVAL_CONFIG = defineConfig(EvalConfigSchema, { source: 'eval', check: checkLossKeys });

/** Validates and fills defaults; a problem becomes one DpoError naming the key. */
export const parseEvalConfig: (input: unknown, source?: string) => EvalConfig = EVAL_CONFIG.parse;
