/**
 * `dpo experiment sentiment`: the DPO paper's Figure 2 (controlled sentiment, reward against
 * KL(pi || pi_ref)) in miniature. From the reference model's own samples on short prompts,
 * labelled by a ground-truth scorer (VADER sentiment), it builds preference pairs, trains a
 * Bradley-Terry reward model on them, runs every method from the same reference (DPO at several
 * betas, PPO with the learned reward at several KL targets, PPO-GT with the scorer, Unlikelihood,
 * Preferred-FT, Best-of-N ranked by the learned reward), and places every checkpoint on the
 * frontier by the ground-truth reward and KL of fresh samples on held-out prompts.
 *
 * Writes <output>/frontier.jsonl (a line per point, as they come), summary.json and report.html.
 */
import type { DeviceRequest } from '../engine/device.js';
import { appendFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DpoError } from '../errors.js';
import { refuseClearingInputs, type NamedInput } from '../io/input-guard.js';
import { openRewardSource, type RewardSource } from '../eval/rewards.js';
import { getScorer } from '../eval/scorers.js';
import { loadPretrained } from '../models/pretrained.js';
import { HELD_OUT_PROMPTS, TRAIN_PROMPTS } from '../data/builtin-prompts.js';
import { preferencePairs, SHIPPED_MODEL } from '../quickstart/run.js';
import { createProgress, type ProgressReporter } from '../progress.js';
import { guardOutput, RUN_MARKER_FILE, type GuardedOutput } from '../train/core/output-guard.js';
import { RewardTrainer } from '../train/reward/trainer.js';
import { FrontierEvaluator, type FrontierPoint } from './frontier.js';
import { bestOfNRun, dpoRun, ppoRun, preferredFtRun, unlikelihoodRun, type ExperimentRun, type MethodContext } from './methods.js';
import { writeExperimentReport } from './report.js';
import type { ExperimentSettings, RunRecord, SentimentExperimentSummary } from './summary.js';

export type { ExperimentSettings, RunRecord, SentimentExperimentSummary } from './summary.js';

export interface SentimentExperimentOptions {
  /** Reference and starting policy (default: the shipped model). */
  model?: string;
  /** Output folder (default ./dpo-experiment-sentiment): new, empty, or an earlier run of the experiment (replaced). */
  output?: string;
  /** Write into a non-empty folder that is not an earlier run of the experiment. */
  overwriteOutput?: boolean;
  /** Files the caller read the prompts from, by flag: replacing an earlier run's results never deletes them. */
  inputFiles?: readonly NamedInput[];
  trainPrompts?: readonly string[];
  heldOutPrompts?: readonly string[];
  /** Ground-truth reward, a registered scorer name (default 'sentiment'). */
  scorer?: string;
  /** The small settings of `--quick` (about 5 minutes on 2 cores) instead of the defaults (about 30). */
  quick?: boolean;
  /** Reference samples per training prompt; all pairs with different rewards are kept. */
  samplesPerPrompt?: number;
  /**
   * Top-k of the reference samples that make the preference pairs (default 50, as the quickstart;
   * 0: pure sampling). Frontier points are always pure samples.
   */
  pairTopK?: number;
  /** Fresh samples per held-out prompt for each frontier point. */
  evalSamplesPerPrompt?: number;
  maxNewTokens?: number;
  /** Optimizer steps of every trained run, and frontier points (checkpoints) along each. */
  steps?: number;
  checkpoints?: number;
  batchSize?: number;
  learningRate?: number;
  rewardModelSteps?: number;
  rewardLearningRate?: number;
  betas?: readonly number[];
  targetKls?: readonly number[];
  bestOfN?: readonly number[];
  unlikelihoodAlpha?: number;
  /** Only these methods (names as in the report: DPO, PPO, PPO-GT, Unlikelihood, Preferred-FT, Best-of-N). */
  methods?: readonly string[];
  seed?: number;
  threads?: number;
  /** Where graphs run (--device); default cpu. */
  device?: DeviceRequest;
  progress?: ProgressReporter;
}

export const METHODS = ['DPO', 'PPO', 'PPO-GT', 'Unlikelihood', 'Preferred-FT', 'Best-of-N'] as const;

/**
 * Defaults (see the README's experiment section for what they measured). Both make ~750 pairs
 * (8 top-k samples of each of 40 prompts) and give the offline runs about the same learning rate
 * x steps (2e-4 x 120 ~ 5e-4 x 40), so --quick walks about as far from the reference, in fewer,
 * coarser points with fewer settings.
 */
