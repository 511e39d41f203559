/**
 * `dpo generate`: sample completions for a file of prompts with a KV-cache decoder, one output
 * line per prompt, in input order.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { option } from '../config/option.js';
import { RuntimeOptionsSchema } from '../config/runtime.js';
import { PromptSourceSchema, SamplingOptionsSchema } from '../config/sampling.js';
import { DpoError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { loadModelOrAdapter } from '../models/load-model.js';
import { Generator } from '../generate/generator.js';
import { loadPrompts } from '../generate/prompts.js';
import { resolveSampling, type TextGenerationResult } from '../generate/text.js';
import { GenerationStopped, type GenerationStats } from '../generate/generator.js';
import { stopOnSignals } from './signals.js';
import { bestOfN } from '../eval/best-of-n.js';
import { openRewardSource } from '../eval/rewards.js';
import { getScorer, listScorers } from '../eval/scorers.js';
import { createProgress, type ProgressReporter } from '../progress.js';
import type { CliContext, CliStream } from './context.js';
import { addOptions } from './options.js';
import { configFromFlags, optionsFromSchema } from './schema-options.js';
import { formatBadRow } from '../data/bad-rows.js';

/** The flags of `dpo generate`: the shared prompt, sampling and runtime options, plus its own. */
export const GenerateFlagsSchema = z
  .object({
    ...PromptSourceSchema.pick({ model: true, prompts: true }).shape,
    output: option(z.string().min(1), 'output JSONL file (written atomically)', { arg: 'file', group: 'checkpoints' }),
    ...SamplingOptionsSchema.pick({ numSamples: true, maxNewTokens: true, temperature: true, topK: true, topP: true, greedy: true, seed: true, stop: true, maxPromptTokens: true, batchSize: true }).shape,
    ...RuntimeOptionsSchema.shape,
    onBadRow: PromptSourceSchema.shape.onBadRow,
    bestOf: option(z.number().int().min(1).optional(), 'Best-of-N: sample n candidates per kept completion, keep the highest-reward one', { group: 'reward' }),
    scorer: option(z.string().min(1).optional(), `Best-of-N reward: a built-in scorer (${listScorers().map((x) => x.name).join(', ')})`, { arg: 'name', group: 'reward' }),
    rewardModel: option(z.string().min(1).optional(), 'Best-of-N reward: a reward model folder (dpo reward train output)', { arg: 'dir', group: 'reward' }),
  })
  .strict();

export type GenerateCommandOptions = z.output<typeof GenerateFlagsSchema>;

export const GENERATE_OPTIONS = optionsFromSchema(GenerateFlagsSchema);

export interface GenerateSummary {
  output: string;
  prompts: number;
  samplesPerPrompt: number;
  skippedRows: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** Stopped by a signal: `prompts` finished ones were written, of `requested`. */
  interrupted?: boolean;
  requested?: number;
  /** Best-of-N: N, the reward that ranked, and the mean reward of kept and of all candidates. */
  bestOf?: { n: number; reward: string; keptRewardMean: number; candidateRewardMean: number };
}

const EXAMPLES = `
Prompt rows: {"prompt": "..."}, or conversational {"prompt": [{"role": "user", "content": "..."}]}
or {"messages": [...]}, rendered with the tokenizer's chat template and its generation prompt.
Output rows: {"prompt": ..., "completions": ["...", ...], "finish_reasons": ["eos"|"stop"|"length",
...]}, one per prompt, in input order (dpo label --completions labels them).

With --best-of N, N candidates are sampled for each kept completion and the one with the highest
reward (--scorer NAME or --reward-model DIR) is kept; rows then carry "rewards" too.

Sampling is on by default (temperature 1; top-k 50 and top-p 1 unless the model's
generation_config.json says otherwise); --greedy or --temperature 0 decodes greedily.

Examples:
  $ dpo generate --model gpt2 --prompts prompts.jsonl --output samples.jsonl
  $ dpo generate --model ./sft --prompts p.jsonl --output s.jsonl --num-samples 4 --temperature 0.7 --top-p 0.9 --seed 1
  $ dpo generate --model ./sft --prompts p.jsonl --output s.jsonl --greedy --max-new-tokens 64 --stop "\\n\\n"
  $ dpo generate --model ./sft --prompts p.jsonl --output best.jsonl --best-of 16 --reward-model ./rm`;

