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
import { mkdir, readdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { deriveSeed } from '../data/rng.js';
import { hostInfo } from '../engine/host.js';
import { DpoError } from '../errors.js';
import { JudgeClient, VerdictCache } from '../eval/judge.js';
import { refuseClearingInputs, type NamedInput } from '../io/input-guard.js';
import { openRewardSource, type RewardSource } from '../eval/rewards.js';
import { getScorer } from '../eval/scorers.js';
import { loadPretrained } from '../models/pretrained.js';
import { HELD_OUT_PROMPTS, TRAIN_PROMPTS } from '../data/builtin-prompts.js';
import { preferencePairs, SHIPPED_MODEL } from '../quickstart/run.js';
import { createProgress, type ProgressReporter } from '../progress.js';
import { guardOutput, RUN_MARKER_FILE, type GuardedOutput } from '../train/core/output-guard.js';
import { RewardTrainer } from '../train/reward/trainer.js';
import { FrontierEvaluator } from './frontier.js';
import { bestOfNRun, dpoRun, ppoRun, preferredFtRun, runName, unlikelihoodRun, type ExperimentRun, type MethodContext } from './methods.js';
import { checkPlan, finishedUnits, mergeExperiment, planDifference, planDigest, readPlan, unitFile, writePlan, writeSeedInfo, writeUnitResult, type ExperimentPlan, type UnitRecord, type UnitResult } from './results.js';
import { asideFolder } from '../train/core/run-history.js';
import { shardItems, shardName, WHOLE, type Shard } from './shard.js';
import type { ExperimentSettings, SentimentExperimentSummary } from './summary.js';

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
  /** Run everything (pairs and reward model included) with this many seeds: seed, seed + 1, ... (default 1). */
  seeds?: number;
  /** ONNX Runtime threads (default: one per core); recorded, since results are repeatable only with the same count. */
  threads?: number;
  /** Sampling temperatures of the win rate against the reference's completions (default 0.25,0.5,0.75,1; quick 0.5,1; [] for none). */
  winTemperatures?: readonly number[];
  /** An OpenAI-compatible judge of the win rates besides the ground truth. */
  judge?: { url: string; model: string; apiKey?: string };
  /** Run only this shard of the sweep (shard.ts); its results go into the shared output folder for `mergeExperiment`. */
  shard?: Shard;
  /** Where graphs run (--device); default cpu. */
  device?: DeviceRequest;
  progress?: ProgressReporter;
  /**
   * Aborting it stops the experiment within a decoding or training step: the run in progress is
   * dropped, every finished run's result stays in `<output>/points`, and {@link ExperimentStopped}
   * is thrown. The same call again reuses the finished runs. The CLI aborts it on SIGINT and SIGTERM.
   */
  signal?: AbortSignal;
}

/** Thrown when the `signal` of {@link runSentimentExperiment} stopped it; the message says what was kept. */
export class ExperimentStopped extends DpoError {
  constructor(
    message: string,
    /** Finished runs (units: a seed's reference point or one run) kept, of all the experiment's units. */
    readonly kept: number,
    readonly total: number,
  ) {
    super(message);
    this.name = 'ExperimentStopped';
  }
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
    seeds: o.seeds ?? 1,
    winTemperatures: [...(o.winTemperatures ?? (o.quick ? [0.5, 1] : [0.25, 0.5, 0.75, 1]))],
    ...(o.judge ? { judge: { url: o.judge.url, model: o.judge.model } } : {}),
  };
  for (const t of s.winTemperatures) if (!(t > 0)) throw new DpoError(`experiment: win-rate temperatures must be > 0, got ${t}`);
  if (!Number.isInteger(s.seeds) || s.seeds < 1) throw new DpoError(`experiment: seeds must be an integer >= 1, got ${s.seeds}`);
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
const RUN_OUTPUTS = ['runs', 'reward-model', 'frontier.jsonl', 'summary.json', 'report.html', 'preferences.jsonl', 'heldout_preferences.jsonl', 'experiment.json', 'points', 'shards', 'judge-verdicts.jsonl'];

