/**
 * The DPO loss family as pure functions of per-sequence log-probabilities (graph tensors), with
 * TRL's `loss_type` names. Formulas: ../shared/docs/dpo.md. No function here sees a model.
 *
 * Notation: rc = log pi(y_w|x) - log pi_ref(y_w|x), rr likewise for y_l, d = rc - rr.
 */
import type { Tensor } from '../../engine/graph.js';
import * as op from '../../engine/ops.js';
import { logSigmoid, logSumExp } from '../../engine/nn.js';
import { smoothedSigmoid } from '../core/loss-terms.js';

export const LOSS_TYPES = [
  'sigmoid',
  'hinge',
  'ipo',
  'robust',
  'exo_pair',
  'bco_pair',
  'sppo_hard',
  'nca_pair',
  'apo_zero',
  'apo_down',
  'sigmoid_norm',
  'aot',
  'aot_unpaired',
  'discopop',
  'sft',
  'unlikelihood',
] as const;
export type LossType = (typeof LOSS_TYPES)[number];

/** Older names TRL still accepts, and the type they stand for. */
export const LOSS_TYPE_ALIASES = { aot_pair: 'aot_unpaired' } as const satisfies Readonly<Record<string, LossType>>;
/** The other names a config may give a loss type (TRL's). */
export type LossTypeAlias = keyof typeof LOSS_TYPE_ALIASES;

/** The loss types that use label smoothing (eps); the others ignore it. */
export const LABEL_SMOOTHING_TYPES: readonly LossType[] = ['sigmoid', 'robust', 'exo_pair', 'aot', 'aot_unpaired'];

/**
 * f-divergences of f-DPO (Wang et al. 2023, "Beyond Reverse KL"), TRL's f_divergence_type: the
 * pair's logit is f'(u_w) - f'(u_l) with u = pi/pi_ref. reverse_kl is DPO. alpha_divergence is
 * TRL's since 0.29 (the DPO refactor): f'(u) = (u^(alpha-1) - 1)/(alpha - 1), alpha default 0.5,
 * alpha 1 = reverse_kl, alpha 0 = forward_kl (TRL <= 0.28 and the f-DPO paper wrote
 * (1 - u^-alpha)/alpha, default 1: that alpha is 1 minus this one).
 */
export const F_DIVERGENCES = ['reverse_kl', 'forward_kl', 'js_divergence', 'alpha_divergence'] as const;
export type FDivergence = (typeof F_DIVERGENCES)[number];

/** The loss types whose pair logit is the f-divergence's (the others use log-ratios directly, as TRL). */
export const F_DIVERGENCE_TYPES: readonly LossType[] = ['sigmoid', 'hinge', 'ipo', 'robust', 'exo_pair'];

/** Per-sequence quantities, laid out [K, B]: completion k (0 = best) of row i at [k, i]. */
export interface SequenceLogps {
  /** Sum of completion-token log-probs under the policy. */
  policy: Tensor;
  /** The same under the reference; omitted for reference-free losses (treated as 0). */
  reference?: Tensor;
  /** Completion lengths in tokens (float). */
  lengths: Tensor;
  /**
   * Sum over the completion's tokens of log(1 - pi(y_t | x, y_<t)) under the policy ('unlikelihood'
   * needs it: a per-token quantity that the per-sequence sum in `policy` cannot give).
   */
  logUnlikelihood?: Tensor;
  /**
   * Plain sums of token log-probs when `policy` is length-desensitised (LD-DPO); the sft term
   * (and RPO) use these. Default: `policy`.
   */
  policySums?: Tensor;
  /** [B] WPO weight of each row (no gradient); every row's loss is scaled by it. */
  rowWeights?: Tensor;
}

export interface LossOptions {
  beta: number;
  /** eps of conservative DPO / robust / EXO / AOT. */
  labelSmoothing?: number;
  /** alpha of 'unlikelihood': weight of the rejected completion's unlikelihood term (default 1). */
  unlikelihoodAlpha?: number;
  /** DiscoPOP's temperature tau (TRL's default 0.05). */
  discopopTau?: number;
  /** The f-divergence of the pair logit (default reverse_kl, i.e. DPO). */
  fDivergence?: FDivergence;
  /** alpha of alpha_divergence (TRL's f_alpha_divergence_coef, default 0.5; 1 = reverse_kl, 0 = forward_kl). */
  fAlphaDivergenceCoef?: number;
}

