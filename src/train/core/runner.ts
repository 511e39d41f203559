/**
 * The shared training runner. A trainer is a config definition (schema + cross-key checks,
 * config.ts), a loss builder on the model's weights, and the hooks of the shared loop (loop.ts);
 * the runner does the rest the same way for all of them: load the policy, compile one training
 * step over its parameters (LoRA transform included), batch the rows, run the loop, compile the
 * forward-only eval graph when a hook asks for it, and release what it compiled.
 */
import { mkdir } from 'node:fs/promises';
import type { TokenizedPreference } from '../../data/tokenize.js';
import type { Graph, Tensor } from '../../engine/graph.js';
import type { RuntimeOptions } from '../../engine/runtime.js';
import { TrainStep, type LossBuild, type ParamSpec } from '../../engine/train-step.js';
import { DpoError } from '../../errors.js';
import type { TextTokenizer } from '../../io/tokenizer-types.js';
import { DropoutSites } from '../../models/dropout.js';
import { withGradientCheckpointing, type ModelParams } from '../../models/linear.js';
import { loadModelOrAdapter } from '../../models/load-model.js';
import type { Pretrained } from '../../models/pretrained.js';
import { fitToContext } from '../../models/context-limit.js';
import { resolveDevice } from '../../engine/device.js';
import { guardOutput } from './output-guard.js';
import type { PreferenceBatch } from '../../data/collate.js';
import { checkStepsPerRun, EvalGraph, optionsDigest, preferenceTokens, runTrainingLoop, trainingBatcher, type BatchSource, type LoopHooks, type LoopOptions, type LoopResult, type TrainingOptions } from './loop.js';
import { buildPolicy, type Policy } from './policy.js';
import { createProgress, type ProgressReporter } from '../../progress.js';

/** What every trainer's `train()` resolves to. */
export interface TrainerResult extends LoopResult {
  output: string;
}

/** The ONNX Runtime options of a training config. */
export function runtimeOf(c: Pick<TrainingOptions, 'threads' | 'device'>): RuntimeOptions {
  return { threads: c.threads, executionProvider: c.device };
}

/** The model's dropout sites when the config keeps dropout in training, else undefined. */
export function trainingDropout(c: Pick<TrainingOptions, 'keepDropout' | 'seed'>): DropoutSites | undefined {
  return c.keepDropout ? new DropoutSites(c.seed) : undefined;
}

export function requireTokenizer(p: { dir: string; tokenizer?: TextTokenizer }): TextTokenizer {
  if (!p.tokenizer) throw new DpoError(`${p.dir}: no tokenizer.json; a tokenizer is needed to read text data`);
  return p.tokenizer;
}

export interface LoadedPolicy {
  pretrained: Pretrained;
  tokenizer: TextTokenizer;
  policy: Policy;
  /** The config's maxLength capped at the model's context (context-limit.ts): what data preparation uses. */
  maxLength: number;
}

/**
 * The config's model (or an already loaded one; a LoRA adapter folder is merged into its base) as
 * a trainable policy (LoRA adapters when configured), with the effective max length. The config
 * is not written to.
 */
export async function loadPolicy(c: Pick<TrainingOptions, 'model' | 'maxLength' | 'lora' | 'seed'>, progress: ProgressReporter, preloaded?: Pretrained): Promise<LoadedPolicy> {
  const pretrained = preloaded ?? (await loadModelOrAdapter(c.model));
  const tokenizer = requireTokenizer(pretrained);
  if (pretrained.unexpectedKeys.length) progress.log(`warning: ${c.model}: ignored ${pretrained.unexpectedKeys.length} unexpected checkpoint keys`);
  const maxLength = fitToContext(c.maxLength, pretrained.model);
  return { pretrained, tokenizer, policy: buildPolicy(pretrained.model, pretrained.weights, c.lora, c.seed), maxLength };
}

/** The options every trainer's schedule and update depend on: they must match on resume too. */
const TRAJECTORY_KEYS = ['learningRate', 'lrScheduler', 'warmupSteps', 'weightDecay', 'maxGradNorm'] as const;