/**
 * The shared output guard (new or empty folder, an earlier run of this experiment, or
 * `overwriteOutput`; never the model folder; one run per folder). An earlier run of the same plan
 * (settings, threads and runs: experiment.json) is continued: its finished runs are reused. An
 * earlier experiment with another plan is moved to `earlier-runs/<time>/` (deleted with
 * `overwriteOutput`), so that its checkpoints and points never mix with this run's.
 */
async function guardExperimentOutput(output: string, o: SentimentExperimentOptions, model: string, plan: ExperimentPlan, progress: ProgressReporter): Promise<GuardedOutput> {
  const marker = await readFile(join(output, RUN_MARKER_FILE), 'utf8').then((t) => (JSON.parse(t) as { command?: unknown }).command, () => undefined);
  const guard = await guardOutput({ output, model, command: EXPERIMENT_COMMAND, overwriteOutput: o.overwriteOutput, digest: '', log: (m) => progress.log(m) });
  if (marker === EXPERIMENT_COMMAND) {
    const earlier = await readPlan(output);
    if (earlier && !o.overwriteOutput && planDifference(earlier, plan) === '') {
      progress.log(`${output}: an earlier run of the same experiment (settings, threads and runs); its finished runs are reused`);
      return guard;
    }
    const inputs = [{ flag: '--model', path: model }, ...(o.inputFiles ?? [])];
    await refuseClearingInputs(RUN_OUTPUTS.map((n) => join(output, n)), inputs, `replacing the results of the earlier experiment run in ${output}`).catch(async (e: unknown) => {
      await guard.release(true);
      throw e;
    });
    const present = [...RUN_OUTPUTS, ...(await readdir(output)).filter((n) => /^seed-\d+$/.test(n))].filter((n) => existsSync(join(output, n)));
    if (o.overwriteOutput) {
      for (const name of present) await rm(join(output, name), { recursive: true, force: true });
      progress.log(`--overwrite-output: removed the results of an earlier experiment run in ${output}`);
    } else if (present.length) {
      const aside = await asideFolder(output);
      for (const name of present) await rename(join(output, name), join(aside, name));
      const differ = earlier ? planDifference(earlier, plan) : 'its plan is missing';
      progress.log(`${output}: moved the results of an earlier experiment run with other settings (${differ}${earlier ? ' differ' : ''}) to ${aside} (--overwrite-output deletes them instead)`);
    }
  }
  return guard;
}

/**
 * A shard's guard: shards share the output folder, so none clears it (a shard replaces only its
 * own result files); each locks its own folder under shards/. The shared folder must be new,
 * empty, or the same experiment's (its experiment.json, which every shard writes identically).
 */
async function guardShardOutput(output: string, name: string, o: SentimentExperimentOptions, model: string, progress: ProgressReporter): Promise<GuardedOutput> {
  if ((await realpath(model).catch(() => resolve(model))) === (await realpath(output).catch(() => output))) {
    throw new DpoError(`--output ${output} is the model folder ${model}: the run would overwrite its input; give another --output`);
  }
  const entries = await readdir(output).catch(() => [] as string[]);
  if (entries.length && !entries.includes('experiment.json') && !entries.includes('shards') && !o.overwriteOutput) {
    throw new DpoError(`--output ${output} is not empty and holds no ${EXPERIMENT_COMMAND} shards; give a new or empty folder, or --overwrite-output`);
  }
  const guard = await guardOutput({ output: join(output, 'shards', name), model, command: EXPERIMENT_COMMAND, overwriteOutput: o.overwriteOutput, digest: '', log: (m) => progress.log(m) });
  // This shard's own earlier work (pairs, reward models, checkpoints); its result files are replaced one by one.
  for (const n of await readdir(join(output, 'shards', name))) if (/^seed-\d+$/.test(n)) await rm(join(output, 'shards', name, n), { recursive: true, force: true });
  return guard;
}

