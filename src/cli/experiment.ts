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
import { EXPERIMENT_DEFAULTS, METHODS, runSentimentExperiment, type SentimentExperimentSummary } from '../experiment/sentiment.js';
import { SHIPPED_MODEL } from '../quickstart/run.js';
import { printJson, type CliContext } from './context.js';
import { addOptions } from './options.js';
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
    output: option(z.string().min(1).default('dpo-experiment-sentiment'), 'output folder: new, empty, or an earlier run of the experiment (its results are replaced)', { arg: 'dir', group: 'checkpoints' }),
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
    seed: option(z.number().int().default(0), 'random seed', { arg: 's', group: 'optimisation' }),
    threads: RuntimeOptionsSchema.shape.threads,
    device: RuntimeOptionsSchema.shape.device,
  })
  .strict();

export const EXPERIMENT_OPTIONS = optionsFromSchema(SentimentFlagsSchema);

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
  $ dpo experiment sentiment --model ./my-gpt2 --prompts p.jsonl --held-out-prompts h.jsonl`;

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
      const summary = await runSentimentExperiment({
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
        progress: ctx.progress(),
      });
      ctx.io.stderr.write(formatFrontier(summary));
      printJson(ctx, { output: summary.output, report: summary.report, frontier: summary.frontierFile, points: summary.points.length, failed: summary.runs.filter((r) => r.error).length, seconds: summary.seconds });
      if (summary.runs.some((r) => r.error)) ctx.exitCode = 1;
    });
}

/** The frontier as a table for the terminal. */
export function formatFrontier(s: SentimentExperimentSummary): string {
  const f = (v: number, d = 3): string => (Number.isFinite(v) ? v.toFixed(d) : '—');
  const lines = ['', `${'method'.padEnd(14)}${'setting'.padEnd(16)}${'step'.padStart(6)}${'reward ± se'.padStart(17)}${'KL ± se'.padStart(15)}`];
  for (const p of s.points) {
    lines.push(`${p.method.padEnd(14)}${p.setting.padEnd(16)}${String(p.step).padStart(6)}${`${f(p.reward)} ± ${f(p.rewardStderr)}`.padStart(17)}${`${f(p.kl, 2)} ± ${f(p.klStderr, 2)}`.padStart(15)}`);
  }
  for (const r of s.runs.filter((x) => x.error)) lines.push(`${r.method} ${r.setting}: failed: ${r.error}`);
  lines.push('', `reward model held-out accuracy: ${f(s.rewardModel.heldOutAccuracy)}`, `report: ${s.report}`, `${s.seconds.toFixed(0)} s in all`, '');
  return lines.join('\n');
}
