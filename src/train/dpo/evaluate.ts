/**
 * Evaluation of a policy against a reference on preference data: TRL's eval_* metrics, and
 * optionally per-example log-probs, implicit rewards and losses. `evaluatePreferences` is what
 * `dpo eval` runs; `evaluateRows` is shared with DPOTrainer's evaluation during training.
 */
import type { PreferenceBatch } from '../../data/collate.js';
import { collatePreferences } from '../../data/collate.js';
import { preparePreferenceData } from '../../data/prepare.js';
import type { TokenizeStats, TokenizedPreference } from '../../data/tokenize.js';
import type { PreferenceFormat } from '../../data/types.js';
import { DpoError } from '../../errors.js';
import type { TextTokenizer } from '../../io/tokenizer-types.js';
import { loadModelOrAdapter } from '../../models/load-model.js';
import { fitToContext } from '../../models/context-limit.js';
import type { Pretrained } from '../../models/pretrained.js';
import { lossOptionsOf, parseEvalConfig, scoredLayoutOf, scoringOptionsOf, type EvalConfig, type EvalConfigInput } from './config.js';
import type { CombinedLossOptions, LossType } from './losses.js';
import { reportPreparedData } from '../core/data-report.js';
import { MetricsAccumulator } from '../core/metrics.js';
import { createProgress, type ProgressReporter } from '../../progress.js';
import { compileRowLoss } from './row-loss.js';
import { Scorer, type BatchScores } from '../../scoring/scorer.js';
import { wpoRowWeightsOf, type ScoringOptions } from '../../scoring/sequence-logps.js';
import { dataSourceName } from '../../data/read.js';

export { EvalConfigSchema, parseEvalConfig, type EvalConfig, type EvalConfigInput } from './config.js';

/**
 * One row's results. For pairs every field is a number; for rankings (K > 2 completions, best
 * first) the `rejected` fields are arrays of the K - 1 lower-ranked completions' values.
 * Reference fields are null for reference-free evaluation.
 */
export interface PerExampleResult {
  policy_chosen_logps: number;
  policy_rejected_logps: number | number[];
  reference_chosen_logps: number | null;
  reference_rejected_logps: number | number[] | null;
  chosen_reward: number;
  rejected_reward: number | number[];
  loss: number;
}

export interface EvaluateRowsOptions {
  rows: readonly TokenizedPreference[];
  batchSize: number;
  padTokenId: number;
  /** Policy log-probs of a batch. */
  scorePolicy(batch: PreferenceBatch): Promise<BatchScores>;
  /**
   * Reference log-probs of a batch (n = k*B + i), undefined when reference-free. `indices` are
   * the batch's row indices; `policy` is the policy's scores of the same batch.
   */
  reference(batch: PreferenceBatch, indices: readonly number[], policy: BatchScores): Promise<Float64Array | undefined>;
  loss: CombinedLossOptions;
  /** What `scorePolicy`'s scorer computes besides log-probs (LD-DPO, WPO); the losses use it. */
  scoring?: ScoringOptions;
  referenceFree: boolean;
  perExample?: boolean;
  progress?: ProgressReporter;
  label?: string;
}

export interface EvaluateRowsResult {
  /** eval_loss, eval_rewards/*, eval_logps/*, eval_logits/*. */
  metrics: Record<string, number>;
  perExample?: PerExampleResult[];
}

/** Throws a DpoError when a loss type cannot train on rows of K completions. */
export function checkLossTypesForCompletions(lossTypes: readonly LossType[], K: number): void {
  if (K === 2) return;
  const bad = lossTypes.filter((t) => t !== 'sigmoid' && t !== 'sft');
  if (bad.length) {
    throw new DpoError(`loss type ${bad.map((t) => `'${t}'`).join(', ')} needs pairs; rankings of ${K} completions use 'sigmoid' (Plackett-Luce) or 'sft'`);
  }
}