/** exp with the exponent capped at log(float32 max), as TRL's cap_exp: no inf in the pair logit. */
const LOG_FLOAT32_MAX = Math.log(3.4028234663852886e38);
const capExp = (x: Tensor): Tensor => op.exp(op.minimum(x, LOG_FLOAT32_MAX));

/** TRL's default f_alpha_divergence_coef (since 0.29). */
export const DEFAULT_F_ALPHA_DIVERGENCE_COEF = 0.5;

/**
 * TRL's score of one side, f'(u) up to a constant that cancels in the pair, from its log-ratio
 * r = log u: r (reverse_kl), -e^-r (forward_kl), log sigmoid(r) (js_divergence, log 2 dropped),
 * e^((alpha-1) r)/(alpha-1) (alpha_divergence; r itself at alpha 1). The alpha exponent is capped
 * at 80 as TRL caps it in float32.
 */
export function fDivergenceScore(r: Tensor, options: LossOptions): Tensor {
  switch (options.fDivergence ?? 'reverse_kl') {
    case 'reverse_kl':
      return r;
    case 'js_divergence':
      return logSigmoid(r);
    case 'forward_kl':
      return op.neg(capExp(op.neg(r)));
    case 'alpha_divergence': {
      const a = options.fAlphaDivergenceCoef ?? DEFAULT_F_ALPHA_DIVERGENCE_COEF;
      if (Math.abs(a - 1) < 1e-6) return r;
      return op.div(op.exp(op.minimum(op.mul(r, a - 1), 80)), a - 1);
    }
  }
}

/** The pair logit f'(u_w) - f'(u_l) from the log-ratios rc = log u_w and rr = log u_l. */
export function fDivergenceLogits(rc: Tensor, rr: Tensor, options: LossOptions): Tensor {
  if ((options.fDivergence ?? 'reverse_kl') === 'reverse_kl') return op.sub(rc, rr);
  return op.sub(fDivergenceScore(rc, options), fDivergenceScore(rr, options));
}

/**
 * `x` [B] in ascending order along the batch, as a permutation of its elements (so each sorted
 * value's gradient reaches the element it came from). Ranks count the smaller elements, ties
 * broken by position; O(B^2), B being a batch.
 */
export function sortBatch(x: Tensor): Tensor {
  const v = op.stopGradient(x);
  const mine = op.unsqueeze(v, 1);
  const other = op.unsqueeze(v, 0);
  const idx = op.arange(x.graph, x.shape[0], 'int64', x);
  const earlier = op.less(op.unsqueeze(idx, 0), op.unsqueeze(idx, 1));
  const before = op.or(op.less(other, mine), op.and(op.equal(other, mine), earlier));
  const rank = op.sum(op.cast(before, 'int64'), 1);
  return op.scatterAdd(op.zerosLike(x), rank, x, 0);
}

const row = (t: Tensor, k: number): Tensor => op.squeeze(op.slice(t, 0, k, k + 1), 0);

/** log pi - log pi_ref for every sequence, [K, B]. */
export function logRatios(lp: SequenceLogps): Tensor {
  return lp.reference ? op.sub(lp.policy, lp.reference) : lp.policy;
}