const DEFAULTS = {
  full: { samplesPerPrompt: 8, evalSamplesPerPrompt: 12, steps: 120, checkpoints: 3, learningRate: 2e-4, rewardModelSteps: 150, betas: [0.05, 0.1, 1, 5], targetKls: [3, 6, 9, 12], bestOfN: [2, 4, 8, 16] },
  quick: { samplesPerPrompt: 8, evalSamplesPerPrompt: 8, steps: 40, checkpoints: 2, learningRate: 5e-4, rewardModelSteps: 60, betas: [0.1, 1], targetKls: [6], bestOfN: [4] },
};

export function resolveSettings(o: SentimentExperimentOptions): ExperimentSettings {
  const d = o.quick ? DEFAULTS.quick : DEFAULTS.full;
  const s: ExperimentSettings = {
    model: o.model ?? SHIPPED_MODEL,
    scorer: o.scorer ?? 'sentiment',
    quick: o.quick ?? false,
    trainPrompts: (o.trainPrompts ?? TRAIN_PROMPTS).length,
    heldOutPrompts: (o.heldOutPrompts ?? HELD_OUT_PROMPTS).length,
    samplesPerPrompt: o.samplesPerPrompt ?? d.samplesPerPrompt,
    pairTopK: o.pairTopK ?? 50,
    evalSamplesPerPrompt: o.evalSamplesPerPrompt ?? d.evalSamplesPerPrompt,
    maxNewTokens: o.maxNewTokens ?? 24,
    steps: o.steps ?? d.steps,
    checkpoints: o.checkpoints ?? d.checkpoints,
    batchSize: o.batchSize ?? 16,
    learningRate: o.learningRate ?? d.learningRate,
    rewardModelSteps: o.rewardModelSteps ?? d.rewardModelSteps,
    rewardLearningRate: o.rewardLearningRate ?? 1e-3,
    betas: [...(o.betas ?? d.betas)],
    targetKls: [...(o.targetKls ?? d.targetKls)],
    bestOfN: [...(o.bestOfN ?? d.bestOfN)],
    unlikelihoodAlpha: o.unlikelihoodAlpha ?? 1,
    seed: o.seed ?? 0,
  };
  if (!Number.isInteger(s.pairTopK) || s.pairTopK < 0) throw new DpoError(`experiment: pair top-k must be an integer >= 0, got ${s.pairTopK}`);
  if (s.samplesPerPrompt < 2) throw new DpoError('experiment: samples per prompt must be at least 2 to make pairs');
  if (s.checkpoints < 1 || s.checkpoints > s.steps) throw new DpoError(`experiment: checkpoints must be between 1 and steps (${s.steps}), got ${s.checkpoints}`);
  for (const n of s.bestOfN) if (!Number.isInteger(n) || n < 1) throw new DpoError(`experiment: Best-of-N values must be integers >= 1, got ${n}`);
  for (const b of s.betas) if (!(b > 0)) throw new DpoError(`experiment: betas must be > 0, got ${b}`);
  for (const m of o.methods ?? []) if (!(METHODS as readonly string[]).includes(m)) throw new DpoError(`experiment: unknown method '${m}' (known: ${METHODS.join(', ')})`);
  return s;
}

/** The runs of the experiment, in the order they run. */
export function experimentRuns(s: ExperimentSettings, methods: readonly string[] = METHODS): ExperimentRun[] {
  const runs: ExperimentRun[] = [
    ...s.betas.map(dpoRun),
    ...s.targetKls.map((kl) => ppoRun(kl, false)),
    // PPO-GT: one run, at the middle KL target.
    ...(s.targetKls.length ? [ppoRun(s.targetKls[Math.floor((s.targetKls.length - 1) / 2)], true)] : []),
    unlikelihoodRun(s.unlikelihoodAlpha),
    preferredFtRun(),
    ...s.bestOfN.map(bestOfNRun),
  ];
  return runs.filter((r) => methods.includes(r.method));
}

/** What the guard's run marker calls this command. */
export const EXPERIMENT_COMMAND = 'dpo experiment sentiment';

/** What a run writes in its output folder; an earlier run's copies are removed first (cache/ is content-addressed and kept). */
const RUN_OUTPUTS = ['runs', 'reward-model', 'frontier.jsonl', 'summary.json', 'report.html', 'preferences.jsonl', 'heldout_preferences.jsonl'];

