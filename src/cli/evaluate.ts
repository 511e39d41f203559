/**
 * `dpo evaluate`: sample from a policy and report the mean reward of the samples, the
 * sequence-level KL(π‖π_ref) and the win rate against a baseline, as one JSON object on stdout
 * (and in --output) plus a short table on stderr.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { DpoError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { evaluateGenerations, formatReport, type EvaluationReport, type JudgeOptions } from '../eval/evaluate.js';
import { JUDGE_TEMPLATES, type JudgeTemplateName } from '../eval/judge.js';
import { getScorer, listScorers } from '../eval/scorers.js';
import type { ProgressReporter } from '../progress.js';
import type { CliContext, CliStream } from './context.js';
import { parseInteger, parseNumber } from './options.js';

export interface EvaluateCommandOptions {
  model?: string;
  refModel?: string;
  prompts?: string;
  rewardModel?: string;
  scorer?: string;
  baseline?: string;
  baselineFile?: string;
  judgeUrl?: string;
  judgeModel?: string;
  judgeApiKeyEnv?: string;
  judgeTemplate?: string;
  judgeConcurrency?: string;
  judgeMaxAttempts?: string;
  judgeTimeout?: string;
  numSamples?: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  maxNewTokens?: string;
  seed?: string;
  batchSize?: string;
  output?: string;
  perSample?: string;
  cacheDir?: string;
  onBadRow?: string;
  threads?: string;
  device?: string;
}

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

function integer(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = parseInteger(flag, value);
  if (n < min) throw new DpoError(`${flag}: expected an integer >= ${min}, got '${value}'`);
  return n;
}

function float(value: string | undefined, flag: string, ok: (n: number) => boolean, what: string): number | undefined {
  if (value === undefined) return undefined;
  const n = parseNumber(flag, value);
  if (!ok(n)) throw new DpoError(`${flag}: expected ${what}, got '${value}'`);
  return n;
}

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
  program
    .command('evaluate')
    .description("sample from a policy: mean reward, KL(pi || ref) and win rate vs a baseline (reward or LLM judge)")
    .option('--model <path|hub-id>', 'the policy to sample from (required)')
    .option('--ref-model <path|hub-id>', 'the reference model of the KL (required)')
    .option('--prompts <path>', 'prompts file or folder (.jsonl, .json, .parquet), rows as dpo generate reads them (required)')
    .option('--reward-model <path>', 'reward model (dpo reward train output, sequence-classification layout)')
    .option('--scorer <name>', `built-in reward instead of a reward model: ${listScorers().map((s) => s.name).join(', ')}`)
    .option('--baseline <path|hub-id>', "a model whose samples are the win rate's baseline")
    .option('--baseline-file <path>', 'baseline completions by prompt (instead of --baseline)')
    .option('--judge-url <url>', 'OpenAI-compatible API base URL (…/v1) or …/chat/completions: judge win rates with an LLM')
    .option('--judge-model <name>', 'model name sent to the judge endpoint')
    .option('--judge-api-key-env <var>', 'environment variable holding the judge API key, sent as Bearer', 'OPENAI_API_KEY')
    .option('--judge-template <name>', `comparison prompt: ${JUDGE_TEMPLATES.join(', ')}`, 'dialogue')
    .option('--judge-concurrency <n>', 'judge requests in flight at once', '4')
    .option('--judge-max-attempts <n>', 'tries per judge request (first one included)', '6')
    .option('--judge-timeout <seconds>', 'seconds one judge request may take before it is abandoned (and retried)', '120')
    .option('--num-samples <k>', 'samples per prompt', '1')
    .option('--temperature <t>', 'sampling temperature; 0 decodes greedily', '1')
    .option('--top-k <k>', 'keep the k most likely tokens; 0 disables', '0')
    .option('--top-p <p>', 'nucleus sampling threshold; 1 disables', '1')
    .option('--max-new-tokens <n>', 'new tokens per sample at most (default: generation_config.json max_new_tokens, else 64)')
    .option('--seed <s>', 'random seed of the samples', '0')
    .option('--batch-size <n>', 'sequences per generation / scoring batch', '8')
    .option('--output <file>', 'also write the report (JSON) to this file')
    .option('--per-sample <file>', 'write every sample (prompt, completion, reward, log-probs, baseline, outcome) as JSONL')
    .option('--cache-dir <dir>', 'where judge verdicts are cached (default: $DPO_TS_CACHE or ~/.cache/dpo-ts)')
    .option('--on-bad-row <mode>', "malformed prompt / baseline rows: 'error' (list them and stop) or 'skip'", 'error')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: all cores; capped at the core count)')
    .option('--device <name>', "execution provider: 'cpu' or 'cuda'", 'cpu')
    .addHelpText('after', EXAMPLES)
    .action(async (opts: EvaluateCommandOptions) => {
      await runEvaluate(opts, ctx ? { stdout: ctx.io.stdout, stderr: ctx.io.stderr, progress: ctx.progress() } : {});
    });
}

/** The command's work, callable without commander (tests, scripts). */
export async function runEvaluate(
  opts: EvaluateCommandOptions,
  io: { stdout?: CliStream; stderr?: CliStream; progress?: ProgressReporter; env?: NodeJS.ProcessEnv; fetch?: typeof fetch; sleep?: (ms: number) => Promise<void> } = {},
): Promise<EvaluationReport> {
  const stderr = io.stderr ?? process.stderr;
  const env = io.env ?? process.env;
  const missing = (['model', 'refModel', 'prompts'] as const).filter((k) => !opts[k]).map((k) => `--${k === 'refModel' ? 'ref-model' : k}`);
  if (missing.length) throw new DpoError(`missing required option${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  if (opts.rewardModel && opts.scorer) throw new DpoError('--reward-model and --scorer: give one of them');
  if (opts.baseline && opts.baselineFile) throw new DpoError('--baseline and --baseline-file: give one of them');
  if (opts.scorer !== undefined) getScorer(opts.scorer);
  if (opts.judgeUrl && !opts.judgeModel) throw new DpoError('--judge-url needs --judge-model (the model name the endpoint serves)');
  if (opts.judgeModel && !opts.judgeUrl) throw new DpoError('--judge-model needs --judge-url');
  if (opts.judgeUrl && !opts.baseline && !opts.baselineFile) throw new DpoError('--judge-url compares against a baseline: give --baseline or --baseline-file');
  if ((opts.baseline || opts.baselineFile) && !opts.rewardModel && !opts.scorer && !opts.judgeUrl) {
    throw new DpoError('a win rate needs a judge: --reward-model, --scorer or --judge-url');
  }
  const template = opts.judgeTemplate ?? 'dialogue';
  if (!(JUDGE_TEMPLATES as readonly string[]).includes(template)) throw new DpoError(`--judge-template must be one of ${JUDGE_TEMPLATES.join(', ')}, got '${template}'`);
  const numSamples = integer(opts.numSamples ?? '1', '--num-samples', 1);
  const temperature = float(opts.temperature ?? '1', '--temperature', (n) => n >= 0, 'a number >= 0');
  const topK = integer(opts.topK ?? '0', '--top-k', 0);
  const topP = float(opts.topP ?? '1', '--top-p', (n) => n > 0 && n <= 1, 'a number in (0, 1]');
  const maxNewTokens = integer(opts.maxNewTokens, '--max-new-tokens', 1);
  const seed = integer(opts.seed ?? '0', '--seed', 0);
  const batchSize = integer(opts.batchSize ?? '8', '--batch-size', 1);
  const concurrency = integer(opts.judgeConcurrency ?? '4', '--judge-concurrency', 1);
  const maxAttempts = integer(opts.judgeMaxAttempts ?? '6', '--judge-max-attempts', 1);
  const judgeTimeout = float(opts.judgeTimeout ?? '120', '--judge-timeout', (n) => n > 0, 'a number of seconds > 0');
  const threads = integer(opts.threads, '--threads', 1);
  const onBadRow = opts.onBadRow ?? 'error';
  if (onBadRow !== 'error' && onBadRow !== 'skip') throw new DpoError(`--on-bad-row must be 'error' or 'skip', got '${onBadRow}'`);
  const device = opts.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new DpoError(`--device must be 'cpu' or 'cuda', got '${device}'`);
  await mustExist(opts.prompts, '--prompts');
  await mustExist(opts.baselineFile, '--baseline-file');

  let judge: JudgeOptions | undefined;
  if (opts.judgeUrl && opts.judgeModel) {
    const keyVar = opts.judgeApiKeyEnv ?? 'OPENAI_API_KEY';
    const apiKey = env[keyVar];
    // An explicitly named variable must be set; the default one may be absent (local servers need no key).
    if (!apiKey && opts.judgeApiKeyEnv !== undefined && opts.judgeApiKeyEnv !== 'OPENAI_API_KEY') {
      throw new DpoError(`--judge-api-key-env: environment variable ${keyVar} is not set`);
    }
    judge = { url: opts.judgeUrl, model: opts.judgeModel, apiKey: apiKey || undefined, template: template as JudgeTemplateName, concurrency, maxAttempts, timeoutMs: (judgeTimeout ?? 120) * 1000, fetch: io.fetch, sleep: io.sleep };
  }

  const progress = io.progress;
  const report = await evaluateGenerations({
    model: opts.model as string,
    refModel: opts.refModel,
    prompts: opts.prompts as string,
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