/** Per-row loss [B] of a pairwise type (K = 2). */
export function pairLoss(type: Exclude<LossType, 'sft'>, lp: SequenceLogps, options: LossOptions): Tensor {
  const beta = options.beta;
  const eps = options.labelSmoothing ?? 0;
  const ratios = logRatios(lp);
  const rc = row(ratios, 0);
  const rr = row(ratios, 1);
  const d = op.sub(rc, rr);
  const bd = op.mul(d, beta);
  // The f-divergence logit of the types that use one (= d for reverse KL).
  const bf = F_DIVERGENCE_TYPES.includes(type) && (options.fDivergence ?? 'reverse_kl') !== 'reverse_kl' ? op.mul(fDivergenceLogits(rc, rr, options), beta) : bd;
  switch (type) {
    case 'sigmoid':
      return smoothedSigmoid(bf, eps);
    case 'hinge':
      return op.relu(op.sub(1, bf));
    case 'ipo': {
      const lc = row(lp.lengths, 0);
      const lr = row(lp.lengths, 1);
      // TRL: each side's f-divergence score divided by its completion length.
      const diff = op.sub(op.sub(op.div(fDivergenceScore(rc, options), lc), op.div(fDivergenceScore(rr, options), lr)), 1 / (2 * beta));
      return op.mul(diff, diff);
    }
    case 'robust':
      return op.div(op.add(op.mul(logSigmoid(bf), -(1 - eps)), op.mul(logSigmoid(op.neg(bf)), eps)), 1 - 2 * eps);
    case 'exo_pair': {
      // EXO needs 0 < eps < 1; TRL's recommended 1e-3 when none is given.
      const e = eps > 0 ? eps : 1e-3;
      const pos = op.mul(op.sigmoid(bf), op.sub(logSigmoid(bf), Math.log(1 - e)));
      const neg = op.mul(op.sigmoid(op.neg(bf)), op.sub(logSigmoid(op.neg(bf)), Math.log(e)));
      return op.add(pos, neg);
    }
    case 'bco_pair':
      return op.neg(op.add(logSigmoid(op.mul(rc, beta)), logSigmoid(op.mul(rr, -beta))));
    case 'sppo_hard': {
      const a = op.sub(rc, 1 / (2 * beta));
      const b = op.add(rr, 1 / (2 * beta));
      return op.add(op.mul(a, a), op.mul(b, b));
    }
    case 'nca_pair': {
      const c = op.mul(rc, beta);
      const r = op.mul(rr, beta);
      return op.neg(op.add(logSigmoid(c), op.mul(op.add(logSigmoid(op.neg(c)), logSigmoid(op.neg(r))), 0.5)));
    }
    case 'apo_zero':
      return op.add(op.sub(1, op.sigmoid(op.mul(rc, beta))), op.sigmoid(op.mul(rr, beta)));
    case 'apo_down':
      return op.add(op.sigmoid(op.mul(rc, beta)), op.sub(1, op.sigmoid(bd)));
    case 'sigmoid_norm': {
      const lc = row(lp.lengths, 0);
      const lr = row(lp.lengths, 1);
      return op.neg(logSigmoid(op.mul(op.sub(op.div(rc, lc), op.div(rr, lr)), beta)));
    }
    case 'unlikelihood':
      return unlikelihoodLoss(lp, options.unlikelihoodAlpha ?? 1);
    case 'aot': {
      // AOT (Melnyk et al. 2024): the policy's and the reference's log-odds each sorted over the batch.
      const policyOdds = op.sub(row(lp.policy, 0), row(lp.policy, 1));
      const refOdds = lp.reference ? op.sub(row(lp.reference, 0), row(lp.reference, 1)) : op.zerosLike(policyOdds);
      return smoothedSigmoid(op.mul(op.sub(sortBatch(policyOdds), sortBatch(refOdds)), beta), eps);
    }
    case 'aot_unpaired':
      // Chosen and rejected log-ratios sorted separately (TRL's aot_pair).
      return smoothedSigmoid(op.mul(op.sub(sortBatch(rc), sortBatch(rr)), beta), eps);
    case 'discopop': {
      // DiscoPOP (Chris Lu et al. 2024, eq. 5): logistic and exponential losses blended by sigmoid(logit / tau).
      const mix = op.sigmoid(op.div(bd, options.discopopTau ?? 0.05));
      return op.add(op.mul(op.neg(logSigmoid(bd)), op.sub(1, mix)), op.mul(op.exp(op.neg(bd)), mix));
    }
  }
}

/**
 * The DPO paper's Unlikelihood baseline (Welleck et al.'s token-level unlikelihood on the
 * rejected completion): -log pi(y_w|x) - alpha * sum_t log(1 - pi(y_l,t | x, y_l,<t)) per row.
 * It ignores the reference and beta.
 */
export function unlikelihoodLoss(lp: SequenceLogps, alpha: number): Tensor {
  if (!lp.logUnlikelihood) throw new Error("loss type 'unlikelihood' needs the per-sequence sums of log(1 - p) (SequenceLogps.logUnlikelihood)");
  return op.sub(op.neg(row(lp.policy, 0)), op.mul(row(lp.logUnlikelihood, 1), alpha));
}

/**
 * Plackett-Luce loss per row [B] for K ranked completions (best first):
 * -sum_k log( exp(r_k) / sum_{j>=k} exp(r_j) ) with r = beta * log-ratio. K = 2 is sigmoid DPO.
 */
