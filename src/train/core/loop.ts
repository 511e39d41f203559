/**
 * The training loop the SFT and reward-model trainers share (and the DPO trainer's loop, which it
 * was extracted from, follows step for step): batches from a PreferenceBatcher -> one compiled
 * TrainStep per optimizer step (gradient accumulation over micro-batches) -> metrics.jsonl in
 * logging windows -> eval every `evalSteps` -> checkpoints every `saveSteps` and on Ctrl-C ->
 * resume from the newest checkpoint -> final eval and save.
 *
 * What differs between trainers comes in as hooks: the feeds of a step's micro-batches, what a
 * micro-batch's extra outputs add to the window's metrics, evaluation, and the final save.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PreferenceBatch } from '../../data/collate.js';
import { PreferenceBatcher, type BatcherState } from '../../data/batcher.js';
import type { TokenizedPreference } from '../../data/tokenize.js';
import { Graph, type Tensor } from '../../engine/graph.js';
import { CompiledGraph, type HostTensor, type RuntimeOptions } from '../../engine/runtime.js';
import type { LossBuild, ParamSpec, StepResult, TrainStep } from '../../engine/train-step.js';
import { DpoError } from '../../errors.js';
import { GenerationStopped } from '../../generate/types.js';
import { findResumableCheckpoint, type CheckpointExpectation, type TrainerState } from './checkpoint.js';
import { saveCheckpointKeeping, tidyCheckpoints } from './run-history.js';
import type { z } from 'zod';
import type { TrainingOptionsSchema } from './config.js';
import { appendMetrics } from './metrics.js';
import type { ProgressReporter } from '../../progress.js';
import { learningRateAt } from './schedule.js';
import type { ParamTransform } from '../../scoring/scorer.js';

/**
 * Where the loop's batches come from: a {@link PreferenceBatcher} over tokenized rows, or any
 * source with the same resumable position (online DPO's prompt batches, sampled in its feeds).
 */
export interface BatchSource<B> {
  /** Batches in one epoch. */
  readonly batchesPerEpoch: number;
  next(): B;
  state(): BatcherState;
  restore(s: BatcherState): void;
}

/** What a trainer plugs into {@link runTrainingLoop}. */
export interface LoopHooks<B = PreferenceBatch> {
  /**
   * Feeds of the micro-batches of one optimizer step (all of the step's batches are known);
   * `step` is the number of optimizer steps done before this one.
   */
  feeds(batches: readonly B[], step: number): Record<string, HostTensor>[] | Promise<Record<string, HostTensor>[]>;
  /** Adds one micro-batch's extra step outputs to the logging window. */
  record(batch: B, outputs: Record<string, HostTensor>): void;
  /** The window's trainer-specific metrics (placed after `loss`), then cleared. */
  flush(): Record<string, number>;
  /** eval_* metrics of the current parameters; omitted when there is no eval data. */
  evaluate?(params: ReadonlyMap<string, Float32Array>): Promise<Record<string, number>>;
  /** Writes the final model (not called when interrupted). */
  saveFinal(params: ReadonlyMap<string, Float32Array>): Promise<void>;
  /** Short numbers for the progress bar from the last logged metrics. */
  progressInfo(metrics: Record<string, number>, lastLoss: number): Record<string, number>;
  /** Runs after every optimizer step (e.g. TR-DPO's reference update). */
  afterStep?(done: number, params: ReadonlyMap<string, Float32Array>): void;
  /**
   * True when `afterStep(done)` (or the feeds of the next step) need the parameters right after
   * step `done`. With `stepsPerRun` > 1 a run of several steps ends there; elsewhere afterStep
   * is called after its run, with the parameters of the run's last step.
   */
  needsParamsAfter?(done: number): boolean;
}

