/**
 * Trainers of reference-free preference objectives on pairs (CPO and its SimPO / AlphaPO
 * variants, ORPO): no reference model and no reference pass, only the policy's log-probs of the
 * chosen and rejected completions plus the chosen completions' NLL. Each objective is a config
 * definition and a loss on [B] log-probs; loading, the step, the loop, metrics (TRL's names:
 * rewards/* = beta x the policy's log-probs, logps/*, logits/*, nll_loss, and the objective's
 * own), evaluation and saving are shared here and in runner.ts.
 */
import { z } from 'zod';
import { collatePreferences, type PreferenceBatch } from '../../data/collate.js';
import type { TokenizedPreference } from '../../data/tokenize.js';
import type { Graph, Tensor } from '../../engine/graph.js';
import * as op from '../../engine/ops.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { LossBuild } from '../../engine/train-step.js';
import { DpoError } from '../../errors.js';
import type { DropoutSites } from '../../models/dropout.js';
import type { ModelParams } from '../../models/linear.js';
import type { Pretrained } from '../../models/pretrained.js';
import type { CausalLM } from '../../models/types.js';
import { parseConfig, type ConfigDefinition } from '../core/config.js';
import type { EvalGraph, TrainingOptions } from '../core/loop.js';
import { MetricsAccumulator } from '../core/metrics.js';
import { savePolicy } from '../core/policy.js';
import { preparePreferenceSplit } from '../core/prepare-split.js';
import type { ProgressReporter } from '../../progress.js';
import { guardedRun, loadPolicy, resumeOptions, runTrainer, TrainerBase, trainingDropout, type StopOptions, type TrainerResult } from '../core/runner.js';
import { declareScoredInputs, scoredFeeds, sequenceLogps, type ScoredLayout } from '../../scoring/sequence-logps.js';
import type { PrefixSharing } from '../../data/pack.js';
import type { DataSource } from '../../data/read.js';

/** What makes one reference-free trainer. */
export interface ReferenceFreeObjective<C extends PairOptions> {
  /** Trainer kind, part of the resume digest ('cpo', 'orpo'). */
  kind: string;
  /** Whether the loss compares token-mean log-probs (TRL's average_log_prob). */
  lengthNormalised(c: C): boolean;
  /**
   * The batch loss from [B] chosen / rejected log-probs and the chosen completions' token-mean
   * NLL (a scalar), with extra per-row [B] metric outputs named as TRL's metrics.
   */
  loss(c: C, chosen: Tensor, rejected: Tensor, nll: Tensor): { loss: Tensor; metrics?: Record<string, Tensor> };
  /** Config keys (besides the shared ones) a resumed run must share. */
  resumeKeys: readonly (keyof C & string)[];
  /** The reward of a log-prob when it is not the log-prob itself (rewards/* = beta x it, as TRL). */
  reward?(c: C): ((logp: number) => number) | undefined;
}

/** What every reference-free pair trainer's config has: the shared options, beta, and how pairs go through the model. */
type PairOptions = TrainingOptions & { beta: number; prefixSharing: PrefixSharing };

/** Pairs padded, each pair's prompt shared by its completions when `prefixSharing` says so. */
const layoutOf = (c: PairOptions): ScoredLayout => ({ prefixSharing: c.prefixSharing });

const SHARED_RESUME_KEYS = ['model', 'data', 'batchSize', 'gradientAccumulationSteps', 'optimizer', 'seed', 'lora', 'maxLength', 'beta'] as const;

const row = (t: Tensor, k: number): Tensor => op.squeeze(op.slice(t, 0, k, k + 1), 0);

/**
 * The step's graph: per-sequence log-probs of the 2B sequences (chosen first), token-mean when
 * the objective says so, the chosen NLL, the objective's loss; outputs policy_logps, logit_sums,
 * nll_loss and the objective's metrics.
 */
export function buildReferenceFreeLoss<C extends PairOptions>(
  g: Graph,
  model: CausalLM,
  params: ModelParams,
  objective: ReferenceFreeObjective<C>,
  c: C,
  dropout?: DropoutSites,
): LossBuild {
  const scores = sequenceLogps(model, params, declareScoredInputs(g, 'float32', layoutOf(c)), dropout);
  const lengths = g.input('completion_lengths', 'float32', ['sequences']);
  const logps = objective.lengthNormalised(c) ? op.div(scores.logps, op.maximum(lengths, 1)) : scores.logps;
  const byRow = (t: Tensor): Tensor => op.reshape(t, [2, -1]);
  const nll = op.div(op.neg(op.sum(row(byRow(scores.logps), 0))), op.maximum(op.sum(row(byRow(lengths), 0)), 1));
  const { loss, metrics = {} } = objective.loss(c, row(byRow(logps), 0), row(byRow(logps), 1), nll);
  const outputs: Record<string, Tensor> = { policy_logps: op.stopGradient(logps), logit_sums: scores.logitSums, nll_loss: op.stopGradient(nll) };
  for (const [name, t] of Object.entries(metrics)) outputs[`metric:${name}`] = op.stopGradient(t);
  return { loss, outputs };
}

function batchFeeds(batch: PreferenceBatch, layout: ScoredLayout): Record<string, HostTensor> {
  return { ...scoredFeeds(batch, layout), completion_lengths: { data: Float32Array.from(batch.completionLengths), dims: [batch.numSequences] } };
}

