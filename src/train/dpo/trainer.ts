/**
 * DPOTrainer: fine-tunes a causal LM on preference data with Direct Preference Optimization,
 * with the options, defaults and metric names of TRL's DPOTrainer.
 *
 * Flow: load policy (and reference) -> read, validate and tokenize the data -> reference
 * log-probs (precomputed and cached, or live) -> compile one training step -> loop: batches ->
 * step -> metrics.jsonl + progress -> checkpoints -> final model in Hugging Face layout.
 */
import type { PreferenceBatch } from '../../data/collate.js';
import type { TokenizedPreference } from '../../data/tokenize.js';
import type { HostTensor } from '../../engine/runtime.js';
import type { TextTokenizer } from '../../io/tokenizer-types.js';
import { loadPretrained, type Pretrained } from '../../models/pretrained.js';
import { lossOptionsOf, parseDpoConfig, scoredLayoutOf, scoringOptionsOf, type DPOConfig, type DPOConfigInput } from './config.js';
import { checkLossTypesForCompletions, evaluateRows } from './evaluate.js';
import { preparePreferenceSplit } from '../core/prepare-split.js';
import { LABEL_SMOOTHING_TYPES, type CombinedLossOptions } from './losses.js';
import { MetricsAccumulator } from '../core/metrics.js';
import { savePolicy, type Policy } from '../core/policy.js';
import type { ProgressReporter } from '../../progress.js';
import { guardedRun, loadPolicy, resumeOptions, runTrainer, TrainerBase, trainingDropout, type StopOptions, type TrainerResult } from '../core/runner.js';
import { precomputeReferenceLogps, stoppedBeforeTraining } from '../../scoring/reference-cache.js';
import { Scorer } from '../../scoring/scorer.js';
import { scoredFeeds, tokenWeightsFeed, type ScoredLayout } from '../../scoring/sequence-logps.js';
import { buildDpoLoss } from './loss-graph.js';

export { buildDpoLoss } from './loss-graph.js';
import type { DataSource } from '../../data/read.js';

export interface DPOTrainerOptions extends StopOptions {
  /**
   * An already loaded policy (skips loading `config.model`). Trained in place: when train()
   * resolves, `policy.weights` holds the trained weights (with LoRA, the base weights stay as they
   * were and the adapters are saved). Pass a copy to keep the original.
   */
  policy?: Pretrained;
  /** Progress and messages (default: a bar on a terminal, plain lines otherwise, on stderr). */
  progress?: ProgressReporter;
}

/** What `train()` resolves to: the output folder, steps, last metrics, final eval metrics, whether Ctrl-C stopped it. */
export type TrainResult = TrainerResult;

interface PreparedSplit {
  rows: TokenizedPreference[];
  /** [rows][K] reference log-probs, undefined when reference-free or live. */
  reference?: Float64Array;
}

/** A reference model that scores batches during training (reference 'live', TR-DPO). */
interface LiveReference {
  scorer: Scorer;
  weights: Map<string, Float32Array>;
  shapes: Map<string, readonly number[]>;
}

export class DPOTrainer extends TrainerBase<DPOConfig> {
  constructor(config: DPOConfigInput | DPOConfig, private readonly options: DPOTrainerOptions = {}) {
    super(parseDpoConfig(config), options);
  }

  private lossOptions(): CombinedLossOptions {
    return lossOptionsOf(this.config);
  }

  /**
   * How batches go through the policy's and the reference's forward: padded or padding-free, and
   * with K >= 2 completions per row the prompt shared by them (--prefix-sharing; off for K = 1).
   */
  private layout(): ScoredLayout {
    return scoredLayoutOf(this.config, this.completions);
  }

  /** K, completions per row, once the data is read. */
  private completions = 2;

  /** Trains (see the module comment); --output is checked and locked before any work. */
  async train(): Promise<TrainResult> {
    return guardedRun(this.config, 'dpo train', resumeOptions(this.config, DPO_RESUME_KEYS), this.progress, [this.config.refModel], (digest) => this.trainLocked(digest));
  }

