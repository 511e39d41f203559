/**
 * KTOTrainer: Kahneman-Tversky Optimization (Ethayarajh et al. 2024) on unpaired data, with TRL
 * KTOTrainer's options, defaults and metric names.
 *
 * Data: prompt/completion/label rows, or preference files split into desirable (chosen) and
 * undesirable (rejected) examples. Each example x_i, y_i is scored with a mismatched completion
 * y_(i+1) of the next example (data order, as TRL's KL dataset) for the KL estimate
 * z = max(0, mean over the batch of log pi(y_(i+1)|x_i) - log pi_ref(y_(i+1)|x_i)), no gradient.
 * With r = log pi(y|x) - log pi_ref(y|x):
 *   kto:                desirable w_d (1 - sigmoid(beta (r - z))), undesirable w_u (1 - sigmoid(beta (z - r)))
 *   apo_zero_unpaired:  desirable w_d (1 - sigmoid(beta r)),       undesirable w_u sigmoid(beta r)
 * averaged over the batch's examples. Reference log-probs are precomputed and cached as for DPO.
 */
import { collatePreferences, type PreferenceBatch } from '../../data/collate.js';
import { loadKtoData } from '../../data/load.js';
import type { KtoExample, KtoFormat } from '../../data/kto-format.js';
import { tokenizePreferences, type TokenizedPreference, type TokenizeStats } from '../../data/tokenize.js';
import type { Graph, Tensor } from '../../engine/graph.js';
import * as op from '../../engine/ops.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { LossBuild, ParamData } from '../../engine/train-step.js';
import { DpoError } from '../../errors.js';
import type { TextTokenizer } from '../../io/tokenizer-types.js';
import type { DropoutSites } from '../../models/dropout.js';
import type { ModelParams } from '../../models/linear.js';
import { loadPretrained, type Pretrained } from '../../models/pretrained.js';
import type { CausalLM } from '../../models/types.js';
import { parseKtoConfig, type KTOConfig, type KTOConfigInput } from './config.js';
import { ktoKl, ktoLoss, type KtoLossOptions } from './loss.js';
import { reportPreparedData } from '../core/data-report.js';
import type { EvalGraph } from '../core/loop.js';
import { MetricsAccumulator } from '../core/metrics.js';
import { savePolicy } from '../core/policy.js';
import type { ProgressReporter } from '../../progress.js';
import { precomputeReferenceLogps, stoppedBeforeTraining } from '../../scoring/reference-cache.js';
import { guardedRun, loadPolicy, resumeOptions, runTrainer, runtimeOf, TrainerBase, trainingDropout, type StopOptions, type TrainerResult } from '../core/runner.js';
import { declareScoredInputs, scoredFeeds, sequenceLogps } from '../../scoring/sequence-logps.js';
import { dataSourceName, type DataSource } from '../../data/read.js';

const KTO_RESUME_KEYS = [
  'model', 'data', 'format', 'batchSize', 'gradientAccumulationSteps', 'optimizer', 'seed', 'lora', 'maxLength', 'beta', 'lossType', 'desirableWeight', 'undesirableWeight',
] as const satisfies readonly (keyof KTOConfig)[];

/**
 * The step's graph: sequences laid out [2, B] (row 0 the examples, row 1 their mismatched KL
 * completions), reference log-probs fed as `ref_logps`, labels as `kto_labels`.
 */
export function buildKtoLoss(g: Graph, model: CausalLM, params: ModelParams, o: KtoLossOptions, dropout?: DropoutSites): LossBuild {
  const scores = sequenceLogps(model, params, declareScoredInputs(g), dropout);
  const byRow = (t: Tensor): Tensor => op.reshape(t, [2, -1]);
  const row = (t: Tensor, k: number): Tensor => op.squeeze(op.slice(byRow(t), 0, k, k + 1), 0);
  const ref = g.input('ref_logps', 'float32', ['sequences']);
  const labels = g.input('kto_labels', 'float32', ['rows']);
  const policy = row(scores.logps, 0);
  const ratios = op.sub(policy, row(ref, 0));
  const kl = ktoKl(row(scores.logps, 1), row(ref, 1));
  // The [2, B] split's rows have a symbolic length of their own; the labels are those B rows.
  const loss = op.mean(ktoLoss(ratios, op.reshapeLike(labels, ratios), kl, o));
  return { loss, outputs: { policy_logps: op.stopGradient(policy), logit_sums: scores.logitSums, kl } };
}

/** A tokenized split: rows [example, KL completion] with each example's label. */
interface KtoSplit {
  rows: TokenizedPreference[];
  labels: Uint8Array;
  reference?: Float64Array;
}