/** Adds one batch's step outputs to TRL's metrics. */
function record(acc: MetricsAccumulator, batch: PreferenceBatch, o: Record<string, HostTensor>, beta: number, reward?: (logp: number) => number): void {
  const B = batch.batchSize;
  const policyLogps = o.policy_logps.data as Float32Array;
  acc.addBatch(
    { rows: B, completions: 2, policyLogps, logitSums: o.logit_sums.data as Float32Array, lengths: batch.completionLengths, ...(reward ? { rewards: Array.from(policyLogps, reward) } : {}) },
    beta,
  );
  acc.add('nll_loss', Number(o.nll_loss.data[0]), B);
  for (const [name, t] of Object.entries(o)) {
    if (!name.startsWith('metric:')) continue;
    for (const v of t.data as Float32Array) acc.add(name.slice('metric:'.length), v);
  }
}

/** Pairs of `path`; rankings of more than two completions are an error. */
async function preparePairs(path: DataSource, c: TrainingOptions, progress: ProgressReporter, label: string, tokenizer: Parameters<typeof preparePreferenceSplit>[1]): Promise<TokenizedPreference[]> {
  const rows = await preparePreferenceSplit(path, tokenizer, c, progress, label);
  const ranked = rows.find((r) => r.completionIds.length !== 2);
  if (ranked) throw new DpoError(`${ranked.origin.file}:${ranked.origin.line}: a ranking of ${ranked.completionIds.length} completions; this trainer takes pairs (chosen, rejected)`);
  return rows;
}

/** Trains `objective` with config `c` (already validated), its output checked and locked first. */
export async function trainReferenceFree<C extends PairOptions>(
  objective: ReferenceFreeObjective<C>,
  c: C,
  progress: ProgressReporter,
  preloaded?: Pretrained,
  stopRequested?: () => boolean,
): Promise<TrainerResult> {
  const keys = [...SHARED_RESUME_KEYS, ...objective.resumeKeys] as (keyof C & string)[];
  return guardedRun(c, `dpo ${objective.kind}`, resumeOptions(c, keys, objective.kind), progress, [], (digest) => trainLocked(objective, c, digest, progress, preloaded, stopRequested));
}

async function trainLocked<C extends PairOptions>(
  objective: ReferenceFreeObjective<C>,
  c: C,
  digest: string,
  progress: ProgressReporter,
  preloaded?: Pretrained,
  stopRequested?: () => boolean,
): Promise<TrainerResult> {
  const { pretrained, tokenizer, policy, maxLength } = await loadPolicy(c, progress, preloaded);
  const sized = { ...c, maxLength };
  const train = await preparePairs(c.data, sized, progress, 'train', tokenizer);
  const evalRows = c.evalData ? await preparePairs(c.evalData, sized, progress, 'eval', tokenizer) : undefined;
  const dropout = trainingDropout(c);
  const acc = new MetricsAccumulator();
  const reward = objective.reward?.(c);
  return runTrainer({
    config: c,
    progress,
    params: policy,
    loss: (g, weights) => buildReferenceFreeLoss(g, policy.model, weights, objective, c, dropout),
    rows: train,
    padTokenId: tokenizer.padTokenId,
    digest,
    stopRequested,
    hooks: ({ evalGraph }) => ({
      feeds: (batches) => batches.map((b) => batchFeeds(b, layoutOf(c))),
      record: (batch, o) => record(acc, batch, o, c.beta, reward),
      flush: () => acc.flush(),
      evaluate: evalRows ? async (params) => evaluatePairs(await evalGraph(), evalRows, params, c, tokenizer.padTokenId, progress, reward) : undefined,
      saveFinal: async (params) => {
        await savePolicy(c.output, c.model, pretrained, policy, params);
        progress.log(`saved the model to ${c.output}`);
      },
      progressInfo: (m, lastLoss) => ({ loss: m.loss ?? lastLoss, acc: m['rewards/accuracies'] ?? 0, margin: m['rewards/margins'] ?? 0 }),
    }),
  });
}

/** eval_* metrics: the loss graph run forward over `rows` in batches. */
async function evaluatePairs(
  graph: EvalGraph,
  rows: readonly TokenizedPreference[],
  params: ReadonlyMap<string, Float32Array>,
  c: PairOptions,
  padTokenId: number,
  progress: ProgressReporter,
  reward?: (logp: number) => number,
): Promise<Record<string, number>> {
  const acc = new MetricsAccumulator();
  progress.start('eval', rows.length);
  for (let s = 0; s < rows.length; s += c.batchSize) {
    const batch = collatePreferences(rows.slice(s, s + c.batchSize), { padTokenId, padToMultipleOf: c.padToMultipleOf });
    const out = await graph.run(batchFeeds(batch, layoutOf(c)), params);
    acc.add('loss', Number(out.loss.data[0]), batch.batchSize);
    record(acc, batch, out, c.beta, reward);
    progress.update(Math.min(s + c.batchSize, rows.length));
  }
  progress.stop();
  return acc.flush('eval_');
}

export interface ReferenceFreeTrainerOptions extends StopOptions {
  /** An already loaded model (skips loading `config.model`). */
  model?: Pretrained;
  /** Progress and messages (default: a bar on a terminal, plain lines otherwise, on stderr). */
  progress?: ProgressReporter;
}

/** A trainer of one reference-free objective: validates its config once, trains on `train()`. */
export class ReferenceFreeTrainer<S extends z.ZodObject, C extends z.output<S> & PairOptions> extends TrainerBase<C> {
  constructor(
    private readonly objective: ReferenceFreeObjective<C>,
    definition: ConfigDefinition<S>,
    config: z.input<S> | C,
    private readonly options: ReferenceFreeTrainerOptions = {},
  ) {
    super(parseConfig(definition, config) as C, options);
  }

  train(): Promise<TrainerResult> {
    return trainReferenceFree(this.objective, this.config, this.progress, this.options.model, () => this.stop.stopped);
  }
}