/** Scores `rows` in order, in batches, and averages TRL's metrics with an `eval_` prefix. */
export async function evaluateRows(o: EvaluateRowsOptions): Promise<EvaluateRowsResult> {
  const K = o.rows[0]?.completionIds.length ?? 2;
  const beta = o.loss.beta;
  const lossGraph = await compileRowLoss(o.loss, K, o.referenceFree, { policySums: o.scoring?.ldAlpha !== undefined, rowWeights: o.scoring?.wpo });
  const acc = new MetricsAccumulator();
  const perExample: PerExampleResult[] | undefined = o.perExample ? [] : undefined;
  try {
    o.progress?.start(o.label ?? 'eval', o.rows.length);
    for (let start = 0; start < o.rows.length; start += o.batchSize) {
      const indices = o.rows.slice(start, start + o.batchSize).map((_, i) => start + i);
      const batch = collatePreferences(indices.map((i) => o.rows[i]), { padTokenId: o.padTokenId });
      const scores = await o.scorePolicy(batch);
      const ref = await o.reference(batch, indices, scores);
      // LD-DPO: the losses and TRL's logps/* metrics see the length-desensitised log-probs.
      const logps = scores.ldLogps ?? scores.logps;
      const rowWeights = scores.wpoLogWeightSums ? wpoRowWeightsOf(scores.wpoLogWeightSums, batch.completionLengths, K) : undefined;
      const losses = await lossGraph.rowLosses(logps, ref, batch.completionLengths, K, { policySums: scores.logps, rowWeights, logUnlikelihood: scores.logUnlikelihood });
      for (const l of losses) acc.add('loss', l);
      acc.addBatch(
        { rows: batch.batchSize, completions: K, policyLogps: logps, referenceLogps: ref, logitSums: scores.logitSums, lengths: batch.completionLengths },
        beta,
      );
      if (perExample) {
        const B = batch.batchSize;
        for (let i = 0; i < B; i++) {
          const policy = Array.from({ length: K }, (_, k) => logps[k * B + i]);
          const reference = ref ? Array.from({ length: K }, (_, k) => ref[k * B + i]) : undefined;
          const rewards = policy.map((p, k) => beta * (p - (reference ? reference[k] : 0)));
          const rest = <T>(a: T[]): T | T[] => (K === 2 ? a[1] : a.slice(1));
          perExample.push({
            policy_chosen_logps: policy[0],
            policy_rejected_logps: rest(policy),
            reference_chosen_logps: reference ? reference[0] : null,
            reference_rejected_logps: reference ? rest(reference) : null,
            chosen_reward: rewards[0],
            rejected_reward: rest(rewards),
            loss: losses[i],
          });
        }
      }
      o.progress?.update(Math.min(start + o.batchSize, o.rows.length));
    }
    o.progress?.stop();
    return { metrics: acc.flush('eval_'), perExample };
  } finally {
    await lossGraph.release();
  }
}

export interface EvaluatePreferencesOptions {
  /** An already loaded policy (skips loading `config.model`). */
  policy?: Pretrained;
  /** An already loaded reference (skips loading `config.refModel`). */
  reference?: Pretrained;
  /** Progress and messages (default: on stderr). */
  progress?: ProgressReporter;
}

export interface EvaluatePreferencesResult {
  /** eval_* metrics (TRL's names), plus eval_rows, eval_runtime, eval_samples_per_second. */
  metrics: Record<string, number>;
  /** Rows evaluated. */
  rows: number;
  /** What data preparation kept, dropped and skipped. */
  stats: TokenizeStats;
  /** One result per evaluated row, in input order (when `perExample` is set). */
  perExample?: PerExampleResult[];
}

/**
 * Evaluates `model` as a DPO policy on preference data against `refModel` (default: the model
 * itself, so rewards are 0 and the sigmoid loss is ln 2 — a baseline for a later checkpoint).
 */
