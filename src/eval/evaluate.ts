/**
 * Policy evaluation as in the DPO paper: sample completions from the policy π for a set of
 * prompts, then report
 * - the mean reward of the samples under a reward model (normalised: raw − reward_offset) or a
 *   built-in / custom scorer;
 * - the sequence-level KL(π‖π_ref), estimated as the mean over samples of
 *   log π(y|x) − log π_ref(y|x) (see kl.ts); the sampled token ids are scored exactly as drawn;
 * - the win rate against baseline completions (another model's samples, or a file's), judged by
 *   the reward (higher wins, equal = tie) or by an LLM judge asked in both orders (see judge.ts).
 *
 * Sampling defaults to pure ancestral sampling (temperature 1, no top-k, top-p 1) so the samples
 * are draws from π and the KL estimate is unbiased; other settings are allowed and flagged.
 */
import type { OnBadRow } from '../data/types.js';
import type { RuntimeOptions } from '../engine/runtime.js';
import { DpoError } from '../errors.js';
import { GenerationStopped, Generator } from '../generate/generator.js';
import { loadPrompts, promptQueryText, type PromptRow } from '../generate/prompts.js';
import { resolveSampling, type TextGenerationResult } from '../generate/text.js';
import { formatBadRow } from '../data/bad-rows.js';
import { loadModelOrAdapter } from '../models/load-model.js';
import { silentProgress, type ProgressReporter } from '../progress.js';
import { defaultCacheDir } from '../scoring/reference-cache.js';
import { loadBaselineFile, matchBaselines } from './baseline.js';
import { JudgeClient, judgePairs, JudgeStopped, VerdictCache, countOutcomes, type JudgeTemplateName, type Outcome, type WinRateCounts } from './judge.js';
import { completionLogps, estimateKl, sampleStats, type SampleStats } from './kl.js';
import { openRewardSource } from './rewards.js';
import { getScorer, type CompletionScorer } from './scorers.js';

export interface JudgeOptions {
  /** Base URL of an OpenAI-compatible API (…/v1) or the full …/chat/completions URL. */
  url: string;
  model: string;
  /** Sent as a Bearer token when set. */
  apiKey?: string;
  /** Comparison prompt of the paper's Appendix C (default 'dialogue'). */
  template?: JudgeTemplateName;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
}

export interface EvaluateGenerationsOptions {
  /** The policy π: a model folder or hub id. */
  model: string;
  /** π_ref for the KL estimate (omitted: no KL). */
  refModel?: string;
  /** Prompts file or folder (rows as `dpo generate` reads them). */
  prompts: string;
  /** A reward model (sequence-classification layout) for rewards and, without a judge, win rates. */
  rewardModel?: string;
  /** A registered scorer name ('sentiment', 'length', ...) or a function, instead of a reward model. */
  scorer?: string | CompletionScorer;
  /** Names a function `scorer` in the report (default 'custom'). */
  scorerName?: string;
  /** A model whose samples are the baseline of the win rate. */
  baseline?: string;
  /** A file of baseline completions (see baseline.ts), instead of `baseline`. */
  baselineFile?: string;
  /** Judge win rates with an LLM instead of the reward. */
  judge?: JudgeOptions;
  /** Samples per prompt (default 1). */
  numSamples?: number;
  /** Default 1; 0 decodes greedily. */
  temperature?: number;
  /** Default 0 (off). */
  topK?: number;
  /** Default 1 (off). */
  topP?: number;
  /** Default: generation_config.json's max_new_tokens, else 64. */
  maxNewTokens?: number;
  /** Default 0. */
  seed?: number;
  /** Sequences per generation batch and per scoring batch (default 8). */
  batchSize?: number;
  /** Where the judge's verdict cache lives (default: DPO_TS_CACHE or ~/.cache/dpo-ts). */
  cacheDir?: string;
  onBadRow?: OnBadRow;
  runtime?: RuntimeOptions;
  progress?: ProgressReporter;
  /** Include every sample in the report (`per_sample`). */
  perSample?: boolean;
  /** Notes (e.g. skipped rows, retries) as they happen. */
  log?: (message: string) => void;
  /**
   * Aborting it stops the evaluation within a decoding step (or before the next judge question),
   * throwing {@link EvaluationStopped}; the judge's verdicts so far stay cached. The CLI aborts it
   * on SIGINT and SIGTERM.
   */
  signal?: AbortSignal;
}