export interface LoopSetup<B = PreferenceBatch> {
  config: LoopOptions;
  step: TrainStep;
  batcher: BatchSource<B>;
  /** Tokens a micro-batch put through the model (for tokens_per_second), read after its feeds were made. */
  tokens(batch: B): number;
  /** Names of the trainable parameters (what a checkpoint stores). */
  trainable: readonly string[];
  shapes: ReadonlyMap<string, readonly number[]>;
  /** Digest of the options a resumed run must share ({@link optionsDigest}). */
  digest: string;
  progress: ProgressReporter;
  /** Label of the progress bar (default 'train'). */
  label?: string;
  /** Polled after every step: true stops like Ctrl-C (checkpoint, no final model). */
  stopRequested?: () => boolean;
  /** Evaluate before the first step too (logged as step 0; not on resume). */
  evalOnStart?: boolean;
}

export interface LoopResult {
  steps: number;
  /** The last logged training metrics. */
  metrics: Record<string, number>;
  /** The final evaluation's metrics, when there is eval data. */
  evalMetrics?: Record<string, number>;
  /** True when Ctrl-C stopped training early (a checkpoint was saved, no final model). */
  interrupted: boolean;
}

/** The options of TrainingOptionsSchema, which every trainer's config extends. */
export type TrainingOptions = z.output<typeof TrainingOptionsSchema>;

/** The options the loop itself reads (a trainer without a data file, like online DPO, has only these and its own). */
export type LoopOptions = Pick<
  TrainingOptions,
  'output' | 'resume' | 'maxSteps' | 'numEpochs' | 'gradientAccumulationSteps' | 'learningRate' | 'lrScheduler' | 'warmupSteps' | 'loggingSteps' | 'evalSteps' | 'saveSteps' | 'saveTotalLimit'
> &
  // Absent (online DPO: each step's data comes from the current policy): one step per run.
  Partial<Pick<TrainingOptions, 'stepsPerRun'>>;

/** Real (unpadded) tokens of a collated batch. */
export function preferenceTokens(batch: PreferenceBatch): number {
  return batch.attentionMask.reduce((s, v) => s + v, 0);
}

/** The training batcher every trainer uses: batch size, padding, seed and grouping from the config. */
export function trainingBatcher(rows: readonly TokenizedPreference[], c: TrainingOptions, padTokenId: number): PreferenceBatcher {
  return new PreferenceBatcher(rows, {
    batchSize: c.batchSize,
    padTokenId,
    padToMultipleOf: c.padToMultipleOf,
    seed: c.seed,
    groupByLength: c.groupByLength,
  });
}