/** `\n`, `\t`, `\r` and `\\` in a --stop value (shells pass them literally). */
export function unescapeStop(value: string): string {
  return value.replace(/\\([ntr\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : '\\'));
}

/** Adds `dpo generate` to `program` (results summary as JSON on stdout, progress on stderr). */
export function register(program: Command, ctx?: CliContext): void {
  const cmd = program.command('generate').description('sample completions for a file of prompts (KV-cache decoding), with tokens per second');
  addOptions(cmd, GENERATE_OPTIONS, GenerateFlagsSchema);
  cmd.addHelpText('after', EXAMPLES).action(async (flags: Record<string, unknown>) => {
    const opts = configFromFlags(GenerateFlagsSchema, GENERATE_OPTIONS, flags);
    const stderr = ctx?.io.stderr ?? process.stderr;
    const signals = stopOnSignals((m) => stderr.write(`${m}\n`), undefined, 'stopping within a decoding step and writing the prompts already finished');
    try {
      const summary = await runGenerate(opts, { ...(ctx ? { stdout: ctx.io.stdout, stderr, progress: ctx.progress() } : {}), signal: signals.signal });
      // 130 / 143: stopped by SIGINT / SIGTERM (only the finished prompts were written).
      if (summary.interrupted && ctx) ctx.exitCode = signals.exitCode();
    } finally {
      signals.dispose();
    }
  });
}

/** The command's work, callable without commander (tests, scripts). */
export async function runGenerate(
  opts: GenerateCommandOptions,
  io: { stdout?: CliStream; stderr?: CliStream; progress?: ProgressReporter; signal?: AbortSignal } = {},
): Promise<GenerateSummary> {
  const stderr = io.stderr ?? process.stderr;
  const { numSamples, maxNewTokens, temperature, topK, topP, seed, batchSize, maxPromptTokens, threads, onBadRow, bestOf } = opts;
  const stop = opts.stop?.map(unescapeStop);
  const doSample = !opts.greedy && temperature !== 0;
  const runtime = { threads, executionProvider: opts.device };
  if (bestOf !== undefined && !opts.scorer === !opts.rewardModel) throw new DpoError('--best-of needs a reward: --scorer NAME or --reward-model DIR (one of them)');
  if (bestOf === undefined && (opts.scorer || opts.rewardModel)) throw new DpoError(`${opts.scorer ? '--scorer' : '--reward-model'} ranks Best-of-N candidates: give --best-of N too`);
  if (opts.scorer) getScorer(opts.scorer);

  const pretrained = await loadModelOrAdapter(opts.model);
  const { model, weights, tokenizer, generationConfig } = pretrained;
  if (!tokenizer) throw new DpoError(`${pretrained.dir}: no tokenizer.json; dpo generate needs the model's tokenizer`);
  const { prompts, skipped } = await loadPrompts(opts.prompts, tokenizer, { onBadRow });
  for (const bad of skipped) stderr.write(`skipped ${formatBadRow(bad)}\n`);
  if (prompts.length === 0) throw new DpoError(`${opts.prompts}: no prompts to generate from`);
  const sampling = resolveSampling({ maxNewTokens, temperature: doSample ? temperature : undefined, topK, topP, generationConfig });

  const progress = io.progress ?? createProgress(process.stderr);
  const reward = bestOf !== undefined ? await openRewardSource({ scorer: opts.scorer, rewardModel: opts.rewardModel, batchSize, runtime, progress }) : undefined;
  const generator = await Generator.create(model, { runtime });
  let result: TextGenerationResult & { rewards?: number[][]; candidateRewards?: number[][] };
  // Prompts whose every completion is done: all of them, unless a signal stopped the run.
  let done: readonly boolean[] = prompts.map(() => true);
  try {
    progress.start('generate', prompts.length * numSamples * (bestOf ?? 1));
    const options = {
      ...sampling,
      doSample,
      numSamples,
      seed,
      stop,
      batchSize,
      maxPromptTokens,
      generationConfig,
      onProgress: (n: number, _total: number, stats: GenerationStats) => progress.update(n, { 'tok/s': stats.tokensPerSecond }),
      stopRequested: () => io.signal?.aborted ?? false,
    };
    const texts = prompts.map((p) => p.text);
    try {
      result = reward
        ? await bestOfN(generator, weights, tokenizer, texts, { ...options, n: bestOf as number, reward: reward.fn })
        : await generator.generateText(weights, tokenizer, texts, options);
    } catch (e) {
      if (!(e instanceof GenerationStopped)) throw e;
      done = e.done;
      result = e.partial as typeof result;
    }
  } finally {
    progress.stop();
    await generator.release();
    await reward?.release();
  }

  const rewards = result.rewards;
  // finish_reasons: why each completion ended ('eos', 'stop' string, 'length' limit), as dpo label --completions shows it.
  const kept = done.filter(Boolean).length;
  const interrupted = kept < prompts.length;
  const lines = prompts.flatMap((p, i) => (!done[i] ? [] : `${JSON.stringify({ prompt: p.prompt, completions: result.completions[i], finish_reasons: result.finishReasons[i], ...(rewards ? { rewards: rewards[i] } : {}) })}\n`));
  const { tokens, seconds, tokensPerSecond } = result.stats;
  if (kept > 0) {
    await mkdir(dirname(opts.output), { recursive: true });
    await writeFileAtomic(opts.output, async (handle) => {
      await handle.writeFile(lines.join(''));
    });
  }
  if (interrupted) {
    stderr.write(
      kept > 0
        ? `stopped: wrote the ${kept} of ${prompts.length} prompts whose completions were all finished to ${opts.output} (in input order; the other ${prompts.length - kept} were not generated)\n`
        : `stopped before any of the ${prompts.length} prompts was finished; ${opts.output} was not written\n`,
    );
  }
  if (kept > 0) stderr.write(
    `generated ${tokens} tokens for ${kept} prompts x ${numSamples}${bestOf ? ` best-of-${bestOf}` : ""} samples in ${seconds.toFixed(2)}s (${tokensPerSecond.toFixed(1)} tokens/s) -> ${opts.output}\n`,
  );
  const summary: GenerateSummary = {
    output: opts.output,
    prompts: kept,
    ...(interrupted ? { interrupted, requested: prompts.length } : {}),
    samplesPerPrompt: numSamples,
    skippedRows: skipped.length,
    tokens,
    seconds: Number(seconds.toFixed(3)),
    tokensPerSecond: Number(tokensPerSecond.toFixed(2)),
  };
  if (reward && rewards && result.candidateRewards) {
    const mean = (xs: number[]): number => Number((xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1)).toPrecision(6));
    summary.bestOf = { n: bestOf as number, reward: reward.source, keptRewardMean: mean(rewards.flat()), candidateRewardMean: mean(result.candidateRewards.flat()) };
    stderr.write(`best-of-${bestOf} (${reward.source}): mean reward ${summary.bestOf.keptRewardMean} kept vs ${summary.bestOf.candidateRewardMean} over all candidates\n`);
  }
  io.stdout?.write(`${JSON.stringify(summary)}\n`);
  return summary;
}