/**
 * The digest a resumed run must match: the trainer's kind (omitted for DPO) and the values of the
 * config keys that must not change across a resume (the trainer's, then {@link TRAJECTORY_KEYS}).
 * The step budget (maxSteps, numEpochs) is not among them: a resume may extend a run.
 */
export function resumeDigest<C extends object>(c: C, keys: readonly (keyof C & string)[], kind?: string): string {
  return optionsDigest(resumeOptions(c, keys, kind));
}

/** The values {@link resumeDigest} digests, by key (the run marker keeps them to name what differs). */
export function resumeOptions<C extends object>(c: C, keys: readonly (keyof C & string)[], kind?: string): Record<string, unknown> {
  const keep: Record<string, unknown> = kind ? { kind } : {};
  for (const k of keys) keep[k] = c[k];
  for (const k of TRAJECTORY_KEYS) keep[k] = (c as Record<string, unknown>)[k];
  return keep;
}

/** What every trainer's options add: a way to stop a running train() from outside. */
export interface StopOptions {
  /**
   * Aborting it stops train() after the current step, with a checkpoint, as requestStop() does
   * (the CLI aborts it on SIGINT and SIGTERM; the library installs no signal handler).
   */
  signal?: AbortSignal;
}

/** A trainer's stop request: its requestStop() or the AbortSignal of its options. */
export class StopRequest {
  private requested = false;
  constructor(private readonly signal?: AbortSignal) {}
  request(): void {
    this.requested = true;
  }
  get stopped(): boolean {
    return this.requested || (this.signal?.aborted ?? false);
  }
}

/**
 * What every trainer class shares: its parsed config, its progress reporter and its stop request
 * (`requestStop()` or the AbortSignal of its options).
 */
export abstract class TrainerBase<C extends Pick<TrainingOptions, 'threads' | 'device'>> {
  protected readonly progress: ProgressReporter;
  protected readonly stop: StopRequest;

  protected constructor(
    readonly config: C,
    options: { progress?: ProgressReporter; signal?: AbortSignal },
  ) {
    this.progress = options.progress ?? createProgress();
    this.stop = new StopRequest(options.signal);
  }

  /**
   * Asks a running `train()` to stop after the current step: it saves a checkpoint (as Ctrl-C
   * does) and resolves with `interrupted: true`; `resume` continues from there.
   */
  requestStop(): void {
    this.stop.request();
  }

  protected get runtime(): RuntimeOptions {
    return runtimeOf(this.config);
  }
}

/**
 * Runs a trainer's `body` with its output checked and locked before any work (output-guard.ts):
 * `command` names the run ('dpo train'), `resume` is its {@link resumeOptions} (the body gets
 * their digest), `inputs` are the other model folders it reads.
 */
export async function guardedRun<T>(
  c: Pick<TrainingOptions, 'output' | 'model' | 'overwriteOutput' | 'resume'> & Partial<Pick<TrainingOptions, 'saveTotalLimit'>>,
  command: string,
  resume: Record<string, unknown>,
  progress: ProgressReporter,
  inputs: readonly (string | undefined)[],
  body: (digest: string) => Promise<T>,
): Promise<T> {
  const digest = optionsDigest(resume);
  const files = (['data', 'evalData'] as const).map((k) => ({ flag: k === 'data' ? '--data' : '--eval-data', path: (c as { data?: unknown; evalData?: unknown })[k] })).filter((f): f is { flag: string; path: string } => typeof f.path === 'string');
  const lock = await guardOutput({
    output: c.output, model: c.model, inputs, files, command, overwriteOutput: c.overwriteOutput, resume: c.resume, digest, resumeOptions: resume, saveTotalLimit: c.saveTotalLimit, log: (m) => progress.log(m),
  });
  let failed = true;
  try {
    const result = await body(digest);
    failed = false;
    return result;
  } finally {
    await lock.release(failed);
  }
}

