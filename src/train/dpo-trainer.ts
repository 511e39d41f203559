/**
 * DPOTrainer: fine-tunes a causal LM on preference data with Direct Preference Optimization,
 * with the options, defaults and metric names of TRL's DPOTrainer.
 *
 * Flow: load policy (and reference) -> read, validate and tokenize the data -> reference
 * log-probs (precomputed and cached, or live) -> compile one training step -> loop: batches ->
 * step -> metrics.jsonl + progress -> checkpoints -> final model in Hugging Face layout.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PreferenceBatcher } from '../data/batcher.js';
import type { PreferenceBatch } from '../data/collate.js';
import { preparePreferenceData } from '../data/prepare.js';
import type { PreferenceFormat } from '../data/types.js';
import type { TokenizedPreference } from '../data/tokenize.js';
import type { Graph, Tensor } from '../engine/graph.js';
import * as op from '../engine/ops.js';
import type { HostTensor, RuntimeOptions } from '../engine/runtime.js';
import { TrainStep } from '../engine/train-step.js';
import { DpoError } from '../errors.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';
import { saveLoraAdapter } from '../models/lora.js';
import { loadPretrained, savePretrained, type Pretrained } from '../models/pretrained.js';
import { findResumableCheckpoint, saveTrainingCheckpoint, type TrainerState } from './checkpoint.js';
import { parseDpoConfig, type DPOConfig, type DPOConfigInput } from './config.js';
import { checkLossTypesForCompletions, evaluateRows, reportPreparedData } from './evaluate.js';
import { preferenceLoss, type CombinedLossOptions } from './losses.js';
import { appendMetrics, MetricsAccumulator } from './metrics.js';
import { buildPolicy, type Policy } from './policy.js';
import { createProgress, type ProgressReporter } from './progress.js';
import { computeReferenceLogps, defaultCacheDir, weightsDigest } from './reference.js';
import { learningRateAt } from './schedule.js';
import { Scorer } from './scoring.js';
import { declareScoredInputs, scoredFeeds, sequenceLogps } from './sequence-logps.js';

export interface DPOTrainerOptions {
  /** An already loaded policy (skips loading `config.model`). */
  policy?: Pretrained;
  /** Progress and messages (default: a bar on a terminal, plain lines otherwise, on stderr). */
  progress?: ProgressReporter;
}

export interface TrainResult {
  output: string;
  steps: number;
  /** The last logged training metrics. */
  metrics: Record<string, number>;
  /** Eval metrics of the final evaluation, when eval data was given. */
  evalMetrics?: Record<string, number>;
  /** True when training stopped early on Ctrl-C (a checkpoint was saved). */
  interrupted: boolean;
}

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

export class DPOTrainer {
  readonly config: DPOConfig;
  private readonly progress: ProgressReporter;
  private stopRequested = false;

  constructor(config: DPOConfigInput | DPOConfig, private readonly options: DPOTrainerOptions = {}) {
    this.config = parseDpoConfig(config);
    this.progress = options.progress ?? createProgress();
  }

  /**
   * Asks a running `train()` to stop after the current step: it saves a checkpoint (as Ctrl-C
   * does) and resolves with `interrupted: true`; `resume` continues from there.
   */
  requestStop(): void {
    this.stopRequested = true;
  }

  private get runtime(): RuntimeOptions {
    return { threads: this.config.threads, executionProvider: this.config.device };
  }

  private lossOptions(): CombinedLossOptions {
    const c = this.config;
    return { beta: c.beta, labelSmoothing: c.labelSmoothing, lossTypes: c.lossType, lossWeights: c.lossWeights };
  }

