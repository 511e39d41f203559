/**
 * `dpo experiment sentiment`: the DPO paper's reward-KL frontier (its Figure 2) in miniature on
 * the shipped small model: every method from the same reference, evaluated by ground-truth reward
 * and KL on held-out prompts, with frontier.jsonl, summary.json and an HTML report.
 */
import { basename } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { option } from '../config/option.js';
import { RuntimeOptionsSchema } from '../config/runtime.js';
import { SamplingOptionsSchema, withDefault } from '../config/sampling.js';
import { DPOConfigSchema } from '../train/dpo/config.js';
import { loadPrompts } from '../generate/prompts.js';
import { listScorers } from '../eval/scorers.js';
import { mergeExperiment } from '../experiment/results.js';
import { EXPERIMENT_DEFAULTS, ExperimentStopped, METHODS, runSentimentExperiment, type SentimentExperimentSummary } from '../experiment/sentiment.js';
import { stopOnSignals } from './signals.js';
import { parseShard } from '../experiment/shard.js';
import { JUDGE_FLAGS } from './judge-flags.js';
import { SHIPPED_MODEL } from '../quickstart/run.js';
import { printJson, type CliContext } from './context.js';
import { addOptions } from './options.js';
import { DpoError } from '../errors.js';
import { configFromFlags, optionsFromSchema } from './schema-options.js';

const { full, quick } = EXPERIMENT_DEFAULTS;
/** A default that --quick changes, as help shows it. */
const byQuick = (key: keyof typeof full): string => {
  const num = (v: number): string => (v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential() : String(v));
  const text = (v: number | readonly number[]): string => (Array.isArray(v) ? v.map(num).join(',') : num(v as number));
  return text(full[key]) === text(quick[key]) ? text(full[key]) : `${text(full[key])}; --quick ${text(quick[key])}`;
};
/** A comma list of numbers > 0 (integers >= 1), whose default --quick changes. */
const positives = (description: string, key: keyof typeof full, integers = false) =>
  option((integers ? z.array(z.number().int().min(1)) : z.array(z.number().positive())).nonempty().optional(), description, {
    arg: 'list',
    group: 'loss',
    defaultText: byQuick(key),
  });

/** The flags of `dpo experiment sentiment`; unset keys take the library's defaults (EXPERIMENT_DEFAULTS, by --quick). */
export const SentimentFlagsSchema = z
  .object({
    model: option(z.string().min(1).optional(), 'reference and starting policy', { arg: 'path|hub-id', group: 'model', defaultText: `the shipped ${basename(SHIPPED_MODEL)}` }),
    output: option(z.string().min(1).default('dpo-experiment-sentiment'), 'output folder: new, empty, or an earlier run of the experiment (same plan: its finished runs are reused; another: its results move to earlier-runs/)', { arg: 'dir', group: 'checkpoints' }),
    overwriteOutput: option(z.boolean().optional(), 'write into a non-empty folder that is not an earlier run of the experiment', { group: 'checkpoints' }),
    prompts: option(z.string().min(1).optional(), 'training prompts ({"prompt": ...} rows)', { arg: 'file', group: 'data', defaultText: '40 built-in openings' }),
    heldOutPrompts: option(z.string().min(1).optional(), 'evaluation prompts', { arg: 'file', group: 'data', defaultText: '16 built-in openings' }),
    scorer: option(z.string().min(1).default('sentiment'), `ground-truth reward (${listScorers().map((s) => s.name).join(', ')})`, { arg: 'name', group: 'reward' }),
    quick: option(z.boolean().default(false), 'small settings: about 5 minutes on 2 cores', { group: 'loss' }),
    methods: option(z.array(z.string().min(1)).nonempty().optional(), `only these methods, comma-separated (${METHODS.join(', ')})`, { arg: 'list', group: 'loss' }),
    samples: option(z.number().int().min(1).optional(), 'reference samples per training prompt', { arg: 'k', group: 'generation', defaultText: byQuick('samplesPerPrompt') }),
    // No bound here: the library's message names the setting.
    pairTopK: option(z.number().int().default(50), 'top-k of the samples that make the pairs (0: pure sampling; frontier points are always pure)', { arg: 'k', group: 'generation' }),
    evalSamples: option(z.number().int().min(1).optional(), 'fresh samples per held-out prompt for each point', { arg: 'k', group: 'generation', defaultText: byQuick('evalSamplesPerPrompt') }),
    maxNewTokens: withDefault(SamplingOptionsSchema.shape.maxNewTokens, 24),
    steps: option(z.number().int().min(1).optional(), 'optimizer steps of every trained run', { group: 'optimisation', defaultText: byQuick('steps') }),
    checkpoints: option(z.number().int().min(1).optional(), 'frontier points along each trained run', { group: 'logging', defaultText: byQuick('checkpoints') }),
    batchSize: option(z.number().int().min(1).optional(), 'pairs (or prompts) per step', { group: 'optimisation', defaultText: '16' }),
    learningRate: option(z.number().positive().optional(), 'AdamW learning rate of every offline run', { arg: 'lr', group: 'optimisation', defaultText: byQuick('learningRate') }),
    rewardSteps: option(z.number().int().min(1).optional(), 'reward model steps', { group: 'optimisation', defaultText: byQuick('rewardModelSteps') }),
    rewardLearningRate: option(z.number().positive().optional(), 'reward model learning rate', { arg: 'lr', group: 'optimisation', defaultText: '1e-3' }),
    betas: positives('DPO betas, comma-separated', 'betas'),
    targetKls: positives('PPO KL targets, comma-separated', 'targetKls'),
    bestOf: positives('Best-of-N values of N, comma-separated', 'bestOfN', true),
    unlikelihoodAlpha: withDefault(DPOConfigSchema.shape.unlikelihoodAlpha, 1),
    seed: option(z.number().int().default(0), 'random seed: with the same --threads on the same CPU, a run repeats byte for byte', { arg: 's', group: 'optimisation' }),
    seeds: option(z.number().int().min(1).default(1), 'run everything (pairs and reward model too) with seeds seed, seed+1, ...; points get 95% intervals over seeds and samples', { arg: 'n', group: 'optimisation' }),
    shard: option(z.string().min(1).optional(), 'run only shard i (0-based) of N of the sweep into the shared --output; N alone takes i from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID; then `dpo experiment merge`', { arg: 'i/N', group: 'checkpoints' }),
    winTemperatures: option(z.string().min(1).optional(), "temperatures of the win rate against the reference's completions, comma-separated ('none' to skip)", { arg: 'list', group: 'generation', defaultText: '0.25,0.5,0.75,1; --quick 0.5,1' }),
    judgeUrl: JUDGE_FLAGS.judgeUrl,
    judgeModel: JUDGE_FLAGS.judgeModel,
    judgeApiKeyEnv: JUDGE_FLAGS.judgeApiKeyEnv,
    threads: RuntimeOptionsSchema.shape.threads,
    device: RuntimeOptionsSchema.shape.device,
  })
  .strict();

