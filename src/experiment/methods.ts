/**
 * The methods the sentiment experiment compares, behind one small interface: a run trains (or
 * samples) from the reference and returns its frontier points. Trained runs save checkpoints
 * evenly along training; each checkpoint is one point.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeviceRequest } from '../engine/device.js';
import type { RewardFn } from '../eval/rewards.js';
import { loadPretrained, type Pretrained } from '../models/pretrained.js';
import { checkpointModelWeights, listCheckpoints } from '../train/core/checkpoint.js';
import { DPOTrainer } from '../train/dpo/trainer.js';
import type { ProgressReporter } from '../progress.js';
import { PPOTrainer } from '../train/ppo/trainer.js';
import { SFTTrainer } from '../train/sft/trainer.js';
import type { FrontierEvaluator, FrontierPoint, JudgeSetup, WinRate } from './frontier.js';

/** What every run gets: the data, the reference, the rewards and the shared training settings. */
export interface MethodContext {
  /** The reference (and starting policy) as loaded, and the path or hub id it came from. */
  reference: Pretrained;
  modelRef: string;
  /** Preference pairs labelled by the ground truth (prompt/chosen/rejected JSONL). */
  pairsFile: string;
  /** Training prompts (PPO's rollouts). */
  trainPrompts: readonly string[];
  /** The reward model trained on `pairsFile` (a `dpo reward train` folder). */
  rewardModel: string;
  /** Its reward, for ranking Best-of-N candidates. */
  learnedReward: RewardFn;
  /** The ground-truth scorer's name (PPO-GT's reward). */
  scorer: string;
  /** Optimizer steps of each trained run, and how many checkpoints (frontier points) along it. */
  steps: number;
  checkpoints: number;
  batchSize: number;
  learningRate: number;
  maxNewTokens: number;
  seed: number;
  threads?: number;
  /** Where graphs run (--device); default cpu. */
  device?: DeviceRequest;
  /** Where run `name` writes its model, metrics and checkpoints. */
  runDir(name: string): string;
  cacheDir: string;
  evaluator: FrontierEvaluator;
  /** Sampling temperatures of the win rate against the reference (final checkpoint of each trained run); empty: none. */
  winTemperatures: readonly number[];
  judge?: JudgeSetup;
  progress: ProgressReporter;
  /** Aborted: the run's trainer stops after its current step (the experiment then drops the run). */
  signal?: AbortSignal;
}

/** One update of a PPO run as its rollouts saw it (metrics.jsonl): the KL controller at work. */
export interface TracePoint {
  step: number;
  /** The rollout's mean sequence KL, mean score, and the KL coefficient it was penalised with. */
  kl: number;
  score: number;
  klCoef: number;
}

/** A run's final policy against the reference's completions, per temperature. */
export interface RunWinRates {
  step: number;
  rates: WinRate[];
}

export interface RunOutcome {
  points: FrontierPoint[];
  winRates?: RunWinRates;
  /** PPO: the per-update rollout KL (absent for the other methods). */
  trace?: TracePoint[];
}

export interface ExperimentRun {
  method: string;
  setting: string;
  run(ctx: MethodContext): Promise<RunOutcome>;
}

/** A folder name for a run: method and setting, filesystem-safe. */
export function runName(method: string, setting: string): string {
  return `${method}${setting ? `-${setting}` : ''}`.toLowerCase().replace(/[^a-z0-9.]+/g, '-');
}

/**
 * Frontier points of a finished trained run: every checkpoint it left in `output` (oldest first),
 * then its final model (saved in `output` itself) at step `steps` unless a checkpoint has it.
 */