  async train(): Promise<TrainResult> {
    const c = this.config;
    const log = (m: string): void => this.progress.log(m);
    const pretrained = this.options.policy ?? (await loadPretrained(c.model));
    const tokenizer = requireTokenizer(pretrained);
    if (pretrained.unexpectedKeys.length) log(`warning: ${c.model}: ignored ${pretrained.unexpectedKeys.length} unexpected checkpoint keys`);
    const policy = buildPolicy(pretrained.model, pretrained.weights, c.lora, c.seed);

    const train = await this.prepare(c.data, tokenizer, 'train');
    const evalSplit = c.evalData ? await this.prepare(c.evalData, tokenizer, 'eval') : undefined;
    checkLossTypesForCompletions(c.lossType, train.rows[0].completionIds.length);
    await mkdir(c.output, { recursive: true });

    // Reference log-probs.
    const live = await this.referenceFor(pretrained, policy, [train, ...(evalSplit ? [evalSplit] : [])], tokenizer);

    // The compiled step.
    const K = train.rows[0].completionIds.length;
    const lossOptions = this.lossOptions();
    const step = await TrainStep.create(
      policy.specs,
      (g, params) => this.buildLoss(g, policy, policy.transform ? policy.transform(g, params) : params, lossOptions, K),
      { name: c.optimizer, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm },
      this.runtime,
    );

    const batcher = new PreferenceBatcher(train.rows, {
      batchSize: c.batchSize,
      padTokenId: tokenizer.padTokenId,
      padToMultipleOf: c.padToMultipleOf,
      seed: c.seed,
      groupByLength: c.groupByLength,
    });
    const stepsPerEpoch = Math.max(1, Math.ceil(batcher.batchesPerEpoch / c.gradientAccumulationSteps));
    let totalSteps = c.maxSteps ?? Math.ceil(stepsPerEpoch * c.numEpochs);
    const digest = configDigest(c);
    let done = 0;
    const metricsFile = join(c.output, 'metrics.jsonl');
    if (c.resume) {
      const { dir, contents } = await findResumableCheckpoint(c.output, typeof c.resume === 'string' ? c.resume : undefined, log);
      if (contents.state.configDigest !== digest) {
        throw new DpoError(`resume: ${dir} was made with different training options (data, model, batch size, optimizer or loss)`);
      }
      step.restore(contents.weights, contents.optimizer, contents.state.step);
      batcher.restore(contents.state.batcher);
      done = contents.state.step;
      totalSteps = contents.state.totalSteps;
      log(`resumed from ${dir} at step ${done}`);
    } else {
      await writeFile(metricsFile, '');
    }

    const onSigint = (): void => {
      if (this.stopRequested) process.exit(130);
      this.stopRequested = true;
      log('interrupt: finishing this step, saving a checkpoint, then stopping (Ctrl-C again to quit at once)');
    };
    process.on('SIGINT', onSigint);
    const acc = new MetricsAccumulator();
    let lossSum = 0;
    let gradNormSum = 0;
    let stepsInWindow = 0;
    let tokens = 0;
    let windowStart = Date.now();
    let lastMetrics: Record<string, number> = {};
    let evalMetrics: Record<string, number> | undefined;
    const saveCheckpoint = async (): Promise<void> => {
      const state: TrainerState = { step: done, batcher: batcher.state(), totalSteps, configDigest: digest };
      const params = step.parameters();
      const trainable = new Map(policy.trainable.map((n) => [n, params.get(n) as Float32Array]));
      const dir = await saveTrainingCheckpoint(c.output, { state, weights: trainable, shapes: policy.shapes, optimizer: step.optimizerState().state });
      log(`saved ${dir}`);
    };
    try {
      this.progress.start('train', totalSteps);
      this.progress.update(done);
      while (done < totalSteps && !this.stopRequested) {
        const micro: Record<string, HostTensor>[] = [];
        const batches: { batch: PreferenceBatch; ref: Float64Array | undefined }[] = [];
        for (let m = 0; m < c.gradientAccumulationSteps; m++) {
          const pos = batcher.state();
          const indices = batcher.batchIndices(pos.epoch)[pos.index];
          const batch = batcher.next();
          const ref = await this.batchReference(batch, indices, train, live, K);
          batches.push({ batch, ref });
          micro.push(this.stepFeeds(batch, ref));
          tokens += batch.attentionMask.reduce((s, v) => s + v, 0);
        }
        const lr = learningRateAt(c.lrScheduler, c.learningRate, done, totalSteps, c.warmupSteps);
        const r = await step.step(micro, lr);
        done++;
        if (!Number.isFinite(r.loss)) throw new DpoError(`step ${done}: loss is ${r.loss}; lower the learning rate or check the data`);
        r.microOutputs.forEach((o, i) => {
          const { batch, ref } = batches[i];
          acc.addBatch(
            {
              rows: batch.batchSize,
              completions: batch.numCompletions,
              policyLogps: o.policy_logps.data as Float32Array,
              referenceLogps: ref,
              logitSums: o.logit_sums.data as Float32Array,
              lengths: batch.completionLengths,
            },
            c.beta,
          );
        });
        lossSum += r.loss;
        gradNormSum += r.gradNorm;
        stepsInWindow++;
        if (live && c.syncRefEvery > 0 && done % c.syncRefEvery === 0) syncReference(live, step.parameters(), c.syncRefAlpha);
        const epoch = done / stepsPerEpoch;
        if (done % c.loggingSteps === 0 || done === totalSteps) {
          const seconds = (Date.now() - windowStart) / 1000;
          lastMetrics = {
            loss: lossSum / stepsInWindow,
            ...acc.flush(),
            grad_norm: gradNormSum / stepsInWindow,
            learning_rate: lr,
            epoch,
            tokens_per_second: tokens / Math.max(seconds, 1e-9),
          };
          await appendMetrics(metricsFile, { step: done, ...lastMetrics });
          lossSum = gradNormSum = stepsInWindow = tokens = 0;
          windowStart = Date.now();
        }
        if (evalSplit && c.evalSteps && done % c.evalSteps === 0 && done < totalSteps) {
          evalMetrics = await this.evaluateSplit(evalSplit, policy, step.parameters(), live, K);
          await appendMetrics(metricsFile, { step: done, epoch, ...evalMetrics });
        }
        this.progress.update(done, {
          loss: lastMetrics.loss ?? r.loss,
          acc: lastMetrics['rewards/accuracies'] ?? 0,
          margin: lastMetrics['rewards/margins'] ?? 0,
        });
        if ((c.saveSteps && done % c.saveSteps === 0 && done < totalSteps) || this.stopRequested) await saveCheckpoint();
      }
      this.progress.stop();
      const interrupted = this.stopRequested;
      if (!interrupted) {
        if (evalSplit) {
          evalMetrics = await this.evaluateSplit(evalSplit, policy, step.parameters(), live, K);
          await appendMetrics(metricsFile, { step: done, epoch: done / stepsPerEpoch, ...evalMetrics });
        }
        await this.saveFinal(pretrained, policy, step.parameters());
        log(`saved the model to ${c.output}`);
      }
      return { output: c.output, steps: done, metrics: lastMetrics, evalMetrics, interrupted };
    } finally {
      process.off('SIGINT', onSigint);
      this.progress.stop();
      await step.release();
      await live?.scorer.release();
    }
  }