export const EXPERIMENT_OPTIONS = optionsFromSchema(SentimentFlagsSchema);

/** `dpo experiment merge` has no flags besides its folder. */
const MergeFlagsSchema = z.object({}).strict();
const MERGE_OPTIONS = optionsFromSchema(MergeFlagsSchema);

const EXAMPLES = `
What it does: samples 8 continuations (top-k 50) of each of 40 short prompts, labels pairs
with the ground-truth scorer (VADER sentiment), trains a reward model on them, then from the same
reference runs DPO (several betas), PPO with the learned reward (several KL targets), PPO-GT
(the scorer as reward), Unlikelihood, Preferred-FT (SFT on chosen) and Best-of-N (ranked by the
learned reward), and evaluates every checkpoint by mean ground-truth reward and KL(pi||pi_ref) of
fresh samples on 16 held-out prompts. Writes <output>/frontier.jsonl, summary.json, report.html.

Defaults take about 30 minutes on a 2-core CPU; --quick (fewer runs, steps and samples) about 5.

Examples:
  $ dpo experiment sentiment --quick
  $ dpo experiment sentiment --output runs/frontier --betas 0.1,0.5 --methods DPO,Best-of-N
  $ dpo experiment sentiment --model ./my-gpt2 --prompts p.jsonl --held-out-prompts h.jsonl
  $ dpo experiment sentiment --seeds 3 --threads 2 --shard 0/4 --output /shared/frontier   # one of 4 machines
  $ dpo experiment merge /shared/frontier

--seed repeats a run byte for byte with the same --threads on the same CPU (both recorded).`;