/** Thrown when the `signal` of {@link evaluateGenerations} stopped it; the message says what was kept. */
export class EvaluationStopped extends DpoError {
  constructor(message: string) {
    super(message);
    this.name = 'EvaluationStopped';
  }
}

export interface RewardSummary extends SampleStats {
  /** 'reward_model:<path>' or 'scorer:<name>'. */
  source: string;
}

export interface KlSummary extends SampleStats {
  policy_logps_mean: number;
  ref_logps_mean: number;
  /** Set when the samples were not plain draws from π (the estimate is then not unbiased). */
  note?: string;
}

export interface WinRateSummary extends WinRateCounts {
  /** 'reward_model:<path>', 'scorer:<name>' or 'llm:<judge model>'. */
  judge: string;
  /** 'model:<path>' or 'file:<path>'. */
  baseline: string;
  /** Mean reward of the baseline completions (reward judges). */
  baseline_reward_mean?: number;
  /** LLM judge: questions answered from the cache, questions sent, HTTP requests (retries included). */
  cached?: number;
  asked?: number;
  http_requests?: number;
  /** LLM judge: share of valid answers that picked position A (0.5 = no position bias). */
  first_position_rate?: number | null;
}

export interface SampleRecord {
  prompt: PromptRow['prompt'];
  sample: number;
  completion: string;
  finish_reason: string;
  tokens: number;
  reward?: number;
  logp?: number;
  ref_logp?: number;
  baseline?: string;
  baseline_reward?: number;
  outcome?: Outcome;
}

export interface EvaluationReport {
  model: string;
  ref_model?: string;
  prompts_file: string;
  prompts: number;
  samples_per_prompt: number;
  samples: number;
  skipped_rows: number;
  sampling: { temperature: number; top_k: number; top_p: number; max_new_tokens: number; seed: number };
  completion_tokens_mean: number;
  reward?: RewardSummary;
  kl?: KlSummary;
  win_rate?: WinRateSummary;
  seconds: number;
  per_sample?: SampleRecord[];
}

function round(x: number, digits = 6): number {
  return Number.isFinite(x) ? Number(x.toPrecision(digits)) : x;
}

function stats(values: ArrayLike<number>): SampleStats {
  const s = sampleStats(values);
  return { mean: round(s.mean), std: round(s.std), stderr: round(s.stderr), min: round(s.min), max: round(s.max), n: s.n };
}

function checkInt(name: string, v: number | undefined, min: number): void {
  if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new DpoError(`${name} must be an integer >= ${min}, got ${v}`);
}