  /** Reads, validates and tokenizes one data path, reporting what was skipped or cut. */
  private async prepare(path: string, tokenizer: TextTokenizer, split: string): Promise<PreparedSplit> {
    const c = this.config;
    const data = await preparePreferenceData(path, tokenizer, {
      format: c.format as PreferenceFormat | 'auto',
      onBadRow: c.onBadRow,
      maxLength: c.maxLength,
      maxPromptLength: c.maxPromptLength,
      maxCompletionLength: c.maxCompletionLength,
      truncationMode: c.truncationMode,
    });
    reportPreparedData(this.progress, split, data, c.maxLength);
    if (data.rows.length === 0) throw new DpoError(`${path}: no usable rows`);
    return { rows: data.rows };
  }

  /**
   * Fills `splits[i].reference` (precompute) or returns a live reference. The precomputed
   * reference is the policy's starting weights (LoRA: adapters off) or `refModel`.
   */
  private async referenceFor(pretrained: Pretrained, policy: Policy, splits: PreparedSplit[], tokenizer: TextTokenizer): Promise<LiveReference | undefined> {
    const c = this.config;
    if (c.referenceFree) return undefined;
    const ref = c.refModel ? await loadPretrained(c.refModel, { tokenizer: false }) : pretrained;
    const shapes = new Map(ref.model.parameters().map((p) => [p.name, p.shape] as const));
    // LoRA: the base weights never change, so they are the reference without a copy.
    const weights = c.refModel || policy.lora || c.reference === 'precompute' ? ref.weights : copyWeights(ref.weights);
    const scorer = await Scorer.create(ref.model, ref.model.parameters(), this.runtime);
    if (c.reference === 'live') return { scorer, weights, shapes };
    const digest = weightsDigest(weights, ref.model.modelType);
    try {
      for (const split of splits) {
        this.progress.start('reference log-probs', split.rows.length);
        const r = await computeReferenceLogps({
          scorer,
          weights,
          shapes,
          rows: split.rows,
          batchSize: c.batchSize,
          padTokenId: tokenizer.padTokenId,
          cache: { dir: c.cacheDir ?? defaultCacheDir(), weightsDigest: digest },
          onProgress: (d) => this.progress.update(d),
        });
        this.progress.stop();
        if (r.fromCache) this.progress.log(`reference log-probs: reused ${r.cacheFile}`);
        split.reference = r.logps;
      }
    } finally {
      await scorer.release();
    }
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
      ...scoredFeeds(batch),
      completion_lengths: { data: Float32Array.from(batch.completionLengths), dims: [n] },
    };
    if (ref) feeds.ref_logps = { data: Float32Array.from(ref), dims: [n] };
    return feeds;
  }

  private buildLoss(g: Graph, policy: Policy, params: Record<string, Tensor>, options: CombinedLossOptions, K: number) {
    const inputs = declareScoredInputs(g);
    const scores = sequenceLogps(policy.model, params, inputs);
    const lengths = g.input('completion_lengths', 'float32', ['sequences']);
    const byRow = (t: Tensor): Tensor => op.reshape(t, [K, -1]);
    const reference = this.config.referenceFree ? undefined : byRow(g.input('ref_logps', 'float32', ['sequences']));
    const loss = preferenceLoss({ policy: byRow(scores.logps), reference, lengths: byRow(lengths) }, options);
    return { loss, outputs: { policy_logps: op.stopGradient(scores.logps), logit_sums: scores.logitSums } };
  }

  /** eval_* metrics of the current policy on a prepared split. */
  private async evaluateSplit(
    split: PreparedSplit,
    policy: Policy,
    params: ReadonlyMap<string, Float32Array>,
    live: LiveReference | undefined,
    K: number,
  ): Promise<Record<string, number>> {
    const c = this.config;
    const scorer = await Scorer.create(policy.model, policy.specs, this.runtime, policy.transform);
    try {
      const r = await evaluateRows({
        rows: split.rows,
        batchSize: c.batchSize,
        padTokenId: 0, // padding is masked out
        scorePolicy: (batch) => scorer.score(batch, params, policy.shapes),
        reference: (batch, indices) => this.batchReference(batch, indices, split, live, K),
        loss: this.lossOptions(),
        referenceFree: c.referenceFree,
        progress: this.progress,
      });
      return r.metrics;
    } finally {
      await scorer.release();
    }
  }

  private async saveFinal(pretrained: Pretrained, policy: Policy, params: ReadonlyMap<string, Float32Array>): Promise<void> {
    const c = this.config;
    if (policy.lora) {
      const adapters = new Map(policy.trainable.map((n) => [n, params.get(n) as Float32Array]));
      await saveLoraAdapter(c.output, { model: policy.model, adapters, config: policy.lora, baseModelNameOrPath: c.model });
      return;
    }
    const weights = new Map(policy.model.parameters().map((p) => [p.name, params.get(p.name) as Float32Array]));
    await savePretrained(c.output, { model: policy.model, weights, tokenizerDir: pretrained.dir, generationConfig: pretrained.generationConfig });
  }
}

function requireTokenizer(p: Pretrained): TextTokenizer {
  if (!p.tokenizer) throw new DpoError(`${p.dir}: no tokenizer.json; a tokenizer is needed to read text data`);
  return p.tokenizer;
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
function configDigest(c: DPOConfig): string {
  const keep = {
    model: c.model, data: c.data, batchSize: c.batchSize, gradientAccumulationSteps: c.gradientAccumulationSteps,
    optimizer: c.optimizer, lossType: c.lossType, beta: c.beta, seed: c.seed, lora: c.lora, maxLength: c.maxLength,
  };
  return createHash('sha256').update(JSON.stringify(keep)).digest('hex').slice(0, 16);
}