export async function runSentimentExperiment(o: SentimentExperimentOptions = {}): Promise<SentimentExperimentSummary> {
  const started = Date.now();
  const settings = resolveSettings(o);
  const progress = o.progress ?? createProgress();
  const output = resolve(o.output ?? 'dpo-experiment-sentiment');
  const shard = o.shard ?? WHOLE;
  getScorer(settings.scorer); // an unknown scorer fails before the output folder is touched
  // Explicit, recorded, and the same in every session of the run: the thread count decides how
  // kernels round, so with it (and the CPU) fixed a seeded run is repeatable byte for byte.
  const host = hostInfo(o.threads);
  const units = sweepUnits(settings, o.methods);
  const plan: ExperimentPlan = { command: EXPERIMENT_COMMAND, settings, host: { threads: host.threads }, units: units.map(unitRecord) };
  const sharded = shard.count > 1;
  if (sharded) await checkPlan(output, plan);
  const guard = sharded ? await guardShardOutput(output, shardName(shard), o, settings.model, progress) : await guardExperimentOutput(output, o, settings.model, plan, progress);
  let failed = true;
  const mine = shardItems(units, shard);
  const digest = planDigest(plan);
  try {
    const finished = await finishedUnits(output, plan);
    await writePlan(output, plan);
    const work = sharded ? join(output, 'shards', shardName(shard)) : output;
    const reused = mine.filter((u) => finished.has(unitFile(u.seed, u.method, u.setting)));
    if (sharded) progress.log(`shard ${shard.index + 1} of ${shard.count}: ${mine.length} of ${units.length} runs`);
    if (reused.length) progress.log(`reused ${reused.length} finished runs (${reused.map((u) => `${u.method}${u.setting ? ` ${u.setting}` : ''}${settings.seeds > 1 ? ` seed ${u.seed}` : ''}`).join(', ')})`);
    progress.log(`${host.threads} ONNX Runtime threads on ${host.cpu || 'an unnamed CPU'}; --seed ${settings.seed}${settings.seeds > 1 ? ` to ${settings.seed + settings.seeds - 1}` : ''}`);
    for (const seed of seedsOf(settings)) {
      const todo = mine.filter((u) => u.seed === seed && !reused.includes(u));
      if (todo.length) await runSeed(o, settings, seed, settings.seeds > 1 || sharded ? join(work, `seed-${seed}`) : work, output, todo, host.threads, progress, digest);
    }
    const summary = await mergeExperiment(output, { seconds: (Date.now() - started) / 1000, host, partial: sharded });
    failed = false;
    return summary;
  } catch (e) {
    if (!o.signal?.aborted) throw e;
    // Stopped: what finished (now or in an earlier run of the same plan) is on disk.
    const done = (await finishedUnits(output, plan)).size;
    throw new ExperimentStopped(
      `stopped: kept the results of ${done} finished runs of ${units.length} in ${join(output, 'points')} (the run in progress was dropped); the same command continues from there, reusing them`,
      done,
      units.length,
    );
  } finally {
    await guard.release(failed);
  }
}

/** The seeds of the experiment: --seed, --seed + 1, ... (--seeds of them). */
export function seedsOf(s: ExperimentSettings): number[] {
  return Array.from({ length: s.seeds }, (_, j) => s.seed + j);
}

/** One unit of the sweep: a seed's reference point, or a seed's run of one method at one setting. */
export interface SweepUnit {
  seed: number;
  method: string;
  setting: string;
  run?: ExperimentRun;
}

/** Every unit, seed by seed, in the order one process runs them (shards take every N-th). */
export function sweepUnits(s: ExperimentSettings, methods: readonly string[] = METHODS): SweepUnit[] {
  const runs = experimentRuns(s, methods);
  return seedsOf(s).flatMap((seed) => [{ seed, method: 'reference', setting: '' }, ...runs.map((run) => ({ seed, method: run.method, setting: run.setting, run }))]);
}