export async function trainedRunPoints(ctx: MethodContext, method: string, setting: string, output: string, steps: number): Promise<RunOutcome> {
  const points: FrontierPoint[] = [];
  let final: { weights: ReadonlyMap<string, Float32Array>; step: number } | undefined;
  const point = async (saved: ReadonlyMap<string, Float32Array>, step: number): Promise<void> => {
    // Only the policy's own parameters (a PPO run also saves its value head).
    const weights = new Map([...saved].filter(([name]) => ctx.reference.weights.has(name)));
    if (!final || step >= final.step) final = { weights, step };
    const e = await ctx.evaluator.evaluate(weights, `${method} ${setting} step ${step}`.replace(/\s+/g, ' '));
    points.push({ method, setting, step, seed: ctx.seed, reward: e.reward, rewardStderr: e.rewardStderr, kl: e.kl, klStderr: e.klStderr, samples: e.samples });
  };
  const checkpoints = (await listCheckpoints(output)).reverse();
  for (const c of checkpoints) await point(await checkpointModelWeights(c.dir, ctx.reference.weights), c.step);
  if (!checkpoints.some((c) => c.step === steps)) await point((await loadPretrained(output, { tokenizer: false })).weights, steps);
  if (!final || !ctx.winTemperatures.length) return { points };
  const rates = await ctx.evaluator.winRates(final.weights, ctx.winTemperatures, `${method} ${setting} win rate`.replace(/\s+/g, ' '), ctx.judge);
  return { points, winRates: { step: final.step, rates } };
}

/** Settings every trained run shares (constant learning rate after a short warm-up, as the quickstart). */
function common(ctx: MethodContext, output: string) {
  return {
    model: ctx.modelRef,
    output,
    maxSteps: ctx.steps,
    batchSize: ctx.batchSize,
    learningRate: ctx.learningRate,
    lrScheduler: 'constant' as const,
    warmupSteps: Math.min(5, ctx.steps - 1),
    loggingSteps: Math.max(1, Math.floor(ctx.steps / 20)),
    saveSteps: Math.max(1, Math.floor(ctx.steps / ctx.checkpoints)),
    seed: ctx.seed,
    threads: ctx.threads,
    device: ctx.device,
    cacheDir: ctx.cacheDir,
  };
}

/** DPO at one beta. */
export function dpoRun(beta: number): ExperimentRun {
  const setting = `beta=${beta}`;
  return {
    method: 'DPO',
    setting,
    async run(ctx) {
      const output = ctx.runDir(runName('DPO', setting));
      const r = await new DPOTrainer({ ...common(ctx, output), data: ctx.pairsFile, beta }, { progress: ctx.progress, signal: ctx.signal }).train();
      return trainedRunPoints(ctx, 'DPO', setting, output, r.steps);
    },
  };
}

/** The Unlikelihood baseline: likelihood of chosen, token-wise unlikelihood of rejected. */
export function unlikelihoodRun(alpha: number): ExperimentRun {
  const setting = `alpha=${alpha}`;
  return {
    method: 'Unlikelihood',
    setting,
    async run(ctx) {
      const output = ctx.runDir(runName('Unlikelihood', setting));
      const r = await new DPOTrainer({ ...common(ctx, output), data: ctx.pairsFile, lossType: ['unlikelihood'], unlikelihoodAlpha: alpha }, { progress: ctx.progress, signal: ctx.signal }).train();
      return trainedRunPoints(ctx, 'Unlikelihood', setting, output, r.steps);
    },
  };
}

/** Preferred-FT: supervised fine-tuning on the chosen completions. */
export function preferredFtRun(): ExperimentRun {
  return {
    method: 'Preferred-FT',
    setting: '',
    async run(ctx) {
      const output = ctx.runDir(runName('Preferred-FT', ''));
      const r = await new SFTTrainer({ ...common(ctx, output), data: ctx.pairsFile }, { progress: ctx.progress, signal: ctx.signal }).train();
      return trainedRunPoints(ctx, 'Preferred-FT', '', output, r.steps);
    },
  };
}