  private async trainLocked(digest: string): Promise<TrainResult> {
    const c = this.config;
    const { pretrained, tokenizer, policy, maxLength } = await loadPolicy(c, this.progress, this.options.policy);
    const train = await this.prepare(c.data, tokenizer, 'train', maxLength);
    const evalSplit = c.evalData ? await this.prepare(c.evalData, tokenizer, 'eval', maxLength) : undefined;
    checkLossTypesForCompletions(c.lossType, train.rows[0].completionIds.length);
    this.completions = train.rows[0].completionIds.length;

    const live = await this.referenceFor(pretrained, policy, [train, ...(evalSplit ? [evalSplit] : [])], tokenizer);
    if (live === 'stopped') return stoppedBeforeTraining(c.output);
    const K = train.rows[0].completionIds.length;
    const lossOptions = this.lossOptions();
    const scoring = scoringOptionsOf(c);
    const dropout = trainingDropout(c);
    const ignored = c.labelSmoothing > 0 ? c.lossType.filter((t) => !LABEL_SMOOTHING_TYPES.includes(t)) : [];
    if (ignored.length) this.progress.log(`warning: label smoothing is ignored by loss type ${ignored.join(', ')}`);
    const acc = new MetricsAccumulator();
    const references = new WeakMap<PreferenceBatch, Float64Array | undefined>();
    try {
      return await runTrainer({
        config: c,
        progress: this.progress,
        params: policy,
        loss: (g, weights) => buildDpoLoss(g, policy.model, weights, lossOptions, K, c.referenceFree, dropout, this.layout(), scoring),
        rows: train.rows,
        padTokenId: tokenizer.padTokenId,
        digest,
        stopRequested: () => this.stop.stopped,
        hooks: () => ({
          feeds: async (batches) => {
            const feeds: Record<string, HostTensor>[] = [];
            for (const batch of batches) {
              const ref = await this.batchReference(batch, batch.rowIndices ?? [], train, live, K);
              references.set(batch, ref);
              feeds.push(this.stepFeeds(batch, ref));
            }
            return feeds;
          },
          record: (batch, o) =>
            acc.addBatch(
              {
                rows: batch.batchSize,
                completions: batch.numCompletions,
                policyLogps: o.policy_logps.data as Float32Array,
                referenceLogps: references.get(batch),
                logitSums: o.logit_sums.data as Float32Array,
                lengths: batch.completionLengths,
              },
              c.beta,
            ),
          flush: () => acc.flush(),
          evaluate: evalSplit ? (params) => this.evaluateSplit(evalSplit, policy, params, live, K, tokenizer.padTokenId) : undefined,
          afterStep: (done, params) => {
            if (live && c.syncRefEvery > 0 && done % c.syncRefEvery === 0) syncReference(live, params, c.syncRefAlpha);
          },
          needsParamsAfter: (done) => live !== undefined && c.syncRefEvery > 0 && done % c.syncRefEvery === 0,
          saveFinal: async (params) => {
            await savePolicy(c.output, c.model, pretrained, policy, params, c);
            this.progress.log(`saved the model to ${c.output}`);
          },
          progressInfo: (m, lastLoss) => ({ loss: m.loss ?? lastLoss, acc: m['rewards/accuracies'] ?? 0, margin: m['rewards/margins'] ?? 0 }),
        }),
      });
    } finally {
      await live?.scorer.release();
    }
  }

  /** Reads, validates and tokenizes one data path, reporting what was skipped or cut. */
  private async prepare(path: DataSource, tokenizer: TextTokenizer, split: string, maxLength: number): Promise<PreparedSplit> {
    return { rows: await preparePreferenceSplit(path, tokenizer, { ...this.config, maxLength }, this.progress, split) };
  }