function unitRecord(u: SweepUnit): UnitRecord {
  return { seed: u.seed, method: u.method, setting: u.setting, file: unitFile(u.seed, u.method, u.setting) };
}

/**
 * One seed: its preference pairs and reward model (in `work`), then its units, each written to its
 * own result file under `<output>/points` as soon as it is done.
 */
async function runSeed(
  o: SentimentExperimentOptions,
  settings: ExperimentSettings,
  seed: number,
  work: string,
  output: string,
  units: readonly SweepUnit[],
  threads: number,
  progress: ProgressReporter,
  digest: string,
): Promise<void> {
  const stopped = (): boolean => o.signal?.aborted ?? false;
  const trainPrompts = o.trainPrompts ?? TRAIN_PROMPTS;
  const heldOut = o.heldOutPrompts ?? HELD_OUT_PROMPTS;
  const groundTruth = getScorer(settings.scorer);
  const runtime = { threads, executionProvider: o.device };
  if (settings.seeds > 1) progress.log(`== seed ${seed}`);

  progress.log(`model: ${settings.model}; ground truth: ${groundTruth.name}${settings.quick ? ' (quick settings)' : ''}`);
  await mkdir(work, { recursive: true });
  const reference = await loadPretrained(settings.model);
  const tokenizer = reference.tokenizer;
  if (!tokenizer) throw new DpoError(`${reference.dir}: no tokenizer.json; the experiment needs a tokenizer`);
  const truth = await openRewardSource({ scorer: groundTruth.name });
  const streams = seedStreams(settings.seed, seed);
  const evaluator = await FrontierEvaluator.create({
    reference,
    tokenizer,
    prompts: heldOut,
    samplesPerPrompt: settings.evalSamplesPerPrompt,
    maxNewTokens: settings.maxNewTokens,
    reward: truth.fn,
    seed: streams.eval,
    runtime,
    progress,
    stopRequested: stopped,
  });
  let learned: RewardSource | undefined;
  const judge = o.judge
    ? { client: new JudgeClient({ url: o.judge.url, model: o.judge.model, apiKey: o.judge.apiKey }), cache: await VerdictCache.open(join(output, 'judge-verdicts.jsonl')) }
    : undefined;
  try {
    // 1. Preference pairs: the reference's own samples, labelled by the ground truth. Top-k samples
    // by default: pure samples of a 7M-parameter model are mostly rare-token noise, and DPO on
    // pairs of them fits the noise (KL 12 at no reward gain) where on top-k pairs it learns sentiment.
    const labelled = async (prompts: readonly string[], sampleSeed: number, label: string) => {
      const r = await evaluator.sample(reference.weights, label, prompts, settings.samplesPerPrompt, sampleSeed, settings.pairTopK);
      const rewards = await truth.fn(prompts.flatMap((p, i) => r.completions[i].map(() => p)), r.completions.flat(), label);
      let n = 0;
      return preferencePairs(
        prompts.map((prompt, i) =>
          r.completions[i].map((completion, k) => ({ prompt, completion, reward: rewards[n++], sequence: { promptIds: r.promptTokenIds[i], completionIds: r.tokenIds[i][k] } })),
        ),
      );
    };
    const pairs = await labelled(trainPrompts, streams.pairs, 'sampling pairs');
    const heldOutPairs = await labelled(heldOut, streams.heldOutPairs, 'sampling held-out pairs');
    const pairsFile = join(work, 'preferences.jsonl');
    const heldOutFile = join(work, 'heldout_preferences.jsonl');
    const jsonl = (rows: object[]): string => rows.map((p) => JSON.stringify(p)).join('\n') + '\n';
    await writeFile(pairsFile, jsonl(pairs));
    await writeFile(heldOutFile, jsonl(heldOutPairs));
    progress.log(`${pairs.length} preference pairs from ${trainPrompts.length} prompts x ${settings.samplesPerPrompt} samples; ${heldOutPairs.length} held-out pairs`);
    if (pairs.length < 8) throw new DpoError(`experiment: only ${pairs.length} pairs with distinct rewards; use more prompts or samples`);

    // 2. The learned reward: a Bradley-Terry reward model from the reference.
    const rewardDir = join(work, 'reward-model');
    // A reward model an earlier, stopped run of this experiment left is trained again (same seed, same bytes).
    await rm(rewardDir, { recursive: true, force: true });
    const rewardModel = await new RewardTrainer(
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
        seed,
        threads,
        device: o.device,
      },
      { progress, signal: o.signal },
    ).train();
    if (stopped()) throw new DpoError('stopped while training the reward model');
    const rmAccuracy = rewardModel.evalMetrics?.eval_accuracy ?? NaN;
    progress.log(`reward model: held-out pair accuracy ${rmAccuracy.toFixed(3)} on ${heldOutPairs.length} pairs`);
    await writeSeedInfo(output, { seed, pairs: pairs.length, heldOutPairs: heldOutPairs.length, rewardModelAccuracy: rmAccuracy });
    learned = await openRewardSource({ rewardModel: rewardDir, batchSize: 32, runtime });

    // 3. Every unit from the same reference (the reference itself is the point at KL 0).
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
      seed,
      threads,
      device: o.device,
      runDir: (name) => join(work, 'runs', name),
      cacheDir: join(output, 'cache'),
      evaluator,
      winTemperatures: settings.winTemperatures,
      judge,
      progress,
      signal: o.signal,
    };
    for (const unit of units) {
      if (stopped()) throw new DpoError('stopped between runs');
      const t0 = Date.now();
      progress.log(`== ${unit.method} ${unit.setting}${settings.seeds > 1 ? ` (seed ${seed})` : ''}`);
      const result: UnitResult = { seed, method: unit.method, setting: unit.setting, seconds: 0, points: [] };
      try {
        // What an earlier, stopped run of this unit left (a checkpoint of the dropped run).
        if (unit.run) await rm(ctx.runDir(runName(unit.method, unit.setting)), { recursive: true, force: true });
        if (unit.run) {
          const r = await unit.run.run(ctx);
          result.points = r.points;
          if (r.trace) result.trace = r.trace;
          if (r.winRates) result.winRates = r.winRates;
        } else {
          const ref = await evaluator.evaluate(reference.weights, 'evaluating the reference');
          result.points = [{ method: 'reference', setting: '', step: 0, seed, reward: ref.reward, rewardStderr: ref.rewardStderr, kl: ref.kl, klStderr: ref.klStderr, samples: ref.samples }];
        }
      } catch (e) {
        if (!(e instanceof Error) || !unit.run || stopped()) throw e;
        progress.log(`${unit.method} ${unit.setting} failed: ${e.message}`);
        result.error = e.message;
      }
      // A run a stop request cut short (its trainer stopped early) is dropped, not recorded.
      if (stopped()) throw new DpoError(`stopped during ${unit.method} ${unit.setting}`);
      result.seconds = (Date.now() - t0) / 1000;
      result.digest = digest;
      await writeUnitResult(output, result);
    }
  } finally {
    await evaluator.release();
    await truth.release();
    await learned?.release();
  }
}

/**
 * The sampling seeds of one experiment seed: --seed itself keeps the streams of one-seed runs
 * (pairs seed, held-out pairs seed + 1, evaluation seed + 2); the other seeds derive theirs so that
 * no two seeds share a stream.
 */
function seedStreams(base: number, seed: number): { pairs: number; heldOutPairs: number; eval: number } {
  if (seed === base) return { pairs: seed, heldOutPairs: seed + 1, eval: seed + 2 };
  return { pairs: deriveSeed(seed, 1), heldOutPairs: deriveSeed(seed, 2), eval: deriveSeed(seed, 3) };
}

export { DEFAULTS as EXPERIMENT_DEFAULTS };