/**
 * Tokenizes examples with their mismatched KL completion (the next example's, in data order); an
 * example too long for maxLength is dropped with its KL pair.
 */
export function tokenizeKto(examples: readonly KtoExample[], tokenizer: TextTokenizer, limits: Parameters<typeof tokenizePreferences>[2]): { split: KtoSplit; stats: TokenizeStats } {
  const rows: TokenizedPreference[] = [];
  const labels: number[] = [];
  let stats: TokenizeStats | undefined;
  examples.forEach((e, i) => {
    const next = examples[(i + 1) % examples.length];
    const t = tokenizePreferences([{ prompt: e.prompt, completions: [e.completion, next.completion], origin: e.origin, endsWithEndOfTurn: e.endsWithEndOfTurn }], tokenizer, limits);
    stats = stats ? (Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, v + t.stats[k as keyof TokenizeStats]])) as unknown as TokenizeStats) : t.stats;
    if (t.rows.length) {
      rows.push(t.rows[0]);
      labels.push(e.label ? 1 : 0);
    }
  });
  return { split: { rows, labels: Uint8Array.from(labels) }, stats: stats as TokenizeStats };
}

/** KTO's metrics: rewards/logps/logits of the desirable ("chosen") and undesirable ("rejected") examples, kl. */
class KtoMetrics {
  private readonly acc = new MetricsAccumulator();

  add(batch: PreferenceBatch, labels: ArrayLike<number>, policy: ArrayLike<number>, reference: ArrayLike<number>, logitSums: ArrayLike<number>, kl: number, beta: number, loss?: number): void {
    const B = batch.batchSize;
    for (let i = 0; i < B; i++) {
      const split = labels[i] ? 'chosen' : 'rejected';
      this.acc.add(`rewards/${split}`, beta * (policy[i] - reference[i]));
      this.acc.add(`logps/${split}`, policy[i]);
      this.acc.add(`logits/${split}`, logitSums[i] / Math.max(batch.completionLengths[i], 1), batch.completionLengths[i]);
    }
    this.acc.add('kl', kl);
    if (loss !== undefined) this.acc.add('loss', loss, B);
  }

  flush(prefix = ''): Record<string, number> {
    const m = this.acc.flush();
    const out: Record<string, number> = {};
    if (m.loss !== undefined) out[`${prefix}loss`] = m.loss;
    for (const key of ['rewards/chosen', 'rewards/rejected', 'logps/chosen', 'logps/rejected', 'logits/chosen', 'logits/rejected', 'kl']) {
      if (m[key] !== undefined) out[`${prefix}${key}`] = m[key];
    }
    if (m['rewards/chosen'] !== undefined && m['rewards/rejected'] !== undefined) out[`${prefix}rewards/margins`] = m['rewards/chosen'] - m['rewards/rejected'];
    return out;
  }
}

export interface KTOTrainerOptions extends StopOptions {
  /** An already loaded model (skips loading `config.model`). */
  model?: Pretrained;
  progress?: ProgressReporter;
}

export class KTOTrainer extends TrainerBase<KTOConfig> {
  constructor(config: KTOConfigInput | KTOConfig, private readonly options: KTOTrainerOptions = {}) {
    super(parseKtoConfig(config), options);
  }

  /** Trains (see the module comment); --output is checked and locked before any work. */
  train(): Promise<TrainerResult> {
    return guardedRun(this.config, 'dpo kto', resumeOptions(this.config, KTO_RESUME_KEYS, 'kto'), this.progress, [this.config.refModel], (digest) => this.trainLocked(digest));
  }