/** Runs the loop to `maxSteps` / `numEpochs`; the caller releases the step afterwards. */
export async function runTrainingLoop<B = PreferenceBatch>(setup: LoopSetup<B>, hooks: LoopHooks<B>): Promise<LoopResult> {
  const { config: c, step, batcher, progress } = setup;
  checkStepsPerRun(c);
  const perRun = c.stepsPerRun ?? 1;
  const log = (m: string): void => progress.log(m);
  const stepsPerEpoch = Math.max(1, Math.ceil(batcher.batchesPerEpoch / c.gradientAccumulationSteps));
  // The step budget comes from this run's options, also on resume: a finished run can be extended.
  const totalSteps = c.maxSteps ?? Math.ceil(stepsPerEpoch * c.numEpochs);
  let done = 0;
  const metricsFile = join(c.output, 'metrics.jsonl');
  await tidyCheckpoints(c.output, undefined, log, typeof c.resume === 'string' ? undefined : c.saveTotalLimit);
  if (c.resume) {
    const { dir, contents } = await findResumableCheckpoint(c.output, typeof c.resume === 'string' ? c.resume : undefined, log, checkpointExpectation(setup));
    if (contents.state.configDigest !== setup.digest) {
      throw new DpoError(`resume: ${dir} was made with different training options (data, model, batch size, optimizer or loss)`);
    }
    step.restore(contents.weights, contents.optimizer, contents.state.step);
    batcher.restore(contents.state.batcher);
    done = contents.state.step;
    await tidyCheckpoints(c.output, done, log, c.saveTotalLimit);
    const budget = contents.state.totalSteps === totalSteps ? '' : ` (its run planned ${contents.state.totalSteps} steps; this one ${totalSteps})`;
    log(`resumed from ${dir} at step ${done}${budget}`);
    if (done >= totalSteps) log(`resume: the checkpoint is at step ${done}, the step budget is ${totalSteps}: nothing left to train (raise --max-steps or --num-epochs to continue)`);
  } else {
    await writeFile(metricsFile, '');
  }

  let lossSum = 0;
  let gradNormSum = 0;
  let stepsInWindow = 0;
  let tokens = 0;
  let windowStart = Date.now();
  let lastMetrics: Record<string, number> = {};
  let evalMetrics: Record<string, number> | undefined;
  let lastSaved: string | undefined;
  let savedAt = -1;
  const lossWatch = new LossWatch();
  const saveCheckpoint = async (): Promise<void> => {
    savedAt = done;
    const state: TrainerState = { step: done, batcher: batcher.state(), totalSteps, configDigest: setup.digest };
    await step.sync();
    const params = step.parameters();
    const weights = new Map(setup.trainable.map((n) => [n, params.get(n) as Float32Array]));
    lastSaved = await saveCheckpointKeeping(c.output, { state, weights, shapes: setup.shapes, optimizer: step.optimizerState().state }, c.saveTotalLimit, log);
  };
  const stopping = (): boolean => setup.stopRequested?.() ?? false;
  // Hooks that sample (online DPO) throw GenerationStopped on a stop request: undefined then.
  const unlessStopped = async <T>(work: () => T | Promise<T>): Promise<T | undefined> => {
    try {
      return await work();
    } catch (e) {
      if (e instanceof GenerationStopped && stopping()) return undefined;
      throw e;
    }
  };
  const evaluate = async (s: number, epoch: number, evaluateHook: NonNullable<LoopHooks<B>['evaluate']>): Promise<void> => {
    const m = await unlessStopped(async () => evaluateHook(await synced(step)));
    if (!m) return log(`stopped the evaluation at step ${s}; its metrics are not written`);
    evalMetrics = m;
    await appendMetrics(metricsFile, { step: s, epoch, ...m });
  };
  try {
    if (hooks.evaluate && setup.evalOnStart && done === 0) await evaluate(0, 0, hooks.evaluate);
    progress.start(setup.label ?? 'train', totalSteps);
    progress.update(done);
    // Steps after which something reads the parameters: a run of several steps ends there.
    const boundary = (s: number): boolean =>
      s >= totalSteps ||
      (c.saveSteps !== undefined && s % c.saveSteps === 0) ||
      (hooks.evaluate !== undefined && c.evalSteps !== undefined && s % c.evalSteps === 0) ||
      (hooks.needsParamsAfter?.(s) ?? false);
    while (done < totalSteps && !stopping()) {
      // --steps-per-run K: K steps in one run; a run cut short by a boundary runs its steps one
      // by one (no graph is compiled for the shorter length).
      let n = 1;
      while (n < perRun && !boundary(done + n)) n++;
      const group: B[][] = [];
      const lrs: number[] = [];
      const feeds: Record<string, HostTensor>[][] = [];
      const position = batcher.state();
      for (let j = 0; j < n; j++) {
        const batches: B[] = [];
        for (let m = 0; m < c.gradientAccumulationSteps; m++) batches.push(batcher.next());
        group.push(batches);
        lrs.push(learningRateAt(c.lrScheduler, c.learningRate, done + j, totalSteps, c.warmupSteps));
        const f = await unlessStopped(() => hooks.feeds(batches, done + j));
        if (!f) break;
        feeds.push(f);
        for (const batch of batches) tokens += setup.tokens(batch);
      }
      if (feeds.length < n) {
        // Stopped while making a step's data (online DPO's sampling): the step is dropped and its
        // batches come again on --resume.
        batcher.restore(position);
        log(`stopped while sampling for step ${done + 1}; ${done > 0 ? `keeping step ${done}, the last completed one` : 'no step was completed, nothing to save'}`);
        break;
      }
      const results: StepResult[] = [];
      if (n === perRun && n > 1) results.push(...(await step.steps(feeds.map((f) => f[0]), lrs)));
      else for (let j = 0; j < n; j++) results.push(await step.step(feeds[j], lrs[j]));
      for (let j = 0; j < n; j++) {
        const r = results[j];
        const batches = group[j];
        const lr = lrs[j];
        done++;
        const diverged = divergence(r);
        if (diverged) {
          throw new DpoError(
            `step ${done}: training diverged (${diverged}); stopped without saving this step${lastSaved ? ` (last checkpoint: ${lastSaved})` : ''}: lower --learning-rate (now ${shortNumber(c.learningRate)}) or check the data`,
          );
        }
        r.microOutputs.forEach((o, i) => hooks.record(batches[i], o));
        const rising = lossWatch.check(done, r.loss);
        if (rising) log(`${rising}: training is probably diverging; lower --learning-rate (now ${shortNumber(c.learningRate)})`);
        lossSum += r.loss;
        gradNormSum += r.gradNorm;
        stepsInWindow++;
        // On a device (WebGPU) reading the parameters costs a copy: only where afterStep uses them.
        if (hooks.afterStep && (hooks.needsParamsAfter?.(done) ?? true)) hooks.afterStep(done, await synced(step));
        const epoch = done / stepsPerEpoch;
        if (done % c.loggingSteps === 0 || done === totalSteps) {
          const seconds = (Date.now() - windowStart) / 1000;
          lastMetrics = {
            loss: lossSum / stepsInWindow,
            ...hooks.flush(),
            grad_norm: gradNormSum / stepsInWindow,
            learning_rate: lr,
            epoch,
            tokens_per_second: tokens / Math.max(seconds, 1e-9),
          };
          await appendMetrics(metricsFile, { step: done, ...lastMetrics });
          lossSum = gradNormSum = stepsInWindow = tokens = 0;
          windowStart = Date.now();
        }
        // Evaluation and checkpoints fall on a run's last step (see `boundary`).
        // Not when a stop was requested during the step: a whole eval pass would delay the checkpoint.
        if (hooks.evaluate && c.evalSteps && done % c.evalSteps === 0 && done < totalSteps && !stopping()) await evaluate(done, epoch, hooks.evaluate);
        progress.update(done, hooks.progressInfo(lastMetrics, r.loss));
      }
      // The last step gets a checkpoint too, so that a finished run can be resumed with a larger budget.
      if ((c.saveSteps && (done % c.saveSteps === 0 || done === totalSteps)) || stopping()) await saveCheckpoint();
    }
    progress.stop();
    if (hooks.evaluate && !stopping()) await evaluate(done, done / stepsPerEpoch, hooks.evaluate);
    const interrupted = stopping();
    // A stop while sampling or evaluating: the checkpoint of the last completed step.
    if (interrupted && done > 0 && savedAt !== done) await saveCheckpoint();
    if (!interrupted) await hooks.saveFinal(await synced(step));
    return { steps: done, metrics: lastMetrics, evalMetrics, interrupted };
  } finally {
    progress.stop();
  }
}