function checkOptions(o: EvaluateGenerationsOptions): void {
  if (o.rewardModel && o.scorer) throw new DpoError('give a reward model or a scorer, not both');
  if (o.baseline && o.baselineFile) throw new DpoError('give a baseline model or a baseline file, not both');
  if ((o.baseline || o.baselineFile) && !o.rewardModel && !o.scorer && !o.judge) {
    throw new DpoError('a win rate needs a judge: a reward model, a scorer or an LLM judge (--reward-model, --scorer or --judge-url)');
  }
  if (o.judge && !o.baseline && !o.baselineFile) throw new DpoError('an LLM judge compares against a baseline: give a baseline model or a baseline file');
  checkInt('numSamples', o.numSamples, 1);
  checkInt('maxNewTokens', o.maxNewTokens, 1);
  checkInt('topK', o.topK, 0);
  checkInt('seed', o.seed, 0);
  checkInt('batchSize', o.batchSize, 1);
  if (o.temperature !== undefined && !(Number.isFinite(o.temperature) && o.temperature >= 0)) throw new DpoError(`temperature must be a number >= 0, got ${o.temperature}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new DpoError(`topP must be in (0, 1], got ${o.topP}`);
}


interface Samples {
  prompts: PromptRow[];
  skipped: number;
  result: TextGenerationResult;
}

/** Samples `numSamples` completions per prompt from a model. */
async function sample(ref: string, o: EvaluateGenerationsOptions, progress: ProgressReporter, label: string) {
  const pre = await loadModelOrAdapter(ref);
  if (!pre.tokenizer) throw new DpoError(`${pre.dir}: no tokenizer.json; sampling needs the model's tokenizer`);
  const { prompts, skipped } = await loadPrompts(o.prompts, pre.tokenizer, { onBadRow: o.onBadRow });
  for (const bad of skipped) o.log?.(`skipped ${formatBadRow(bad)}`);
  if (prompts.length === 0) throw new DpoError(`${o.prompts}: no prompts to evaluate`);
  const temperature = o.temperature ?? 1;
  const sampling = resolveSampling({ maxNewTokens: o.maxNewTokens, generationConfig: pre.generationConfig });
  const numSamples = o.numSamples ?? 1;
  const generator = await Generator.create(pre.model, { runtime: o.runtime });
  let result: TextGenerationResult;
  try {
    progress.start(`sample ${label}`, prompts.length * numSamples);
    result = await generator.generateText(
      pre.weights,
      pre.tokenizer,
      prompts.map((p) => p.text),
      {
        maxNewTokens: sampling.maxNewTokens,
        doSample: temperature > 0,
        temperature: temperature > 0 ? temperature : 1,
        topK: o.topK ?? 0,
        topP: o.topP ?? 1,
        numSamples,
        seed: o.seed ?? 0,
        batchSize: o.batchSize ?? 8,
        generationConfig: pre.generationConfig,
        onProgress: (done, _total, s) => progress.update(done, { 'tok/s': s.tokensPerSecond }),
        stopRequested: () => o.signal?.aborted ?? false,
      },
    );
  } catch (e) {
    if (e instanceof GenerationStopped) throw new EvaluationStopped(`stopped while sampling from the ${label} model (${e.completed} of ${prompts.length} prompts done); no report written, nothing to keep`);
    throw e;
  } finally {
    progress.stop();
    await generator.release();
  }
  const samples: Samples = { prompts, skipped: skipped.length, result };
  return { pre, samples, maxNewTokens: sampling.maxNewTokens };
}

/**
 * Samples from the policy and reports reward, KL(π‖π_ref) and win rate (see the module comment
 * and {@link EvaluationReport}). Sections whose inputs are not given are left out.
 */
export async function evaluateGenerations(o: EvaluateGenerationsOptions): Promise<EvaluationReport> {
  checkOptions(o);
  const started = performance.now();
  const progress = o.progress ?? silentProgress;
  // An unknown scorer name fails before any sampling.
  if (typeof o.scorer === 'string') getScorer(o.scorer);
  const judgeClient = o.judge
    ? new JudgeClient({
        url: o.judge.url,
        model: o.judge.model,
        apiKey: o.judge.apiKey,
        maxAttempts: o.judge.maxAttempts,
        baseDelayMs: o.judge.baseDelayMs,
        maxDelayMs: o.judge.maxDelayMs,
        timeoutMs: o.judge.timeoutMs,
        fetch: o.judge.fetch,
        sleep: o.judge.sleep,
        onRetry: ({ attempt, delayMs, reason }) => o.log?.(`judge: ${reason}; retry ${attempt} in ${(delayMs / 1000).toFixed(1)}s`),
      })
    : undefined;

  // 1. Samples from π and their log-probs under π.
  const { pre, samples, maxNewTokens } = await sample(o.model, o, progress, 'policy');
  const { prompts, result } = samples;
  const K = o.numSamples ?? 1;
  const flat = prompts.flatMap((p, i) => result.completions[i].map((completion, k) => ({ p, i, k, completion, ids: result.tokenIds[i][k] })));
  const sequences = flat.map((s) => ({ promptIds: result.promptTokenIds[s.i], completionIds: s.ids }));
  let kl: KlSummary | undefined;
  let policyLogps: Float64Array | undefined;
  let refLogps: Float64Array | undefined;
  const checkStop = (phase: string): void => {
    if (o.signal?.aborted) throw new EvaluationStopped(`stopped before ${phase}; no report written, nothing to keep`);
  };
  if (o.refModel) {
    checkStop('the log-probs of the KL estimate');
    const opts = { batchSize: o.batchSize, runtime: o.runtime };
    progress.start('logp policy', sequences.length);
    policyLogps = await completionLogps(pre.model, pre.weights, sequences, { ...opts, onProgress: (d) => progress.update(d) });
    progress.stop();
    const ref = await loadModelOrAdapter(o.refModel, { tokenizer: false });
    progress.start('logp ref', sequences.length);
    refLogps = await completionLogps(ref.model, ref.weights, sequences, { ...opts, onProgress: (d) => progress.update(d) });
    progress.stop();
    const est = estimateKl(policyLogps, refLogps);
    const temperature = o.temperature ?? 1;
    const pure = temperature === 1 && (o.topK ?? 0) === 0 && (o.topP ?? 1) === 1;
    kl = {
      ...stats(est.logRatios),
      policy_logps_mean: round(est.policyLogpMean),
      ref_logps_mean: round(est.refLogpMean),
      ...(pure ? {} : { note: 'samples were not drawn from pi itself (temperature != 1, top-k or top-p): the mean log-ratio is not an unbiased KL estimate' }),
    };
  }

  // 2. Rewards.
  checkStop('the rewards');
  const reward = o.rewardModel || o.scorer ? await openRewardSource({ ...o, progress }) : undefined;
  const rewardFn = reward?.fn;
  const rewardSource = reward?.source;
  try {
    const texts = flat.map((s) => s.p.text);
    const completions = flat.map((s) => s.completion);
    const rewards = rewardFn ? await rewardFn(texts, completions, 'policy') : undefined;

    // 3. Baseline completions, paired with sample k of each prompt.
    let baselineCompletions: string[] | undefined;
    let baselineLabel = '';
    if (o.baselineFile) {
      const file = await loadBaselineFile(o.baselineFile, { onBadRow: o.onBadRow });
      for (const bad of file.skipped) o.log?.(`skipped ${formatBadRow(bad)}`);
      const matched = matchBaselines(file, prompts, o.baselineFile);
      baselineCompletions = flat.map((s) => matched[s.i][s.k % matched[s.i].length]);
      baselineLabel = `file:${o.baselineFile}`;
    } else if (o.baseline) {
      const b = await sample(o.baseline, o, progress, 'baseline');
      if (b.samples.prompts.length !== prompts.length) throw new DpoError(`${o.prompts}: the baseline model's tokenizer reads ${b.samples.prompts.length} prompts, the policy's ${prompts.length}`);
      baselineCompletions = flat.map((s) => b.samples.result.completions[s.i][s.k]);
      baselineLabel = `model:${o.baseline}`;
    }

    let winRate: WinRateSummary | undefined;
    let outcomes: Outcome[] | undefined;
    let baselineRewards: Float64Array | undefined;
    if (baselineCompletions) {
      if (judgeClient) {
        checkStop('the judge');
        const cacheFile = VerdictCache.fileIn(o.cacheDir ?? defaultCacheDir());
        const cache = await VerdictCache.open(cacheFile);
        progress.start('judge', 2 * flat.length);
        let judged;
        try {
          judged = await judgePairs(
            flat.map((s, n) => ({ query: promptQueryText(s.p), policy: s.completion, baseline: (baselineCompletions as string[])[n] })),
            { client: judgeClient, cache, template: o.judge?.template, concurrency: o.judge?.concurrency, onProgress: (d) => progress.update(d), stopRequested: () => o.signal?.aborted ?? false },
          );
        } catch (e) {
          if (e instanceof JudgeStopped) {
            throw new EvaluationStopped(`stopped the judge after ${e.answered} of ${e.total} questions; no report written; their verdicts are kept in ${cacheFile} and the same command asks only the rest`);
          }
          throw e;
        } finally {
          progress.stop();
        }
        outcomes = judged.outcomes;
        winRate = {
          judge: `llm:${judgeClient.model}`,
          baseline: baselineLabel,
          ...judged.counts,
          win_rate: judged.counts.win_rate === null ? null : round(judged.counts.win_rate),
          cached: judged.cached,
          asked: judged.asked,
          http_requests: judgeClient.requests,
          first_position_rate: judged.first_position_rate === null ? null : round(judged.first_position_rate),
        };
      } else if (rewardFn && rewards) {
        baselineRewards = await rewardFn(texts, baselineCompletions, 'baseline');
        const br = baselineRewards;
        outcomes = flat.map((_, n): Outcome => (rewards[n] > br[n] ? 'win' : rewards[n] < br[n] ? 'loss' : 'tie'));
        const counts = countOutcomes(outcomes);
        winRate = {
          judge: rewardSource as string,
          baseline: baselineLabel,
          ...counts,
          win_rate: counts.win_rate === null ? null : round(counts.win_rate),
          baseline_reward_mean: round(sampleStats(br).mean),
        };
      }
    }

    const tokens = flat.map((s) => s.ids.length);
    const report: EvaluationReport = {
      model: o.model,
      ...(o.refModel ? { ref_model: o.refModel } : {}),
      prompts_file: o.prompts,
      prompts: prompts.length,
      samples_per_prompt: K,
      samples: flat.length,
      skipped_rows: samples.skipped,
      sampling: { temperature: o.temperature ?? 1, top_k: o.topK ?? 0, top_p: o.topP ?? 1, max_new_tokens: maxNewTokens, seed: o.seed ?? 0 },
      completion_tokens_mean: round(sampleStats(tokens).mean),
      ...(rewards ? { reward: { source: rewardSource as string, ...stats(rewards) } } : {}),
      ...(kl ? { kl } : {}),
      ...(winRate ? { win_rate: winRate } : {}),
      seconds: round((performance.now() - started) / 1000, 4),
    };
    if (o.perSample) {
      report.per_sample = flat.map((s, n) => ({
        prompt: s.p.prompt,
        sample: s.k,
        completion: s.completion,
        finish_reason: result.finishReasons[s.i][s.k],
        tokens: s.ids.length,
        ...(rewards ? { reward: rewards[n] } : {}),
        ...(policyLogps && refLogps ? { logp: policyLogps[n], ref_logp: refLogps[n] } : {}),
        ...(baselineCompletions ? { baseline: baselineCompletions[n] } : {}),
        ...(baselineRewards ? { baseline_reward: baselineRewards[n] } : {}),
        ...(outcomes ? { outcome: outcomes[n] } : {}),
      }));
    }
    return report;
  } finally {
    await reward?.release();
  }
}

/** A short human-readable table of a report (the CLI prints it on stderr). */
export function formatReport(r: EvaluationReport): string {
  const f = (x: number | null | undefined, d = 4): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
  const lines: string[] = [];
  const row = (k: string, v: string): void => void lines.push(`  ${k.padEnd(22)} ${v}`);
  lines.push(`evaluate ${r.model}: ${r.prompts} prompts x ${r.samples_per_prompt} samples (temperature ${r.sampling.temperature}, <= ${r.sampling.max_new_tokens} new tokens)`);
  row('completion tokens', f(r.completion_tokens_mean, 1));
  if (r.reward) row(`reward (${r.reward.source})`, `${f(r.reward.mean)} ± ${f(r.reward.stderr)}`);
  if (r.kl) row('KL(pi || ref)', `${f(r.kl.mean)} ± ${f(r.kl.stderr)}${r.kl.note ? ' (biased: not pure sampling)' : ''}`);
  if (r.win_rate) {
    const w = r.win_rate;
    row(`win rate (${w.judge})`, `${w.win_rate === null ? '-' : `${(w.win_rate * 100).toFixed(1)}%`} vs ${w.baseline}`);
    row('  wins/ties/losses', `${w.wins}/${w.ties}/${w.losses}${w.malformed ? `  malformed ${w.malformed}` : ''}`);
    if (w.http_requests !== undefined) row('  judge', `${w.asked} asked, ${w.cached} cached, ${w.http_requests} HTTP requests`);
  }
  return `${lines.join('\n')}\n`;
}

/** @deprecated The former name of {@link evaluateGenerations}. */
export const evaluatePolicy = evaluateGenerations;
/** @deprecated The former name of {@link EvaluateGenerationsOptions}. */
export type EvaluatePolicyOptions = EvaluateGenerationsOptions;