export function register(program: Command, ctx: CliContext): void {
  const experiment = program.command('experiment').description("the DPO paper's experiments in miniature (sentiment: the reward-KL frontier of every method)");
  const sentiment = experiment
    .command('sentiment')
    .description('reward-KL frontier of DPO, PPO, PPO-GT, Unlikelihood, Preferred-FT and Best-of-N on controlled sentiment');
  addOptions(sentiment, EXPERIMENT_OPTIONS, SentimentFlagsSchema);
  sentiment
    .addHelpText('after', EXAMPLES)
    .action(async (flags: Record<string, unknown>) => {
      const f = configFromFlags(SentimentFlagsSchema, EXPERIMENT_OPTIONS, flags);
      const readPrompts = async (path: string | undefined): Promise<string[] | undefined> =>
        path ? (await loadPrompts(path, undefined)).prompts.map((p) => p.text) : undefined;
      if (!f.judgeUrl !== !f.judgeModel) throw new DpoError('--judge-url and --judge-model go together');
      const winTemperatures = f.winTemperatures === undefined ? undefined : f.winTemperatures.trim() === 'none' ? [] : temperatures(f.winTemperatures);
      const apiKey = process.env[f.judgeApiKeyEnv];
      const progress = ctx.progress();
      const signals = stopOnSignals((m) => progress.log(m), undefined, 'stopping the run in progress within a step; the finished runs are kept');
      let summary: SentimentExperimentSummary;
      try {
        summary = await runSentimentExperiment({
          seeds: f.seeds,
          shard: f.shard === undefined ? undefined : parseShard(f.shard),
          winTemperatures,
          judge: f.judgeUrl && f.judgeModel ? { url: f.judgeUrl, model: f.judgeModel, apiKey: apiKey || undefined } : undefined,
          model: f.model,
          output: f.output,
          overwriteOutput: f.overwriteOutput,
          inputFiles: [{ flag: '--prompts', path: f.prompts }, { flag: '--held-out-prompts', path: f.heldOutPrompts }],
          trainPrompts: await readPrompts(f.prompts),
          heldOutPrompts: await readPrompts(f.heldOutPrompts),
          scorer: f.scorer,
          quick: f.quick,
          samplesPerPrompt: f.samples,
          pairTopK: f.pairTopK,
          evalSamplesPerPrompt: f.evalSamples,
          steps: f.steps,
          checkpoints: f.checkpoints,
          batchSize: f.batchSize,
          learningRate: f.learningRate,
          rewardModelSteps: f.rewardSteps,
          rewardLearningRate: f.rewardLearningRate,
          betas: f.betas,
          targetKls: f.targetKls,
          bestOfN: f.bestOf,
          unlikelihoodAlpha: f.unlikelihoodAlpha,
          methods: f.methods,
          maxNewTokens: f.maxNewTokens,
          seed: f.seed,
          threads: f.threads,
          device: f.device,
          progress,
          signal: signals.signal,
        });
      } catch (e) {
        if (!(e instanceof ExperimentStopped)) throw e;
        // 130 / 143: stopped by SIGINT / SIGTERM; the message says what was kept.
        progress.log(e.message);
        ctx.exitCode = signals.exitCode();
        return;
      } finally {
        signals.dispose();
      }
      report(ctx, summary);
    });
  const merge = experiment
    .command('merge')
    .description('build frontier.jsonl, summary.json and report.html of an experiment folder from whatever runs (shards) finished; lists the missing ones')
    .argument('<folder>', 'the shared --output of the shards');
  addOptions(merge, MERGE_OPTIONS, MergeFlagsSchema);
  merge
    .action(async (folder: string) => {
      const summary = await mergeExperiment(folder);
      report(ctx, summary);
      if (summary.missing.length) ctx.io.stderr.write(`missing (not finished): ${summary.missing.join('; ')}\n`);
    });
}

function report(ctx: CliContext, summary: SentimentExperimentSummary): void {
  ctx.io.stderr.write(formatFrontier(summary));
  if (summary.missing.length && !summary.points.length) return;
  printJson(ctx, { output: summary.output, report: summary.report, frontier: summary.frontierFile, points: summary.points.length, missing: summary.missing.length, failed: summary.runs.filter((r) => r.error).length, seconds: summary.seconds });
  if (summary.runs.some((r) => r.error)) ctx.exitCode = 1;
}

/** The frontier as a table for the terminal (pooled over seeds, 95% intervals), then the reading. */
export function formatFrontier(s: SentimentExperimentSummary): string {
  const f = (v: number, d = 3): string => (Number.isFinite(v) ? v.toFixed(d) : '—');
  const lines = ['', `${'method'.padEnd(14)}${'setting'.padEnd(16)}${'step'.padStart(6)}${'reward [95%]'.padStart(26)}${'KL [95%]'.padStart(22)}`];
  for (const p of s.pooled) {
    const kl = p.klCi[1] > p.klCi[0] ? `${f(p.kl, 2)} [${f(p.klCi[0], 2)}, ${f(p.klCi[1], 2)}]` : `${f(p.kl, 2)} (exact)`;
    lines.push(`${p.method.padEnd(14)}${p.setting.padEnd(16)}${String(p.step).padStart(6)}${`${f(p.reward)} [${f(p.rewardCi[0])}, ${f(p.rewardCi[1])}]`.padStart(26)}${kl.padStart(22)}`);
  }
  for (const r of s.runs.filter((x) => x.error)) lines.push(`${r.method} ${r.setting} (seed ${r.seed}): failed: ${r.error}`);
  lines.push('', ...s.reading, '');
  lines.push(`reward model held-out accuracy: ${s.seeds.map((x) => f(x.rewardModelAccuracy)).join(', ') || '—'}`);
  lines.push(`${s.host.threads} threads on ${s.host.cpu || 'an unnamed CPU'}`);
  if (s.missing.length) lines.push(`${s.missing.length} runs not finished yet: merge again when they are (dpo experiment merge ${s.output})`);
  else lines.push(`report: ${s.report}`);
  lines.push(`${s.seconds.toFixed(0)} s in all`, '');
  return lines.join('\n');
}

/** --win-temperatures: numbers > 0, comma-separated. */
function temperatures(v: string): number[] {
  const xs = v.split(',').map((x) => Number(x.trim()));
  if (xs.some((x) => !(x > 0))) throw new DpoError(`--win-temperatures: expected numbers > 0 (or 'none'), got '${v}'`);
  return xs;
}