/**
 * The shared output guard (new or empty folder, an earlier run of this experiment, or
 * `overwriteOutput`; never the model folder; one run per folder). An earlier experiment's results
 * are removed so that its checkpoints and points never mix with this run's.
 */
async function guardExperimentOutput(output: string, o: SentimentExperimentOptions, model: string, progress: ProgressReporter): Promise<GuardedOutput> {
  const marker = await readFile(join(output, RUN_MARKER_FILE), 'utf8').then((t) => (JSON.parse(t) as { command?: unknown }).command, () => undefined);
  const guard = await guardOutput({ output, model, command: EXPERIMENT_COMMAND, overwriteOutput: o.overwriteOutput, digest: '', log: (m) => progress.log(m) });
  if (marker === EXPERIMENT_COMMAND) {
    const inputs = [{ flag: '--model', path: model }, ...(o.inputFiles ?? [])];
    await refuseClearingInputs(RUN_OUTPUTS.map((n) => join(output, n)), inputs, `replacing the results of the earlier experiment run in ${output}`).catch(async (e: unknown) => {
      await guard.release(true);
      throw e;
    });
    progress.log(`${output}: replacing the results of an earlier experiment run`);
    for (const name of RUN_OUTPUTS) await rm(join(output, name), { recursive: true, force: true });
  }
  return guard;
}

export async function runSentimentExperiment(o: SentimentExperimentOptions = {}): Promise<SentimentExperimentSummary> {
  const started = Date.now();
  const settings = resolveSettings(o);
  const progress = o.progress ?? createProgress();
  const output = resolve(o.output ?? 'dpo-experiment-sentiment');
  getScorer(settings.scorer); // an unknown scorer fails before the output folder is touched
  const guard = await guardExperimentOutput(output, o, settings.model, progress);
  let failed = true;
  try {
    const summary = await runGuarded(o, settings, output, progress, started);
    failed = false;
    return summary;
  } finally {
    await guard.release(failed);
  }
}

