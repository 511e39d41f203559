/**
 * The judge flags of a study command, as a zod shape to spread into the command's flag schema
 * (`z.object({...JUDGE_FLAGS, ...})`): --judge-url/--judge-model (an LLM behind an
 * OpenAI-compatible endpoint, the DPO paper's GPT-4 evaluation) or --scorer (offline), and the
 * client's settings. {@link pairJudgeFromFlags} turns the parsed values into a {@link PairJudge}.
 */
import { z } from 'zod';
import { DpoError } from '../errors.js';
import { JUDGE_TEMPLATES, VerdictCache, type JudgeTemplateName } from '../eval/judge.js';
import { llmPairJudge, scorerPairJudge, type PairJudge } from '../eval/pair-judge.js';
import { getScorer, listScorers } from '../eval/scorers.js';
import { option } from '../train/core/config.js';
import { defaultCacheDir } from '../scoring/reference-cache.js';
import type { CliStream } from './context.js';

export const JUDGE_FLAGS = {
  judgeUrl: option(z.string().regex(/^https?:\/\//i, 'must start with http:// or https://').optional(), 'OpenAI-compatible API base URL (…/v1) or …/chat/completions of the LLM judge', 'url'),
  judgeModel: option(z.string().min(1).optional(), 'model name sent to the judge endpoint', 'name'),
  judgeApiKeyEnv: option(z.string().min(1).default('OPENAI_API_KEY'), 'environment variable holding the judge API key, sent as Bearer', 'var'),
  template: option(z.enum(JUDGE_TEMPLATES as [JudgeTemplateName, ...JudgeTemplateName[]]).default('dialogue'), "the DPO paper's comparison prompt", 'name'),
  scorer: option(z.string().min(1).optional(), `judge offline with a built-in scorer instead of an LLM (${listScorers().map((s) => s.name).join(', ')})`, 'name'),
  judgeConcurrency: option(z.number().int().min(1).default(4), 'judge requests in flight at once'),
  judgeMaxAttempts: option(z.number().int().min(1).default(6), 'tries per judge request (first one included)'),
  judgeTimeout: option(z.number().positive().default(120), 'seconds one judge request may take before it is abandoned (and retried)', 'seconds'),
  cacheDir: option(z.string().min(1).optional(), 'where judge verdicts are cached, in judge-verdicts.jsonl (default: $DPO_TS_CACHE or ~/.cache/dpo-ts)', { arg: 'dir', group: 'reward' }),
};

/** The parsed judge flags. */
export type JudgeFlags = z.output<z.ZodObject<typeof JUDGE_FLAGS>>;

/**
 * The judge the flags name: an LLM (--judge-url and --judge-model, the API key from
 * --judge-api-key-env) or a scorer (--scorer); a DpoError when they name none or conflict.
 * (A command whose judge is optional checks `judgeUrl ?? scorer` first.)
 */
export function pairJudgeFromFlags(
  o: JudgeFlags,
  io: { stderr: CliStream; env?: NodeJS.ProcessEnv; fetch?: typeof fetch; sleep?: (ms: number) => Promise<void> },
): PairJudge {
  if (o.scorer !== undefined && o.judgeUrl !== undefined) throw new DpoError('--scorer and --judge-url: give one judge');
  if (o.judgeUrl !== undefined && o.judgeModel === undefined) throw new DpoError('--judge-url needs --judge-model (the model name the endpoint serves)');
  if (o.judgeModel !== undefined && o.judgeUrl === undefined) throw new DpoError('--judge-model needs --judge-url');
  if (o.scorer !== undefined) {
    const s = getScorer(o.scorer);
    return scorerPairJudge(s.name, s.score);
  }
  if (o.judgeUrl === undefined) throw new DpoError('no judge: give --judge-url and --judge-model (an LLM), or --scorer (offline)');
  const env = io.env ?? process.env;
  const apiKey = env[o.judgeApiKeyEnv];
  // An explicitly named variable must be set; the default one may be absent (local servers need no key).
  if (!apiKey && o.judgeApiKeyEnv !== 'OPENAI_API_KEY') throw new DpoError(`--judge-api-key-env: environment variable ${o.judgeApiKeyEnv} is not set`);
  let lastStep = -1;
  return llmPairJudge({
    url: o.judgeUrl,
    model: o.judgeModel as string,
    apiKey: apiKey || undefined,
    template: o.template,
    concurrency: o.judgeConcurrency,
    maxAttempts: o.judgeMaxAttempts,
    timeoutMs: o.judgeTimeout * 1000,
    cacheFile: VerdictCache.fileIn(o.cacheDir ?? defaultCacheDir()),
    fetch: io.fetch,
    sleep: io.sleep,
    onRetry: ({ attempt, delayMs, reason }) => io.stderr.write(`judge: ${reason}; retry ${attempt} in ${(delayMs / 1000).toFixed(1)} s\n`),
    onProgress: (done, total) => {
      // A line per tenth of the questions: enough to see it move without flooding a log.
      const step = Math.floor((10 * done) / Math.max(1, total));
      if (step !== lastStep && total > 0) io.stderr.write(`judge: ${done}/${total} questions answered\n`);
      lastStep = step;
    },
  });
}
