/**
 * `dpo evaluate`: sample from a policy and report the mean reward of the samples, the
 * sequence-level KL(π‖π_ref) and the win rate against a baseline, as one JSON object on stdout
 * (and in --output) plus a short table on stderr.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { option } from '../config/option.js';
import { RuntimeOptionsSchema } from '../config/runtime.js';
import { PromptSourceSchema, SamplingOptionsSchema, withDefault } from '../config/sampling.js';
import { DpoError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { evaluateGenerations, EvaluationStopped, formatReport, type EvaluationReport, type JudgeOptions } from '../eval/evaluate.js';
import { JUDGE_TEMPLATES, type JudgeTemplateName } from '../eval/judge.js';
import { getScorer, listScorers } from '../eval/scorers.js';
import type { ProgressReporter } from '../progress.js';
import type { CliContext, CliStream } from './context.js';
import { JUDGE_FLAGS } from './judge-flags.js';
import { addOptions } from './options.js';
import { stopOnSignals } from './signals.js';
import { configFromFlags, optionsFromSchema } from './schema-options.js';

const sampling = SamplingOptionsSchema.shape;

/**
 * The flags of `dpo evaluate`: the shared prompt, sampling and runtime options (sampling purely
 * by default: temperature 1, no top-k / top-p, for an unbiased KL), the reward / judge, outputs.
 */
export const EvaluateFlagsSchema = z
  .object({
    model: option(z.string().min(1), 'the policy to sample from', { arg: 'path|hub-id', group: 'model' }),
    refModel: option(z.string().min(1), 'the reference model of the KL', { arg: 'path|hub-id', group: 'reference' }),
    prompts: PromptSourceSchema.shape.prompts,
    onBadRow: option(z.enum(['error', 'skip']).default('error'), 'malformed prompt / baseline rows: error (list them and stop) or skip (report them)', { arg: 'action' }),
    numSamples: sampling.numSamples,
    temperature: withDefault(sampling.temperature, 1),
    topK: withDefault(sampling.topK, 0),
    topP: withDefault(sampling.topP, 1),
    maxNewTokens: sampling.maxNewTokens,
    seed: sampling.seed,
    rewardModel: option(z.string().min(1).optional(), 'reward model (dpo reward train output, sequence-classification layout)', { arg: 'path' }),
    scorer: option(z.string().min(1).optional(), `built-in reward instead of a reward model: ${listScorers().map((s) => s.name).join(', ')}`, { arg: 'name' }),
    baseline: option(z.string().min(1).optional(), "a model whose samples are the win rate's baseline", { arg: 'path|hub-id', group: 'reward' }),
    baselineFile: option(z.string().min(1).optional(), 'baseline completions by prompt (instead of --baseline)', { arg: 'path', group: 'reward' }),
    // The LLM judge's keys as `dpo judge agreement` has them (cli/judge-flags.ts), described once.
    judgeUrl: JUDGE_FLAGS.judgeUrl,
    judgeModel: JUDGE_FLAGS.judgeModel,
    judgeApiKeyEnv: JUDGE_FLAGS.judgeApiKeyEnv,
    // A string (checked below) rather than an enum, for its one-line error naming the templates.
    judgeTemplate: option(z.string().default('dialogue'), `comparison prompt: ${JUDGE_TEMPLATES.join(', ')}`, { arg: 'name' }),
    judgeConcurrency: JUDGE_FLAGS.judgeConcurrency,
    judgeMaxAttempts: JUDGE_FLAGS.judgeMaxAttempts,
    judgeTimeout: JUDGE_FLAGS.judgeTimeout,
    output: option(z.string().min(1).optional(), 'also write the report (JSON) to this file', { arg: 'file' }),
    perSample: option(z.string().min(1).optional(), 'write every sample (prompt, completion, reward, log-probs, baseline, outcome) as JSONL', { arg: 'file', group: 'checkpoints' }),
    cacheDir: option(z.string().min(1).optional(), 'where judge verdicts are cached (default: $DPO_TS_CACHE or ~/.cache/dpo-ts)', { arg: 'dir', group: 'reward' }),
    batchSize: sampling.batchSize,
    ...RuntimeOptionsSchema.shape,
  })
  .strict();