/** What the hooks of a run can use: the compiled step, and the eval graph (compiled on first use). */
export interface RunTools {
  step: TrainStep;
  evalGraph(): Promise<EvalGraph>;
}

/** The config keys {@link runTrainer} reads besides the loop's (plus the batcher's, when it batches `rows`). */
export type RunnerOptions = LoopOptions &
  Pick<TrainingOptions, 'optimizer' | 'weightDecay' | 'maxGradNorm' | 'threads' | 'device'> &
  Partial<Pick<TrainingOptions, 'gradientCheckpointing'>>;

export interface TrainerRun<B = PreferenceBatch> {
  config: RunnerOptions;
  progress: ProgressReporter;
  /**
   * The step's parameters: specs with their data, which are trained, their shapes, and the LoRA
   * transforms (trainTransform for the training step, transform for evaluation).
   */
  params: Pick<Policy, 'specs' | 'trainable' | 'shapes' | 'transform' | 'trainTransform'>;
  /** One micro-batch's loss (and metric outputs) on the model's weights, after the transform. */
  loss(g: Graph, weights: ModelParams): LossBuild;
  /** The training rows, batched by the config's batchSize/seed/grouping (the config must then be a TrainingOptions)... */
  rows?: readonly TokenizedPreference[];
  padTokenId?: number;
  /** ...or another batch source and how many tokens each of its batches put through the model. */
  source?: { batcher: BatchSource<B>; tokens(batch: B): number };
  /** {@link resumeDigest} of the run's config. */
  digest: string;
  hooks(tools: RunTools): LoopHooks<B>;
  stopRequested?: () => boolean;
  label?: string;
  /** Evaluate before the first step too (step 0). */
  evalOnStart?: boolean;
}

/** Compiles the step, runs the shared loop over `rows`, releases the compiled graphs. */
export async function runTrainer<B = PreferenceBatch>(run: TrainerRun<B>): Promise<TrainerResult> {
  const c = run.config;
  const runtime = runtimeOf(c);
  if (c.device === 'auto') run.progress.log(`device: ${await resolveDevice('auto')} (--device auto)`);
  const { specs, transform } = run.params;
  const trainTransform = run.params.trainTransform ?? transform;
  await mkdir(c.output, { recursive: true });
  const build = (g: Graph, params: Record<string, Tensor>): LossBuild => {
    const weights = trainTransform ? trainTransform(g, params) : params;
    return run.loss(g, c.gradientCheckpointing === true ? withGradientCheckpointing(weights) : weights);
  };
  checkStepsPerRun(c);
  const step = await TrainStep.create(specs as ParamSpec[], build, { name: c.optimizer, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm }, runtime);
  let evalGraph: Promise<EvalGraph> | undefined;
  try {
    const tools: RunTools = { step, evalGraph: () => (evalGraph ??= EvalGraph.compile(specs, run.loss, runtime, transform)) };
    const source = run.source ?? rowSource(run, c);
    const result = await runTrainingLoop<B>(
      {
        config: c,
        step,
        batcher: source.batcher,
        tokens: source.tokens,
        trainable: run.params.trainable,
        shapes: run.params.shapes,
        digest: run.digest,
        progress: run.progress,
        label: run.label,
        stopRequested: run.stopRequested,
        evalOnStart: run.evalOnStart,
      },
      run.hooks(tools),
    );
    return { output: c.output, ...result };
  } finally {
    await step.release();
    await (await evalGraph?.catch(() => undefined))?.release();
  }
}

/** The default batch source: the run's rows in a PreferenceBatcher (batch size, seed, grouping from the config). */
function rowSource<B>(run: TrainerRun<B>, c: RunnerOptions): { batcher: BatchSource<B>; tokens(batch: B): number } {
  if (!run.rows || run.padTokenId === undefined) throw new Error('runTrainer: give rows and padTokenId, or a source');
  const batcher = trainingBatcher(run.rows, c as TrainingOptions, run.padTokenId);
  return { batcher: batcher as unknown as BatchSource<B>, tokens: preferenceTokens as unknown as (batch: B) => number };
}