  private async trainLocked(digest: string): Promise<TrainerResult> {
    const c = this.config;
    const { pretrained, tokenizer, policy, maxLength } = await loadPolicy(c, this.progress, this.options.model);
    const train = await this.prepare(c.data, tokenizer, 'train', maxLength);
    const evalSplit = c.evalData ? await this.prepare(c.evalData, tokenizer, 'eval', maxLength) : undefined;
    const splits = [train, ...(evalSplit ? [evalSplit] : [])];
    const ref = c.refModel ? await loadPretrained(c.refModel, { tokenizer: false }) : pretrained;
    const logps = await precomputeReferenceLogps(
      ref,
      splits.map((s) => s.rows),
      { runtime: runtimeOf(c), batchSize: c.batchSize, padTokenId: tokenizer.padTokenId, cacheDir: c.cacheDir, progress: this.progress, stopRequested: () => this.stop.stopped },
    );
    if (!logps) return stoppedBeforeTraining(c.output);
    splits.forEach((s, i) => (s.reference = logps[i]));
    const lossOptions: KtoLossOptions = { lossType: c.lossType, beta: c.beta, desirableWeight: c.desirableWeight, undesirableWeight: c.undesirableWeight };
    const dropout = trainingDropout(c);
    const metrics = new KtoMetrics();
    return runTrainer({
      config: c,
      progress: this.progress,
      params: policy,
      loss: (g, weights) => buildKtoLoss(g, policy.model, weights, lossOptions, dropout),
      rows: train.rows,
      padTokenId: tokenizer.padTokenId,
      digest,
      stopRequested: () => this.stop.stopped,
      hooks: ({ evalGraph }) => ({
        feeds: (batches) => batches.map((b) => batchFeeds(b, train, b.rowIndices ?? [])),
        record: (batch, o) => {
          const { ref, labels } = referenceAndLabels(train, batch.rowIndices ?? []);
          metrics.add(batch, labels, o.policy_logps.data as Float32Array, ref, o.logit_sums.data as Float32Array, Number(o.kl.data[0]), c.beta);
        },
        flush: () => metrics.flush(),
        evaluate: evalSplit ? async (params) => this.evaluate(await evalGraph(), evalSplit, params, tokenizer.padTokenId) : undefined,
        saveFinal: async (params) => {
          await savePolicy(c.output, c.model, pretrained, policy, params);
          this.progress.log(`saved the model to ${c.output}`);
        },
        progressInfo: (m, lastLoss) => ({ loss: m.loss ?? lastLoss, kl: m.kl ?? 0, margin: m['rewards/margins'] ?? 0 }),
      }),
    });
  }

  private async prepare(path: DataSource, tokenizer: TextTokenizer, label: string, maxLength: number): Promise<KtoSplit> {
    const c = { ...this.config, maxLength };
    const loaded = await loadKtoData(path, { format: c.format as KtoFormat | 'auto', tokenizer, onBadRow: c.onBadRow });
    const { split, stats } = tokenizeKto(loaded.examples, tokenizer, {
      maxLength: c.maxLength,
      maxPromptLength: c.maxPromptLength,
      maxCompletionLength: c.maxCompletionLength,
      truncationMode: c.truncationMode,
    });
    reportPreparedData(this.progress, label, { stats: { ...stats, skippedBad: loaded.badRows.length }, badRows: loaded.badRows }, c.maxLength);
    if (split.rows.length === 0) throw new DpoError(`${dataSourceName(path)}: no usable rows`);
    const desirable = split.labels.reduce((s, v) => s + v, 0);
    this.progress.log(`${label}: ${desirable} desirable and ${split.rows.length - desirable} undesirable examples`);
    return split;
  }

  private async evaluate(graph: EvalGraph, split: KtoSplit, params: ReadonlyMap<string, ParamData>, padTokenId: number): Promise<Record<string, number>> {
    const c = this.config;
    const m = new KtoMetrics();
    this.progress.start('eval', split.rows.length);
    for (let s = 0; s < split.rows.length; s += c.batchSize) {
      const indices = split.rows.slice(s, s + c.batchSize).map((_, i) => s + i);
      const batch = collatePreferences(indices.map((i) => split.rows[i]), { padTokenId, padToMultipleOf: c.padToMultipleOf });
      const feeds = batchFeeds(batch, split, indices);
      const out = await graph.run(feeds, params);
      m.add(batch, feeds.kto_labels.data as Float32Array, out.policy_logps.data as Float32Array, feeds.ref_logps.data as Float32Array, out.logit_sums.data as Float32Array, Number(out.kl.data[0]), c.beta, Number(out.loss.data[0]));
      this.progress.update(Math.min(s + c.batchSize, split.rows.length));
    }
    this.progress.stop();
    return m.flush('eval_');
  }
}

/** Reference log-probs [2B] (examples, then their KL completions) and labels [B] of a batch's rows. */
function referenceAndLabels(split: KtoSplit, indices: readonly number[]): { ref: Float32Array; labels: Float32Array } {
  const B = indices.length;
  const ref = new Float32Array(2 * B);
  const labels = new Float32Array(B);
  const reference = split.reference as Float64Array;
  indices.forEach((row, i) => {
    ref[i] = reference[row * 2];
    ref[B + i] = reference[row * 2 + 1];
    labels[i] = split.labels[row];
  });
  return { ref, labels };
}

/** A batch's feeds: scored sequences, reference log-probs and labels of its rows. */
function batchFeeds(batch: PreferenceBatch, split: KtoSplit, indices: readonly number[]): Record<string, HostTensor> {
  const { ref, labels } = referenceAndLabels(split, indices);
  return { ...scoredFeeds(batch), ref_logps: { data: ref, dims: [ref.length] }, kto_labels: { data: labels, dims: [labels.length] } };
}