export function plackettLuceLoss(lp: SequenceLogps, options: LossOptions): Tensor {
  const rewards = op.mul(logRatios(lp), options.beta);
  const k = rewards.shape[0];
  if (typeof k !== 'number' || k < 2) throw new Error(`Plackett-Luce needs a static K >= 2 completions, got ${k}`);
  let total: Tensor | undefined;
  for (let i = 0; i < k - 1; i++) {
    const term = op.sub(logSumExp(op.slice(rewards, 0, i), 0), row(rewards, i));
    total = total ? op.add(total, term) : term;
  }
  return total as Tensor;
}

/** Mean token negative log-likelihood of the best completion over the batch. */
export function sftLoss(lp: SequenceLogps): Tensor {
  return op.div(op.neg(op.sum(row(lp.policySums ?? lp.policy, 0))), op.maximum(op.sum(row(lp.lengths, 0)), 1));
}

export interface CombinedLossOptions extends LossOptions {
  lossTypes: readonly LossType[];
  /** One weight per loss type (default 1 each). */
  lossWeights?: readonly number[];
  /** RPO (Pang et al. 2024): adds rpoAlpha x the chosen completions' token-mean NLL. */
  rpoAlpha?: number;
}

/**
 * The batch loss: sum over types of weight * (mean over rows of the type's per-row loss).
 * With K > 2 completions, 'sigmoid' is the Plackett-Luce loss; other pairwise types need K = 2.
 */
export function preferenceLoss(lp: SequenceLogps, options: CombinedLossOptions): Tensor {
  const k = lp.policy.shape[0];
  const weights = options.lossWeights ?? options.lossTypes.map(() => 1);
  if (weights.length !== options.lossTypes.length) {
    throw new Error(`${weights.length} loss weights for ${options.lossTypes.length} loss types`);
  }
  // WPO: mean over rows of weight_i * loss_i; a batch-level term (sft) is scaled by the mean weight.
  const rowMean = (l: Tensor): Tensor => op.mean(lp.rowWeights ? op.mul(l, lp.rowWeights) : l);
  const batchTerm = (l: Tensor): Tensor => (lp.rowWeights ? op.mul(l, op.mean(lp.rowWeights)) : l);
  const terms: Tensor[] = options.lossTypes.map((type, i) => {
    let l: Tensor;
    if (type === 'sft') l = batchTerm(sftLoss(lp));
    else if (k === 2) l = rowMean(pairLoss(type, lp, options));
    else if (type === 'sigmoid') l = rowMean(plackettLuceLoss(lp, options));
    else throw new Error(`loss type '${type}' needs pairs; rankings of ${k} completions train with 'sigmoid' (Plackett-Luce)`);
    return weights[i] === 1 ? l : op.mul(l, weights[i]);
  });
  if (options.rpoAlpha) terms.push(op.mul(batchTerm(sftLoss(lp)), options.rpoAlpha));
  if (!terms.length) throw new Error('no loss type given');
  return terms.reduce((a, b) => op.add(a, b));
}

/**
 * Per-row losses [B] of the same combination (for evaluation and per-example output): pairwise
 * types as in training; 'sft' per row is the chosen completion's mean token NLL.
 */
export function preferenceLossPerRow(lp: SequenceLogps, options: CombinedLossOptions): Tensor {
  const k = lp.policy.shape[0];
  const weights = options.lossWeights ?? options.lossTypes.map(() => 1);
  const rowNll = (): Tensor => op.neg(op.div(row(lp.policySums ?? lp.policy, 0), op.maximum(row(lp.lengths, 0), 1)));
  const terms: Tensor[] = options.lossTypes.map((type, i) => {
    let l: Tensor;
    if (type === 'sft') l = rowNll();
    else if (k === 2) l = pairLoss(type, lp, options);
    else if (type === 'sigmoid') l = plackettLuceLoss(lp, options);
    else throw new Error(`loss type '${type}' needs pairs; rankings of ${k} completions train with 'sigmoid' (Plackett-Luce)`);
    return weights[i] === 1 ? l : op.mul(l, weights[i]);
  });
  if (options.rpoAlpha) terms.push(op.mul(rowNll(), options.rpoAlpha));
  if (!terms.length) throw new Error('no loss type given');
  const total = terms.reduce((a, b) => op.add(a, b));
  return lp.rowWeights ? op.mul(total, lp.rowWeights) : total;
}