async function runGuarded(o: SentimentExperimentOptions, settings: ExperimentSettings, output: string, progress: ProgressReporter, started: number): Promise<SentimentExperimentSummary> {
  const trainPrompts = o.trainPrompts ?? TRAIN_PROMPTS;
  const heldOut = o.heldOutPrompts ?? HELD_OUT_PROMPTS;
  const groundTruth = getScorer(settings.scorer);
  const runtime = { threads: o.threads, executionProvider: o.device };

  progress.log(`model: ${settings.model}; ground truth: ${groundTruth.name}${settings.quick ? ' (quick settings)' : ''}`);
  const reference = await loadPretrained(settings.model);
  const tokenizer = reference.tokenizer;
  if (!tokenizer) throw new DpoError(`${reference.dir}: no tokenizer.json; the experiment needs a tokenizer`);
  const truth = await openRewardSource({ scorer: groundTruth.name });
  const evaluator = await FrontierEvaluator.create({
    reference,
    tokenizer,
    prompts: heldOut,
    samplesPerPrompt: settings.evalSamplesPerPrompt,
    maxNewTokens: settings.maxNewTokens,
    reward: truth.fn,
    seed: settings.seed + 2,
    runtime,
    progress,
  });
  let learned: RewardSource | undefined;
  const frontierFile = join(output, 'frontier.jsonl');
  const points: FrontierPoint[] = [];
  const record = async (p: FrontierPoint[]): Promise<void> => {
    points.push(...p);
    if (p.length) await appendFile(frontierFile, p.map((x) => `${JSON.stringify(x)}\n`).join(''));
  };
  try {
    // 1. Preference pairs: the reference's own samples, labelled by the ground truth. Top-k samples
    // by default: pure samples of a 7M-parameter model are mostly rare-token noise, and DPO on
    // pairs of them fits the noise (KL 12 at no reward gain) where on top-k pairs it learns sentiment.
    const labelled = async (prompts: readonly string[], seed: number, label: string) => {
      const r = await evaluator.sample(reference.weights, label, prompts, settings.samplesPerPrompt, seed, settings.pairTopK);
      const rewards = await truth.fn(prompts.flatMap((p, i) => r.completions[i].map(() => p)), r.completions.flat(), label);
      let n = 0;
      return preferencePairs(
        prompts.map((prompt, i) =>
          r.completions[i].map((completion, k) => ({ prompt, completion, reward: rewards[n++], sequence: { promptIds: r.promptTokenIds[i], completionIds: r.tokenIds[i][k] } })),
        ),
      );
    };
    const pairs = await labelled(trainPrompts, settings.seed, 'sampling pairs');
    const heldOutPairs = await labelled(heldOut, settings.seed + 1, 'sampling held-out pairs');
    const pairsFile = join(output, 'preferences.jsonl');
    const heldOutFile = join(output, 'heldout_preferences.jsonl');
    const jsonl = (rows: object[]): string => rows.map((p) => JSON.stringify(p)).join('\n') + '\n';
    await writeFile(pairsFile, jsonl(pairs));
    await writeFile(heldOutFile, jsonl(heldOutPairs));
    progress.log(`${pairs.length} preference pairs from ${trainPrompts.length} prompts x ${settings.samplesPerPrompt} samples; ${heldOutPairs.length} held-out pairs`);
    if (pairs.length < 8) throw new DpoError(`experiment: only ${pairs.length} pairs with distinct rewards; use more prompts or samples`);

    // 2. The learned reward: a Bradley-Terry reward model from the reference.
    const rewardDir = join(output, 'reward-model');
    const rm = await new RewardTrainer(
      {
        model: settings.model,
        data: pairsFile,
        evalData: heldOutPairs.length ? heldOutFile : undefined,
        output: rewardDir,
        maxSteps: settings.rewardModelSteps,
        batchSize: settings.batchSize,
        learningRate: settings.rewardLearningRate,
        lrScheduler: 'constant',
        warmupSteps: Math.min(5, settings.rewardModelSteps - 1),
        loggingSteps: Math.max(1, Math.floor(settings.rewardModelSteps / 10)),
        seed: settings.seed,
        threads: o.threads,
        device: o.device,
      },
      { progress },
    ).train();
    const rmAccuracy = rm.evalMetrics?.eval_accuracy ?? NaN;
    progress.log(`reward model: held-out pair accuracy ${rmAccuracy.toFixed(3)} on ${heldOutPairs.length} pairs`);
    learned = await openRewardSource({ rewardModel: rewardDir, batchSize: 32, runtime });

    // 3. The reference itself: KL 0.
    const ref = await evaluator.evaluate(reference.weights, 'evaluating the reference');
    await record([{ method: 'reference', setting: '', step: 0, reward: ref.reward, rewardStderr: ref.rewardStderr, kl: ref.kl, klStderr: ref.klStderr, samples: ref.samples }]);

    // 4. Every method from the same reference.
    const ctx: MethodContext = {
      reference,
      modelRef: settings.model,
      pairsFile,
      trainPrompts,
      rewardModel: rewardDir,
      learnedReward: learned.fn,
      scorer: groundTruth.name,
      steps: settings.steps,
      checkpoints: settings.checkpoints,
      batchSize: settings.batchSize,
      learningRate: settings.learningRate,
      maxNewTokens: settings.maxNewTokens,
      seed: settings.seed,
      threads: o.threads,
      device: o.device,
      runDir: (name) => join(output, 'runs', name),
      cacheDir: join(output, 'cache'),
      evaluator,
      progress,
    };
    const runs: RunRecord[] = [];
    for (const run of experimentRuns(settings, o.methods)) {
      const t0 = Date.now();
      progress.log(`== ${run.method} ${run.setting}`);
      try {
        await record(await run.run(ctx));
        runs.push({ method: run.method, setting: run.setting, seconds: (Date.now() - t0) / 1000 });
      } catch (e) {
        if (!(e instanceof Error)) throw e;
        progress.log(`${run.method} ${run.setting} failed: ${e.message}`);
        runs.push({ method: run.method, setting: run.setting, seconds: (Date.now() - t0) / 1000, error: e.message });
      }
    }

    const summary: SentimentExperimentSummary = {
      output,
      report: join(output, 'report.html'),
      frontierFile,
      pairs: pairs.length,
      rewardModel: { dir: rewardDir, heldOutAccuracy: rmAccuracy, heldOutPairs: heldOutPairs.length },
      points,
      runs,
      settings,
      seconds: (Date.now() - started) / 1000,
    };
    await writeExperimentReport(summary.report, summary);
    await writeFile(join(output, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  } finally {
    await evaluator.release();
    await truth.release();
    await learned?.release();
  }
}
export { DEFAULTS as EXPERIMENT_DEFAULTS };