export type EvaluateCommandOptions = z.output<typeof EvaluateFlagsSchema>;

export const EVALUATE_OPTIONS = optionsFromSchema(EvaluateFlagsSchema);

const EXAMPLES = `
Reports, as one JSON object on stdout (also written to --output):
  reward     mean reward of the samples (reward model, minus its reward_offset; or a scorer)
  kl         KL(pi || ref) = mean over samples of log pi(y|x) - log ref(y|x), sums over completion
             tokens (unbiased with the default pure sampling: temperature 1, no top-k/top-p)
  win_rate   wins, ties, losses, malformed and win_rate = (wins + ties/2) / (wins + ties + losses)
             against the baseline (sample k of a prompt vs baseline completion k)
A short table goes to stderr.

Win rates are judged by the reward (higher wins, equal = tie), or with --judge-url by an LLM
behind an OpenAI-compatible /chat/completions endpoint, with the DPO paper's comparison prompt
(--judge-template dialogue|summarization), temperature 0, asked in both orders: the same choice
both times is a win or a loss, a split a tie, an unparsable answer in either order 'malformed'.
Requests are retried with backoff (429, 5xx, network errors, --judge-timeout, replies without
answer text; Retry-After honoured); errors a retry cannot fix (401, 404, used-up quota, unknown
host, TLS certificate) stop at once. Verdicts are cached in --cache-dir, keyed by endpoint URL,
judge model and prompt, so an interrupted evaluation resumes without asking again.

Baseline file rows: {"prompt": ..., "completion": "..."}, {"prompt": ..., "completions": [...]}
(dpo generate output) or {"prompt": ..., "chosen": ...}, matched to the prompts by prompt.

Examples:
  $ dpo evaluate --model runs/dpo --ref-model runs/sft --prompts prompts.jsonl --scorer sentiment
  $ dpo evaluate --model runs/dpo --ref-model runs/sft --prompts p.jsonl --reward-model runs/rm \\
      --baseline runs/sft --num-samples 4 --output report.json
  $ OPENAI_API_KEY=... dpo evaluate --model runs/dpo --ref-model runs/sft --prompts p.jsonl \\
      --baseline-file test-chosen.jsonl --judge-url https://api.openai.com/v1 --judge-model gpt-4o`;

async function mustExist(path: string | undefined, flag: string): Promise<void> {
  if (path === undefined) return;
  try {
    await stat(path);
  } catch {
    throw new DpoError(`${flag}: no such file or folder: ${path}`);
  }
}

/** Adds `dpo evaluate` to `program`. */
export function register(program: Command, ctx?: CliContext): void {
  const cmd = program.command('evaluate').description('sample from a policy: mean reward, KL(pi || ref) and win rate vs a baseline (reward or LLM judge)');
  addOptions(cmd, EVALUATE_OPTIONS, EvaluateFlagsSchema);
  cmd.addHelpText('after', EXAMPLES).action(async (flags: Record<string, unknown>) => {
    const opts = configFromFlags(EvaluateFlagsSchema, EVALUATE_OPTIONS, flags);
    const stderr = ctx?.io.stderr ?? process.stderr;
    const signals = stopOnSignals((m) => stderr.write(`${m}\n`), undefined, 'stopping the evaluation within a decoding step (the judge: after the questions in flight)');
    try {
      await runEvaluate(opts, { ...(ctx ? { stdout: ctx.io.stdout, stderr, progress: ctx.progress() } : {}), signal: signals.signal });
    } catch (e) {
      if (!(e instanceof EvaluationStopped) || !ctx) throw e;
      // 130 / 143: stopped by SIGINT / SIGTERM; the message says what was kept.
      stderr.write(`${e.message}\n`);
      ctx.exitCode = signals.exitCode();
    } finally {
      signals.dispose();
    }
  });
}

