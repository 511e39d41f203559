/**
 * `dpo experiment sentiment`: the DPO paper's reward-KL frontier (its Figure 2) in miniature on
 * the shipped small model: every method from the same reference, evaluated by ground-truth reward
 * and KL on held-out prompts, with frontier.jsonl, summary.json and an HTML report.
 */
import type { Command } from 'commander';
import { DpoError } from '../errors.js';
import { loadPrompts } from '../generate/prompts.js';
import { listScorers } from '../eval/scorers.js';
import { METHODS, runSentimentExperiment, type SentimentExperimentSummary } from '../experiment/sentiment.js';
import { SHIPPED_MODEL } from '../quickstart/run.js';
import { printJson, type CliContext } from './context.js';
import { parseInteger, parseList, parseNumber, parseNumberList } from './options.js';

interface SentimentFlags {
  model?: string;
  output: string;
  overwriteOutput?: boolean;
  prompts?: string;
  heldOutPrompts?: string;
  scorer: string;
  quick?: boolean;
  samples?: string;
  pairTopK?: string;
  evalSamples?: string;
  steps?: string;
  checkpoints?: string;
  batchSize?: string;
  learningRate?: string;
  rewardSteps?: string;
  rewardLearningRate?: string;
  betas?: string;
  targetKls?: string;
  bestOf?: string;
  unlikelihoodAlpha?: string;
  methods?: string;
  maxNewTokens?: string;
  seed: string;
  threads?: string;
}

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

function positive(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = parseInteger(flag, v);
  if (n < 1) throw new DpoError(`${flag}: expected a positive integer, got '${v}'`);
  return n;
}

function positiveNumber(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = parseNumber(flag, v);
  if (!(n > 0)) throw new DpoError(`${flag}: expected a number > 0, got '${v}'`);
  return n;
}

function numbers(flag: string, v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  const xs = parseNumberList(flag, v);
  if (xs.some((x) => !(x > 0))) throw new DpoError(`${flag}: expected numbers > 0, got '${v}'`);
  return xs;
}

export function register(program: Command, ctx: CliContext): void {
  const experiment = program.command('experiment').description("the DPO paper's experiments in miniature (sentiment: the reward-KL frontier of every method)");
  experiment
    .command('sentiment')
    .description('reward-KL frontier of DPO, PPO, PPO-GT, Unlikelihood, Preferred-FT and Best-of-N on controlled sentiment')
    .option('--model <path|hub-id>', `reference and starting policy (default: the shipped ${SHIPPED_MODEL.split('/').pop()})`)
    .option('--output <dir>', 'output folder: new, empty, or an earlier run of the experiment (its results are replaced)', 'dpo-experiment-sentiment')
    .option('--overwrite-output', 'write into a non-empty folder that is not an earlier run of the experiment')
    .option('--prompts <file>', 'training prompts ({"prompt": ...} rows; default: 40 built-in openings)')
    .option('--held-out-prompts <file>', 'evaluation prompts (default: 16 built-in openings)')
    .option('--scorer <name>', `ground-truth reward (${listScorers().map((s) => s.name).join(', ')})`, 'sentiment')
    .option('--quick', 'small settings: about 5 minutes on 2 cores')
    .option('--samples <k>', 'reference samples per training prompt (default 8)')
    .option('--pair-top-k <k>', 'top-k of the samples that make the pairs (0: pure sampling; frontier points are always pure)', '50')
    .option('--eval-samples <k>', 'fresh samples per held-out prompt for each point (default 12; quick 8)')
    .option('--steps <n>', 'optimizer steps of every trained run (default 120; quick 40)')
    .option('--checkpoints <n>', 'frontier points along each trained run (default 3; quick 2)')
    .option('--batch-size <n>', 'pairs (or prompts) per step', '16')
    .option('--learning-rate <lr>', 'AdamW learning rate of every offline run (default 2e-4; quick 5e-4)')
    .option('--reward-steps <n>', 'reward model steps (default 150; quick 60)')
    .option('--reward-learning-rate <lr>', 'reward model learning rate', '1e-3')
    .option('--betas <list>', 'DPO betas, comma-separated (default 0.05,0.1,1,5; quick 0.1,1)')
    .option('--target-kls <list>', 'PPO KL targets, comma-separated (default 3,6,9,12; quick 6)')
    .option('--best-of <list>', 'Best-of-N values of N, comma-separated (default 2,4,8,16; quick 4)')
    .option('--unlikelihood-alpha <a>', 'Unlikelihood alpha', '1')
    .option('--methods <list>', `only these methods, comma-separated (${METHODS.join(', ')})`)
    .option('--max-new-tokens <n>', 'tokens per sampled continuation', '24')
    .option('--seed <s>', 'random seed', '0')
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)')
    .addHelpText('after', EXAMPLES)
    .action(async (f: SentimentFlags) => {
      const readPrompts = async (path: string | undefined): Promise<string[] | undefined> =>
        path ? (await loadPrompts(path, undefined)).prompts.map((p) => p.text) : undefined;
      const bestOf = f.bestOf === undefined ? undefined : parseNumberList('--best-of', f.bestOf);
      if (bestOf?.some((n) => !Number.isInteger(n) || n < 1)) throw new DpoError(`--best-of: expected integers >= 1, got '${f.bestOf}'`);
      const alpha = parseNumber('--unlikelihood-alpha', f.unlikelihoodAlpha ?? '1');
      if (alpha < 0) throw new DpoError(`--unlikelihood-alpha: expected a number >= 0, got '${f.unlikelihoodAlpha}'`);
      const summary = await runSentimentExperiment({
        model: f.model,
        output: f.output,
        overwriteOutput: f.overwriteOutput,
        inputFiles: [{ flag: '--prompts', path: f.prompts }, { flag: '--held-out-prompts', path: f.heldOutPrompts }],
        trainPrompts: await readPrompts(f.prompts),
        heldOutPrompts: await readPrompts(f.heldOutPrompts),
        scorer: f.scorer,
        quick: f.quick ?? false,
        samplesPerPrompt: positive('--samples', f.samples),
        pairTopK: parseInteger('--pair-top-k', f.pairTopK ?? '50'),
        evalSamplesPerPrompt: positive('--eval-samples', f.evalSamples),
        steps: positive('--steps', f.steps),
        checkpoints: positive('--checkpoints', f.checkpoints),
        batchSize: positive('--batch-size', f.batchSize),
        learningRate: positiveNumber('--learning-rate', f.learningRate),
        rewardModelSteps: positive('--reward-steps', f.rewardSteps),
        rewardLearningRate: positiveNumber('--reward-learning-rate', f.rewardLearningRate),
        betas: numbers('--betas', f.betas),
        targetKls: numbers('--target-kls', f.targetKls),
        bestOfN: bestOf,
        unlikelihoodAlpha: alpha,
        methods: f.methods === undefined ? undefined : parseList(f.methods),
        maxNewTokens: positive('--max-new-tokens', f.maxNewTokens),
        seed: parseInteger('--seed', f.seed),
        threads: positive('--threads', f.threads),
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