/** Best-of-N from the reference, candidates ranked by the learned reward model. */
export function bestOfNRun(n: number): ExperimentRun {
  const setting = `N=${n}`;
  return {
    method: 'Best-of-N',
    setting,
    async run(ctx) {
      const e = await ctx.evaluator.evaluateBestOfN(n, ctx.learnedReward, `Best-of-${n}`);
      return { points: [{ method: 'Best-of-N', setting, step: n, seed: ctx.seed, reward: e.reward, rewardStderr: e.rewardStderr, kl: e.kl, klStderr: e.klStderr, samples: e.samples }] };
    },
  };
}

/** PPO epochs over each rollout. */
const PPO_EPOCHS = 4;
/** Episodes per PPO rollout. */
const PPO_ROLLOUT = 32;
/** The KL coefficient PPO starts from (TRL's init_kl_coef). */
const PPO_INIT_KL_COEF = 0.2;

/** PPO's learning rate: half the offline runs' 5e-4, under which a large KL coefficient can still pull the KL back down. */
const PPO_LEARNING_RATE = 2.5e-4;

/**
 * PPO from the reference with the learned reward model (PPO) or the ground-truth scorer
 * (PPO-GT), its KL coefficient steered towards `targetKl`. An update is a rollout of PPO_ROLLOUT
 * prompts and PPO_EPOCHS optimizer steps on it, so steps/PPO_EPOCHS updates make as many
 * optimizer steps as an offline run. The controller is 'latched' (kl-controller.ts): TRL's
 * adaptive one, starting at KL 0, decayed the coefficient geometrically before the KL rose and
 * then overshot several-fold (target 3 gave KL 11-12.6 at the defaults). Rewards are whitened
 * before GAE so that a large coefficient does not blow up the value targets (a run without it held
 * KL 3.1-3.4 at beta 2.5, then its value error went from 23 to 3e6 as beta rose and the shared body
 * diverged). Learning rate: PPO_LEARNING_RATE.
 */
export function ppoRun(targetKl: number, groundTruth: boolean): ExperimentRun {
  const method = groundTruth ? 'PPO-GT' : 'PPO';
  const setting = `target_kl=${targetKl}`;
  return {
    method,
    setting,
    async run(ctx) {
      const output = ctx.runDir(runName(method, setting));
      const updates = Math.max(1, Math.round(ctx.steps / PPO_EPOCHS));
      const r = await new PPOTrainer(
        {
          model: ctx.modelRef,
          output,
          prompts: [...ctx.trainPrompts],
          ...(groundTruth ? { scorer: ctx.scorer } : { rewardModel: ctx.rewardModel }),
          targetKl,
          initKlCoef: PPO_INIT_KL_COEF,
          klHorizon: PPO_ROLLOUT,
          klControl: 'latched',
          whitenRewards: true,
          ppoEpochs: PPO_EPOCHS,
          maxSteps: updates,
          batchSize: PPO_ROLLOUT,
          learningRate: PPO_LEARNING_RATE,
          lrScheduler: 'constant',
          maxNewTokens: ctx.maxNewTokens,
          loggingSteps: 1,
          saveSteps: Math.max(1, Math.floor(updates / ctx.checkpoints)),
          seed: ctx.seed,
          threads: ctx.threads,
          device: ctx.device,
        },
        { progress: ctx.progress, signal: ctx.signal },
      ).train();
      return { ...(await trainedRunPoints(ctx, method, setting, output, r.steps)), trace: await ppoTrace(output) };
    },
  };
}

/** The per-update rollout metrics of a finished PPO run. */
async function ppoTrace(output: string): Promise<TracePoint[]> {
  const rows = (await readFile(join(output, 'metrics.jsonl'), 'utf8')).split('\n').filter((l) => l.trim());
  return rows
    .map((l) => JSON.parse(l) as Record<string, number>)
    .filter((m) => m['objective/kl'] !== undefined)
    .map((m) => ({ step: m.step, kl: m['objective/kl'], score: m['objective/scores'], klCoef: m['objective/kl_coef'] }));
}