/** The command's work, callable without commander (tests, scripts). */
export async function runEvaluate(
  opts: EvaluateCommandOptions,
  io: { stdout?: CliStream; stderr?: CliStream; progress?: ProgressReporter; env?: NodeJS.ProcessEnv; fetch?: typeof fetch; sleep?: (ms: number) => Promise<void>; signal?: AbortSignal } = {},
): Promise<EvaluationReport> {
  const stderr = io.stderr ?? process.stderr;
  const env = io.env ?? process.env;
  if (opts.rewardModel && opts.scorer) throw new DpoError('--reward-model and --scorer: give one of them');
  if (opts.baseline && opts.baselineFile) throw new DpoError('--baseline and --baseline-file: give one of them');
  if (opts.scorer !== undefined) getScorer(opts.scorer);
  if (opts.judgeUrl && !opts.judgeModel) throw new DpoError('--judge-url needs --judge-model (the model name the endpoint serves)');
  if (opts.judgeModel && !opts.judgeUrl) throw new DpoError('--judge-model needs --judge-url');
  if (opts.judgeUrl && !opts.baseline && !opts.baselineFile) throw new DpoError('--judge-url compares against a baseline: give --baseline or --baseline-file');
  if ((opts.baseline || opts.baselineFile) && !opts.rewardModel && !opts.scorer && !opts.judgeUrl) {
    throw new DpoError('a win rate needs a judge: --reward-model, --scorer or --judge-url');
  }
  const template = opts.judgeTemplate;
  if (!(JUDGE_TEMPLATES as readonly string[]).includes(template)) throw new DpoError(`--judge-template must be one of ${JUDGE_TEMPLATES.join(', ')}, got '${template}'`);
  const { numSamples, temperature, topK, topP, maxNewTokens, seed, batchSize, threads, onBadRow, device } = opts;
  await mustExist(opts.prompts, '--prompts');
  await mustExist(opts.baselineFile, '--baseline-file');

  let judge: JudgeOptions | undefined;
  if (opts.judgeUrl && opts.judgeModel) {
    const keyVar = opts.judgeApiKeyEnv;
    const apiKey = env[keyVar];
    // An explicitly named variable must be set; the default one may be absent (local servers need no key).
    if (!apiKey && keyVar !== 'OPENAI_API_KEY') {
      throw new DpoError(`--judge-api-key-env: environment variable ${keyVar} is not set`);
    }
    judge = { url: opts.judgeUrl, model: opts.judgeModel, apiKey: apiKey || undefined, template: template as JudgeTemplateName, concurrency: opts.judgeConcurrency, maxAttempts: opts.judgeMaxAttempts, timeoutMs: opts.judgeTimeout * 1000, fetch: io.fetch, sleep: io.sleep };
  }

  const progress = io.progress;
  const report = await evaluateGenerations({
    model: opts.model,
    refModel: opts.refModel,
    prompts: opts.prompts,
    rewardModel: opts.rewardModel,
    scorer: opts.scorer,
    baseline: opts.baseline,
    baselineFile: opts.baselineFile,
    judge,
    numSamples,
    temperature,
    topK,
    topP,
    maxNewTokens,
    seed,
    batchSize,
    cacheDir: opts.cacheDir,
    onBadRow,
    runtime: { threads, executionProvider: device },
    progress,
    perSample: opts.perSample !== undefined,
    signal: io.signal,
    log: (m) => (progress ? progress.log(m) : stderr.write(`${m}\n`)),
  });
  const perSample = report.per_sample;
  delete report.per_sample;
  if (opts.perSample && perSample) {
    await mkdir(dirname(opts.perSample), { recursive: true });
    await writeFile(opts.perSample, perSample.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }
  const json = JSON.stringify(report);
  if (opts.output) {
    await mkdir(dirname(opts.output), { recursive: true });
    await writeFileAtomic(opts.output, async (handle) => {
      await handle.writeFile(`${JSON.stringify(report, null, 2)}\n`);
    });
  }
  stderr.write(formatReport(report));
  io.stdout?.write(`${json}\n`);
  return report;
}