/** The step's parameters, brought back from the device first where they live there (TrainStep.sync). */
async function synced(step: TrainStep): Promise<Map<string, Float32Array>> {
  await step.sync();
  return step.parameters();
}

/**
 * Warns (once) when a step's loss is orders of magnitude above the run's first: a learning rate
 * far too high can leave every value finite (the divergence check passes) and the model useless.
 */
export class LossWatch {
  private first: number | undefined;
  private warned = false;
  /** The warning for step `step`'s loss, or undefined. */
  check(step: number, loss: number): string | undefined {
    if (this.first === undefined) {
      this.first = Math.abs(loss);
      return undefined;
    }
    if (this.warned || !(Math.abs(loss) > 100 * Math.max(this.first, 0.01))) return undefined;
    this.warned = true;
    const short = (x: number): string => shortNumber(Number(x.toPrecision(3)));
    return `warning: step ${step}: loss ${short(loss)} is ${short(Math.abs(loss) / Math.max(this.first, 0.01))}x the first step's ${short(this.first)}`;
  }
}

/** `stepsPerRun` > 1 runs one micro-batch per step (TrainStep.steps): no gradient accumulation. */
export function checkStepsPerRun(c: Partial<Pick<TrainingOptions, 'stepsPerRun'>> & Pick<TrainingOptions, 'gradientAccumulationSteps'>): void {
  if (c.stepsPerRun !== undefined && c.stepsPerRun > 1 && c.gradientAccumulationSteps > 1) {
    throw new DpoError(`stepsPerRun ${c.stepsPerRun} does not combine with gradientAccumulationSteps ${c.gradientAccumulationSteps}: use one of them (or a larger batchSize)`);
  }
}