export async function evaluatePreferences(config: EvalConfigInput | EvalConfig, options: EvaluatePreferencesOptions = {}): Promise<EvaluatePreferencesResult> {
  const c = parseEvalConfig(config);
  const progress = options.progress ?? createProgress();
  const runtime = { threads: c.threads, executionProvider: c.device };
  const policy = options.policy ?? (await loadModelOrAdapter(c.model));
  const maxLength = fitToContext(c.maxLength, policy.model);
  if (!policy.tokenizer) throw new DpoError(`${policy.dir}: no tokenizer.json; a tokenizer is needed to read text data`);
  const tokenizer: TextTokenizer = policy.tokenizer;
  const data = await preparePreferenceData(c.data, tokenizer, {
    format: c.format as PreferenceFormat | 'auto',
    onBadRow: c.onBadRow,
    maxLength,
    maxPromptLength: c.maxPromptLength,
    maxCompletionLength: c.maxCompletionLength,
    truncationMode: c.truncationMode,
  });
  reportPreparedData(progress, 'eval', data, maxLength);
  if (data.rows.length === 0) throw new DpoError(`${dataSourceName(c.data)}: no usable rows`);
  const K = data.rows[0].completionIds.length;
  if (data.rows.some((r) => r.completionIds.length !== K)) {
    const odd = data.rows.find((r) => r.completionIds.length !== K) as TokenizedPreference;
    throw new DpoError(`${odd.origin.file}:${odd.origin.line}: has ${odd.completionIds.length} completions but earlier rows have ${K}; all rows must have the same number`);
  }
  checkLossTypesForCompletions(c.lossType, K);

  const shapesOf = (p: Pretrained): Map<string, readonly number[]> => new Map(p.model.parameters().map((q) => [q.name, q.shape] as const));
  const policyShapes = shapesOf(policy);
  const refPretrained = c.referenceFree ? undefined : options.reference ?? (c.refModel ? await loadModelOrAdapter(c.refModel, { tokenizer: false }) : undefined);
  const scoring = scoringOptionsOf(c);
  // Each row's prompt once for its K completions (--prefix-sharing), for the policy and the reference.
  const layout = scoredLayoutOf(c, K);
  const scorer = await Scorer.create(policy.model, policy.model.parameters(), runtime, undefined, { ...scoring, ...layout });
  const refScorer = refPretrained ? await Scorer.create(refPretrained.model, refPretrained.model.parameters(), runtime, undefined, layout) : undefined;
  const refShapes = refPretrained ? shapesOf(refPretrained) : undefined;
  const started = Date.now();
  try {
    const r = await evaluateRows({
      rows: data.rows,
      batchSize: c.batchSize,
      padTokenId: tokenizer.padTokenId,
      scorePolicy: (batch) => scorer.score(batch, policy.weights, policyShapes),
      reference: async (batch, _indices, own) => {
        if (c.referenceFree) return undefined;
        if (!refScorer || !refPretrained) return own.logps; // the model is its own reference
        return (await refScorer.score(batch, refPretrained.weights, refShapes as Map<string, readonly number[]>)).logps;
      },
      loss: lossOptionsOf(c),
      scoring,
      referenceFree: c.referenceFree,
      perExample: c.perExample,
      progress,
    });
    const seconds = (Date.now() - started) / 1000;
    const metrics = {
      ...r.metrics,
      eval_rows: data.rows.length,
      eval_runtime: seconds,
      eval_samples_per_second: data.rows.length / Math.max(seconds, 1e-9),
    };
    return { metrics, rows: data.rows.length, stats: data.stats, perExample: r.perExample };
  } finally {
    await scorer.release();
    await refScorer?.release();
  }
}

/** @deprecated The former name of {@link evaluatePreferences}. */
export const evaluateDpo = evaluatePreferences;
/** @deprecated The former name of {@link EvaluatePreferencesOptions}. */
export type EvaluateDpoOptions = EvaluatePreferencesOptions;
/** @deprecated The former name of {@link EvaluatePreferencesResult}. */
export type EvaluateDpoResult = EvaluatePreferencesResult;
