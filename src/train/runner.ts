/**
 * The shared training runner. A trainer is a config definition (schema + cross-key checks,
 * config.ts), a loss builder on the model's weights, and the hooks of the shared loop (loop.ts);
 * the runner does the rest the same way for all of them: load the policy, compile one training
 * step over its parameters (LoRA transform included), batch the rows, run the loop, compile the
 * forward-only eval graph when a hook asks for it, and release what it compiled.
 */
import { mkdir } from 'node:fs/promises';
import type { TokenizedPreference } from '../data/tokenize.js';
import type { Graph, Tensor } from '../engine/graph.js';
import type { RuntimeOptions } from '../engine/runtime.js';
import { TrainStep, type LossBuild, type ParamSpec } from '../engine/train-step.js';
import { DpoError } from '../errors.js';
import type { TextTokenizer } from '../io/tokenizer-types.js';
import { DropoutSites } from '../models/dropout.js';
import type { ModelParams } from '../models/linear.js';
import { loadPretrained, type Pretrained } from '../models/pretrained.js';
import { EvalGraph, optionsDigest, runTrainingLoop, trainingBatcher, type LoopHooks, type LoopResult, type TrainingOptions } from './loop.js';
import { buildPolicy, type Policy } from './policy.js';
import type { ProgressReporter } from './progress.js';

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
}

/** The config's model (or an already loaded one) as a trainable policy (LoRA adapters when configured). */
export async function loadPolicy(c: TrainingOptions, progress: ProgressReporter, preloaded?: Pretrained): Promise<LoadedPolicy> {
  const pretrained = preloaded ?? (await loadPretrained(c.model));
  const tokenizer = requireTokenizer(pretrained);
  if (pretrained.unexpectedKeys.length) progress.log(`warning: ${c.model}: ignored ${pretrained.unexpectedKeys.length} unexpected checkpoint keys`);
  return { pretrained, tokenizer, policy: buildPolicy(pretrained.model, pretrained.weights, c.lora, c.seed) };
}

/**
 * The digest a resumed run must match: the trainer's kind (omitted for DPO, whose checkpoints
 * predate it) and the values of the config keys that must not change across a resume, in order.
 */
export function resumeDigest<C extends object>(c: C, keys: readonly (keyof C & string)[], kind?: string): string {
  const keep: Record<string, unknown> = kind ? { kind } : {};
  for (const k of keys) keep[k] = c[k];
  return optionsDigest(keep);
}

/** What the hooks of a run can use: the compiled step, and the eval graph (compiled on first use). */
export interface RunTools {
  step: TrainStep;
  evalGraph(): Promise<EvalGraph>;
}

export interface TrainerRun {
  config: TrainingOptions;
  progress: ProgressReporter;
  /**
   * The step's parameters: specs with their data, which are trained, their shapes, and the LoRA
   * transforms (trainTransform for the training step, transform for evaluation).
   */
  params: Pick<Policy, 'specs' | 'trainable' | 'shapes' | 'transform' | 'trainTransform'>;
  /** One micro-batch's loss (and metric outputs) on the model's weights, after the transform. */
  loss(g: Graph, weights: ModelParams): LossBuild;
  rows: readonly TokenizedPreference[];
  padTokenId: number;
  /** {@link resumeDigest} of the run's config. */
  digest: string;
  hooks(tools: RunTools): LoopHooks;
  stopRequested?: () => boolean;
  label?: string;
}

/** Compiles the step, runs the shared loop over `rows`, releases the compiled graphs. */
export async function runTrainer(run: TrainerRun): Promise<TrainerResult> {
  const c = run.config;
  const runtime = runtimeOf(c);
  const { specs, transform } = run.params;
  const trainTransform = run.params.trainTransform ?? transform;
  await mkdir(c.output, { recursive: true });
  const build = (g: Graph, params: Record<string, Tensor>): LossBuild => run.loss(g, trainTransform ? trainTransform(g, params) : params);
  const step = await TrainStep.create(specs as ParamSpec[], build, { name: c.optimizer, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm }, runtime);
  let evalGraph: Promise<EvalGraph> | undefined;
  try {
    const tools: RunTools = { step, evalGraph: () => (evalGraph ??= EvalGraph.compile(specs, run.loss, runtime, transform)) };
    const result = await runTrainingLoop(
      {
        config: c,
        step,
        batcher: trainingBatcher(run.rows, c, run.padTokenId),
        trainable: run.params.trainable,
        shapes: run.params.shapes,
        digest: run.digest,
        progress: run.progress,
        label: run.label,
        stopRequested: run.stopRequested,
      },
      run.hooks(tools),
    );
    return { output: c.output, ...result };
  } finally {
    await step.release();
    await (await evalGraph?.catch(() => undefined))?.release();
  }
}