function shortNumber(x: number): string {
  return Math.abs(x) >= 1e6 || (x !== 0 && Math.abs(x) < 1e-4) ? x.toExponential() : String(x);
}

/** What is not finite after a step (loss, gradient norm, updated parameters), or undefined when all is. */
export function divergence(r: StepResult): string | undefined {
  const bad = [
    !Number.isFinite(r.loss) && `loss is ${r.loss}`,
    !Number.isFinite(r.gradNorm) && `gradient norm is ${r.gradNorm}`,
    !r.paramsFinite && 'parameters became NaN or infinite',
  ].filter(Boolean);
  return bad.length ? bad.join(', ') : undefined;
}

/** The tensors and optimizer slots a checkpoint must hold for this run to resume from it. */
function checkpointExpectation<B>(setup: LoopSetup<B>): CheckpointExpectation {
  const optimizer = setup.step.optimizerState().state;
  const first = optimizer.values().next().value;
  return {
    shapes: new Map(setup.trainable.map((n) => [n, setup.shapes.get(n) as readonly number[]])),
    optimizerSlots: first ? Object.keys(first) : [],
  };
}

/** A digest of the options that must not change across a resume. */
export function optionsDigest(keep: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(keep)).digest('hex').slice(0, 16);
}

/**
 * A forward-only graph of a trainer's loss builder (for evaluation): the same `build` the
 * TrainStep differentiates, with every parameter a graph input, compiled once.
 */
export class EvalGraph {
  private constructor(
    private readonly compiled: CompiledGraph,
    private readonly specs: readonly ParamSpec[],
  ) {}

  static async compile(
    specs: readonly ParamSpec[],
    build: (g: Graph, params: Record<string, Tensor>) => LossBuild,
    runtime: RuntimeOptions,
    transform?: ParamTransform,
  ): Promise<EvalGraph> {
    const g = new Graph('eval');
    let params: Record<string, Tensor> = {};
    for (const s of specs) params[s.name] = g.input(s.name, 'float32', s.shape);
    if (transform) params = transform(g, params);
    const { loss, outputs = {} } = build(g, params);
    return new EvalGraph(await CompiledGraph.compile({ loss, ...outputs }, runtime), specs);
  }

  async run(feeds: Record<string, HostTensor>, params: ReadonlyMap<string, Float32Array>): Promise<Record<string, HostTensor>> {
    const all: Record<string, HostTensor> = { ...feeds };
    for (const s of this.specs) all[s.name] = { data: params.get(s.name) as Float32Array, dims: s.shape };
    return this.compiled.run(all);
  }

  release(): Promise<void> {
    return this.compiled.release();
  }
}