  /**
   * Fills `splits[i].reference` (precompute) or returns a live reference. The precomputed
   * reference is the policy's starting weights (LoRA: adapters off) or `refModel`.
   */
  private async referenceFor(pretrained: Pretrained, policy: Policy, splits: PreparedSplit[], tokenizer: TextTokenizer): Promise<LiveReference | undefined | 'stopped'> {
    const c = this.config;
    if (c.referenceFree) return undefined;
    const ref = c.refModel ? await loadPretrained(c.refModel, { tokenizer: false }) : pretrained;
    const shapes = new Map(ref.model.parameters().map((p) => [p.name, p.shape] as const));
    // LoRA: the base weights never change, so they are the reference without a copy.
    const weights = c.refModel || policy.lora || c.reference === 'precompute' ? ref.weights : copyWeights(ref.weights);
    if (c.reference === 'live') return { scorer: await Scorer.create(ref.model, ref.model.parameters(), this.runtime, undefined, this.layout()), weights, shapes };
    const logps = await precomputeReferenceLogps(
      { model: ref.model, weights },
      splits.map((s) => s.rows),
      { runtime: this.runtime, batchSize: c.batchSize, padTokenId: tokenizer.padTokenId, cacheDir: c.cacheDir, progress: this.progress, ...this.layout(), stopRequested: () => this.stop.stopped },
    );
    if (!logps) return 'stopped';
    splits.forEach((s, i) => (s.reference = logps[i]));
    return undefined;
  }

  private async batchReference(
    batch: PreferenceBatch,
    indices: readonly number[],
    split: PreparedSplit,
    live: LiveReference | undefined,
    K: number,
  ): Promise<Float64Array | undefined> {
    if (this.config.referenceFree) return undefined;
    if (live) return (await live.scorer.score(batch, live.weights, live.shapes)).logps;
    const B = indices.length;
    const out = new Float64Array(K * B);
    const ref = split.reference as Float64Array;
    indices.forEach((row, i) => {
      for (let k = 0; k < K; k++) out[k * B + i] = ref[row * K + k];
    });
    return out;
  }

  private stepFeeds(batch: PreferenceBatch, ref: Float64Array | undefined): Record<string, HostTensor> {
    const n = batch.numSequences;
    const feeds: Record<string, HostTensor> = {
      ...scoredFeeds(batch, this.layout()),
      completion_lengths: { data: Float32Array.from(batch.completionLengths), dims: [n] },
    };
    if (ref) feeds.ref_logps = { data: Float32Array.from(ref), dims: [n] };
    if (this.config.ldAlpha !== undefined) feeds.token_weights = tokenWeightsFeed(batch, this.config.ldAlpha);
    return feeds;
  }

  /** eval_* metrics of the current policy on a prepared split. */
  private async evaluateSplit(
    split: PreparedSplit,
    policy: Policy,
    params: ReadonlyMap<string, Float32Array>,
    live: LiveReference | undefined,
    K: number,
    padTokenId: number,
  ): Promise<Record<string, number>> {
    const c = this.config;
    const scoring = scoringOptionsOf(c);
    const scorer = await Scorer.create(policy.model, policy.specs, this.runtime, policy.transform, { ...scoring, ...this.layout() });
    try {
      const r = await evaluateRows({
        rows: split.rows,
        batchSize: c.batchSize,
        padTokenId,
        scorePolicy: (batch) => scorer.score(batch, params, policy.shapes),
        reference: (batch, indices) => this.batchReference(batch, indices, split, live, K),
        loss: this.lossOptions(),
        scoring,
        referenceFree: c.referenceFree,
        progress: this.progress,
      });
      return r.metrics;
    } finally {
      await scorer.release();
    }
  }
}

function copyWeights(w: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  return new Map([...w].map(([k, v]) => [k, Float32Array.from(v)]));
}

/** TR-DPO: pi_ref <- alpha pi + (1 - alpha) pi_ref. */
function syncReference(live: LiveReference, policy: ReadonlyMap<string, Float32Array>, alpha: number): void {
  for (const [name, ref] of live.weights) {
    const p = policy.get(name);
    if (!p) continue;
    for (let i = 0; i < ref.length; i++) ref[i] = alpha * p[i] + (1 - alpha) * ref[i];
  }
}

/** Options a resumed run must share with the run that wrote the checkpoint. */
const DPO_RESUME_KEYS = [
  'model', 'data', 'batchSize', 'gradientAccumulationSteps', 'optimizer', 'lossType', 'beta', 'seed', 'lora', 'maxLength',
] as const satisfies readonly (keyof DPOConfig)[];
